// The loop against the emulator with the real Azure SDK clients, in-process: which VMs a cycle
// starts, what an idle cycle costs in ARM requests, backoff under a persistent capacity fault and
// recovery, throttling, a VM deleted mid-cycle.
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createCredential, verifyAuthentication } from "../../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter, type VmApi } from "../../runtime/src/azure/azure";
import { runOnce } from "../../runtime/src/cli/commands";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { vmKey } from "../../runtime/src/core/vm";
import { Restarter, type RestarterSettings } from "../../runtime/src/loop/restarter";
import { retryPolicyFor } from "../../runtime/src/loop/schedule";
import { createEventBus, type EventBus } from "../../runtime/src/signals/events";
import { type Logger, silentLogger } from "../../runtime/src/signals/log";
import { createFileStateStore } from "../../runtime/src/state/state";
import { resourceGroup, spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;

function wire(
  world: World,
  overrides: Partial<RestarterSettings> = {},
  log: Logger = silentLogger,
  events?: EventBus,
) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const counter = createRequestCounter();
  const api = createArmVmApi(config, credential, { counter, pollIntervalMs: 100 });
  const settings: RestarterSettings = {
    resourceGroups: config.resourceGroups,
    tag: config.tag,
    maxConcurrentStarts: 10,
    backoff: { initialMs: 60_000, maxMs: 1_800_000 },
    startTimeoutMs: 20_000,
    intervalMs: 1_000,
    ...overrides,
  };
  const restarter = new Restarter({
    api,
    store: createFileStateStore(world.stateDir),
    log,
    ...(events ? { events } : {}),
    settings,
    counter,
  });
  return { api, counter, restarter, credential, config, settings };
}

function recorder(): Logger & { lines: Array<{ event: string; meta: Record<string, unknown>; at: number }> } {
  const lines: Array<{ event: string; meta: Record<string, unknown>; at: number }> = [];
  const push = (event: string, meta: Record<string, unknown>) => lines.push({ event, meta, at: Date.now() });
  return { lines, debug: () => {}, info: push, warn: push, error: push };
}

describe("a cycle against the emulator", () => {
  let world: World;
  const population = [
    spotVm("evicted-1"),
    spotVm("evicted-2"),
    spotVm("evicted-3", { tags: { attemptrestartafterEVICTION: "TRUE" } }),
    spotVm("running-spot", { powerState: "running" }),
    spotVm("stopped-spot", { powerState: "stopped" }),
    spotVm("regular", { priority: "Regular", evictionPolicy: undefined, maxPrice: undefined }),
    spotVm("untagged", { tags: { role: "build" } }),
    spotVm("tag-false", { tags: { AttemptRestartAfterEviction: "false" } }),
    spotVm("delete-policy", { evictionPolicy: "Delete" }),
    ...Array.from({ length: 20 }, (_, i) =>
      spotVm(`filler-${i}`, { priority: "Regular", tags: {}, powerState: "running" }),
    ),
  ];
  before(async () => {
    world = await startWorld(population, { startSeconds: 0.5 });
  });
  after(() => world.emulator.stop());

  it("starts exactly the deallocated, tagged Spot VMs, concurrently", async () => {
    const { restarter, counter, credential, config } = wire(world);
    await verifyAuthentication(credential, config);
    await restarter.init();
    await world.control.clearRequests();
    const { summary } = await runOnce({ restarter, counter, tag: config.tag }, never, { dryRun: false });
    const vms = await world.control.vms();
    const started = vms.filter((vm) => vm.startRequests > 0).map((vm) => vm.name);
    assert.deepEqual(started.sort(), ["evicted-1", "evicted-2", "evicted-3"]);
    for (const name of ["evicted-1", "evicted-2", "evicted-3"]) {
      assert.equal(vms.find((vm) => vm.name === name)?.powerState, "running");
    }
    assert.equal(summary.starts.issued, 3);
    assert.equal(summary.starts.succeeded, 3);
    assert.ok(
      (summary.starts.requestSpreadMs ?? Infinity) < 1000,
      `spread ${summary.starts.requestSpreadMs} ms`,
    );
    // 1 list + 1 instance view per tagged Spot Deallocate VM (5), never one per VM of the group (29).
    assert.equal(summary.armRequests?.list, 1);
    assert.equal(summary.armRequests?.instanceView, 5);
    assert.equal(summary.armRequests?.start, 3);
  });
});

