// The retry schedule against Azure's documented budgets. The oracles here are the documents' own
// numbers and token buckets, written out in this file, not read back from runtime/src/loop/schedule.ts:
// - Compute "Update VM" (Start): per VM 4 per minute (bucket 12), per subscription 500 per minute
//   (bucket 1,500). https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits
// - Resource Manager writes: bucket 200, refill 10 per second.
//   https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling
// - The policy (issues 11, 30): a VM without capacity is tried every 20 s while budgets are plentiful,
//   stretching toward once a minute as they run low, never faster than its Start bucket refills (one per
//   15 s, so the bucket never drains); price: minutes; quota: long and said clearly.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  fleetStartBurst,
  fleetStartsPerMinute,
  minStartSpacingMs,
} from "../../runtime/src/core/azureBudgets";
import {
  capacityIntervalFor,
  defaultRetryPolicy,
  type FailedAttempt,
  nextAttemptAt,
  nextCycleAt,
  quotaAdvice,
  type RetryCause,
  RetryLead,
  StartPacer,
} from "../../runtime/src/loop/schedule";

const MINUTE = 60_000;
const t0 = Date.parse("2026-11-30T12:00:00Z");

/** Documented per-VM Start refill (4 a minute, bucket 12): one start per refill at most. */
const perVmStartsPerMinute = 4;
const floorMs = MINUTE / perVmStartsPerMinute;
/** Issue 30's default interval, and how far it stretches (once a minute, the schedule before it). */
const intervalMs = 20_000;
const stretchedMs = MINUTE;

/** A clock whose sleeps advance time at once (waits are serialised by the pacer's queue). */
function virtualClock(start = t0) {
  let now = start;
  return {
    now: () => now,
    set: (at: number) => {
      now = Math.max(now, at);
    },
    sleep: async (ms: number, signal: AbortSignal) => {
      signal.throwIfAborted();
      now += ms;
    },
  };
}

