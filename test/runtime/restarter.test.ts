// The loop over a fake VmApi and a fake clock: starts are concurrent and bounded, a start in
// flight is not repeated, backoff is applied and reset, throttling pauses cycles, a deleted VM is
// forgotten, and the state file survives corruption. The same behaviour against the emulator and
// the real SDK is in emulator-*.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ListedVm, VmApi } from "../../runtime/src/azure/azure";
import { CauseGate } from "../../runtime/src/cause/causeGate";
import { runOnce } from "../../runtime/src/cli/commands";
import { PermissionError } from "../../runtime/src/core/errors";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { vmKey } from "../../runtime/src/core/vm";
import { Ledger } from "../../runtime/src/loop/ledger";
import { type Clock, Restarter, type RestarterSettings } from "../../runtime/src/loop/restarter";
import { defaultRetryPolicy, StartPacer } from "../../runtime/src/loop/schedule";
import { StartFollower } from "../../runtime/src/loop/starts";
import { createEventBus } from "../../runtime/src/signals/events";
import { type Logger, silentLogger } from "../../runtime/src/signals/log";
import { createFileStateStore, createMemoryStateStore } from "../../runtime/src/state/state";

const tag = { name: "AttemptRestartAfterEviction", value: "true" };

interface FakeVm extends ListedVm {
  powerState: string;
  /** Instance view `ProvisioningState/<state>` (default succeeded). */
  provisioningState?: string;
  hibernated?: boolean;
}

function spot(name: string, powerState = "deallocated", extra: Partial<ListedVm> = {}): FakeVm {
  return {
    resourceGroup: "rg",
    name,
    priority: "Spot",
    evictionPolicy: "Deallocate",
    maxPrice: -1,
    tags: { AttemptRestartAfterEviction: "true" },
    powerState,
    ...extra,
  };
}

type StartBehaviour = (vm: FakeVm) => Promise<void>;

class FakeApi implements VmApi {
  calls: string[] = [];
  startRequests: Array<{ name: string; at: number }> = [];
  startBehaviour: StartBehaviour = async (vm) => {
    vm.powerState = "running";
  };
  /** Runs before ARM "accepts" the start (202): the part of a start that holds a slot. */
  acceptBehaviour: (vm: FakeVm) => Promise<void> = async () => {};
  listError: unknown;
  constructor(
    public vms: FakeVm[],
    private readonly clock: FakeClock,
  ) {}
  async listVms(resourceGroup: string) {
    this.calls.push(`list ${resourceGroup}`);
    if (this.listError) throw this.listError;
    return this.vms
      .filter((v) => v.resourceGroup === resourceGroup)
      .map(({ powerState: _, provisioningState: __, hibernated: ___, ...vm }) => vm);
  }
  async readInstanceState(resourceGroup: string, name: string) {
    this.calls.push(`instanceView ${name}`);
    const vm = this.vms.find((v) => v.resourceGroup === resourceGroup && v.name === name);
    if (!vm) throw restError(404, "ResourceNotFound");
    return {
      powerState: vm.powerState,
      provisioningState: vm.provisioningState ?? "succeeded",
      hibernated: vm.hibernated === true,
    };
  }
  async startVm(
    resourceGroup: string,
    name: string,
    signal: AbortSignal,
    handlers?: { onAccepted?: () => void },
  ) {
    this.calls.push(`start ${name}`);
    this.startRequests.push({ name, at: this.clock.now() });
    const vm = this.vms.find((v) => v.resourceGroup === resourceGroup && v.name === name);
    if (!vm) throw restError(404, "ResourceNotFound");
    await this.acceptBehaviour(vm);
    handlers?.onAccepted?.();
    signal.throwIfAborted();
    await this.startBehaviour(vm);
  }
  async simulateEviction() {}
}

function restError(statusCode: number, code: string, retryAfter?: string): Error {
  return Object.assign(new Error(`${code} happened`), {
    name: "RestError",
    statusCode,
    code,
    response: { headers: { get: (h: string) => (h === "retry-after" ? retryAfter : undefined) } },
  });
}

function lroFailure(code: string): Error {
  return new Error(`The long-running operation has failed. ${code}. No capacity right now.`);
}

