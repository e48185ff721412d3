// The benchmark's tables, targets and SVG charts, from the measured results (no measuring here).
import type { AzCalibration } from "./az-calibration";
import type { SizeResult } from "./measure";
import { type OutageResult, SIDES, type Side } from "./outage";
import { renderCharts } from "./svg";

export const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** The original's time to all running if each az invocation's own overhead (measured) is added. */
export function withAzOverhead(r: SizeResult, calibration: AzCalibration | undefined): number | undefined {
  if (!calibration) return undefined;
  const invocations = r.original.eviction.matches + 1; // az vm list -d, then one az vm start per match
  return r.original.eviction.allRunningMs + invocations * calibration.azOverheadSecondsPerInvocation * 1000;
}

export function report(results: SizeResult[], calibration: AzCalibration | undefined) {
  const est = (r: SizeResult) => (r.original.eviction.extrapolated ? "*" : "");
  const requests = table(
    [
      "N",
      "tagged",
      "idle: ours",
      "idle: original",
      "idle ratio",
      "idle: original, every VM with a public IP",
      "evictions: ours (no polls)",
      "evictions: original (no polls)",
    ],
    results.map((r) => [
      String(r.n),
      String(r.tagged),
      String(r.ours.idle.total),
      String(r.original.idle.total),
      x(r.original.idle.total, r.ours.idle.total),
      // The request log shows one public-IP GET per VM that has one, nothing else depends on it.
      String(r.original.idle.total + (r.n - r.original.idle.requests.publicIp)),
      `${r.ours.eviction.total} (${r.ours.eviction.totalWithoutPolls})`,
      `${r.original.eviction.total}${est(r)} (${r.original.eviction.totalWithoutPolls}${est(r)})`,
    ]),
  );
  const latency = table(
    [
      "N",
      "all starts requested: ours",
      "spread",
      "original",
      "all running: ours",
      "original",
      "ratio",
      ...(calibration ? ["original + az start-up", "ratio"] : []),
    ],
    results.map((r) => [
      String(r.n),
      s(r.ours.eviction.allStartsRequestedMs),
      `${r.ours.eviction.startRequestSpreadMs} ms`,
      `${s(r.original.eviction.allStartsRequestedMs)}${est(r)}`,
      s(r.ours.eviction.allRunningMs),
      `${s(r.original.eviction.allRunningMs)}${est(r)}`,
      x(r.original.eviction.allRunningMs, r.ours.eviction.allRunningMs),
      ...(calibration
        ? [
            `${s(withAzOverhead(r, calibration) as number)}${est(r)}`,
            x(withAzOverhead(r, calibration) as number, r.ours.eviction.allRunningMs),
          ]
        : []),
    ]),
  );
  const cost = table(
    ["N", "once: cycle time", "process CPU", "peak RSS", "run loop: CPU per idle cycle", "RSS"],
    results.map((r) => [
      String(r.n),
      `${r.ours.idle.durationMs} ms`,
      `${r.ours.idle.processCpuMs.toFixed(0)} ms`,
      `${r.ours.idle.processMaxRssMiB.toFixed(0)} MiB`,
      `${r.ours.loop.cpuMsPerIdleCycle.toFixed(1)} ms`,
      `${r.ours.loop.rssMiB.toFixed(0)} MiB`,
    ]),
  );
  return { requests, latency, cost };
}

