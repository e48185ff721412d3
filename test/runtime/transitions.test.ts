// Per-VM record transitions and the log's rendering of their events, over plain objects: what a
// record becomes and which events are produced when a power state is observed, a start is issued or
// ends, or a read fails. Expected records and events are spelled out here, not derived from the code.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AuthError, PermissionError } from "../../runtime/src/core/errors";
import type { RestarterEvent } from "../../runtime/src/core/events";
import type { VmRecord } from "../../runtime/src/core/vm";
import type { AzureOutcome } from "../../runtime/src/loop/decisions";
import { retryPolicyFor } from "../../runtime/src/loop/schedule";
import {
  observePowerState,
  readFailed,
  type StartEnd,
  startEnded,
  startIssued,
} from "../../runtime/src/loop/transitions";
import { describeEvent } from "../../runtime/src/signals/events";
import { logLine } from "../../runtime/src/signals/logSink";

const vm = { resourceGroup: "rg", name: "backup", maxPrice: -1 };
const t0 = Date.parse("2026-11-30T10:00:00Z");
const policy = { initialMs: 60_000, maxMs: 1_800_000 };

function frozen(record: VmRecord): VmRecord {
  return Object.freeze({
    ...record,
    lastResult: record.lastResult && Object.freeze({ ...record.lastResult }),
  });
}

const types = (events: RestarterEvent[]) => events.map((e) => e.type);

describe("observePowerState", () => {
  it("a first sighting deallocated starts a deallocation: evictedSince set, only the log-only vm-deallocated (whether it was evicted is the cause gate's call)", () => {
    const { record, events } = observePowerState(undefined, vm, "deallocated", t0);
    assert.deepEqual(record, {
      resourceGroup: "rg",
      name: "backup",
      startAttempts: 0,
      evictedSince: t0,
      lastEvictionSeenAt: t0,
      powerState: "deallocated",
    });
    assert.deepEqual(events, [
      { type: "vm-deallocated", resourceGroup: "rg", vm: "backup", at: t0 },
      { type: "vm-observed", resourceGroup: "rg", vm: "backup", at: t0, up: false, downSince: t0 },
    ]);
  });

  it("the same power state again changes nothing and emits only vm-observed", () => {
    const before = frozen({
      resourceGroup: "rg",
      name: "backup",
      startAttempts: 2,
      powerState: "deallocated",
      evictedSince: t0,
      lastEvictionSeenAt: t0,
      backoffUntil: t0 + 120_000,
    });
    const { record, events } = observePowerState(before, vm, "deallocated", t0 + 30_000);
    assert.equal(record, before);
    assert.deepEqual(types(events), ["vm-observed"]);
  });

  it("running after an eviction clears the eviction, the attempts and the backoff (vm-running)", () => {
    const before = frozen({
      resourceGroup: "rg",
      name: "backup",
      startAttempts: 3,
      powerState: "deallocated",
      evictedSince: t0,
      lastEvictionSeenAt: t0,
      backoffUntil: t0 + 240_000,
    });
    const { record, events } = observePowerState(before, vm, "running", t0 + 60_000);
    assert.equal(record.startAttempts, 0);
    assert.equal(record.evictedSince, undefined);
    assert.equal(record.backoffUntil, undefined);
    assert.equal(record.powerState, "running");
    assert.equal(record.lastEvictionSeenAt, t0, "the last eviction seen is history, kept");
    assert.deepEqual(events[0], {
      type: "vm-running",
      resourceGroup: "rg",
      vm: "backup",
      at: t0 + 60_000,
      was: "deallocated",
    });
    assert.equal(before.startAttempts, 3, "the input record is not changed");
  });

  it("running without an eviction behind it, or another state, is a power-state change", () => {
    const running = observePowerState(undefined, vm, "running", t0);
    assert.deepEqual(types(running.events), ["power-state-changed", "vm-observed"]);
    assert.equal(logLine(running.events[0] as RestarterEvent)?.name, "power-state");
    assert.equal(logLine(running.events[0] as RestarterEvent)?.level, "debug");
    const stopped = observePowerState(running.record, vm, "stopped", t0 + 1);
    assert.deepEqual(stopped.events[0], {
      type: "power-state-changed",
      resourceGroup: "rg",
      vm: "backup",
      at: t0 + 1,
      state: "stopped",
      was: "running",
    });
    assert.equal(stopped.record.evictedSince, undefined, "stopped (not deallocated) is no eviction");
    assert.equal(logLine(stopped.events[0] as RestarterEvent)?.name, "power-state-changed");
  });
});