class FakeClock implements Clock {
  constructor(public time = Date.parse("2026-11-26T10:00:00Z")) {}
  now() {
    return this.time;
  }
  async sleep(ms: number, signal: AbortSignal) {
    signal.throwIfAborted();
    this.time += ms;
  }
}

const settings: RestarterSettings = {
  resourceGroups: ["rg"],
  tag,
  maxConcurrentStarts: 10,
  backoff: { initialMs: 60_000, maxMs: 1_800_000 },
  startTimeoutMs: 60_000,
  intervalMs: 30_000,
};

function recordingLogger(): Logger & { events: string[] } {
  const events: string[] = [];
  const push = (event: string) => events.push(event);
  return { events, debug: () => {}, info: push, warn: push, error: push };
}

function setup(vms: FakeVm[], overrides: Partial<RestarterSettings> = {}) {
  const clock = new FakeClock();
  const api = new FakeApi(vms, clock);
  const store = createMemoryStateStore();
  const log = recordingLogger();
  const restarter = new Restarter({
    api,
    store,
    log,
    settings: { ...settings, ...overrides },
    clock,
    rng: () => 0,
  });
  return { clock, api, store, log, restarter };
}

const never = new AbortController().signal;

describe("Restarter cycle", () => {
  it("reads instance views only for tagged Spot Deallocate VMs and starts exactly the deallocated ones", async () => {
    const { api, restarter, log } = setup([
      spot("a"),
      spot("b", "running"),
      spot("c", "stopped"),
      spot("d", "deallocated", { priority: "Regular" }),
      spot("e", "deallocated", { tags: {} }),
      spot("f", "deallocated", { evictionPolicy: "Delete" }),
      spot("g", "deallocating"),
    ]);
    await restarter.init();
    const { summary } = await runOnce({ restarter, tag }, never, { dryRun: false });
    assert.deepEqual(api.calls.filter((c) => c.startsWith("instanceView")).sort(), [
      "instanceView a",
      "instanceView b",
      "instanceView c",
      "instanceView g",
    ]);
    assert.deepEqual(
      api.calls.filter((c) => c.startsWith("start")),
      ["start a"],
    );
    assert.equal(summary.starts.issued, 1);
    assert.equal(summary.starts.succeeded, 1);
    assert.deepEqual(
      summary.vms.map((v) => [v.name, v.decision, v.reason]),
      [
        ["a", "start", null],
        ["b", "skip", "running"],
        ["c", "skip", "stopped"],
        ["d", "skip", "not-spot"],
        ["e", "skip", "untagged"],
        ["f", "skip", "eviction-policy-delete"],
        ["g", "skip", "deallocating"],
      ],
    );
    assert.ok(log.events.includes("deallocated-vm-seen"));
    assert.ok(log.events.includes("start-issued"));
    assert.ok(log.events.includes("started"));
  });

  it("bounds start requests by maxConcurrentStarts, then follows every accepted start concurrently", async () => {
    const vms = Array.from({ length: 6 }, (_, i) => spot(`vm${i}`));
    const { api, restarter } = setup(vms, { maxConcurrentStarts: 4 });
    let requesting = 0;
    let peakRequesting = 0;
    let following = 0;
    let peakFollowing = 0;
    const acceptGates: Array<() => void> = [];
    const finishGates: Array<() => void> = [];
    api.acceptBehaviour = async () => {
      requesting++;
      peakRequesting = Math.max(peakRequesting, requesting);
      await new Promise<void>((resolve) => acceptGates.push(resolve));
      requesting--;
    };
    api.startBehaviour = async (vm) => {
      following++;
      peakFollowing = Math.max(peakFollowing, following);
      await new Promise<void>((resolve) => finishGates.push(resolve));
      following--;
      vm.powerState = "running";
    };
    const tick = () => new Promise((r) => setImmediate(r));
    await restarter.init();
    const cycle = await restarter.runCycle(never);
    await tick();
    assert.equal(api.startRequests.length, 4, "four requests at once, two waiting for a slot");
    while (acceptGates.length) {
      acceptGates.shift()?.();
      await tick();
      await tick();
    }
    assert.equal(api.startRequests.length, 6);
    assert.equal(peakRequesting, 4);
    assert.equal(following, 6, "all six accepted starts are followed at the same time");
    while (finishGates.length) finishGates.shift()?.();
    const results = await Promise.all(cycle.starts);
    assert.equal(peakFollowing, 6);
    assert.ok(results.every((r) => r.outcome === "started"));
  });

  it("does not start a VM again while its start is in flight, nor read its instance view", async () => {
    const { api, restarter } = setup([spot("slow")]);
    let finish: () => void = () => {};
    api.startBehaviour = (vm) =>
      new Promise<void>((resolve) => {
        finish = () => {
          vm.powerState = "running";
          resolve();
        };
      });
    await restarter.init();
    const first = await restarter.runCycle(never);
    const second = await restarter.runCycle(never);
    assert.equal(second.starts.length, 0);
    assert.equal(second.decisions[0]?.action === "skip" && second.decisions[0].reason, "start-in-flight");
    assert.equal(api.calls.filter((c) => c === "instanceView slow").length, 1);
    finish();
    await Promise.all(first.starts);
  });

  it("retries a persistent capacity failure every 20 s (never doubling), and resets on success", async () => {
    const { api, restarter, clock, store, log } = setup([spot("busy")]);
    // When each start request leaves: a cycle takes a retry due before the next cycle could begin
    // and the request waits (on this fake clock, which a wait moves on) for the due time.
    const attemptTimes: number[] = [];
    api.startBehaviour = async () => {
      attemptTimes.push(clock.now());
      throw lroFailure("AllocationFailed");
    };
    await restarter.init();
    const key = vmKey("rg", "busy");
    // Cycle every 10 s of fake time for 8 minutes.
    for (let t = 0; t < 48; t++) {
      const cycle = await restarter.runCycle(never);
      await Promise.all(cycle.starts);
      clock.time += 10_000;
    }
    const gaps = attemptTimes.slice(1).map((t, i) => (t - (attemptTimes[i] ?? 0)) / 1000);
    // rng 0 = no jitter: 20 s from request to request, however long it lasts (schedule.ts).
    assert.ok(gaps.length >= 7, `${attemptTimes.length} attempts`);
    assert.deepEqual(gaps, Array(gaps.length).fill(20));
    assert.equal(restarter.currentState.vms[key]?.startAttempts, attemptTimes.length);
    assert.ok(log.events.includes("start-failed"));

    api.startBehaviour = async (vm) => {
      vm.powerState = "running";
    };
    clock.time += 1_000_000;
    const cycle = await restarter.runCycle(never);
    await Promise.all(cycle.starts);
    await restarter.waitForStarts();
    const record = store.current.vms[key];
    assert.equal(record?.startAttempts, 0);
    assert.equal(record?.backoffUntil, undefined);
    assert.equal(record?.lastResult?.outcome, "started");
  });

  it("reports a price failure distinctly, with the VM's max price", async () => {
    const { api, restarter, log } = setup([spot("pricey", "deallocated", { maxPrice: 0.01 })]);
    api.startBehaviour = async () => {
      throw lroFailure("SpotPriceGreaterThanProvidedMaxPrice");
    };
    await restarter.init();
    const { summary } = await runOnce({ restarter, tag }, never, { dryRun: false });
    assert.equal(summary.vms[0]?.start?.outcome, "price");
    assert.ok(summary.vms[0]?.backoffUntil);
    assert.ok(log.events.includes("start-failed-price"));
  });

  it("waits out Retry-After when throttled, then cycles again", async () => {
    const { api, restarter, clock, log } = setup([spot("a", "running")]);
    api.listError = restError(429, "TooManyRequests", "120");
    await restarter.init();
    await restarter.runCycle(never);
    assert.ok(log.events.includes("throttled"));
    api.listError = undefined;
    const callsBefore = api.calls.length;
    clock.time += 60_000;
    const skipped = await restarter.runCycle(never);
    assert.equal(skipped.skipped, "throttled");
    assert.equal(api.calls.length, callsBefore, "no ARM request while throttled");
    clock.time += 61_000;
    const ran = await restarter.runCycle(never);
    assert.equal(ran.skipped, undefined);
    assert.ok(api.calls.length > callsBefore);
  });

  it("forgets a VM deleted between list and instance view, and one whose start answers 404", async () => {
    const { api, restarter, log } = setup([spot("gone-early"), spot("gone-late")]);
    const realRead = api.readInstanceState.bind(api);
    api.readInstanceState = async (rg, name) => {
      if (name === "gone-early") api.vms = api.vms.filter((v) => v.name !== "gone-early");
      return realRead(rg, name);
    };
    api.startBehaviour = async () => {
      throw restError(404, "NotFound");
    };
    await restarter.init();
    const { summary } = await runOnce({ restarter, tag }, never, { dryRun: false });
    assert.deepEqual(
      summary.vms.map((v) => v.name),
      ["gone-late"],
    );
    assert.equal(summary.vms[0]?.start?.outcome, "gone");
    assert.equal(restarter.currentState.vms[vmKey("rg", "gone-late")], undefined);
    assert.ok(log.events.includes("vm-forgotten"));
  });

  it("retries a 409 conflict next cycle without backoff", async () => {
    const { api, restarter } = setup([spot("busy")]);
    api.startBehaviour = async () => {
      throw restError(409, "Conflict");
    };
    await restarter.init();
    await Promise.all((await restarter.runCycle(never)).starts);
    const record = restarter.currentState.vms[vmKey("rg", "busy")];
    assert.equal(record?.backoffUntil, undefined);
    assert.equal((await restarter.runCycle(never)).starts.length, 1);
  });

  it("stops with a permission error naming the missing permission", async () => {
    const { api, restarter } = setup([spot("a")]);
    api.listError = restError(403, "AuthorizationFailed");
    await restarter.init();
    await assert.rejects(restarter.runCycle(never), (error: Error) => {
      assert.ok(error instanceof PermissionError);
      assert.match(error.message, /Microsoft\.Compute\/virtualMachines\/read/);
      return true;
    });
  });

  it("a dry run decides but starts nothing and writes no state", async () => {
    const { api, restarter, store } = setup([spot("a")]);
    await restarter.init();
    const { summary } = await runOnce({ restarter, tag }, never, { dryRun: true });
    assert.equal(summary.vms[0]?.decision, "start");
    assert.equal(summary.starts.issued, 0);
    assert.equal(api.startRequests.length, 0);
    assert.deepEqual(store.current, { vms: {} });
  });
});

