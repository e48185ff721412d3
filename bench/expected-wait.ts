// The capacity-outage scenario's precise figure (issue 11): when does a VM come back after capacity
// returns, computed from the start requests each side was seen to send, not from where a handful of
// phases happened to fall between two attempts.
//
// Capacity returning at a moment R drawn uniformly over a stretch of time, the VM is started by the
// first start request at or after R (the emulator decides a start's fate when the request arrives).
// R falls in a gap g_i between two consecutive requests with probability g_i / Σg, and then waits
// g_i / 2 on average, so the expected wait is Σ g_i² / (2 Σ g_i) (length-biased sampling: a long gap
// catches more returns, and makes them wait longer). Regular gaps of 60 s give 30 s; gaps of 30 and
// 90 s give 37.5 s, worse than their 60 s mean suggests.
//
// Only the start requests sent while the VM had no capacity count: the gap that capacity returned in
// was itself picked by R (the length bias again), so it would tilt the estimate. To the wait is added
// the time from the successful start request to the VM running (the emulator's record of both).
//
// Written apart from the runtime on purpose (nothing from runtime/src): this checks its schedule.

/** Expected wait from a uniformly random moment over the gaps until the next request; null without gaps. */
export function expectedWaitSeconds(gaps: readonly number[]): number | null {
  if (gaps.length === 0) return null;
  let sum = 0;
  let sumOfSquares = 0;
  for (const gap of gaps) {
    if (!(gap >= 0) || !Number.isFinite(gap))
      throw new Error(`a gap must be a finite number >= 0, got ${gap}`);
    sum += gap;
    sumOfSquares += gap * gap;
  }
  return sum === 0 ? 0 : sumOfSquares / (2 * sum);
}

/** The gaps between consecutive times (sorted first). */
export function gapsBetween(times: readonly number[]): number[] {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.slice(1).map((time, i) => time - (sorted[i] as number));
}

/** One VM's start requests (ms since epoch) and when it was running again. */
export interface VmStartHistory {
  /** Every accepted start request for the VM, in any order. */
  readonly startRequestsAt: readonly number[];
  /** When the VM was running again (ms since epoch); null: not back. */
  readonly runningAt: number | null;
}

/**
 * Splits a VM's start requests into those that failed for capacity and the one that succeeded: the
 * last request before the VM was running (it cannot be running before its start was requested;
 * none is sent once it runs). Null when the VM is not back or no request came before it ran.
 */
export function splitAttempts(
  history: VmStartHistory,
): { failedAt: number[]; succeededAt: number; startToRunningMs: number } | null {
  if (history.runningAt === null) return null;
  const runningAt = history.runningAt;
  const before = history.startRequestsAt.filter((at) => at <= runningAt).sort((a, b) => a - b);
  const succeededAt = before.at(-1);
  if (succeededAt === undefined) return null;
  return { failedAt: before.slice(0, -1), succeededAt, startToRunningMs: runningAt - succeededAt };
}

export interface PreciseBack {
  /** Gaps between the start requests sent while there was no capacity, pooled over the VMs (emulated s). */
  readonly gaps: number;
  /** Their mean (emulated s); null without gaps. */
  readonly meanGapSeconds: number | null;
  /** Σg² / (2Σg) over the pooled gaps (emulated s). */
  readonly expectedWaitSeconds: number | null;
  /** From the successful start request to running, mean over the VMs (emulated s). */
  readonly startToRunningSeconds: number | null;
  /** The expected wait plus start-to-running: when the VM is back after capacity returns (emulated s). */
  readonly expectedBackSeconds: number | null;
}

/**
 * The precise figure for one side: its VMs' (one per phase) start histories, pooled. `scale` turns
 * real milliseconds into emulated ones (the clock's time scale). Null figures when a VM is not back.
 */
export function preciseBack(histories: readonly VmStartHistory[], scale: number): PreciseBack {
  const split = histories.map(splitAttempts);
  const emulatedSeconds = (realMs: number) => (realMs * scale) / 1000;
  const gaps = split.flatMap((s) => (s ? gapsBetween(s.failedAt).map(emulatedSeconds) : []));
  const wait = expectedWaitSeconds(gaps);
  const complete = split.every((s) => s !== null) && split.length > 0;
  const startToRunning = complete
    ? split.reduce(
        (sum, s) => sum + emulatedSeconds((s as { startToRunningMs: number }).startToRunningMs),
        0,
      ) / split.length
    : null;
  return {
    gaps: gaps.length,
    meanGapSeconds: gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : null,
    expectedWaitSeconds: wait,
    startToRunningSeconds: startToRunning,
    expectedBackSeconds: wait !== null && startToRunning !== null ? wait + startToRunning : null,
  };
}