export function targets(results: SizeResult[], calibration: AzCalibration | undefined) {
  const checks: { target: string; met: boolean; detail: string }[] = [];
  for (const r of results) {
    const expected = r.listPages + r.tagged;
    checks.push({
      target: `N=${r.n}: requests per idle cycle = list pages + tagged Spot VMs (${r.listPages} + ${r.tagged})`,
      met: r.ours.idle.total === expected,
      detail: `measured ${r.ours.idle.total} (list ${r.ours.idle.requests.list}, instanceView ${r.ours.idle.requests.instanceView}, other ${r.ours.idle.requests.other})`,
    });
  }
  const at500 = results.find((r) => r.n === 500);
  if (at500) {
    checks.push({
      target: "N=500: every start requested within one cycle, within 1 s of each other",
      met:
        at500.ours.eviction.startsIssued === at500.tagged && at500.ours.eviction.startRequestSpreadMs <= 1000,
      detail: `${at500.ours.eviction.startsIssued}/${at500.tagged} starts in one cycle, spread ${at500.ours.eviction.startRequestSpreadMs} ms`,
    });
  }
  const at100 = results.find((r) => r.n === 100);
  if (at100) {
    const idleRatio = at100.original.idle.total / at100.ours.idle.total;
    const timeRatio = at100.original.eviction.allRunningMs / at100.ours.eviction.allRunningMs;
    checks.push({
      target: "N=100: at least 10x fewer requests per idle cycle than the original",
      met: idleRatio >= 10,
      detail: `${at100.original.idle.total} vs ${at100.ours.idle.total}: ${idleRatio.toFixed(1)}x`,
    });
    checks.push({
      target:
        "N=100: at least 10x less time from cycle start to all running than the original (re-enactment)",
      met: timeRatio >= 10,
      detail: `${s(at100.original.eviction.allRunningMs)} vs ${s(at100.ours.eviction.allRunningMs)}: ${timeRatio.toFixed(1)}x${at100.original.eviction.extrapolated ? " (original extrapolated)" : ""}`,
    });
    const withAz = withAzOverhead(at100, calibration);
    if (withAz !== undefined) {
      checks.push({
        target: "N=100: the same, counting az's own overhead per invocation (measured against the real az)",
        met: withAz / at100.ours.eviction.allRunningMs >= 10,
        detail: `${s(withAz)} vs ${s(at100.ours.eviction.allRunningMs)}: ${(withAz / at100.ours.eviction.allRunningMs).toFixed(1)}x`,
      });
    }
  }
  return checks;
}

export function svg(results: SizeResult[], footnote: string): string {
  const pts = (f: (r: SizeResult) => number, estimated?: (r: SizeResult) => boolean) =>
    results.map((r) => ({ x: r.n, y: f(r), estimated: estimated?.(r) }));
  const est = (r: SizeResult) => r.original.eviction.extrapolated !== null;
  return renderCharts(
    [
      {
        title: "ARM requests per cycle",
        yLabel: "requests (log)",
        xLabel: "VMs in the resource group (10% tagged Spot)",
        series: [
          {
            label: "original, cycle with evictions",
            color: "#c0392b",
            points: pts((r) => r.original.eviction.total, est),
          },
          {
            label: "original, idle cycle",
            color: "#c0392b",
            dashed: true,
            points: pts((r) => r.original.idle.total),
          },
          {
            label: "ours, cycle with evictions",
            color: "#2471a3",
            points: pts((r) => r.ours.eviction.total),
          },
          {
            label: "ours, idle cycle",
            color: "#2471a3",
            dashed: true,
            points: pts((r) => r.ours.idle.total),
          },
        ],
      },
      {
        title: "Seconds from cycle start (all evicted)",
        yLabel: "seconds (log)",
        xLabel: "VMs in the resource group (10% tagged Spot)",
        series: [
          {
            label: "original, until all running",
            color: "#c0392b",
            points: pts((r) => r.original.eviction.allRunningMs / 1000, est),
          },
          {
            label: "original, until all start requests sent",
            color: "#c0392b",
            dashed: true,
            points: pts((r) => r.original.eviction.allStartsRequestedMs / 1000, est),
          },
          {
            label: "ours, until all running",
            color: "#2471a3",
            points: pts((r) => r.ours.eviction.allRunningMs / 1000),
          },
          {
            label: "ours, until all start requests sent",
            color: "#2471a3",
            dashed: true,
            points: pts((r) => r.ours.eviction.allStartsRequestedMs / 1000),
          },
        ],
      },
    ],
    footnote,
  );
}

const sideNames: Record<Side, string> = {
  ours: "ours (20 s, stretching to 60 s)",
  ours60: "ours at the 60 s schedule",
  original: "original (cron, once a minute)",
  oldBackoff: "old backoff (1 min doubling to 30)",
};

const minutes = (m: number | null) => (m === null ? "not back" : `${m.toFixed(1)} min`);
const seconds = (v: number | null) => (v === null ? "-" : `${v.toFixed(1)} s`);