describe("starts", () => {
  const evicted: VmRecord = frozen({
    resourceGroup: "rg",
    name: "backup",
    startAttempts: 1,
    powerState: "deallocated",
    evictedSince: t0,
    lastEvictionSeenAt: t0,
    backoffUntil: t0 + 60_000,
  });
  const ctx = { requestedAt: t0 + 100_000, now: t0 + 130_000, retry: retryPolicyFor(policy), rng: () => 0 };

  it("an issued start is remembered and announced with its attempt number", () => {
    const { record, events } = startIssued(evicted, vm, t0 + 100_000);
    assert.deepEqual(record.lastResult, { outcome: "issued", at: t0 + 100_000 });
    assert.equal(record.lastStartAt, t0 + 100_000);
    assert.deepEqual(events, [
      { type: "start-issued", resourceGroup: "rg", vm: "backup", at: t0 + 100_000, attempt: 2 },
    ]);
  });

  it("started: running, attempts and backoff reset; vm-restarted with the downtime since the eviction", () => {
    const { record, events, effect } = startEnded(evicted, vm, { kind: "started" }, ctx);
    assert.equal(effect, undefined);
    assert.deepEqual(record, {
      ...evicted,
      startAttempts: 0,
      backoffUntil: undefined,
      evictedSince: undefined,
      // A success ends the capacity outage that fallback sizes count (fallback.ts).
      capacityFailingSince: undefined,
      lastStartedAt: t0 + 130_000,
      // The last run counts from the start request: an eviction during the start is about this run,
      // a cause older than the request is about an earlier deallocation (issue 10).
      lastRanAt: ctx.requestedAt,
      leftAloneLogged: undefined,
      powerState: "running",
      lastResult: { outcome: "started", code: undefined, at: t0 + 130_000 },
    });
    assert.deepEqual(events, [
      {
        type: "vm-restarted",
        resourceGroup: "rg",
        vm: "backup",
        at: t0 + 130_000,
        downtimeSeconds: 130,
        attempts: 2,
        startSeconds: 30,
      },
      {
        type: "start-attempt-ended",
        resourceGroup: "rg",
        vm: "backup",
        at: t0 + 130_000,
        result: "succeeded",
        code: undefined,
      },
    ]);
    const line = logLine(events[0] as RestarterEvent);
    assert.equal(line?.name, "started");
    assert.equal(line?.meta.vm, "rg/backup");
    assert.equal(line?.meta.startSeconds, 30);
  });

  it("no capacity: one more attempt, retried 20 s after the failed request, never doubling (rng 0 = no jitter)", () => {
    const outcome: AzureOutcome = { kind: "capacity", code: "AllocationFailed", message: "no capacity" };
    // Azure took 30 s to say no, longer than the interval: the retry is due as soon as it is known.
    assert.equal(startEnded(evicted, vm, outcome, ctx).record.backoffUntil, ctx.now);
    const quick = { ...ctx, now: t0 + 105_000 };
    const { record, events } = startEnded(evicted, vm, outcome, quick);
    assert.equal(record.startAttempts, 2);
    assert.equal(record.backoffUntil, t0 + 100_000 + 20_000);
    assert.equal(
      startEnded({ ...evicted, startAttempts: 40 }, vm, outcome, quick).record.backoffUntil,
      t0 + 120_000,
      "however many attempts failed",
    );
    assert.equal(record.evictedSince, t0, "still down since the eviction");
    // Fallback sizes count the capacity outage from the first failed request, and not from later ones.
    assert.equal(record.capacityFailingSince, quick.requestedAt);
    assert.equal(
      startEnded({ ...evicted, capacityFailingSince: t0 + 5 }, vm, outcome, quick).record
        .capacityFailingSince,
      t0 + 5,
    );
    assert.equal(
      startEnded(evicted, vm, { kind: "quota", code: "OperationNotAllowed", message: "quota" }, ctx).record
        .capacityFailingSince,
      undefined,
      "only capacity counts",
    );
    const failed = events.find((e) => e.type === "start-failed");
    assert.deepEqual(failed, {
      type: "start-failed",
      resourceGroup: "rg",
      vm: "backup",
      at: t0 + 105_000,
      outcome: "capacity",
      code: "AllocationFailed",
      message: "no capacity",
      attempts: 2,
      backoffUntil: t0 + 120_000,
      backoffSeconds: 15,
      maxPrice: undefined,
    });
    assert.equal(logLine(failed as RestarterEvent)?.name, "start-failed");
    assert.equal(logLine(failed as RestarterEvent)?.meta.backoffUntil, "2026-11-30T10:02:00.000Z");
  });

  it("quota: a long backoff, and the message says what to raise", () => {
    // What Azure answers when the region's Spot (low-priority) vCPU quota is spent, as recorded in
    // Azure/karpenter-provider-azure's cloud-error tests (isLowPriorityQuotaReached).
    const outcome: AzureOutcome = {
      kind: "quota",
      code: "OperationNotAllowed",
      message:
        "Operation could not be completed as it results in exceeding approved LowPriorityCores quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 3, Current Usage: 0, Additional Required: 6",
    };
    const { record, events } = startEnded(evicted, vm, outcome, ctx);
    assert.equal(
      record.backoffUntil,
      t0 + 130_000 + 2 * 15 * 60_000,
      "15 min doubling: the 2nd attempt failed",
    );
    const sentence = describeEvent(events.find((e) => e.type === "start-failed") as RestarterEvent);
    assert.match(sentence, /raise the Spot vCPU quota/);
    assert.match(sentence, /LowPriorityCores/);
  });

  it("price: reported distinctly, with the VM's max price", () => {
    const outcome: AzureOutcome = {
      kind: "price",
      code: "SpotPriceGreaterThanProvidedMaxPrice",
      message: "price",
    };
    const { events } = startEnded(evicted, { ...vm, maxPrice: 0.0123 }, outcome, ctx);
    const failed = events.find((e) => e.type === "start-failed");
    assert.equal(failed?.type === "start-failed" && failed.maxPrice, 0.0123);
    assert.equal(logLine(failed as RestarterEvent)?.name, "start-failed-price");
  });

  it("throttled, gone, forbidden, unauthorized: the loop is told what else to do", () => {
    const throttled = startEnded(
      evicted,
      vm,
      { kind: "throttled", code: "TooManyRequests", message: "slow down", retryAfterMs: 5_000 },
      ctx,
    );
    assert.deepEqual(throttled.effect, { kind: "throttle", retryAfterMs: 5_000, code: "TooManyRequests" });
    assert.equal(throttled.record.backoffUntil, evicted.backoffUntil, "throttling is no backoff");
    assert.equal(throttled.record.startAttempts, 1);

    const gone = startEnded(evicted, vm, { kind: "gone", code: "ResourceNotFound", message: "x" }, ctx);
    assert.equal(gone.effect?.kind, "forget");

    const forbidden = startEnded(
      evicted,
      vm,
      {
        kind: "forbidden",
        code: "AuthorizationFailed",
        message: "denied",
        permission: "Microsoft.Compute/virtualMachines/start/action",
      },
      ctx,
    );
    assert.equal(forbidden.effect?.kind, "fatal");
    const error = forbidden.effect?.kind === "fatal" ? forbidden.effect.error : undefined;
    assert.ok(error instanceof PermissionError);
    assert.equal(error.permission, "Microsoft.Compute/virtualMachines/start/action");
    assert.match(
      error.message,
      /lacks the permission Microsoft\.Compute\/virtualMachines\/start\/action needed to start rg\/backup \(AuthorizationFailed\)/,
    );
    const missing = forbidden.events.find((e) => e.type === "permission-missing");
    assert.equal(missing?.type === "permission-missing" && missing.action, error.permission);

    const refused = startEnded(
      evicted,
      vm,
      { kind: "unauthorized", code: "InvalidAuthenticationToken", message: "bad" },
      ctx,
    );
    assert.ok(refused.effect?.kind === "fatal" && refused.effect.error instanceof AuthError);
  });

  it("no token, or interrupted: no backoff, no attempt counted", () => {
    for (const outcome of [
      { kind: "token-unavailable", message: "Entra ID answered 503" },
      { kind: "interrupted" },
    ] as StartEnd[]) {
      const { record, effect } = startEnded(evicted, vm, outcome, ctx);
      assert.equal(record.startAttempts, 1);
      assert.equal(record.backoffUntil, evicted.backoffUntil);
      assert.equal(record.lastResult?.outcome, outcome.kind);
      assert.equal(effect, undefined);
    }
  });
});