describe("an idle cycle against the emulator", () => {
  let world: World;
  before(async () => {
    // The yardstick: 200 VMs in the group, 10 of them tagged Spot VMs (all running).
    world = await startWorld([
      ...Array.from({ length: 10 }, (_, i) => spotVm(`tagged-${i}`, { powerState: "running" })),
      ...Array.from({ length: 95 }, (_, i) =>
        spotVm(`untagged-spot-${i}`, { tags: {}, powerState: "running" }),
      ),
      ...Array.from({ length: 95 }, (_, i) =>
        spotVm(`regular-${i}`, {
          priority: "Regular",
          evictionPolicy: undefined,
          maxPrice: undefined,
          tags: {},
        }),
      ),
    ]);
  });
  after(() => world.emulator.stop());

  it("costs 1 list (+ its pages) + 1 instance view per tagged Spot VM", async () => {
    const { restarter, counter } = wire(world);
    await restarter.init();
    await restarter.runCycle(never);
    await world.control.clearRequests();
    const before = counter.snapshot();
    const cycle = await restarter.runCycle(never);
    assert.equal(cycle.starts.length, 0);
    assert.equal(cycle.resourceGroups[0]?.vmsListed, 200);
    const requests = (await world.control.requests()).filter((r) => r.path.startsWith("/subscriptions/"));
    const lists = requests.filter((r) => /virtualMachines$/.test(r.path));
    const views = requests.filter((r) => /instanceView$/.test(r.path));
    const pages = lists.length;
    assert.ok(pages >= 1);
    assert.equal(views.length, 10);
    assert.equal(requests.length, pages + 10, requests.map((r) => `${r.method} ${r.path}`).join("\n"));
    const after = counter.snapshot();
    assert.equal(
      after.total - before.total,
      pages + 10,
      "the pipeline counter agrees with the emulator's log",
    );
    process.stdout.write(
      `# idle cycle: ${requests.length} ARM requests (${pages} list page(s) + ${views.length} instance views) for 200 VMs, 10 tagged Spot\n`,
    );
  });
});

describe("backoff against the emulator", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("no-capacity"), spotVm("fine", { powerState: "running" })], {
      startSeconds: 0.1,
    });
  });
  after(() => world.emulator.stop());

  it("retries a VM without capacity at a steady interval from its last request (no doubling), and recovers when it clears", async () => {
    await world.control.addFaults({ vm: "no-capacity", startFailsWith: "AllocationFailed" });
    const log = recorder();
    // Capacity retried every 0.8 s (production: 60 s), a cycle every 3 s: a retry due between two cycles
    // wakes the loop early (nextCycleAt), so the interval, not the cycle, sets the pace.
    const intervalMs = 800;
    const { restarter } = wire(
      world,
      {
        retry: retryPolicyFor(
          { initialMs: 60_000, maxMs: 1_800_000 },
          { capacityIntervalMs: intervalMs, capacityJitterMs: 0, minSpacingMs: intervalMs },
        ),
        intervalMs: 3_000,
        minCycleGapMs: 100,
      },
      log,
    );
    await restarter.init();
    const controller = new AbortController();
    const loop = restarter.runLoop(controller.signal);
    try {
      const startTimes = async () =>
        (await world.control.requests())
          .filter((r) => r.method === "POST" && r.path.endsWith("/no-capacity/start"))
          .map((r) => Date.parse(r.time));
      const deadline = Date.now() + 20_000;
      while ((await startTimes()).length < 5 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      const times = await startTimes();
      assert.ok(times.length >= 5, `only ${times.length} attempts`);
      const failures = log.lines.filter((l) => l.event === "start-failed");
      assert.ok(failures.length >= 4);
      assert.equal(failures[0]?.meta.code, "AllocationFailed");
      assert.deepEqual(
        failures.slice(0, 4).map((f) => f.meta.attempts),
        [1, 2, 3, 4],
      );
      // Request to request: never sooner than the interval, and not held back to the 3 s cycle either
      // (the emulator's log times are whole milliseconds, its start fails after 0.1 s).
      const gaps = times.slice(1, 5).map((t, i) => t - (times[i] ?? 0));
      for (const gap of gaps) {
        assert.ok(gap >= intervalMs - 20, `attempts ${gaps.join(", ")} ms apart`);
        assert.ok(gap <= intervalMs + 1_000, `attempts ${gaps.join(", ")} ms apart`);
      }

      await world.control.clearFaults();
      const recovered = Date.now() + 10_000;
      while (!log.lines.some((l) => l.event === "started") && Date.now() < recovered) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((await world.control.vm(resourceGroup, "no-capacity"))?.powerState, "running");
    } finally {
      controller.abort();
      await loop;
    }
    const record = restarter.currentState.vms[vmKey(resourceGroup, "no-capacity")];
    assert.equal(record?.startAttempts, 0);
    assert.equal(record?.backoffUntil, undefined);
    assert.equal((await world.control.vm(resourceGroup, "fine"))?.startRequests, 0);
  });
});

