// One eligibility rule (issue 24 item 1; runtime/src/core/spotEligibility.ts): the same VMs go to the
// Pulumi program (index.ts under pulumi.runtime.setMocks, as `pulumi preview` and the preview of
// `pulumi up` run it: ./fixtures/preview.ts in its own process), to `doctor` (runDoctor against the
// emulator, the runtime's own ARM client) and to the loop (one Restarter cycle against the emulator), and
// all three accept exactly the same ones.
// - SpotPlus with evictionPolicy Deallocate: azure-rest-api-specs Compute 2026-04-01 example
//   `VirtualMachine_Create_WithSpotPlusPriority`; @azure/arm-compute 25's priority enum.
// - A Spot VM without evictionPolicy: "you can set the eviction policy to Deallocate (default) or Delete"
//   (azure-compute-docs articles/virtual-machines/spot-vms.md, "Eviction policy").
// - A Regular VM is answered without `priority` at api-version 2026-04-01 (optional members may be absent).
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi } from "../../runtime/src/azure/azure";
import { probeEndpoint, runDoctor } from "../../runtime/src/cli/doctor";
import { Restarter } from "../../runtime/src/loop/restarter";
import type { Logger } from "../../runtime/src/signals/log";
import { createFileStateStore } from "../../runtime/src/state/state";
import type { MockVm } from "../../support/pulumi-mocks";
import { resourceGroup, spotVm, startWorld, type World } from "../runtime/harness";
import { preview } from "./fixtures/runPreview";

/** Each VM as ARM answers it; `null` = the field is absent from the answer. */
const VMS: ReadonlyArray<{
  name: string;
  priority: "Spot" | "SpotPlus" | "Regular" | null;
  evictionPolicy: "Deallocate" | "Delete" | null;
  restartable: boolean;
}> = [
  { name: "spot-deallocate", priority: "Spot", evictionPolicy: "Deallocate", restartable: true },
  { name: "spot-default-policy", priority: "Spot", evictionPolicy: null, restartable: true },
  { name: "spotplus-deallocate", priority: "SpotPlus", evictionPolicy: "Deallocate", restartable: true },
  { name: "spotplus-default-policy", priority: "SpotPlus", evictionPolicy: null, restartable: true },
  { name: "spot-delete", priority: "Spot", evictionPolicy: "Delete", restartable: false },
  { name: "regular", priority: "Regular", evictionPolicy: null, restartable: false },
  { name: "no-priority", priority: null, evictionPolicy: null, restartable: false },
];
const expected = VMS.filter((vm) => vm.restartable)
  .map((vm) => vm.name)
  .sort();

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

describe("one eligibility rule: the program, doctor and the loop accept the same VMs", () => {
  let w: World;
  before(async () => {
    w = await startWorld(
      VMS.map((vm) =>
        spotVm(vm.name, {
          // The emulator answers a Regular VM (its default priority) without `priority`.
          ...(vm.priority === null || vm.priority === "Regular"
            ? { priority: "Regular" }
            : { priority: vm.priority }),
          evictionPolicy: vm.evictionPolicy,
        } as Parameters<typeof spotVm>[1]),
      ),
    );
  });
  after(() => w.emulator.stop());

  it("pulumi up (mocks): tags exactly the Spot and SpotPlus VMs that deallocate on eviction, refuses the rest by name", async () => {
    const result = await preview({
      config: { resourceGroupName: resourceGroup, restartableVms: JSON.stringify(VMS.map((vm) => vm.name)) },
      vms: VMS.map(
        (vm): MockVm => ({
          resourceGroup,
          name: vm.name,
          priority: vm.priority,
          evictionPolicy: vm.evictionPolicy,
        }),
      ),
    });
    const tagged = VMS.filter((vm) =>
      result.resources.some((r) => r.endsWith(`::spot-restarter-tag-${vm.name}-tags`)),
    ).map((vm) => vm.name);
    assert.deepEqual(tagged.sort(), expected, result.errors.join("\n"));
    const refused = VMS.filter((vm) => result.errors.some((line) => line.includes(`VM "${vm.name}"`))).map(
      (vm) => vm.name,
    );
    assert.deepEqual(
      refused.sort(),
      VMS.filter((vm) => !vm.restartable)
        .map((vm) => vm.name)
        .sort(),
    );
    assert.equal(result.exitCode, 1, "a refused VM stops the run");
  });

  it("doctor: passes exactly those VMs, fails the others", async () => {
    const config = w.config;
    const checks = await runDoctor(config, AbortSignal.timeout(60_000), {
      now: () => new Date(),
      probe: probeEndpoint,
      vmApi: (credential) => createArmVmApi(config, credential),
    });
    const vmChecks = checks.filter((check) => check.name.startsWith(`VM ${resourceGroup}/`));
    assert.equal(vmChecks.length, VMS.length, "every tagged VM checked");
    const passed = vmChecks
      .filter((check) => check.status === "pass")
      .map((check) => check.name.slice(`VM ${resourceGroup}/`.length))
      .sort();
    assert.deepEqual(passed, expected);
    assert.ok(vmChecks.every((check) => check.status === "pass" || check.status === "fail"));
  });

  it("the loop: one cycle starts exactly those VMs (all deallocated and tagged)", async () => {
    const config = w.config;
    const credential = createCredential(config, { pem: w.principal.pem } as Parameters<
      typeof createCredential
    >[1]);
    const restarter = new Restarter({
      api: createArmVmApi(config, credential, { pollIntervalMs: 100 }),
      store: createFileStateStore(w.stateDir),
      log: quiet,
      settings: {
        resourceGroups: config.resourceGroups,
        tag: config.tag,
        maxConcurrentStarts: 10,
        backoff: { initialMs: 60_000, maxMs: 1_800_000 },
        startTimeoutMs: 20_000,
        intervalMs: 500,
      },
    });
    await restarter.init();
    await restarter.runCycle(new AbortController().signal);
    await restarter.waitForStarts();
    const started = (await w.control.vms())
      .filter((vm) => vm.startRequests > 0)
      .map((vm) => vm.name)
      .sort();
    assert.deepEqual(started, expected);
  });
});