describe("readFailed", () => {
  const where = { resourceGroup: "rg" };
  it("a missing permission is fatal and names the action and the group", () => {
    const result = readFailed(
      {
        outcome: {
          kind: "forbidden",
          code: "AuthorizationFailed",
          message: "x",
          permission: "Microsoft.Compute/virtualMachines/read",
        },
        error: new Error("x"),
      },
      where,
      t0,
    );
    assert.ok(result.effect?.kind === "fatal" && result.effect.error instanceof PermissionError);
    assert.match(
      result.effect.error.message,
      /lacks the permission Microsoft\.Compute\/virtualMachines\/read on resource group rg \(AuthorizationFailed\)/,
    );
  });

  it("throttling pauses requests; anything else is reported and retried next cycle", () => {
    const throttled = readFailed(
      {
        outcome: { kind: "throttled", code: "TooManyRequests", message: "x", retryAfterMs: 2_000 },
        error: undefined,
      },
      where,
      t0,
    );
    assert.deepEqual(throttled, {
      events: [],
      effect: { kind: "throttle", retryAfterMs: 2_000, code: "TooManyRequests" },
    });
    const failed = readFailed(
      {
        outcome: { kind: "failed", code: "HTTP500", message: "x" },
        error: new Error("boom", { cause: new Error("ECONNRESET") }),
      },
      { resourceGroup: "rg", vm: "backup" },
      t0,
    );
    assert.deepEqual(failed.events, [
      {
        type: "read-failed",
        resourceGroup: "rg",
        vm: "backup",
        at: t0,
        code: "HTTP500",
        message: "boom: caused by: ECONNRESET",
      },
    ]);
    const missing = readFailed(
      { outcome: { kind: "gone", code: "ResourceGroupNotFound", message: "no rg" }, error: undefined },
      where,
      t0,
    );
    assert.equal(missing.events[0]?.type, "resource-group-missing");
    assert.equal(logLine(missing.events[0] as RestarterEvent)?.meta.resourceGroup, "rg");
  });
});

describe("logLine", () => {
  it("renders times as ISO and keeps per-poll events out of the log", () => {
    const line = logLine({
      type: "throttled",
      at: t0,
      code: "TooManyRequests",
      retryAfterSeconds: 2,
      until: t0 + 2_000,
    });
    assert.deepEqual(line, {
      level: "warn",
      name: "throttled",
      meta: { code: "TooManyRequests", retryAfterSeconds: 2, until: "2026-11-30T10:00:02.000Z" },
    });
    assert.equal(logLine({ type: "vm-observed", resourceGroup: "rg", vm: "a", at: t0, up: true }), undefined);
    assert.equal(
      logLine({ type: "auth-failing", at: t0, message: "HTTP 503", status: 503, transient: true })?.name,
      "token-unavailable",
    );
  });
});