describe("throttling against the emulator", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("a", { powerState: "running" })]);
  });
  after(() => world.emulator.stop());

  it("waits out Retry-After: no request to ARM before it has passed", async () => {
    const log = recorder();
    const { restarter } = wire(world, {}, log);
    await restarter.init();
    await world.control.addFaults({
      method: "GET",
      pathPattern: "/virtualMachines$",
      status: 429,
      retryAfterSeconds: 2,
      errorCode: "TooManyRequests",
      times: 1,
    });
    await world.control.clearRequests();
    const first = await restarter.runCycle(never);
    assert.equal(first.resourceGroups[0]?.error?.startsWith("throttled"), true);
    const throttled = log.lines.find((l) => l.event === "throttled");
    assert.equal(throttled?.meta.retryAfterSeconds, 2);
    const second = await restarter.runCycle(never);
    assert.equal(second.skipped, "throttled");
    assert.equal(
      (await world.control.requests()).filter((r) => r.path.startsWith("/subscriptions/")).length,
      1,
    );
    await new Promise((r) => setTimeout(r, 2_100));
    const third = await restarter.runCycle(never);
    assert.equal(third.skipped, undefined);
    assert.equal(third.resourceGroups[0]?.error, undefined);
  });

  it("the SDK pipeline's own retry absorbs a single 429 (no cycle lost)", async () => {
    const world2 = world;
    const config = { ...world2.config, armMaxRetries: 3 };
    const credential = createCredential(config, { pem: world2.principal.pem } as Parameters<
      typeof createCredential
    >[1]);
    const api = createArmVmApi(config, credential);
    await world2.control.addFaults({
      method: "GET",
      pathPattern: "/virtualMachines$",
      status: 429,
      retryAfterSeconds: 1,
      times: 1,
    });
    const vms = await api.listVms(resourceGroup, never);
    assert.equal(vms.length, 1);
  });
});

describe("a VM deleted mid-cycle", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("doomed"), spotVm("survivor"), spotVm("doomed-later")], {
      startSeconds: 0.2,
    });
  });
  after(() => world.emulator.stop());

  it("is forgotten (between list and instance view, or when its start answers 404), the others still start", async () => {
    const log = recorder();
    const wired = wire(world, {}, log);
    const real = wired.api;
    // Delete one VM right after the list (its instance view then 404s) and another right before its start.
    const api: VmApi = {
      ...real,
      async listVms(rg, signal) {
        const vms = await real.listVms(rg, signal);
        await world.control.deleteVm(resourceGroup, "doomed");
        return vms;
      },
      async startVm(rg, name, signal, handlers) {
        if (name === "doomed-later") await world.control.deleteVm(resourceGroup, "doomed-later");
        return real.startVm(rg, name, signal, handlers);
      },
    };
    const restarter = new Restarter({
      api,
      store: createFileStateStore(world.stateDir),
      log,
      settings: wired.settings,
    });
    await restarter.init();
    const { summary } = await runOnce({ restarter, tag: world.config.tag }, never, { dryRun: false });
    assert.deepEqual(
      summary.vms.map((v) => [v.name, v.start?.outcome ?? v.reason]),
      [
        ["survivor", "started"],
        ["doomed-later", "gone"],
      ],
    );
    assert.equal(restarter.currentState.vms[vmKey(resourceGroup, "doomed")], undefined);
    assert.equal(restarter.currentState.vms[vmKey(resourceGroup, "doomed-later")], undefined);
    // "doomed" was never remembered, so forgetting it is silent; "doomed-later" had a record.
    assert.ok(
      log.lines.some((l) => l.event === "vm-forgotten" && l.meta.vm === `${resourceGroup}/doomed-later`),
    );
  });
});

