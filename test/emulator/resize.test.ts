// Resizing through the real @azure/arm-compute client: listAvailableSizes, PATCH of hardwareProfile.vmSize
// while deallocated (refused while allocated, across the temp-disk line, and without the write action), and the
// capacity fault rule's `vmSize` (an outage of one size that a resize escapes).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot"; // Standard_B2s (8 GiB temp disk), deallocated
const BUILDER = "scratch-builder-spot"; // Standard_D2s_v5 (no temp disk), deallocated
const REGULAR = "vpn-gateway-vm"; // Standard_B1s, running

function computeClient(t: TestEmulator): ComputeManagementClient {
  return new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
    endpoint: t.emulator.armEndpoint,
    credentials: { scopes: [ARM_SCOPE] },
    retryOptions: { maxRetries: 0 },
  });
}

async function refusal(
  promise: Promise<unknown>,
): Promise<{ statusCode?: number; code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { statusCode?: number; code?: string; message: string };
  }
  assert.fail("expected Azure to refuse");
}

describe("emulator: resizing a VM via @azure/arm-compute", () => {
  let t: TestEmulator;
  let compute: ComputeManagementClient;

  before(async () => {
    t = await startTestEmulator({ timing: { startSeconds: 0.2, deallocateSeconds: 0.1 } });
    compute = computeClient(t);
  });
  after(() => t.emulator.stop());

  it("lists the sizes a deallocated VM can take, shaped as VirtualMachineSize (2026-04-01)", async () => {
    const sizes = [];
    for await (const size of compute.virtualMachines.listAvailableSizes(t.resourceGroup, BUILDER))
      sizes.push(size);
    const names = sizes.map((size) => size.name);
    for (const name of [
      "Standard_B2s",
      "Standard_D2as_v5",
      "Standard_D2ads_v5",
      "Standard_E4s_v6",
      "Standard_F4s_v2",
    ]) {
      assert.ok(names.includes(name), name);
    }
    // Standard_D2ds_v5: 2 vCPUs, 8 GiB, 75 GiB temp disk (Ddsv5 size page); Standard_D2s_v5: no temp disk.
    assert.deepEqual(
      sizes.find((size) => size.name === "Standard_D2ds_v5"),
      {
        name: "Standard_D2ds_v5",
        numberOfCores: 2,
        osDiskSizeInMB: 1047552,
        resourceDiskSizeInMB: 76800,
        memoryInMB: 8192,
        maxDataDiskCount: 4,
      },
    );
    assert.equal(sizes.find((size) => size.name === "Standard_D2s_v5")?.resourceDiskSizeInMB, 0);
  });

  it("an allocated VM lists only its hardware cluster's size", async () => {
    const sizes = [];
    for await (const size of compute.virtualMachines.listAvailableSizes(t.resourceGroup, REGULAR))
      sizes.push(size);
    assert.deepEqual(
      sizes.map((size) => size.name),
      ["Standard_B1s"],
    );
  });

  it("resizes a deallocated VM (PATCH hardwareProfile.vmSize); GET and the control API show the new size", async () => {
    const updated = await compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, BUILDER, {
      hardwareProfile: { vmSize: "Standard_D2as_v5" },
    });
    assert.equal(updated.hardwareProfile?.vmSize, "Standard_D2as_v5");
    assert.equal(updated.provisioningState, "Succeeded");
    const got = await compute.virtualMachines.get(t.resourceGroup, BUILDER);
    assert.equal(got.hardwareProfile?.vmSize, "Standard_D2as_v5");
    assert.deepEqual(got.tags, { role: "build" }, "other fields kept");
    const control = await t.control.vm(t.resourceGroup, BUILDER);
    assert.equal(control?.vmSize, "Standard_D2as_v5");
    // And back, with a PUT of the whole VM (VirtualMachines_CreateOrUpdate), as `az vm resize` does.
    const back = await compute.virtualMachines.beginCreateOrUpdateAndWait(t.resourceGroup, BUILDER, {
      ...got,
      hardwareProfile: { vmSize: "Standard_D2s_v5" },
    });
    assert.equal(back.hardwareProfile?.vmSize, "Standard_D2s_v5");
  });

  it("refuses to resize a running VM with OperationNotAllowed, as outside its hardware cluster", async () => {
    const error = await refusal(
      compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, REGULAR, {
        hardwareProfile: { vmSize: "Standard_B2s" },
      }),
    );
    assert.equal(error.statusCode, 409);
    assert.equal(error.code, "OperationNotAllowed");
    assert.match(error.message, /not available in the current hardware cluster/);
    assert.equal((await t.control.vm(t.resourceGroup, REGULAR))?.vmSize, "Standard_B1s");
  });

  it("refuses a size across the temp-disk line, and a size the region does not offer", async () => {
    const across = await refusal(
      compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, BACKUP, {
        hardwareProfile: { vmSize: "Standard_D2s_v5" }, // B2s has a temp disk, D2s_v5 none
      }),
    );
    assert.equal(across.statusCode, 409);
    assert.equal(across.code, "OperationNotAllowed");
    assert.match(
      across.message,
      /changing from resource disk to non-resource disk VM size and vice-versa is not allowed/,
    );
    const unknown = await refusal(
      compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, BACKUP, {
        hardwareProfile: { vmSize: "Standard_Q2_v9" },
      }),
    );
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.code, "InvalidParameter");
    assert.match(
      unknown.message,
      /The requested VM size Standard_Q2_v9 is not available in the current region/,
    );
    assert.equal((await t.control.vm(t.resourceGroup, BACKUP))?.vmSize, "Standard_B2s");
  });

  it("a capacity fault with vmSize holds only while the VM has that size", async () => {
    await t.control.addFaults({ vm: BACKUP, vmSize: "Standard_B2s", startFailsWith: "AllocationFailed" });
    try {
      const failed = await refusal(
        compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 }),
      );
      assert.match(failed.message, /AllocationFailed/);
      // Standard_B2ms has a temp disk like B2s: allowed.
      await compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, BACKUP, {
        hardwareProfile: { vmSize: "Standard_B2ms" },
      });
      await compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 });
      const vm = await t.control.vm(t.resourceGroup, BACKUP);
      assert.equal(vm?.powerState, "running");
      assert.deepEqual(
        vm?.history.filter((entry) => entry.event === "resized").map((entry) => [entry.from, entry.vmSize]),
        [["Standard_B2s", "Standard_B2ms"]],
      );
    } finally {
      await t.control.clearFaults();
    }
  });
});

