// The VM surface through the real @azure/arm-compute client: list + paging, instance view, start to
// completion, capacity failures, eviction.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";
const BUILDER = "scratch-builder-spot";
const REGULAR = "vpn-gateway-vm";

function computeClient(t: TestEmulator): ComputeManagementClient {
  return new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
    endpoint: t.emulator.armEndpoint,
    credentials: { scopes: [ARM_SCOPE] },
  });
}

const powerState = (statuses: Array<{ code?: string }> | undefined) =>
  statuses?.find((status) => status.code?.startsWith("PowerState/"))?.code;

describe("emulator: virtual machines via @azure/arm-compute", () => {
  let t: TestEmulator;
  let compute: ComputeManagementClient;

  before(async () => {
    t = await startTestEmulator({
      listPageSize: 2,
      timing: { startSeconds: 0.3, evictionDelaySeconds: 0.2, deallocateSeconds: 0.2 },
    });
    compute = computeClient(t);
  });
  after(() => t.emulator.stop());

  it("lists the resource group across nextLink pages", async () => {
    await t.control.clearRequests();
    const names: string[] = [];
    for await (const vm of compute.virtualMachines.list(t.resourceGroup)) names.push(vm.name ?? "");
    assert.deepEqual(names.sort(), [BUILDER, BACKUP, REGULAR].sort());
    const lists = (await t.control.requests()).filter((request) => request.path.endsWith("/virtualMachines"));
    assert.equal(lists.length, 2, "3 VMs at page size 2 take two list calls");
    assert.match(lists[1]?.query ?? "", /\$skiptoken=2/);
    assert.equal(lists[0]?.clientId, t.principal.clientId);
  });

  it("returns the Spot fields and no instance view in the list", async () => {
    const vms = [];
    for await (const vm of compute.virtualMachines.list(t.resourceGroup)) vms.push(vm);
    const backup = vms.find((vm) => vm.name === BACKUP);
    assert.equal(backup?.priority, "Spot");
    assert.equal(backup?.evictionPolicy, "Deallocate");
    assert.equal(backup?.billingProfile?.maxPrice, -1);
    assert.equal(backup?.tags?.AttemptRestartAfterEviction, "true");
    assert.equal(backup?.instanceView, undefined);
    // A Regular VM omits `priority` (2026-04-01 example VirtualMachine_Get.json has none).
    assert.equal(vms.find((vm) => vm.name === REGULAR)?.priority, undefined);
  });

  it("serves the instance view with ProvisioningState first and PowerState second", async () => {
    const view = await compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
    assert.deepEqual(
      view.statuses?.map((status) => status.code),
      ["ProvisioningState/succeeded", "PowerState/deallocated"],
    );
    const expanded = await compute.virtualMachines.get(t.resourceGroup, REGULAR, { expand: "instanceView" });
    assert.equal(powerState(expanded.instanceView?.statuses), "PowerState/running");
    const plain = await compute.virtualMachines.get(t.resourceGroup, REGULAR);
    assert.equal(plain.instanceView, undefined);
  });

  it("starts a deallocated Spot VM as a long-running operation to completion", async () => {
    const raw = await armFetch(t, "POST", `${vmPath(t, BACKUP)}/start`);
    assert.equal(raw.status, 202);
    assert.match(
      raw.headers.get("azure-asyncoperation") ?? "",
      /\/providers\/Microsoft\.Compute\/locations\/eastus\/operations\//,
    );
    assert.match(raw.headers.get("location") ?? "", /monitor=true/);
    assert.equal(raw.headers.get("retry-after"), "1");
    const during = await compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
    assert.equal(powerState(during.statuses), "PowerState/starting");
    const status = await armFetch<{ status: string }>(
      t,
      "GET",
      new URL(raw.headers.get("azure-asyncoperation") ?? "").pathname +
        new URL(raw.headers.get("azure-asyncoperation") ?? "").search,
    );
    assert.equal(status.body.status, "InProgress");

    await compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 100 });
    const view = await compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
    assert.equal(powerState(view.statuses), "PowerState/running");
    assert.equal((await t.control.vm(t.resourceGroup, BACKUP))?.startRequests, 2);
  });

  it("ends a start Failed with the capacity code when a startFailsWith fault matches", async () => {
    await t.control.addFaults({ vm: BUILDER, startFailsWith: "ZonalAllocationFailed", times: 1 });
    await assert.rejects(
      compute.virtualMachines.beginStartAndWait(t.resourceGroup, BUILDER, { updateIntervalInMs: 100 }),
      (error: Error) => {
        // core-lro reports a Failed operation as a plain Error: the Azure code is only in the message.
        assert.match(error.message, /^The long-running operation has failed\. ZonalAllocationFailed\./);
        return true;
      },
    );
    const view = await compute.virtualMachines.instanceView(t.resourceGroup, BUILDER);
    assert.equal(powerState(view.statuses), "PowerState/deallocated");
    assert.equal(view.statuses?.[0]?.code, "ProvisioningState/failed/ZonalAllocationFailed");
    // The fault was for one start only: the next one succeeds.
    await compute.virtualMachines.beginStartAndWait(t.resourceGroup, BUILDER, { updateIntervalInMs: 100 });
    assert.equal((await t.control.vm(t.resourceGroup, BUILDER))?.powerState, "running");
  });

  it("evicts a running Spot VM after simulateEviction (Deallocate policy)", async () => {
    await compute.virtualMachines.simulateEviction(t.resourceGroup, BACKUP);
    assert.equal(
      (await t.control.vm(t.resourceGroup, BACKUP))?.powerState,
      "running",
      "eviction waits evictionDelaySeconds",
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const vm = await t.control.vm(t.resourceGroup, BACKUP);
    assert.equal(vm?.powerState, "deallocated");
    assert.equal(vm?.evictions, 1);
  });

  it("refuses simulateEviction on a regular VM", async () => {
    const response = await armFetch<{ error: { code: string } }>(
      t,
      "POST",
      `${vmPath(t, REGULAR)}/simulateEviction`,
    );
    assert.equal(response.status, 409);
    assert.equal(response.body.error.code, "OperationNotAllowed");
  });

  it("deallocates and powers off as long-running operations", async () => {
    await compute.virtualMachines.beginDeallocateAndWait(t.resourceGroup, BUILDER, {
      updateIntervalInMs: 100,
    });
    assert.equal((await t.control.vm(t.resourceGroup, BUILDER))?.powerState, "deallocated");
    await compute.virtualMachines.beginPowerOffAndWait(t.resourceGroup, REGULAR, { updateIntervalInMs: 100 });
    assert.equal((await t.control.vm(t.resourceGroup, REGULAR))?.powerState, "stopped");
  });

  it("deletes an evicted VM whose eviction policy is Delete; the control API evicts at once", async () => {
    await t.control.putVm(t.resourceGroup, "ephemeral-spot", {
      priority: "Spot",
      evictionPolicy: "Delete",
      powerState: "running",
    });
    await t.control.evict(t.resourceGroup, "ephemeral-spot");
    await assert.rejects(
      compute.virtualMachines.get(t.resourceGroup, "ephemeral-spot"),
      (error: { statusCode?: number; code?: string }) => {
        assert.equal(error.statusCode, 404);
        assert.equal(error.code, "ResourceNotFound");
        return true;
      },
    );
  });

  it("answers Azure-shaped errors for unknown groups and VMs and a missing api-version", async () => {
    const missingGroup = await armFetch<{ error: { code: string } }>(
      t,
      "GET",
      `/subscriptions/${t.emulator.subscriptionId}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachines`,
    );
    assert.equal(
      missingGroup.status,
      403,
      "ARM authorizes before it looks: the principal has no role on 'nope'",
    );
    const missingVm = await armFetch<{ error: { code: string } }>(t, "GET", vmPath(t, "nope"));
    assert.equal(missingVm.status, 404);
    assert.equal(missingVm.body.error.code, "ResourceNotFound");
    const token = await t.credential.getToken(ARM_SCOPE);
    const noVersion = await fetch(new URL(vmPath(t, BACKUP), t.emulator.armEndpoint), {
      headers: { Authorization: `Bearer ${token?.token}` },
    });
    assert.equal(noVersion.status, 400);
    assert.equal(
      ((await noVersion.json()) as { error: { code: string } }).error.code,
      "MissingApiVersionParameter",
    );
  });
});
