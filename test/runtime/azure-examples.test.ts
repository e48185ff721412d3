// The runtime's parsing and decisions over Azure's own published example payloads
// (test/fixtures/azure-examples/, copied from azure-rest-api-specs 2026-04-01 with their paths cited
// there), not over shapes the emulator invented.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { listedVmFromArm } from "../../runtime/src/azure/azure";
import { powerStateFromStatuses } from "../../runtime/src/azure/payloads";
import { selectRestartCandidates } from "../../runtime/src/loop/decisions";

const examples = join(__dirname, "..", "fixtures", "azure-examples");
// biome-ignore lint/suspicious/noExplicitAny: example files are untyped JSON
const example = (file: string): any =>
  JSON.parse(readFileSync(join(examples, file), "utf8")).responses["200"].body;
const tag = { name: "AttemptRestartAfterEviction", value: "true" };

describe("Azure's published example payloads", () => {
  it("VirtualMachine_Get_InstanceView: the power state is found by its prefix, not its position", () => {
    const view = example("VirtualMachine_Get_InstanceView.json");
    assert.equal(powerStateFromStatuses(view.statuses), "running");
    // The vmAgent's and disks' statuses carry ProvisioningState codes only: none is mistaken for power.
    assert.equal(powerStateFromStatuses(view.vmAgent.statuses), undefined);
    assert.equal(powerStateFromStatuses([...view.statuses].reverse()), "running");
  });

  it("VirtualMachine_Get: a VM without `priority` is Regular and never a restart candidate", () => {
    const vm = example("VirtualMachine_Get.json");
    assert.equal("priority" in vm.properties, false, "the example omits priority");
    const listed = listedVmFromArm({ ...vm, ...vm.properties }, "myResourceGroup");
    assert.ok(listed);
    assert.equal(listed.name, "myVM");
    assert.deepEqual(listed.tags, { myTag1: "tagValue1" });
    const [decision] = selectRestartCandidates(
      [{ ...listed, powerState: "deallocated" }],
      { vms: {} },
      0,
      tag,
    );
    assert.deepEqual(
      decision && { action: decision.action, reason: "reason" in decision && decision.reason },
      {
        action: "skip",
        reason: "not-spot",
      },
    );
  });

  it("VirtualMachine_ListAll_MinimumSet_Gen: items with only id and location get their name from the id", () => {
    const { value } = example("VirtualMachine_ListAll_MinimumSet_Gen.json");
    const listed = value.map((item: { id: string }) => listedVmFromArm(item, "g"));
    assert.deepEqual(
      listed.map((vm: { name: string; tags: object; priority?: string }) => [vm.name, vm.tags, vm.priority]),
      [
        ["{virtualMachineName}", {}, undefined],
        ["{virtualMachineName}", {}, undefined],
      ],
    );
    assert.equal(listedVmFromArm({}, "g"), undefined, "an item with neither name nor id is dropped");
  });
});
