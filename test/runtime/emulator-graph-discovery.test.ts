// Discovery on Resource Graph (issue 28) against the emulator, with the real Azure SDK clients in-process:
// six groups cost one Resource Graph query per idle cycle (no list, no instance view), an evicted VM in the
// sixth group is confirmed with its instance view and started, a graph that lags the VM (the emulator's
// timing.resourceGraphLagSeconds) is never trusted to start one, and the list sweep every 10 cycles logs
// where the two disagree. Resource Graph's freshness: "updated within seconds of most changes"
// (learn.microsoft.com/azure/governance/resource-graph/overview#how-resource-graph-is-kept-current).
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter } from "../../runtime/src/azure/azure";
import { BudgetTracker } from "../../runtime/src/azure/budgets";
import { createArmVmGraph } from "../../runtime/src/azure/vmGraph";
import { discoveryModeFor } from "../../runtime/src/loop/discovery";
import { Restarter, type RestarterSettings } from "../../runtime/src/loop/restarter";
import type { Logger } from "../../runtime/src/signals/log";
import { createFileStateStore } from "../../runtime/src/state/state";
import { spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;
const GROUPS = ["rg-1", "rg-2", "rg-3", "rg-4", "rg-5", "rg-6"];

function recorder(): Logger & {
  lines: Array<{ event: string; meta: Record<string, unknown>; message: string }>;
} {
  const lines: Array<{ event: string; meta: Record<string, unknown>; message: string }> = [];
  const push = (event: string, meta: Record<string, unknown>, message = "") =>
    lines.push({ event, meta, message });
  return { lines, debug: () => {}, info: push, warn: push, error: push };
}

function wire(world: World, log: Logger, overrides: Partial<RestarterSettings> = {}) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const counter = createRequestCounter();
  const budget = new BudgetTracker();
  const api = createArmVmApi(config, credential, { counter, pollIntervalMs: 100, policies: [budget.policy] });
  const graph = createArmVmGraph(config, credential, { counter, policies: [budget.policy] });
  const settings: RestarterSettings = {
    resourceGroups: config.resourceGroups,
    tag: config.tag,
    maxConcurrentStarts: 10,
    backoff: { initialMs: 60_000, maxMs: 1_800_000 },
    startTimeoutMs: 20_000,
    intervalMs: 1_000,
    discovery: discoveryModeFor(config.discovery, config.resourceGroups, 1),
    ...overrides,
  };
  const restarter = new Restarter({
    api,
    graph,
    budget,
    store: createFileStateStore(world.stateDir),
    log,
    settings,
    counter,
  });
  return { restarter, counter };
}

/** The ARM requests since the last clear, by kind. */
async function requestKinds(world: World) {
  // ARM's requests (not the control API's, not Entra ID's token endpoint).
  const requests = (await world.control.requests()).filter((r) =>
    /^\/(subscriptions|providers)\//i.test(r.path),
  );
  return {
    graph: requests.filter((r) => /microsoft\.resourcegraph\/resources$/i.test(r.path)).length,
    list: requests.filter((r) => r.method === "GET" && /\/virtualMachines$/i.test(r.path)).length,
    instanceView: requests.filter((r) => /\/instanceView$/i.test(r.path)).length,
    start: requests.filter((r) => r.method === "POST" && /\/start$/i.test(r.path)).length,
    total: requests.length,
  };
}

describe("discovery on Resource Graph: six groups", () => {
  let world: World;
  before(async () => {
    world = await startWorld(
      GROUPS.flatMap((group) => [
        spotVm(`${group}-a`, { resourceGroup: group, powerState: "running" }),
        spotVm(`${group}-b`, { resourceGroup: group, powerState: "running" }),
      ]),
      { everyGroup: true, config: { resourceGroups: GROUPS } },
    );
  });
  after(() => world.emulator.stop());

  it("auto picks Resource Graph past three groups", () => {
    assert.equal(world.config.discovery, "auto");
    assert.equal(discoveryModeFor("auto", GROUPS, 1), "resource-graph");
    assert.equal(discoveryModeFor("auto", GROUPS.slice(0, 3), 1), "list");
    assert.equal(discoveryModeFor("auto", GROUPS.slice(0, 1), 2), "resource-graph");
    assert.equal(discoveryModeFor("list", GROUPS, 2), "list");
  });

  it("an idle cycle is one query; the sixth group's eviction is confirmed by its instance view, then started", async () => {
    const log = recorder();
    const { restarter } = wire(world, log, { sweepEveryCycles: 1000 });
    await restarter.init();
    // The first cycle is a list sweep (ARM's own view, and it sees a missing group); then the graph alone.
    await restarter.runCycle(never);
    await world.control.clearRequests();
    await restarter.runCycle(never);
    assert.deepEqual(await requestKinds(world), { graph: 1, list: 0, instanceView: 0, start: 0, total: 1 });

    await world.control.evict("rg-6", "rg-6-b");
    await world.control.clearRequests();
    const report = await restarter.runCycle(never);
    await Promise.all(report.starts);
    const kinds = await requestKinds(world);
    assert.equal(kinds.graph, 1);
    assert.equal(kinds.list, 0);
    assert.equal(kinds.instanceView, 1, "only the VM the graph says is deallocated is read");
    assert.equal(kinds.start, 1);
    const vm = (await world.control.vms()).find((v) => v.name === "rg-6-b");
    assert.equal(vm?.powerState, "running");
    assert.deepEqual(
      log.lines.filter((l) => l.event === "discovery-fallback"),
      [],
      "the graph answered every cycle",
    );
  });
});