describe("Restarter loop", () => {
  it("ends promptly on abort with starts in flight, recording them as interrupted", async () => {
    const clock = new FakeClock();
    const api = new FakeApi([spot("slow")], clock);
    api.startBehaviour = () => new Promise<void>(() => {});
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-loop-"));
    const store = createFileStateStore(dir);
    // The start never ends; only the abort signal can end it.
    api.startVm = async (_rg, name, signal) => {
      api.startRequests.push({ name, at: clock.now() });
      await new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
      );
    };
    const restarter = new Restarter({
      api,
      store,
      log: silentLogger,
      settings,
    });
    await restarter.init();
    const controller = new AbortController();
    const loop = restarter.runLoop(controller.signal);
    // Wait for the start to be in flight (not a fixed 50 ms: on a loaded machine the first cycle may
    // take longer), then abort.
    while (api.startRequests.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(api.startRequests.length, 1);
    controller.abort();
    await loop;
    const saved = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
    assert.equal(saved.vms[vmKey("rg", "slow")].lastResult.outcome, "interrupted");
  });
});

describe("Restarter loop: a missing permission", () => {
  // ARM's 403 for a role that is not applied yet (emulator/arm/router.ts authorizationFailed, after
  // ARM's own wording, e.g. Azure/ARO-RP#66).
  const refusal = () =>
    Object.assign(
      new Error(
        "The client 'c' with object id 'o' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/start/action' over scope '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/forbidden' or the scope is invalid. If access was recently granted, please refresh your credentials.",
      ),
      { statusCode: 403, code: "AuthorizationFailed" },
    );

  it("does not end `run`: says so once, backs off, lets other starts go on, and starts the VM once the role works", async () => {
    const clock = new FakeClock();
    const api = new FakeApi([spot("forbidden"), spot("slow")], clock);
    const loop = new AbortController();
    let refusalsLeft = 5;
    const refusedAt: number[] = [];
    let slowInterrupted = false;
    api.startVm = async (_rg, name, signal) => {
      api.startRequests.push({ name, at: clock.now() });
      if (api.startRequests.length > 60) loop.abort(); // a runaway loop fails below instead of hanging
      if (name === "forbidden") {
        if (refusalsLeft-- > 0) {
          refusedAt.push(clock.now());
          throw refusal();
        }
        const vm = api.vms.find((v) => v.name === name);
        if (vm) vm.powerState = "running";
        return;
      }
      // The other VM's start is still being followed while the loop waits for the permission.
      await new Promise((_, reject) => {
        const stop = () => {
          slowInterrupted = true;
          reject(signal.reason);
        };
        if (signal.aborted) stop();
        signal.addEventListener("abort", stop, { once: true });
      });
    };
    const events = createEventBus();
    const seen: RestarterEvent[] = [];
    events.subscribe((event) => {
      seen.push(event);
      if (event.type === "permission-restored") loop.abort();
    });
    const restarter = new Restarter({ api, store: createMemoryStateStore(), events, settings, clock });
    await restarter.init();
    await restarter.runLoop(loop.signal);

    assert.equal(refusedAt.length, 5);
    assert.ok(api.startRequests.length <= 60, "the loop ran away");
    const missing = seen.filter((e) => e.type === "permission-missing");
    assert.equal(missing.length, 1, "reported once, not per cycle");
    assert.match(missing[0]?.message ?? "", /Microsoft\.Compute\/virtualMachines\/start\/action/);
    assert.match(missing[0]?.message ?? "", /still running/);
    const restored = seen.filter((e) => e.type === "permission-restored");
    assert.equal(restored.length, 1);
    assert.equal(api.vms.find((v) => v.name === "forbidden")?.powerState, "running");
    // Backing off: the gaps between refused attempts grow (from the 30 s interval), capped at 2 min.
    const gaps = refusedAt.slice(1).map((at, i) => at - (refusedAt[i] ?? at));
    assert.ok((gaps.at(-1) ?? 0) > (gaps[0] ?? 0), `gaps ${gaps.join(", ")}`);
    // A retry falls due at most 2 min after the refusal and is taken by the next cycle, which comes one
    // interval later at most, that interval jittered by up to 10 % (restarter.ts runLoop).
    assert.ok(
      gaps.every((gap) => gap <= 120_000 + settings.intervalMs * 1.1),
      `gaps ${gaps.join(", ")}`,
    );
    // The other start was never abandoned for the refusal: only the final stop ended it.
    assert.equal(api.startRequests.filter((r) => r.name === "slow").length, 1);
    assert.ok(slowInterrupted);
  });
});