describe("retry timing against the emulator", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("phase")], { startSeconds: 0.1 });
  });
  after(() => world.emulator.stop());

  it("a retry due just after a cycle is taken by that cycle and sent when due, not held back by the gap between cycles", async () => {
    await world.control.addFaults({ vm: "phase", startFailsWith: "AllocationFailed" });
    // Judged by the runtime's own clock and the order of its events, not by wall-clock gaps (which a
    // busy machine stretches): each retry is sent no sooner than its due time (the previous failure's
    // backoffUntil), and it is taken by a cycle that began before it fell due.
    const events: RestarterEvent[] = [];
    const bus = createEventBus();
    bus.subscribe((event) => events.push(event));
    // Retries every 2 s, regular cycles every 1.7 s (± 10 %), and no cycle sooner than 1.5 s after the
    // last: a regular cycle keeps landing shortly before a retry falls due. Were only due retries taken,
    // the retry would wait for the next cycle, up to 1.5 s late (in production: 10 s of a 60 s interval,
    // the bench's 68.8 s gaps). Taken by the earlier cycle, its request waits for the due time.
    const intervalMs = 2_000;
    const minCycleGapMs = 1_500;
    const { restarter } = wire(
      world,
      {
        retry: retryPolicyFor(
          { initialMs: 60_000, maxMs: 1_800_000 },
          { capacityIntervalMs: intervalMs, capacityJitterMs: 0, minSpacingMs: intervalMs },
        ),
        intervalMs: 1_700,
        minCycleGapMs,
      },
      silentLogger,
      bus,
    );
    await restarter.init();
    const controller = new AbortController();
    const loop = restarter.runLoop(controller.signal);
    const of = <T extends RestarterEvent["type"]>(type: T) =>
      events.filter((e): e is Extract<RestarterEvent, { type: T }> => e.type === type);
    try {
      const deadline = Date.now() + 60_000;
      while (of("start-failed").length < 7 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
    } finally {
      controller.abort();
      await loop;
    }
    const issued = of("start-issued").filter((e) => e.vm === "phase");
    const failed = of("start-failed").filter((e) => e.vm === "phase");
    assert.ok(failed.length >= 7, `only ${failed.length} failed attempts`);
    const cycles = of("cycle-finished").map((c) => ({
      began: c.at - c.durationSeconds * 1000,
      starts: c.starts ?? 0,
    }));
    for (let k = 1; k < 7; k++) {
      const previous = failed[k - 1];
      const attempt = issued[k];
      assert.ok(previous && attempt, `attempt ${k + 1}`);
      assert.equal(attempt.attempt, k + 1);
      assert.ok(
        attempt.at >= previous.backoffUntil,
        `attempt ${k + 1} sent ${previous.backoffUntil - attempt.at} ms before it was due`,
      );
      // Not held back: the first cycle to begin after the failure takes the retry (a cycle that began
      // before the due time waits for it), none passes it by to leave it for a later one.
      const after = cycles.filter((c) => c.began > previous.at && c.began <= attempt.at);
      assert.ok(after.length > 0, `attempt ${k + 1}: no cycle took it`);
      assert.deepEqual(
        after.map((c) => c.starts > 0),
        after.map(() => true),
        `attempt ${k + 1}: a cycle between the failure and the send issued no start (held back)`,
      );
    }
  });
});