/** Azure's token bucket, as the documents describe it: an oracle for "inside the budget". */
function tokenBucket(capacity: number, refillPerMs: number) {
  let tokens = capacity;
  let at = t0;
  return {
    take(time: number): boolean {
      tokens = Math.min(capacity, tokens + (time - at) * refillPerMs);
      at = time;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}

const attemptArb = fc
  .record({
    cause: fc.constantFrom<RetryCause>("capacity", "price", "quota", "failed"),
    attempts: fc.integer({ min: 1, max: 200 }),
    requestedAt: fc.integer({ min: t0, max: t0 + 30 * 24 * 60 * MINUTE }),
    // How long Azure took to say no: from at once to past the next minute.
    tookMs: fc.integer({ min: 0, max: 5 * MINUTE }),
  })
  .map(({ tookMs, ...a }): FailedAttempt => ({ ...a, endedAt: a.requestedAt + tookMs }));

describe("the retry schedule (pure)", () => {
  it("derives one start per 15 s per VM at most, 20 s by default, and 125 per minute across VMs from the documented budgets", () => {
    assert.equal(minStartSpacingMs, floorMs);
    assert.equal(defaultRetryPolicy.minSpacingMs, floorMs);
    assert.equal(defaultRetryPolicy.capacityMaxIntervalMs, stretchedMs);
    // A quarter of min(500 per minute Start, 600 per minute ARM writes).
    assert.equal(fleetStartsPerMinute, Math.floor(Math.min(500, 10 * 60) / 4));
    // A quarter of ARM's write bucket.
    assert.equal(fleetStartBurst, 200 / 4);
    assert.equal(defaultRetryPolicy.capacityIntervalMs, intervalMs);
  });

  it("never retries a VM faster than its Start bucket refills, whatever the cause and the draw", () => {
    fc.assert(
      fc.property(attemptArb, fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const at = nextAttemptAt(attempt, () => r);
        assert.ok(at - attempt.requestedAt >= floorMs, `${at - attempt.requestedAt} ms after the request`);
        assert.ok(at >= attempt.endedAt, "before the failure was even known");
      }),
    );
  });

  it("never slower than the policy: capacity every 20 s, price within minutes, quota within hours", () => {
    fc.assert(
      fc.property(attemptArb, fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const at = nextAttemptAt(attempt, () => r);
        const sinceRequest = at - attempt.requestedAt;
        const sinceFailure = at - attempt.endedAt;
        switch (attempt.cause) {
          case "capacity":
            // 20 s (plus a few seconds of jitter) after the request, or at once if Azure took longer to say no.
            assert.ok(
              sinceRequest <= intervalMs + 3_000 || sinceFailure === 0,
              `capacity: ${sinceRequest} ms`,
            );
            break;
          case "price":
            assert.ok(sinceFailure <= 10 * MINUTE, `price: ${sinceFailure} ms`);
            assert.ok(sinceFailure >= Math.min(floorMs, 2 * MINUTE * 0.8) - 1, `price: ${sinceFailure} ms`);
            break;
          case "quota":
            assert.ok(sinceFailure <= 2 * 60 * MINUTE, `quota: ${sinceFailure} ms`);
            assert.ok(sinceFailure >= 12 * MINUTE, `quota backs off long: ${sinceFailure} ms`);
            break;
          case "failed":
            assert.ok(sinceFailure <= 30 * MINUTE, `failed: ${sinceFailure} ms`);
            break;
        }
      }),
    );
  });

  it("does not grow the capacity interval however long the outage lasts", () => {
    const at = (attempts: number) =>
      nextAttemptAt({ cause: "capacity", attempts, requestedAt: t0, endedAt: t0 + 5_000 }, () => 0);
    assert.deepEqual(
      [1, 2, 10, 1_000].map(at),
      [1, 2, 3, 4].map(() => t0 + intervalMs),
    );
  });

  it("keeps a VM's capacity retries exactly one interval apart after the first: the jitter is drawn once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: intervalMs - 1 }),
        (attempts, r, tookMs) => {
          const at = nextAttemptAt(
            { cause: "capacity", attempts, requestedAt: t0, endedAt: t0 + tookMs },
            () => r,
          );
          assert.equal(at - t0, intervalMs);
        },
      ),
    );
    // The first retry spreads VMs that failed together over the jitter (3 s in production).
    const first = (r: number) =>
      nextAttemptAt({ cause: "capacity", attempts: 1, requestedAt: t0, endedAt: t0 }, () => r) - t0;
    assert.deepEqual([first(0), first(0.5), first(1)], [intervalMs, intervalMs + 1_500, intervalMs + 3_000]);
  });

  it("stretches the capacity interval from 20 s toward 60 s as the subscription's Start budget falls from half to a quarter", () => {
    const at = (startBudgetShare: number | undefined) =>
      capacityIntervalFor(defaultRetryPolicy, { startBudgetShare, vmsRetrying: 1, fleetStartsPerMinute });
    assert.equal(at(undefined), intervalMs, "no reading: the default");
    assert.equal(at(1), intervalMs);
    assert.equal(at(0.5), intervalMs, "half left: not yet");
    assert.equal(at(0.375), (intervalMs + stretchedMs) / 2);
    assert.equal(at(0.25), stretchedMs);
    assert.equal(at(0.01), stretchedMs, "below a quarter the pacer slows starts further, not the interval");
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, b) => {
          const [low, high] = a < b ? [a, b] : [b, a];
          assert.ok(at(low) >= at(high), "less left never retries sooner");
          assert.ok(at(low) >= intervalMs && at(low) <= stretchedMs);
        },
      ),
    );
  });

  it("stretches it so that the VMs being retried never send more than the fleet's starts per minute in any minute (up to 60 s)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.array(fc.integer({ min: 0, max: MINUTE }), { minLength: 1, maxLength: 1_000 }),
        (vms, perMinute, phases) => {
          const interval = capacityIntervalFor(defaultRetryPolicy, {
            vmsRetrying: vms,
            fleetStartsPerMinute: perMinute,
          });
          assert.ok(interval >= intervalMs && interval <= stretchedMs);
          if (interval === stretchedMs && vms > perMinute) return; // beyond it the pacer holds the rest
          // Each VM at its own phase, retried every `interval`: the most requests in any minute.
          const times = Array.from({ length: vms }, (_, v) => phases[v % phases.length] ?? 0).flatMap((p) =>
            Array.from({ length: Math.ceil((3 * MINUTE) / interval) }, (_, i) => p + i * interval),
          );
          times.sort((a, b) => a - b);
          let most = 0;
          for (let i = 0, j = 0; i < times.length; i++) {
            while ((times[i] ?? 0) - (times[j] ?? 0) >= MINUTE) j++;
            most = Math.max(most, i - j + 1);
          }
          assert.ok(most <= perMinute, `${vms} VMs every ${interval} ms: ${most} requests in one minute`);
        },
      ),
      { numRuns: 60 },
    );
    // 100 VMs at 125 a minute: once a minute; 50: every 30 s; 41: every 20 s.
    const at = (vms: number) =>
      capacityIntervalFor(defaultRetryPolicy, { vmsRetrying: vms, fleetStartsPerMinute });
    assert.deepEqual([1, 41, 42, 62, 63, 100, 500].map(at), [
      20_000,
      20_000,
      30_000,
      30_000,
      MINUTE,
      MINUTE,
      MINUTE,
    ]);
  });

  it("never drains a VM's own Start bucket: however the interval stretches and shrinks, at most one start per 15 s and 12 in any 3 minutes", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            share: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
            vms: fc.integer({ min: 1, max: 500 }),
            tookMs: fc.integer({ min: 0, max: 90_000 }),
            draw: fc.double({ min: 0, max: 1, noNaN: true }),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        (steps) => {
          const bucket = tokenBucket(12, perVmStartsPerMinute / MINUTE);
          const sent: number[] = [];
          let requestedAt = t0;
          steps.forEach((step, i) => {
            assert.ok(bucket.take(requestedAt), `start ${i + 1} found the VM's bucket empty`);
            sent.push(requestedAt);
            const policy = {
              ...defaultRetryPolicy,
              capacityIntervalMs: capacityIntervalFor(defaultRetryPolicy, {
                startBudgetShare: step.share,
                vmsRetrying: step.vms,
                fleetStartsPerMinute,
              }),
            };
            requestedAt = nextAttemptAt(
              { cause: "capacity", attempts: i + 1, requestedAt, endedAt: requestedAt + step.tookMs },
              () => step.draw,
              policy,
            );
          });
          for (const at of sent) {
            const inWindow = sent.filter((t) => t >= at && t < at + 3 * MINUTE).length;
            assert.ok(inWindow <= 12, `${inWindow} starts in 3 minutes`);
          }
        },
      ),
    );
  });

  it("backs price off from 2 minutes to at most 10, and quota from 15 minutes to 2 hours (no jitter at rng 0)", () => {
    const delays = (cause: RetryCause) =>
      [1, 2, 3, 4, 9].map(
        (attempts) =>
          (nextAttemptAt({ cause, attempts, requestedAt: t0, endedAt: t0 }, () => 0) - t0) / MINUTE,
      );
    assert.deepEqual(delays("price"), [2, 4, 8, 10, 10]);
    assert.deepEqual(delays("quota"), [15, 30, 60, 120, 120]);
    assert.deepEqual(delays("failed"), [1, 2, 4, 8, 30]);
  });

  it("says what to do about a quota", () => {
    const text = quotaAdvice(
      "OperationNotAllowed",
      "Operation could not be completed as it results in exceeding approved LowPriorityCores quota.",
    );
    assert.match(text, /quota/);
    assert.match(text, /Quotas/);
    assert.match(text, /LowPriorityCores/);
  });
});