describe("state file", () => {
  it("is rebuilt, with a warning, when corrupt", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-state-"));
    writeFileSync(join(dir, "state.json"), "{ this is not json");
    const clock = new FakeClock();
    const api = new FakeApi([spot("a")], clock);
    const log = recordingLogger();
    const restarter = new Restarter({ api, store: createFileStateStore(dir), log, settings, clock });
    await restarter.init();
    assert.deepEqual(log.events, ["state-rebuilt"]);
    await runOnce({ restarter, tag }, never, { dryRun: false });
    const saved = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
    assert.equal(saved.version, 1);
    assert.equal(saved.vms[vmKey("rg", "a")].lastResult.outcome, "started");
  });

  it("is rebuilt when it is JSON of the wrong shape", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-state-"));
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, vms: { x: { name: 3 } } }));
    const loaded = await createFileStateStore(dir).load();
    assert.equal(loaded.problem?.kind, "corrupt");
    assert.deepEqual(loaded.state, { vms: {} });
  });

  it("reports a missing file as new, and writes with mode 0600, leaving nothing beside it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-state-"));
    const store = createFileStateStore(join(dir, "sub"));
    assert.equal((await store.load()).problem?.kind, "missing");
    await store.save({ vms: {}, throttledUntil: 5 });
    assert.deepEqual((await store.load()).state, { vms: {}, throttledUntil: 5 });
    assert.equal(statSync(join(dir, "sub", "state.json")).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, "sub")), ["state.json"]);
  });

  // Atomic means a reader never sees half a file: a save replaces the file (a new one renamed over it),
  // never writes into the one a reader may hold. An in-place write (truncate, then write) fails both
  // checks: the held file changes under its reader, and readers racing the saves see it empty or cut.
  it("writes atomically: a reader holding the file keeps the whole old one; readers racing saves see only whole files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-state-"));
    const store = createFileStateStore(dir);
    const path = join(dir, "state.json");
    // About 1 MB: a write of that size is not one system call.
    const big = (n: number) => ({
      vms: Object.fromEntries(
        Array.from({ length: 4_000 }, (_, i) => [
          vmKey("rg", `vm-${i}`),
          { resourceGroup: "rg", name: `vm-${i}`, attempts: n, lastError: "x".repeat(200) },
        ]),
      ),
      throttledUntil: n,
    });
    await store.save(big(0) as never);
    const before = readFileSync(path, "utf8");
    const held = await open(path, "r");
    try {
      await store.save(big(1) as never);
      assert.equal(await held.readFile("utf8"), before, "the file a reader opened is untouched by the save");
    } finally {
      await held.close();
    }
    assert.equal(JSON.parse(readFileSync(path, "utf8")).throttledUntil, 1);

    let saving = true;
    const torn: string[] = [];
    let reads = 0;
    const reader = (async () => {
      while (saving) {
        const text = await readFile(path, "utf8");
        reads++;
        try {
          JSON.parse(text);
        } catch {
          torn.push(`${text.length} bytes`);
        }
      }
    })();
    for (let n = 2; n < 30; n++) await store.save(big(n) as never);
    saving = false;
    await reader;
    assert.ok(reads > 0);
    assert.deepEqual(torn, [], `${torn.length} of ${reads} reads saw a partial file`);
    assert.deepEqual(readdirSync(dir), ["state.json"], "no temporary file left");
  });
});

