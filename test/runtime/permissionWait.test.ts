// How `run` waits out a missing permission, as plain data: the backoff, what is said once, what is let
// through untouched, and when it says the permissions work again. The loop itself against a fake API is in
// restarter.test.ts, and against the emulator's replication delay in test/emulator/replication.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PermissionError } from "../../runtime/src/core/errors";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { PermissionWait, permissionRetryDelayMs } from "../../runtime/src/loop/permissionWait";
import { createEventBus } from "../../runtime/src/signals/events";

const READ = "Microsoft.Compute/virtualMachines/read";

function setup(intervalMs = 30_000) {
  let now = 1_000_000;
  const wait = new PermissionWait(intervalMs, () => now);
  const seen: RestarterEvent[] = [];
  const bus = createEventBus();
  bus.subscribe((event) => seen.push(event));
  const filtered = wait.filter(bus);
  return { wait, seen, filtered, advance: (ms: number) => (now += ms) };
}

describe("permissionRetryDelayMs", () => {
  it("doubles from the interval and stops at 2 minutes (or the interval, if longer)", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 50].map((n) => permissionRetryDelayMs(n, 30_000)),
      [30_000, 60_000, 120_000, 120_000, 120_000, 120_000],
    );
    assert.equal(permissionRetryDelayMs(3, 600_000), 600_000);
  });
});

describe("PermissionWait", () => {
  it("reports a refused permission once per episode, says it keeps running, then once when it works", () => {
    const { wait, seen, filtered, advance } = setup();
    wait.startLooping();
    for (let cycle = 0; cycle < 4; cycle++) {
      filtered.emit(wait.cycleBegins() ?? { type: "cycle-skipped", at: 0, until: 0 });
      const { event } = wait.denied(new PermissionError(`lacks ${READ}`, READ));
      if (event) filtered.emit(event);
      advance(30_000);
    }
    const missing = seen.filter((event) => event.type === "permission-missing");
    assert.equal(missing.length, 1);
    assert.match(missing[0]?.type === "permission-missing" ? missing[0].message : "", /still running/);
    assert.equal(wait.cycleBegins(), undefined, "the last cycle was refused");
    const works = wait.cycleSucceeded(0);
    assert.equal(works?.type, "permission-restored");
    assert.deepEqual(works?.type === "permission-restored" && works.actions, [READ]);
    assert.equal(wait.cycleSucceeded(0), undefined, "said once");
  });

  it("a cycle that issued starts does not yet count as working: its starts may still be refused", () => {
    const { wait } = setup();
    wait.startLooping();
    wait.denied(new PermissionError("x", READ));
    wait.cycleBegins();
    assert.equal(wait.cycleSucceeded(2), undefined);
    assert.equal(wait.cycleBegins()?.type, "permission-restored");
  });

  it("a cycle that asked nothing (throttled) or failed otherwise does not count as working", () => {
    const { wait } = setup();
    wait.startLooping();
    wait.denied(new PermissionError("x", READ));
    wait.cycleBegins();
    wait.cycleInconclusive();
    assert.equal(wait.cycleBegins(), undefined);
    assert.equal(wait.cycleSucceeded(0)?.type, "permission-restored");
  });

  it("lets an unreadable eviction-cause signal through untouched: it blocks nothing", () => {
    const { wait, seen, filtered } = setup();
    wait.startLooping();
    const signal: RestarterEvent = {
      type: "permission-missing",
      at: 1,
      action: "Microsoft.Insights/eventtypes/values/read",
      signal: "activity-log",
      message: "the service principal cannot read the Activity Log",
    };
    filtered.emit(signal);
    filtered.emit(signal);
    assert.deepEqual(seen, [signal, signal]);
    assert.equal(wait.cycleSucceeded(0), undefined, "no wait began");
  });

  it("changes nothing before `run`'s loop starts (`once` exits on the error instead)", () => {
    const { seen, filtered } = setup();
    const event: RestarterEvent = { type: "permission-missing", at: 1, action: READ, message: "lacks it" };
    filtered.emit(event);
    filtered.emit(event);
    assert.deepEqual(seen, [event, event]);
  });
});