describe("nextCycleAt", () => {
  it("wakes for a retry due since the last cycle began, but never sooner than the minimum gap nor later than the interval", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_000, max: 10 * MINUTE }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.array(fc.integer({ min: -MINUTE, max: 20 * MINUTE }), { maxLength: 20 }),
        (interval, gap, offsets) => {
          const retries = offsets.map((o) => t0 + o);
          const at = nextCycleAt(t0, interval, gap, retries);
          const floor = t0 + Math.min(gap, interval);
          assert.ok(at <= Math.max(t0 + interval, floor));
          assert.ok(at >= floor);
          const dueSoon = retries.filter((r) => r > t0 && r < t0 + interval);
          if (dueSoon.length > 0) assert.equal(at, Math.max(Math.min(...dueSoon), floor));
          else assert.equal(at, t0 + interval);
        },
      ),
    );
  });
});

describe("RetryLead", () => {
  it("wakes ahead by the longest recent discovery plus a quarter, within its cap, forgetting old outliers", () => {
    const lead = new RetryLead(10_000, 3);
    assert.equal(lead.ms, 0, "nothing measured yet: no lead");
    lead.observe(400);
    lead.observe(800);
    assert.equal(lead.ms, 1_000);
    lead.observe(60_000);
    assert.equal(lead.ms, 10_000, "capped");
    for (const ms of [100, 200, 300]) lead.observe(ms);
    assert.equal(lead.ms, 375, "the outlier left the window");
    lead.observe(-5);
    assert.equal(lead.ms, 375);
  });
});

describe("StartPacer", () => {
  it("lets a burst through at once, then paces to its rate", async () => {
    const clock = virtualClock();
    const pacer = new StartPacer(clock, 120, 5);
    const times: number[] = [];
    for (let i = 0; i < 9; i++) {
      await pacer.take(new AbortController().signal);
      times.push(clock.now() - t0);
    }
    assert.deepEqual(times, [0, 0, 0, 0, 0, 500, 1_000, 1_500, 2_000]);
  });

  it("slows down by the factor it is given", async () => {
    const clock = virtualClock();
    const pacer = new StartPacer(clock, 120, 1);
    pacer.setSlowdown(0.5);
    const signal = new AbortController().signal;
    await pacer.take(signal);
    await pacer.take(signal);
    assert.equal(clock.now() - t0, 1_000);
  });

  it("a waiter that gives up does not hold up the next", async () => {
    const clock = virtualClock();
    const pacer = new StartPacer(clock, 60, 1);
    await pacer.take(new AbortController().signal);
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(pacer.take(aborted.signal));
    await pacer.take(new AbortController().signal);
    assert.equal(clock.now() - t0, 1_000);
  });
});

