// The emulator answers as Resource Manager and Compute do at 2026-04-01, including the answers the
// runtime must cope with but the common path never shows: api-versions refused, a start answered with
// Location only or synchronously, optional members omitted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import type { EmulatorSeed } from "../../emulator/seed";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { createArmVmApi } from "../../runtime/src/azure/azure";
import { parseConfig } from "../../runtime/src/config/config";
import { armFetch, rgPath, vmPath } from "./helpers";

const SPOT = "ubuntu-backup-server-spot";
const PLAIN = "plain-regular-vm";

const world = (startResponse?: "async" | "location" | "sync"): Partial<EmulatorSeed> => ({
  ...(startResponse ? { startResponse } : {}),
  timing: { startSeconds: 0.3, retryAfterSeconds: 0 },
  virtualMachines: [
    {
      resourceGroup: "personal-network",
      name: SPOT,
      location: "eastus",
      vmSize: "Standard_B2s",
      priority: "Spot",
      evictionPolicy: "Deallocate",
      maxPrice: -1,
      powerState: "deallocated",
      tags: { AttemptRestartAfterEviction: "true" },
    },
    {
      resourceGroup: "personal-network",
      name: PLAIN,
      location: "eastus",
      vmSize: "Standard_B2s",
      priority: "Regular",
      powerState: "running",
    },
  ],
});

function vmApi(t: TestEmulator) {
  const config = parseConfig(
    {
      tenantId: t.emulator.tenantId,
      clientId: t.principal.clientId,
      subscriptionId: t.emulator.subscriptionId,
      certificatePath: "/unused.pem",
      resourceGroups: [t.resourceGroup],
      cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint },
    },
    "test",
  ).config;
  return createArmVmApi(config, t.credential, { pollIntervalMs: 50 });
}

describe("emulator fidelity: api-version", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator(world());
  });
  after(() => t.emulator.stop());

  it("refuses a version Compute does not register with 400 NoRegisteredProviderFound", async () => {
    const response = await armFetch<{ error: { code: string; message: string } }>(
      t,
      "GET",
      `${rgPath(t)}/providers/Microsoft.Compute/virtualMachines`,
      undefined,
      "2099-01-01",
    );
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, "NoRegisteredProviderFound");
    assert.match(response.body.error.message, /API version '2099-01-01' for type 'virtualMachines'/);
    assert.match(response.body.error.message, /2026-04-01/, "the message lists the supported versions");
  });

  it("refuses a value that is no version with 400 InvalidApiVersionParameter", async () => {
    const response = await armFetch<{ error: { code: string } }>(
      t,
      "GET",
      vmPath(t, SPOT),
      undefined,
      "latest",
    );
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, "InvalidApiVersionParameter");
  });

  it("accepts what @azure/arm-compute 25 sends (2026-04-01) and what az 2.45 sends (2022-11-01)", async () => {
    for (const version of ["2026-04-01", "2022-11-01"]) {
      const response = await armFetch(t, "GET", vmPath(t, SPOT), undefined, version);
      assert.equal(response.status, 200, version);
    }
    await t.control.clearRequests();
    const compute = new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
      endpoint: t.emulator.armEndpoint,
      credentials: { scopes: [ARM_SCOPE] },
    });
    await compute.virtualMachines.get(t.resourceGroup, SPOT);
    const request = (await t.control.requests()).find((r) => r.method === "GET" && r.path.endsWith(SPOT));
    assert.match(request?.query ?? "", /api-version=2026-04-01/);
  });
});

describe("emulator fidelity: optional members are omitted as Azure omits them", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator(world());
  });
  after(() => t.emulator.stop());

  it("a Regular VM has no `priority`, an untagged VM no `tags`; the runtime lists both", async () => {
    const raw = await armFetch<{ tags?: object; properties: { priority?: string } }>(
      t,
      "GET",
      vmPath(t, PLAIN),
    );
    assert.equal("tags" in raw.body, false);
    assert.equal("priority" in raw.body.properties, false);
    const listed = await vmApi(t).listVms(t.resourceGroup, AbortSignal.timeout(10_000));
    const plain = listed.find((vm) => vm.name === PLAIN);
    assert.deepEqual(plain && { priority: plain.priority, tags: plain.tags }, {
      priority: undefined,
      tags: {},
    });
    assert.equal(listed.find((vm) => vm.name === SPOT)?.priority, "Spot");
  });
});

for (const mode of ["location", "sync"] as const) {
  describe(`emulator fidelity: a start answered ${mode === "sync" ? "synchronously (200)" : "with Location only"}`, () => {
    let t: TestEmulator;
    before(async () => {
      t = await startTestEmulator(world(mode));
    });
    after(() => t.emulator.stop());

    it("is followed to its end by the runtime's start (the SDK's other polling path)", async () => {
      await t.control.clearRequests();
      let accepted = false;
      await vmApi(t).startVm(t.resourceGroup, SPOT, AbortSignal.timeout(20_000), {
        onAccepted: () => {
          accepted = true;
        },
      });
      assert.equal(accepted, true);
      const vm = (await t.control.vms()).find((v) => v.name === SPOT);
      assert.equal(vm?.powerState, "running");
      const requests = await t.control.requests();
      const start = requests.find((r) => r.method === "POST" && r.path.endsWith("/start"));
      assert.equal(start?.status, mode === "sync" ? 200 : 202);
      const polls = requests.filter((r) => r.path.includes("/operations/"));
      if (mode === "sync") assert.equal(polls.length, 0, "a 200 needs no poll");
      else {
        assert.ok(polls.length >= 1);
        assert.ok(
          polls.every((p) => /monitor=true/.test(p.query)),
          "with Location only, every poll is of the Location URL",
        );
      }
    });
  });
}

describe("emulator fidelity: a VM behind a VPN has no public IP", () => {
  let t: TestEmulator;
  before(async () => {
    const seed = world();
    seed.virtualMachines = seed.virtualMachines?.map((vm) =>
      vm.name === SPOT ? { ...vm, publicIp: false } : vm,
    );
    t = await startTestEmulator(seed);
  });
  after(() => t.emulator.stop());

  it("its NIC names no public IP and the public IP does not exist; others keep theirs", async () => {
    const nic = (name: string) =>
      armFetch<{
        properties: { ipConfigurations: Array<{ properties: { publicIPAddress?: { id: string } } }> };
      }>(
        t,
        "GET",
        `${rgPath(t)}/providers/Microsoft.Network/networkInterfaces/${name}-nic`,
        undefined,
        "2024-05-01",
      );
    const vpn = await nic(SPOT);
    assert.equal(vpn.status, 200);
    assert.equal(vpn.body.properties.ipConfigurations[0]?.properties.publicIPAddress, undefined);
    const ip = await armFetch(
      t,
      "GET",
      `${rgPath(t)}/providers/Microsoft.Network/publicIPAddresses/${SPOT}-ip`,
      undefined,
      "2024-05-01",
    );
    assert.equal(ip.status, 404);
    const plain = await nic(PLAIN);
    assert.match(plain.body.properties.ipConfigurations[0]?.properties.publicIPAddress?.id ?? "", /-ip$/);
  });
});
