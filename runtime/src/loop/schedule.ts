// When to try a failed start again, derived from Azure's own throttling budgets rather than from
// caution. Pure functions over plain data (and one small pacer with an injected clock), so tests
// check them with properties: never faster than the budget, never slower than the policy.
//
// The budgets, their sources and the share of them this runtime takes live in core/azureBudgets.ts.
//
// A VM without capacity is retried every `retry.capacitySeconds` (20 s by default), never sooner than
// 15 s after its last request: one start per refill of its own "Update VM" bucket (4 per minute), so the
// bucket is spent as fast as it refills and never drains (at most 12, its capacity, in any 3 minutes).
// The interval stretches toward `retry.capacityMaxSeconds` (60 s) as the subscription's Start budget
// Azure reports (budgets.ts) falls below half, or as the VMs being retried would together exceed
// `retry.fleetStartsPerMinute`; beyond that the start pacer slows and a 429's Retry-After pauses all.

import type { RuntimeConfig } from "../config/config";
import {
  azureBudgets,
  budgetShare,
  fleetStartBurst,
  fleetStartsPerMinute,
  minStartSpacingMs,
} from "../core/azureBudgets";
import type { StartOutcomeKind } from "../core/vm";
import type { BackoffPolicy } from "./decisions";

/** The default gap between capacity retries of one VM: 20 s, a quarter more than the floor (jitter, transit). */
export const defaultCapacityIntervalMs = 20_000;

/**
 * How far the capacity interval stretches as budgets run low: once a minute, a quarter of the VM's own
 * Start refill (the schedule before issue 30). Beyond it, only Azure's throttling slows the fleet further.
 */
export const stretchedCapacityIntervalMs = Math.round(
  60_000 / (azureBudgets.startPerVm.refillPerMinute * budgetShare),
);

/** Below this share of a subscription Start budget the capacity interval begins to stretch. */
export const stretchFromShare = 0.5;

/** A doubling backoff with a floor and a cap. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface RetryPolicy {
  /** No capacity: the gap between two start requests for the VM while budgets are plentiful (20 s). */
  readonly capacityIntervalMs: number;
  /** The most `capacityIntervalMs` stretches to as budgets run low (`capacityIntervalFor`). */
  readonly capacityMaxIntervalMs: number;
  /**
   * Up to this much is added at random to a VM's first capacity retry, so VMs that failed together
   * are spread apart; later retries keep that phase (exactly `capacityIntervalMs` apart).
   */
  readonly capacityJitterMs: number;
  /** The floor under every retry of one VM (request to request): `minStartSpacingMs` in production. */
  readonly minSpacingMs: number;
  /** The Spot price is above `maxPrice`: prices move within minutes, so minutes, not hours. */
  readonly price: Backoff;
  /** Quota or policy (`OperationNotAllowed`): it does not heal by itself; someone must raise it. */
  readonly quota: Backoff;
  /** Anything unexpected: back off so we never tight-loop (the config's `backoff`). */
  readonly failed: Backoff;
}

export const defaultRetryPolicy: RetryPolicy = {
  capacityIntervalMs: defaultCapacityIntervalMs,
  capacityMaxIntervalMs: stretchedCapacityIntervalMs,
  capacityJitterMs: 3_000,
  minSpacingMs: minStartSpacingMs,
  price: { initialMs: 2 * 60_000, maxMs: 10 * 60_000 },
  quota: { initialMs: 15 * 60_000, maxMs: 2 * 60 * 60_000 },
  failed: { initialMs: 60_000, maxMs: 30 * 60_000 },
};

/** The outcomes that schedule a retry (the rest retry next cycle, or never). */
export type RetryCause = Extract<StartOutcomeKind, "capacity" | "price" | "quota" | "failed">;

export interface FailedAttempt {
  readonly cause: RetryCause;
  /** Consecutive failed attempts, this one included (>= 1). */
  readonly attempts: number;
  /** When the start request left (ms since epoch). */
  readonly requestedAt: number;
  /** When its failure was known (>= requestedAt). */
  readonly endedAt: number;
}

/** `initialMs` doubling per attempt up to `maxMs`. */
export function doubling(backoff: Backoff, attempts: number): number {
  const exponent = Math.max(0, Math.min(attempts - 1, 52));
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** exponent);
}

/**
 * When the VM may be started again after a failed attempt (ms since epoch).
 *
 * - capacity: one `capacityIntervalMs` after the failed request; the first retry adds up to
 *   `capacityJitterMs`, so VMs that failed together are spread apart, and later retries keep that
 *   phase rather than drawing again (a fresh draw each time would stretch the mean gap beyond the
 *   interval, and with it the wait after capacity returns). A capacity outage is healed by Azure, not
 *   by waiting longer, so the interval never grows.
 * - price, quota, failed: their doubling backoff after the failure was known, less up to 20%
 *   jitter (never below the un-jittered delay's 80%).
 *
 * Never earlier than `minSpacingMs` after the failed request, nor than the failure itself.
 */