describe("K VMs without capacity at once (schedule + pacer on a virtual clock)", () => {
  /**
   * Every VM fails for capacity on every attempt for `minutes`; Azure takes `tookMs` to say no.
   * Returns each VM's request times, in the order they left.
   */
  async function simulate(k: number, minutes: number, tookMs: (i: number) => number, rng: () => number) {
    const clock = virtualClock();
    const pacer = new StartPacer(clock);
    const due = Array.from({ length: k }, () => t0);
    const attempts = Array.from({ length: k }, () => 0);
    const requests: Array<{ vm: number; at: number }> = [];
    const end = t0 + minutes * MINUTE;
    for (;;) {
      let vm = 0;
      for (let i = 1; i < k; i++) if ((due[i] ?? 0) < (due[vm] ?? 0)) vm = i;
      const when = due[vm] ?? 0;
      if (when >= end) break;
      clock.set(when);
      await pacer.take(new AbortController().signal);
      const requestedAt = clock.now();
      requests.push({ vm, at: requestedAt });
      attempts[vm] = (attempts[vm] ?? 0) + 1;
      // As the start follower does: the interval stretched for the k VMs being retried (starts.ts).
      const policy = {
        ...defaultRetryPolicy,
        capacityIntervalMs: capacityIntervalFor(defaultRetryPolicy, { vmsRetrying: k, fleetStartsPerMinute }),
      };
      due[vm] = nextAttemptAt(
        { cause: "capacity", attempts: attempts[vm] ?? 1, requestedAt, endedAt: requestedAt + tookMs(vm) },
        rng,
        policy,
      );
    }
    return requests;
  }

  it("K = 1..120: start requests stay inside Compute's and ARM's budgets, and each VM is still tried at least once a minute", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 120 }),
        fc.array(fc.integer({ min: 0, max: 90_000 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        async (k, took, seed) => {
          let state = seed;
          const rng = () => {
            state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
            return state / 2 ** 31;
          };
          const requests = await simulate(k, 20, (i) => took[i % took.length] ?? 0, rng);
          const perVmBucket = new Map<number, ReturnType<typeof tokenBucket>>();
          const subscription = tokenBucket(1_500, 500 / MINUTE);
          const armWrites = tokenBucket(200, 10 / 1_000);
          const last = new Map<number, number>();
          for (const { vm, at } of requests) {
            if (!perVmBucket.has(vm)) perVmBucket.set(vm, tokenBucket(12, 4 / MINUTE));
            assert.ok(perVmBucket.get(vm)?.take(at), `VM ${vm} over its Start budget`);
            assert.ok(subscription.take(at), "over the subscription's Start budget");
            assert.ok(armWrites.take(at), "over ARM's write budget");
            const previous = last.get(vm);
            if (previous !== undefined) {
              assert.ok(at - previous >= floorMs, `VM ${vm} retried after ${at - previous} ms`);
              // At most once a minute (the stretched interval), Azure's answer time, and at most the
              // pacer's queue of the whole fleet (k requests at 125 per minute).
              const slack = stretchedMs + 3_000 + (took[vm % took.length] ?? 0) + (k / 125) * MINUTE;
              assert.ok(at - previous <= slack, `VM ${vm} waited ${at - previous} ms`);
            }
            last.set(vm, at);
          }
          // No burst of hundreds: in any one minute, at most the burst plus a minute's pace.
          for (const { at } of requests) {
            const inMinute = requests.filter((r) => r.at >= at && r.at < at + MINUTE).length;
            assert.ok(inMinute <= 50 + 125, `${inMinute} start requests in one minute`);
          }
        },
      ),
      { numRuns: 15 },
    );
  });

  it("K = 100 failing at once for 20 minutes: prints the request rate", async () => {
    const requests = await simulate(100, 20, () => 10_000, Math.random);
    const perMinute = Array.from(
      { length: 20 },
      (_, m) => requests.filter((r) => r.at >= t0 + m * MINUTE && r.at < t0 + (m + 1) * MINUTE).length,
    );
    assert.ok(Math.max(...perMinute) <= 175);
    assert.ok(Math.min(...perMinute.slice(1)) >= 80, "each VM still tried about once a minute");
    process.stdout.write(`# K=100, 20 min: start requests per minute ${perMinute.join(" ")}\n`);
  });
});
