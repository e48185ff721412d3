// Discovery against the emulator with the real Azure SDK clients: one list per group, instance
// views of tagged Spot `Deallocate` candidates only (never one per VM in the group), a remembered
// VM not read again, and read failures returned classified instead of thrown.
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi, type VmApi } from "../../runtime/src/azure/azure";
import { discoverGroup } from "../../runtime/src/loop/discovery";
import { resourceGroup, spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;
const tag = { name: "AttemptRestartAfterEviction", value: "true" };

function armApi(world: World): VmApi {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  return createArmVmApi(config, credential, { pollIntervalMs: 100 });
}

const armRequests = async (world: World) =>
  (await world.control.requests())
    .filter((r) => r.path.startsWith("/subscriptions/"))
    .map((r) => `${r.method} ${r.path.replace(/^.*\/virtualMachines/, "vms")}`);

describe("discovery against the emulator", () => {
  let world: World;
  before(async () => {
    world = await startWorld([
      spotVm("evicted"),
      spotVm("running", { powerState: "running" }),
      spotVm("untagged", { tags: {} }),
      spotVm("regular", { priority: "Regular", evictionPolicy: undefined, maxPrice: undefined }),
      spotVm("delete-policy", { evictionPolicy: "Delete" }),
    ]);
  });
  after(() => world.emulator.stop());

  it("lists once and reads the instance view of the tagged Spot Deallocate VMs only", async () => {
    const api = armApi(world);
    await api.listVms(resourceGroup, never); // the token, outside the requests counted below
    await world.control.clearRequests();
    const group = await discoverGroup(api, resourceGroup, tag, never);
    assert.equal(group.listFailure, undefined);
    const byName = Object.fromEntries(group.vms.map((d) => [d.vm.name, d]));
    assert.deepEqual(Object.keys(byName).sort(), [
      "delete-policy",
      "evicted",
      "regular",
      "running",
      "untagged",
    ]);
    assert.deepEqual(
      [
        byName.evicted?.source,
        byName.evicted?.powerState,
        byName.running?.source,
        byName.running?.powerState,
      ],
      ["read", "deallocated", "read", "running"],
    );
    for (const name of ["untagged", "regular", "delete-policy"]) {
      assert.equal(byName[name]?.candidate, false, name);
      assert.equal(byName[name]?.source, "not-read", name);
    }
    const requests = await armRequests(world);
    assert.equal(requests.filter((r) => r === "GET vms").length, 1, requests.join("\n"));
    assert.deepEqual(requests.filter((r) => r.endsWith("/instanceView")).sort(), [
      "GET vms/evicted/instanceView",
      "GET vms/running/instanceView",
    ]);
    assert.equal(requests.length, 3, requests.join("\n"));
  });

  it("does not read a VM the caller remembers (a start in flight)", async () => {
    const api = armApi(world);
    await world.control.clearRequests();
    const group = await discoverGroup(api, resourceGroup, tag, never, {
      remembered: (vm) => (vm.name === "evicted" ? { powerState: "deallocated" } : undefined),
    });
    const evicted = group.vms.find((d) => d.vm.name === "evicted");
    assert.deepEqual([evicted?.source, evicted?.powerState], ["remembered", "deallocated"]);
    const requests = await armRequests(world);
    assert.ok(!requests.includes("GET vms/evicted/instanceView"), requests.join("\n"));
  });

  it("returns a failed instance view classified, and still reports the rest", async () => {
    const api = armApi(world);
    // Compute's throttling answer: HTTP 429, code TooManyRequests, Retry-After
    // (learn.microsoft.com/azure/virtual-machines/troubleshooting/troubleshooting-throttling-errors).
    await world.control.addFaults({
      method: "GET",
      pathPattern: "/instanceView$",
      vm: "running",
      status: 429,
      retryAfterSeconds: 7,
      errorCode: "TooManyRequests",
      times: 1,
    });
    const group = await discoverGroup(api, resourceGroup, tag, never);
    const running = group.vms.find((d) => d.vm.name === "running");
    assert.equal(running?.source, "failed");
    assert.equal(running?.failure?.kind, "azure");
    const outcome = running?.failure?.kind === "azure" ? running.failure.outcome : undefined;
    assert.equal(outcome?.kind, "throttled");
    assert.equal(outcome?.kind === "throttled" ? outcome.retryAfterMs : undefined, 7_000);
    assert.equal(group.vms.find((d) => d.vm.name === "evicted")?.powerState, "deallocated");
  });
});

describe("discovery without a role on the group", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("a")], { role: "none" });
  });
  after(() => world.emulator.stop());

  it("returns the list's 403 as forbidden, naming Microsoft.Compute/virtualMachines/read", async () => {
    const group = await discoverGroup(armApi(world), resourceGroup, tag, never);
    assert.deepEqual(group.vms, []);
    const failure = group.listFailure;
    assert.equal(failure?.kind, "azure");
    const outcome = failure?.kind === "azure" ? failure.outcome : undefined;
    assert.equal(outcome?.kind, "forbidden");
    assert.equal(
      outcome?.kind === "forbidden" ? outcome.permission : undefined,
      "Microsoft.Compute/virtualMachines/read",
    );
  });
});