export function nextAttemptAt(
  attempt: FailedAttempt,
  rng: () => number,
  policy = defaultRetryPolicy,
): number {
  const draw = Math.min(Math.max(rng(), 0), 1);
  let at: number;
  if (attempt.cause === "capacity") {
    const jitter = attempt.attempts <= 1 ? Math.round(draw * policy.capacityJitterMs) : 0;
    at = attempt.requestedAt + policy.capacityIntervalMs + jitter;
  } else {
    const ceiling = doubling(policy[attempt.cause], attempt.attempts);
    at = attempt.endedAt + Math.max(1, Math.round(ceiling * (1 - draw * 0.2)));
  }
  return Math.max(at, attempt.requestedAt + policy.minSpacingMs, attempt.endedAt);
}

/** What the capacity interval is stretched by: Azure's reported Start budget and the fleet's own rate. */
export interface RetryPressure {
  /** The lowest share left of the subscription's Start budgets (budgets.ts), if reported. */
  readonly startBudgetShare?: number;
  /** VMs waiting for a capacity retry, this one included. */
  readonly vmsRetrying: number;
  /** The fleet's start requests per minute (`retry.fleetStartsPerMinute`). */
  readonly fleetStartsPerMinute: number;
}

/**
 * The capacity interval now: `capacityIntervalMs` while the subscription's Start budget has at least half
 * left and the VMs being retried stay within `fleetStartsPerMinute`; stretched linearly toward
 * `capacityMaxIntervalMs` as the budget falls from half to a quarter (where the pacer starts slowing
 * too); and, for the fleet, the shortest whole share of the longest interval that keeps every window of
 * that length within the fleet's rate: a VM retried every max/k sends at most k requests in any such
 * window, so with `vmsRetrying` VMs k = floor(rate x window / VMs) (100 VMs at 125 a minute: once a
 * minute; 50: every 30 s; up to 41: every 20 s). Measured in the longest interval rather than a clock
 * minute, so a time-scaled configuration (tests, the bench) scales with it.
 */
export function capacityIntervalFor(policy: RetryPolicy, pressure: RetryPressure): number {
  const base = policy.capacityIntervalMs;
  const most = Math.max(base, policy.capacityMaxIntervalMs);
  const share = pressure.startBudgetShare;
  const budgetPull =
    share === undefined
      ? 0
      : Math.min(1, Math.max(0, (stretchFromShare - share) / (stretchFromShare - budgetShare)));
  const perWindow = (Math.max(1, pressure.fleetStartsPerMinute) * most) / 60_000;
  const each = Math.floor(perWindow / Math.max(1, pressure.vmsRetrying));
  const fleetGap = each >= 1 ? most / each : most;
  return Math.ceil(Math.max(base + (most - base) * budgetPull, fleetGap, base));
}

/**
 * When the loop should wake for its next cycle: after `intervalMs`, or earlier when a VM's retry
 * falls due before that (so a retry is not held back by up to a whole interval), but never sooner
 * than `minCycleGapMs` after the last cycle began (each cycle lists every resource group: a "High
 * Cost Get"). `retryTimes` are the VMs' `backoffUntil`; those due before the last cycle began were
 * that cycle's to take (or it skipped them for another reason) and do not bring the wake forward.
 */
export function nextCycleAt(
  lastCycleAt: number,
  intervalMs: number,
  minCycleGapMs: number,
  retryTimes: Iterable<number>,
): number {
  const regular = lastCycleAt + intervalMs;
  let earliest = regular;
  for (const at of retryTimes) if (at > lastCycleAt && at < earliest) earliest = at;
  return Math.max(earliest, lastCycleAt + Math.min(minCycleGapMs, intervalMs));
}

/**
 * The shortest gap between two cycles when a retry is due early: at most one list per resource
 * group every 10 s, 6 per minute, 2% of the subscription's List refill (300 per minute).
 */
export const minCycleGapMs = 10_000;

/**
 * The minimum gap between cycles for a policy: `minCycleGapMs`, or a quarter of the capacity
 * interval when that is shorter (a scaled-down interval in tests), so that a retry is never held
 * back by more than a quarter of its interval.
 */
export function minCycleGapFor(policy: Pick<RetryPolicy, "capacityIntervalMs">): number {
  return Math.min(minCycleGapMs, Math.round(policy.capacityIntervalMs / 4));
}