describe("Restarter loop: Azure's remaining budgets (budgets.ts)", () => {
  // A VM Azure has no capacity for, a long interval: its retries (about once a minute) bring cycles
  // forward, unless a read budget is low, when no cycle comes earlier than the interval.
  /** Lets what is pending (a start's failure, which may bring the wake forward) happen before time moves. */
  class SettlingClock extends FakeClock {
    override async sleep(ms: number, signal: AbortSignal) {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      await super.sleep(ms, signal);
    }
  }

  async function retryGaps(readsLow: boolean, startBudgetShare?: number): Promise<number[]> {
    const clock = new SettlingClock();
    const api = new FakeApi([spot("full")], clock);
    const loop = new AbortController();
    api.startBehaviour = async () => {
      if (api.startRequests.length >= 4) loop.abort();
      throw lroFailure("AllocationFailed");
    };
    const restarter = new Restarter({
      api,
      store: createMemoryStateStore(),
      log: silentLogger,
      settings: { ...settings, intervalMs: 300_000 },
      clock,
      rng: () => 0,
      budget: { readsLow: () => readsLow, startSlowdown: () => 1, startBudgetShare: () => startBudgetShare },
    });
    await restarter.init();
    await restarter.runLoop(loop.signal);
    const at = api.startRequests.map((r) => r.at);
    return at.slice(1).map((t, i) => t - (at[i] ?? t));
  }

  it("with budgets plentiful a capacity retry wakes the loop early (20 s apart, as sent)", async () => {
    const gaps = await retryGaps(false, 0.9);
    assert.deepEqual(gaps, [20_000, 20_000, 20_000]);
  });

  it("with the subscription's Start budget below half the capacity interval stretches (3/8 left: 40 s; a quarter: 60 s)", async () => {
    assert.deepEqual(await retryGaps(false, 0.375), [40_000, 40_000, 40_000]);
    assert.deepEqual(await retryGaps(false, 0.25), [60_000, 60_000, 60_000]);
  });

  it("with a read budget low no cycle comes before the interval (retries wait for it)", async () => {
    const gaps = await retryGaps(true);
    assert.equal(gaps.length, 3);
    // The interval (300 s) less its 10 % jitter at rng 0, never the one-minute retry.
    for (const gap of gaps) assert.ok(gap >= 270_000, `gaps ${gaps.join(", ")}`);
  });
});