/** The capacity-outage figures: per outage length and side, when the VM was back and what it cost. */
export function outageTable(result: OutageResult): string {
  return table(
    [
      "outage",
      "side",
      "mean gap between start requests",
      "expected back after capacity returns",
      `phase mean (${result.phases} runs)`,
      "worst",
      "start requests per VM",
    ],
    result.runs.flatMap((run) =>
      SIDES.map((side) => {
        const { precise } = run.sides[side];
        return [
          `${run.minutes} min`,
          sideNames[side],
          seconds(precise.meanGapSeconds),
          precise.expectedBackSeconds === null
            ? "-"
            : `${seconds(precise.expectedBackSeconds)} (${seconds(precise.expectedWaitSeconds)} + ${seconds(precise.startToRunningSeconds)})`,
          minutes(run.sides[side].backAfterCapacityMinutes),
          minutes(run.sides[side].worstBackAfterCapacityMinutes),
          run.sides[side].startRequests.toFixed(1),
        ];
      }),
    ),
  );
}

/**
 * Ours' first capacity retry after an eviction adds up to 3 s at random, so that VMs that failed
 * together are spread apart; later retries keep that phase, exactly a minute apart
 * (runtime/src/loop/schedule.ts, `capacityJitterMs`; the bench's scaled config keeps the same 5 % of the
 * interval). The original's cron has no such spread.
 */
const OURS_FIRST_RETRY_JITTER_SECONDS = 3;

/**
 * What that spread costs ours' expected wait when `share` of its gaps carry it: a gap G + U(0, J)
 * instead of G adds J/2 to the mean gap and, by Σg²/2Σg, about J/4 to the wait where it applies.
 * With 3 to 4 failed requests per VM (a 5-minute outage) that is a third of 0.75 s; over an hour, nothing.
 */
export function firstRetryJitterCostSeconds(share: number, jitter = OURS_FIRST_RETRY_JITTER_SECONDS): number {
  return (Math.min(1, Math.max(0, share)) * jitter) / 4;
}

/**
 * How much later than the original ours may be, on the expected figure, and still count as "as good
 * as" it (emulated seconds): the resolution of the scaled clock and what ours spends on purpose, not
 * a margin for a slower schedule.
 * - The scaled clock's resolution: every side's requests carry real-time latency (a timer firing, an
 *   HTTPS round trip on a busy 2-core machine) that the scale magnifies 30 times; ours, whose retries
 *   are never sooner than a minute after the last, carries each retry's latency into the next. The
 *   bench measures one such latency as it runs (`resolutionSeconds`: its watcher's mean poll, an HTTPS
 *   round trip to each emulator plus a 50 ms timer) and allows it once. At x1 it is a few hundredths of
 *   a second.
 * - Ours' first-retry jitter (firstRetryJitterCostSeconds), on the share of ours' gaps that are a
 *   VM's first retry (one per VM).
 * The gaps and the start's duration are the emulator's own timestamps (1 ms real = 0.03 emulated s at
 * x30). Retries 70 s apart where the original's are 60 cost 5 s of expected wait: NOT MET.
 */
export function outageTolerance(
  result: Pick<OutageResult, "resolutionSeconds" | "phases">,
  oursGaps: number,
): { seconds: number; why: string } {
  const jitter = firstRetryJitterCostSeconds(oursGaps > 0 ? result.phases / oursGaps : 0);
  return {
    seconds: result.resolutionSeconds + jitter,
    why: `${result.resolutionSeconds.toFixed(1)} s the scaled clock's resolution (one watcher poll) + ${jitter.toFixed(2)} s ours' first-retry jitter`,
  };
}

/**
 * Issue 11's yardsticks, on the precise figure (expected-wait.ts), the phase means shown beside it:
 * back within about a minute of capacity returning (a retry once a minute, plus the start) and no
 * later than the original beyond the measurement's resolution (outageTolerance); a failing fleet
 * inside the budgets.
 */