describe("discovery on Resource Graph: a graph that lags the VM", () => {
  let world: World;
  before(async () => {
    // An hour of lag: the graph still shows every VM as seeded.
    world = await startWorld(
      [
        spotVm("was-deallocated", { resourceGroup: "rg-1", powerState: "deallocated" }),
        spotVm("was-running", { resourceGroup: "rg-2", powerState: "running" }),
      ],
      {
        everyGroup: true,
        timing: { resourceGraphLagSeconds: 3600 },
        config: { resourceGroups: ["rg-1", "rg-2"], discovery: "resource-graph" },
      },
    );
  });
  after(() => world.emulator.stop());

  it("a VM the graph still shows deallocated but that runs is not started: its instance view says running", async () => {
    await world.control.setVm("rg-1", "was-deallocated", { powerState: "running" });
    const log = recorder();
    const { restarter } = wire(world, log, { sweepEveryCycles: 1000 });
    await restarter.init();
    await restarter.runCycle(never); // the first cycle's sweep
    await world.control.clearRequests();
    const report = await restarter.runCycle(never);
    await Promise.all(report.starts);
    const kinds = await requestKinds(world);
    assert.equal(kinds.graph, 1);
    assert.equal(kinds.instanceView, 1, "the graph's deallocated VM is confirmed");
    assert.equal(kinds.start, 0, "and not started");
  });

  it("the list sweep logs where it and the graph disagree, and its view is the one used", async () => {
    await world.control.evict("rg-2", "was-running");
    const log = recorder();
    // A sweep every cycle: the graph (an hour behind) says running, the instance view deallocated.
    const { restarter } = wire(world, log, { sweepEveryCycles: 1 });
    await restarter.init();
    const report = await restarter.runCycle(never);
    await Promise.all(report.starts);
    const disagreement = log.lines.find((l) => l.event === "discovery-disagreement");
    assert.ok(disagreement, log.lines.map((l) => l.event).join(", "));
    assert.match(
      disagreement.message,
      /rg-2\/was-running: deallocated \(instance view\), running \(Resource Graph\)/,
    );
    assert.ok(report.starts.length >= 1, "the sweep's deallocated VM is started");
  });
});

describe("a VM in a second subscription of the tenant (issue 28)", () => {
  const OTHER = "44444444-4444-4444-8444-444444444444";
  const LAB = `/subscriptions/${OTHER}/resourceGroups/lab`;
  let world: World;
  before(async () => {
    world = await startWorld(
      [
        spotVm("home-1", { resourceGroup: "rg-1", powerState: "running" }),
        spotVm("lab-1", { subscriptionId: OTHER, resourceGroup: "lab", powerState: "running" }),
      ],
      { everyGroup: true, config: { resourceGroups: ["rg-1", LAB], restartWhen: "deallocated" } },
    );
  });
  after(() => world.emulator.stop());

  for (const discovery of ["list", "resource-graph"] as const) {
    it(`is found and started (${discovery})`, async () => {
      const { restarter } = wire(world, recorder(), { discovery, sweepEveryCycles: 1000 });
      await restarter.init();
      await restarter.runCycle(never);
      await world.control.evict("lab", "lab-1");
      await world.control.clearRequests();
      const report = await restarter.runCycle(never);
      await Promise.all(report.starts);
      const starts = (await world.control.requests()).filter(
        (r) => r.method === "POST" && r.path.endsWith("/start"),
      );
      assert.deepEqual(
        starts.map((r) => [r.path.split("/providers/")[0], r.status]),
        [[LAB, 202]],
        "started in its own subscription",
      );
      await world.control.setVm("lab", "lab-1", { powerState: "running" });
    });
  }
});
