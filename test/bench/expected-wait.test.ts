// The capacity-outage scenario's precise figure (bench/expected-wait.ts) and the verdict built on it
// (bench/report.ts outageTargets), with figures worked out by hand in the comments.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  expectedWaitSeconds,
  gapsBetween,
  preciseBack,
  splitAttempts,
  type VmStartHistory,
} from "../../bench/expected-wait";
import type { OutageResult, OutageRun } from "../../bench/outage";
import { outageTargets, outageTolerance, retryJitterCostSeconds } from "../../bench/report";

describe("expected wait from the gaps between start requests", () => {
  it("regular gaps of 60 s: half a gap, 30 s", () => {
    // (3 * 3600) / (2 * 180) = 10800 / 360
    assert.equal(expectedWaitSeconds([60, 60, 60]), 30);
  });

  it("gaps of 30 and 90 s: 37.5 s, worse than their 60 s mean suggests (length bias)", () => {
    // (900 + 8100) / (2 * 120) = 9000 / 240
    assert.equal(expectedWaitSeconds([30, 90]), 37.5);
  });

  it("one gap of 70 s: 35 s", () => {
    assert.equal(expectedWaitSeconds([70]), 35);
  });

  it("no gaps: no figure; a negative gap is refused", () => {
    assert.equal(expectedWaitSeconds([]), null);
    assert.throws(() => expectedWaitSeconds([60, -1]), /gap must be a finite number >= 0/);
  });

  it("gaps are taken between the times in order, whatever order they come in", () => {
    assert.deepEqual(gapsBetween([120, 0, 60, 150]), [60, 60, 30]);
    assert.deepEqual(gapsBetween([5]), []);
  });
});

describe("a VM's start requests split into the failed ones and the one that succeeded", () => {
  it("the last request before the VM was seen running succeeded; its start-to-running is measured", () => {
    const split = splitAttempts({ startRequestsAt: [60_000, 0, 185_000, 120_000], runningAt: 216_000 });
    assert.deepEqual(split, {
      failedAt: [0, 60_000, 120_000],
      succeededAt: 185_000,
      startToRunningMs: 31_000,
    });
  });

  it("a VM not back, or seen running before any request, has no figure", () => {
    assert.equal(splitAttempts({ startRequestsAt: [0, 60_000], runningAt: null }), null);
    assert.equal(splitAttempts({ startRequestsAt: [5_000], runningAt: 1_000 }), null);
  });
});

describe("one side's precise figure, pooled over its phases (clock x30: 1 real ms = 30 emulated ms)", () => {
  // VM A: failed requests at 0, 2000, 4000 real ms (gaps 60, 60 emulated s), the successful one at
  // 6100, running at 7150 (1050 real ms = 31.5 s). VM B: failed at 0, 1000, 4000 (gaps 30, 90 s),
  // successful at 5000, running at 6000 (30 s).
  const a: VmStartHistory = { startRequestsAt: [0, 2000, 4000, 6100], runningAt: 7150 };
  const b: VmStartHistory = { startRequestsAt: [0, 1000, 4000, 5000], runningAt: 6000 };

  it("pools the gaps: (3600 + 3600 + 900 + 8100) / (2 * 240) = 33.75 s, plus a mean start of 30.75 s", () => {
    const figure = preciseBack([a, b], 30);
    assert.equal(figure.gaps, 4);
    assert.equal(figure.meanGapSeconds, 60);
    assert.equal(figure.expectedWaitSeconds, 33.75);
    assert.equal(figure.startToRunningSeconds, 30.75);
    assert.equal(figure.expectedBackSeconds, 64.5);
  });

  it("a phase whose VM never came back leaves the side without an expected figure", () => {
    const figure = preciseBack([a, { startRequestsAt: [0, 2000], runningAt: null }], 30);
    assert.equal(figure.expectedWaitSeconds, 30); // A's gaps alone
    assert.equal(figure.startToRunningSeconds, null);
    assert.equal(figure.expectedBackSeconds, null);
  });
});

describe("the cost of ours' retry jitter, by formula and by the oracle", () => {
  it("gaps of 60 s plus up to 3 s: ((61.5)^2 + 0.75) / 123 - 30 = 0.756 s", () => {
    assert.ok(Math.abs(retryJitterCostSeconds(60, 3) - (3783 / 123 - 30)) < 1e-9);
  });

  it("agrees with the expected wait over gaps spread evenly over 60 to 63 s", () => {
    const gaps = Array.from({ length: 30_001 }, (_, i) => 60 + (3 * i) / 30_000);
    const byOracle = (expectedWaitSeconds(gaps) as number) - 30;
    assert.ok(Math.abs(byOracle - retryJitterCostSeconds(60, 3)) < 1e-3, `${byOracle}`);
  });
});

describe("the verdict: ours as good as or better than the original, on the expected figure", () => {
  /** A side that retried every `gap` real ms (x30) and took `startMs` from its last request to running. */
  const side = (gapMs: number, phases = 8, startMs = 1000) => {
    const histories: VmStartHistory[] = Array.from({ length: phases }, (_, phase) => {
      const times = Array.from({ length: 6 }, (_, i) => phase * 10 + i * gapMs);
      return { startRequestsAt: times, runningAt: (times.at(-1) as number) + startMs };
    });
    return {
      backAfterCapacityMinutes: 1,
      worstBackAfterCapacityMinutes: 1.3,
      startRequests: 6,
      precise: preciseBack(histories, 30),
    };
  };
  const result = (oursGapMs: number, originalGapMs: number): OutageResult => {
    const run: OutageRun = {
      minutes: 5,
      sides: { ours: side(oursGapMs), original: side(originalGapMs), oldBackoff: side(6000) },
    };
    return {
      timeScale: 30,
      startSeconds: 30,
      phases: 8,
      observationSeconds: 1.6,
      runs: [run],
      fleet: null,
    };
  };

  it("tolerance: the observation (a watcher poll) plus ours' designed jitter, 1.6 + 0.76 s", () => {
    const tolerance = outageTolerance({ observationSeconds: 1.6 });
    assert.ok(Math.abs(tolerance.seconds - 2.356) < 0.001, `${tolerance.seconds}`);
    assert.match(tolerance.why, /1\.6 s observation .* 0\.76 s ours' designed retry jitter/);
  });

  it("retries 60 s apart like the original: MET", () => {
    const [check] = outageTargets(result(2000, 2000));
    assert.equal(check?.met, true, check?.detail);
  });

  it("retries 61.5 s apart (the jitter's mean) against the original's 60: MET within the tolerance", () => {
    // 30.75 + 30 = 60.75 s against 30 + 30 = 60 s
    const [check] = outageTargets(result(2050, 2000));
    assert.equal(check?.met, true, check?.detail);
  });

  it("retries 70 s apart against the original's 60: 5 s later on average, NOT MET", () => {
    // 35 + 30 = 65 s against 60 s: 5 s > 2.36 s
    const [check] = outageTargets(result(7000 / 3, 2000));
    assert.equal(check?.met, false);
    assert.match(check?.detail ?? "", /expected ours 65\.0 s, original 60\.0 s/);
  });

  it("faster than the original: MET", () => {
    const [check] = outageTargets(result(1500, 2000));
    assert.equal(check?.met, true, check?.detail);
  });
});