describe("Restarter loop: waiting for Azure to say why (issue 31)", () => {
  // A VM seen deallocated whose Resource Health annotation appears only `delayMs` later (Microsoft documents
  // no bound: docs/signal-delays.md). The loop asks again at the shortest gap between cycles, not after a whole
  // interval, and starts the VM in the cycle that learns the cause; the delay is kept and told.
  class SettlingClock extends FakeClock {
    override async sleep(ms: number, signal: AbortSignal) {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      await super.sleep(ms, signal);
    }
  }

  it("asks again at the shortest gap between cycles (5 s with the 20 s capacity interval, not the 5-minute interval), starts in the cycle that learns the cause, records knownAfter", async () => {
    const clock = new SettlingClock();
    const t0 = clock.now();
    const delayMs = 25_000;
    const api = new FakeApi([spot("late")], clock);
    const loop = new AbortController();
    const asked: number[] = [];
    api.startBehaviour = async (vm) => {
      vm.powerState = "running";
      loop.abort();
    };
    const events: RestarterEvent[] = [];
    const bus = createEventBus();
    bus.subscribe((event) => events.push(event));
    const causeGate = new CauseGate({
      source: {
        async readAnnotations(ids) {
          asked.push(clock.now() - t0);
          return clock.now() - t0 >= delayMs
            ? ids.map((id) => ({
                targetResourceId: id,
                annotationName: "VirtualMachinePreempted",
                occurredAt: t0,
              }))
            : [];
        },
        async readActivity() {
          return [];
        },
      },
      readPauses: async () => [],
      settings: {
        restartWhen: "evicted",
        unknownCauseAfterMs: 600_000,
        subscriptionId: "00000000-0000-0000-0000-000000000000",
        self: { clientId: "me" },
      },
      now: () => clock.now(),
    });
    const restarter = new Restarter({
      api,
      store: createMemoryStateStore(),
      log: silentLogger,
      events: bus,
      settings: { ...settings, intervalMs: 300_000 },
      clock,
      rng: () => 0.5,
      causeGate,
    });
    await restarter.init();
    await restarter.runLoop(loop.signal);
    // Asked at 0, 5, … 20 s (nothing yet), then 25 s: known, and started in that cycle.
    assert.deepEqual(asked, [0, 5_000, 10_000, 15_000, 20_000, 25_000]);
    assert.deepEqual(
      api.startRequests.map((r) => r.at - t0),
      [25_000],
    );
    const known = events.find((e) => e.type === "cause-known");
    assert.ok(known && known.type === "cause-known");
    assert.equal(known.knownAfterSeconds, 25);
    assert.equal(known.kind, "evicted");
    const issued = events.findIndex((e) => e.type === "start-issued");
    assert.ok(events.indexOf(known) < issued, "the start follows the answer");
    assert.equal(restarter.currentState.vms[vmKey("rg", "late")]?.cause?.knownAfterMs, 25_000);
  });
});

describe("StartFollower: a start that ended is no longer in flight when the loop is told of its retry", () => {
  it("onRetryScheduled sees the VM out of flight (else the loop's wake skips its retry: a whole interval late)", async () => {
    const clock = new FakeClock();
    const api = new FakeApi([spot("full")], clock);
    api.startBehaviour = async () => {
      throw lroFailure("AllocationFailed");
    };
    const ledger = new Ledger(createMemoryStateStore(), createEventBus(), clock);
    const seen: boolean[] = [];
    const follower: StartFollower = new StartFollower({
      api,
      ledger,
      clock,
      rng: () => 0,
      retry: defaultRetryPolicy,
      pacer: new StartPacer(clock),
      maxConcurrentStarts: 1,
      startTimeoutMs: 60_000,
      onRetryScheduled: () => seen.push(follower.has(vmKey("rg", "full"))),
      onFatal: () => {},
    });
    const { powerState: _, ...listed } = spot("full");
    const result = await follower.launch(
      { ...listed, powerState: "deallocated" },
      new AbortController().signal,
    );
    assert.equal(result.outcome, "capacity");
    assert.deepEqual(seen, [false]);
  });
});