export function outageTargets(result: OutageResult) {
  const checks: { target: string; met: boolean; detail: string }[] = [];
  const limitSeconds = 60 + result.startSeconds;
  for (const run of result.runs) {
    const tolerance = outageTolerance(result, run.sides.ours.precise.gaps);
    const ours = run.sides.ours.precise.expectedBackSeconds;
    const ours60 = run.sides.ours60.precise.expectedBackSeconds;
    const original = run.sides.original.precise.expectedBackSeconds;
    checks.push({
      target: `outage ${run.minutes} min (clock x${result.timeScale}, ${result.phases} runs per side): ours' expected back after capacity returns within ${limitSeconds} s (a retry a minute, plus the ${result.startSeconds} s start) and no later than the original's nor the 60 s schedule's, tolerance ${tolerance.seconds.toFixed(1)} s (${tolerance.why})`,
      met:
        result.startsCheckedAgainstLog &&
        ours !== null &&
        ours <= limitSeconds &&
        (original === null || ours <= original + tolerance.seconds) &&
        (ours60 === null || ours <= ours60 + tolerance.seconds),
      detail: `${result.startsCheckedAgainstLog ? "" : "start requests NOT matching the request log; "}${ours === null || original === null ? "no expected figure for a side: a VM not back, or no two start requests failed during the outage (too short to measure a gap); " : ""}expected ours ${seconds(ours)}, at 60 s ${seconds(ours60)}, original ${seconds(original)} (mean gaps ${seconds(run.sides.ours.precise.meanGapSeconds)} / ${seconds(run.sides.ours60.precise.meanGapSeconds)} / ${seconds(run.sides.original.precise.meanGapSeconds)}); phase means ours ${minutes(run.sides.ours.backAfterCapacityMinutes)}, original ${minutes(run.sides.original.backAfterCapacityMinutes)}, old backoff ${minutes(run.sides.oldBackoff.backAfterCapacityMinutes)}`,
    });
    // Issue 30's yardstick: back within the start + 12 s (retries about 24 s apart). A retry cannot leave
    // before Azure has refused the last one, so with a failing start as long as the bench's (the same as a
    // successful one) the gap is that long at least: printed, and NOT MET where the refusal is the limit.
    checks.push({
      target: `outage ${run.minutes} min: ours' expected back within the start + 12 s (${result.startSeconds + 12} s; the cron script: the start + 30 s)`,
      met: ours !== null && ours <= result.startSeconds + 12 + tolerance.seconds,
      detail: `expected ours ${seconds(ours)} (mean gap ${seconds(run.sides.ours.precise.meanGapSeconds)}: a failing start here takes ${result.startSeconds} s before Azure says no, and the next leaves after it)`,
    });
  }
  const fleet = result.fleet;
  if (fleet) {
    checks.push({
      target: `${fleet.vms} VMs without capacity for ${fleet.minutes} min: start requests within the budgets (${fleet.budgetStartsPerMinute} in any minute across VMs; at most half the subscription's PutVM3Min in any 3 minutes; per VM sent at least ${fleet.budgetGapPerVmSeconds} s apart, and as Azure received them never overdrawing Compute's per-VM Start bucket of 12 refilled at 4 a minute)`,
      met:
        fleet.maxStartsPerMinute <= fleet.budgetStartsPerMinute &&
        fleet.maxStartsIn3Minutes <= fleet.halfPutVm3Min &&
        fleet.shortestSentGapPerVmSeconds !== null &&
        // The runtime's own send times (log lines stamped in whole real milliseconds: 0.1 emulated s of
        // rounding at most x100). The arrival times carry transit jitter the scale multiplies, so they are
        // judged by the bucket Azure enforces rather than by our own quarter-share floor.
        fleet.shortestSentGapPerVmSeconds >= fleet.budgetGapPerVmSeconds - 0.1 &&
        !fleet.perVmBucketOverdrawn &&
        fleet.allBack,
      detail: `at most ${fleet.maxStartsPerMinute} in a minute, ${fleet.maxStartsIn3Minutes} in any 3 minutes (half the PutVM3Min budget: ${fleet.halfPutVm3Min}); shortest gap per VM ${fleet.shortestSentGapPerVmSeconds?.toFixed(1) ?? "-"} s as sent, ${fleet.shortestGapPerVmSeconds?.toFixed(1) ?? "-"} s as received; per-VM bucket ${fleet.perVmBucketOverdrawn ? "OVERDRAWN" : "never empty"}; ${fleet.startRequests} in all; ${fleet.allBack ? "all back" : "NOT all back"}`,
    });
  }
  return checks;
}
