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
import { firstRetryJitterCostSeconds, outageTargets, outageTolerance } from "../../bench/report";

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

describe("the cost of ours' first-retry jitter, by formula and by the oracle", () => {
  it("on every gap: a quarter of the jitter, 0.75 s; on a third of them, 0.25 s", () => {
    assert.equal(firstRetryJitterCostSeconds(1), 0.75);
    assert.equal(firstRetryJitterCostSeconds(1 / 3), 0.25);
    assert.equal(firstRetryJitterCostSeconds(0), 0);
  });

  it("agrees with the expected wait over gaps spread evenly over 60 to 63 s (exactly 0.756 s)", () => {
    // ((61.5)^2 + 3^2/12) / 123 - 30 = 3783 / 123 - 30 = 0.7561: J/4 and a small variance term
    const gaps = Array.from({ length: 30_001 }, (_, i) => 60 + (3 * i) / 30_000);
    const byOracle = (expectedWaitSeconds(gaps) as number) - 30;
    assert.ok(Math.abs(byOracle - 3783 / 123 + 30) < 1e-3, `${byOracle}`);
    assert.ok(Math.abs(byOracle - firstRetryJitterCostSeconds(1)) < 0.01, `${byOracle}`);
  });
});

describe("the verdict: ours as good as or better than the original, on the expected figure", () => {
  /**
   * A side whose 8 VMs each sent 6 start requests (x30: 1 real ms = 30 emulated ms): the first retry
   * `firstGapMs` after the first request, then every `gapMs`; running `startMs` after the last.
   */
  const side = (gapMs: number, firstGapMs = gapMs, startMs = 1000) => {
    const histories: VmStartHistory[] = Array.from({ length: 8 }, (_, phase) => {
      const times = [phase * 10, ...Array.from({ length: 5 }, (_, i) => phase * 10 + firstGapMs + i * gapMs)];
      return { startRequestsAt: times, runningAt: (times.at(-1) as number) + startMs };
    });
    return {
      backAfterCapacityMinutes: 1,
      worstBackAfterCapacityMinutes: 1.3,
      startRequests: 6,
      precise: preciseBack(histories, 30),
      timeline: [],
    };
  };
  const result = (ours: ReturnType<typeof side>, original = side(2000), checked = true): OutageResult => {
    const run: OutageRun = {
      minutes: 5,
      sides: { ours, ours60: side(2000), original, oldBackoff: side(6000) },
    };
    return {
      timeScale: 30,
      startSeconds: 30,
      phases: 8,
      resolutionSeconds: 1.6,
      startsCheckedAgainstLog: checked,
      runs: [run],
      fleet: null,
    };
  };

  it("tolerance: the scaled clock's resolution plus ours' first-retry jitter on its share of the gaps", () => {
    // 8 VMs, 32 gaps: a quarter of them first retries, 0.75 s / 4
    const tolerance = outageTolerance({ resolutionSeconds: 1.6, phases: 8 }, 32);
    assert.equal(tolerance.seconds, 1.6 + 0.1875);
    assert.match(
      tolerance.why,
      /1\.6 s the scaled clock's resolution \(one watcher poll\) \+ 0\.19 s ours' first-retry jitter/,
    );
  });

  it("retries 60 s apart like the original: MET", () => {
    const [check] = outageTargets(result(side(2000)));
    assert.equal(check?.met, true, check?.detail);
  });

  it("the first retry 3 s late (the most jitter), then 60 s apart: MET", () => {
    // gaps 63, 60, 60, 60: (3969 + 3 * 3600) / (2 * 243) = 30.39 s against 30 s
    const [check] = outageTargets(result(side(2000, 2100)));
    assert.equal(check?.met, true, check?.detail);
  });

  it("retries 70 s apart against the original's 60: 5 s later on average, NOT MET", () => {
    // 35 + 30 = 65 s against 30 + 30 = 60 s: 5 s > 1.79 s
    const [check] = outageTargets(result(side(7000 / 3)));
    assert.equal(check?.met, false);
    assert.match(check?.detail ?? "", /expected ours 65\.0 s, at 60 s 60\.0 s, original 60\.0 s/);
  });

  it("retries 63 s apart: 1.5 s later, MET at a 1.6 s resolution, NOT MET at 0.8 s", () => {
    // 31.5 + 30 = 61.5 s against 60 s: 1.5 s <= 1.79 s
    const [check] = outageTargets(result(side(2100)));
    assert.equal(check?.met, true, check?.detail);
    // on a clock twice as fine the same schedule is NOT MET
    const precise = { ...result(side(2100)), resolutionSeconds: 0.8 };
    assert.equal(outageTargets(precise)[0]?.met, false);
  });

  it("an outage too short for two failed requests per VM: no expected figure, NOT MET, and says why", () => {
    const once = {
      ...side(2000),
      precise: preciseBack([{ startRequestsAt: [0, 2000], runningAt: 3000 }], 30),
    };
    assert.equal(once.precise.expectedBackSeconds, null);
    const [check] = outageTargets(result(once));
    assert.equal(check?.met, false);
    assert.match(check?.detail ?? "", /no two start requests failed during the outage/);
  });

  it("faster than the original: MET; start times not matching the request log: NOT MET", () => {
    assert.equal(outageTargets(result(side(1500)))[0]?.met, true);
    const [unchecked] = outageTargets(result(side(1500), side(2000), false));
    assert.equal(unchecked?.met, false);
    assert.match(unchecked?.detail ?? "", /NOT matching the request log/);
  });
});