/**
 * How far ahead of a retry's due time the loop wakes: about the time a cycle takes from waking to
 * issuing its starts (listing, instance views, the cause query). Without it every retry would leave
 * one discovery late, and since the next is due an interval after the request, the lateness would
 * add up attempt after attempt (measured at x30 in the bench: ~70 s between attempts, not 60). The
 * start request itself still waits for the due time (starts.ts), so waking early never shortens the
 * spacing. The lead is the longest of the last few cycles' discovery times plus a quarter, and at
 * most `maxMs` (a quarter of the capacity interval, never more than `minCycleGapMs`): a slow outlier
 * cannot move cycles far from the interval.
 */
export class RetryLead {
  private readonly recent: number[] = [];

  constructor(
    private readonly maxMs: number,
    private readonly window = 5,
  ) {}

  /** A cycle took `ms` from waking until its starts were issued. */
  observe(ms: number): void {
    this.recent.push(Math.max(0, ms));
    if (this.recent.length > this.window) this.recent.shift();
  }

  /** How early to wake for a retry (ms); 0 before any cycle was measured. */
  get ms(): number {
    if (this.recent.length === 0) return 0;
    return Math.min(this.maxMs, Math.ceil(Math.max(...this.recent) * 1.25));
  }
}

/** The message a quota failure is logged and reported with: it names the fix. */
export function quotaAdvice(code: string, azureMessage: string): string {
  return `a quota or policy refused the start (${code}): it will not clear by itself; raise the Spot vCPU quota for this region and VM family (Azure portal > Quotas > Compute, or \`az quota update\`), or lift the policy; retrying rarely. Azure said: ${azureMessage}`;
}

export interface PacerClock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * Paces start requests across all VMs: a token bucket of `burst` requests refilled at
 * `perMinute`, with `slowdown` (0 < s <= 1, from the remaining budgets Azure reports) scaling the
 * refill. Callers wait their turn in order; a wait takes an AbortSignal.
 */
export class StartPacer {
  private tokens: number;
  private updatedAt: number;
  private queue: Promise<void> = Promise.resolve();
  private slowdown = 1;

  constructor(
    private readonly clock: PacerClock,
    private readonly perMinute = fleetStartsPerMinute,
    private readonly burst = fleetStartBurst,
  ) {
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  /** Scales the refill rate (1 = full rate); the budget reader lowers it before Azure throttles. */
  setSlowdown(factor: number): void {
    this.slowdown = Math.min(1, Math.max(0.01, factor));
  }

  get currentSlowdown(): number {
    return this.slowdown;
  }

  /** Resolves when one start request may leave. */
  take(signal: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.waitForToken(signal));
    // A waiter that gives up (aborted) must not block those behind it.
    this.queue = turn.catch(() => {});
    return turn;
  }

  private refill(): void {
    const now = this.clock.now();
    const rate = (this.perMinute * this.slowdown) / 60_000;
    this.tokens = Math.min(this.burst, this.tokens + (now - this.updatedAt) * rate);
    this.updatedAt = now;
  }

  private async waitForToken(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.refill();
    while (this.tokens < 1) {
      const rate = (this.perMinute * this.slowdown) / 60_000;
      await this.clock.sleep(Math.ceil((1 - this.tokens) / rate), signal);
      this.refill();
    }
    this.tokens -= 1;
  }
}

/** The retry policy for a BackoffPolicy (the config's `backoff`: unexpected failures only). */
export function retryPolicyFor(failed: BackoffPolicy, overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return { ...defaultRetryPolicy, failed, ...overrides };
}

/**
 * The retry policy a config asks for. A `retry.capacitySeconds` below the budget's floor of 15 s (tests
 * only; the config loader warns) lowers the floor with it.
 */
export function retryPolicyFromConfig(config: Pick<RuntimeConfig, "backoff" | "retry">): RetryPolicy {
  const ms = (b: { initialSeconds: number; maxSeconds: number }): Backoff => ({
    initialMs: b.initialSeconds * 1000,
    maxMs: Math.max(b.initialSeconds, b.maxSeconds) * 1000,
  });
  const capacityIntervalMs = config.retry.capacitySeconds * 1000;
  return {
    ...defaultRetryPolicy,
    capacityIntervalMs,
    capacityMaxIntervalMs: Math.max(capacityIntervalMs, config.retry.capacityMaxSeconds * 1000),
    capacityJitterMs: Math.min(defaultRetryPolicy.capacityJitterMs, capacityIntervalMs * 0.05),
    minSpacingMs: Math.min(minStartSpacingMs, capacityIntervalMs),
    price: ms(config.retry.price),
    quota: ms(config.retry.quota),
    failed: ms(config.backoff),
  };
}