describe("emulator: resizing needs Microsoft.Compute/virtualMachines/write", () => {
  let t: TestEmulator;
  before(async () => {
    // The program's least-privilege role without fallback sizes: no write action.
    t = await startTestEmulator({}, { role: "least-privilege" });
  });
  after(() => t.emulator.stop());

  it("answers 403 AuthorizationFailed naming the action, for the size list too", async () => {
    const compute = computeClient(t);
    const error = await refusal(
      compute.virtualMachines.beginUpdateAndWait(t.resourceGroup, BUILDER, {
        hardwareProfile: { vmSize: "Standard_D2as_v5" },
      }),
    );
    assert.equal(error.statusCode, 403);
    assert.equal(error.code, "AuthorizationFailed");
    assert.match(error.message, /Microsoft\.Compute\/virtualMachines\/write/);
    const listing = await refusal(
      (async () => {
        for await (const _ of compute.virtualMachines.listAvailableSizes(t.resourceGroup, BUILDER)) void _;
      })(),
    );
    assert.equal(listing.statusCode, 403);
    assert.equal(listing.code, "AuthorizationFailed");
    // The SDK's pager replaces the message ("Pagination failed with unexpected statusCode 403"); ARM's names it.
    const raw = await armFetch<{ error: { code: string; message: string } }>(
      t,
      "GET",
      `${vmPath(t, BUILDER)}/vmSizes`,
    );
    assert.equal(raw.status, 403);
    assert.match(raw.body.error.message, /Microsoft\.Compute\/virtualMachines\/vmSizes\/read/);
    assert.equal((await t.control.vm(t.resourceGroup, BUILDER))?.vmSize, "Standard_D2s_v5");
  });
});
