// What Azure says is left of its throttling budgets, read off every ARM answer, so the runtime slows
// down before Azure throttles it rather than after.
//
// Compute reports each throttling policy that covers a request in
// `x-ms-ratelimit-remaining-resource: Microsoft.Compute/HighCostGet3Min;133,Microsoft.Compute/HighCostGet30Min;657`
// ("Call rate informational response headers", https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors);
// Resource Manager adds `x-ms-ratelimit-remaining-subscription-reads` (GET) or `-writes` (others)
// ("Understand how Azure Resource Manager throttles requests",
// https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
// ARM's regional buckets also have a subscription-wide "global" limit, 15 times one principal's, shared by
// every principal (the same page, "Regional throttling and token bucket algorithm"), reported as
// `x-ms-ratelimit-remaining-subscription-global-reads` / `-global-writes` (a real answer carries
// `-reads: 249` beside `-global-reads: 3749`: 250 and 15 x 250).
//
// Full counts are learned, not assumed: a policy's full count is the largest remaining value seen for it
// (a fresh window answers its full count less one), never below the smallest full count public answers
// start from, so that a runtime begun in an already busy window does not take what is left for the whole.
// Those floors: Azure/azure-sdk-for-js arm-compute test recordings (`HighCostGet3Min;139,HighCostGet30Min;699`
// after one list, `LowCostGet3Min;3999,LowCostGet30Min;31998` after a GET, `PutVM3Min;239,PutVM30Min;1199`
// after a write; polls `GetOperation3Min;14797,GetOperation30Min;29797` after a few hundred, in
// sdk/compute/arm-compute/recordings/node/compute_test/recording_virtualmachines_delete_test.js) and ARM's
// buckets (reads 250, writes 200, global 15 times that). Other subscriptions start higher: a public Go
// throttling exporter records `PutVM3Min;740,PutVM30Min;3695`, and `GetOperation3Min;49999` is seen too;
// measured against a fixed 240, 500 left of 740 would read as plenty while a third is spent.
// Resource Graph (the cause gate's query) reports its own per-caller quota instead:
// `x-ms-user-quota-remaining` (queries left, 15 per 5-second window) and `x-ms-user-quota-resets-after`
// (`hh:mm:ss`) ("Guidance for throttled requests in Azure Resource Graph",
// https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests).
//
// A policy not listed is measured against the most it was ever seen at, shown (status, metrics), and
// never acted on. That is deliberate: Compute also keeps per-VM buckets (the same page: "Update VM" 12
// refilled at 4 per minute per VM, "Low Cost Get" and "Get Operation" per VM), and no public answer we
// found shows the names it reports them under. Whatever their names, a per-VM budget running low says
// nothing about the other VMs, so it must not slow the whole fleet's starts or defer every read: only
// the subscription-wide policies listed here do. A VM whose own bucket is spent gets 429 with
// Retry-After for that VM, which the retry schedule already honours.
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { budgetShare } from "../core/azureBudgets";

/** One policy as last reported: `policy` is e.g. `Microsoft.Compute/PutVM3Min` or `subscription-writes`. */
export interface BudgetReading {
  readonly policy: string;
  readonly remaining: number;
  /** The full count it is measured against (known, or the most seen). */
  readonly full: number;
  /** When it was read (ms since epoch). */
  readonly at: number;
  /** When the budget resets, if the answer said (Resource Graph's `x-ms-user-quota-resets-after`). */
  readonly resetsAt?: number;
}

/** The name a Resource Graph quota reading goes by (`x-ms-user-quota-remaining`). */
export const RESOURCE_GRAPH_QUOTA = "resource-graph-quota";

/**
 * The subscription-wide policies this runtime's requests meet, each with the least its full count is taken
 * to be (sources in the header comment); the full count itself is the most seen above that.
 */
export const fullCountFloors: Readonly<Record<string, number>> = {
  "Microsoft.Compute/HighCostGet3Min": 140,
  "Microsoft.Compute/HighCostGet30Min": 700,
  "Microsoft.Compute/LowCostGet3Min": 4_000,
  "Microsoft.Compute/LowCostGet30Min": 32_000,
  "Microsoft.Compute/PutVM3Min": 240,
  "Microsoft.Compute/PutVM30Min": 1_200,
  "Microsoft.Compute/GetOperation3Min": 15_000,
  "Microsoft.Compute/GetOperation30Min": 30_000,
  "subscription-reads": 250,
  "subscription-writes": 200,
  "subscription-global-reads": 15 * 250,
  "subscription-global-writes": 15 * 200,
  [RESOURCE_GRAPH_QUOTA]: 15,
};

/**
 * A budget below this share of its full count is "low": the runtime then keeps the rest for the
 * owner's portal, az and other automation (the same quarter schedule.ts allows itself).
 */
export const lowBudgetShare = budgetShare;

/** Policies whose budget reads spend (lists, instance views). */
const READ_POLICY = /^(Microsoft\.Compute\/(HighCostGet|LowCostGet)|subscription-(global-)?reads$)/i;
/** Policies starts spend: the start itself (PutVM, ARM writes) and the polls that follow it (GetOperation). */
const START_POLICY = /^(Microsoft\.Compute\/(PutVM|GetOperation)|subscription-(global-)?writes$)/i;

/** Only the subscription-wide policies listed in `fullCountFloors` are acted on (see the header comment). */
const actsOnFleet = (r: BudgetReading): boolean =>
  r.policy !== RESOURCE_GRAPH_QUOTA && Object.hasOwn(fullCountFloors, r.policy);

/**
 * How long a reading says anything: a Compute policy's window (its name ends in `3Min`, `30Min`);
 * ARM's buckets refill within seconds (25 reads, 10 writes per second), so 10 s.
 */
export function readingLifetimeMs(policy: string): number {
  const minutes = /(\d+)Min$/i.exec(policy)?.[1];
  return minutes ? Number(minutes) * 60_000 : 10_000;
}

/** `hh:mm:ss` (Resource Graph's `x-ms-user-quota-resets-after`) in ms, if it parses. */
export function parseResetsAfter(value: string | undefined): number | undefined {
  const match = /^\s*(\d+):(\d{2}):(\d{2})(?:\.\d+)?\s*$/.exec(value ?? "");
  if (!match) return undefined;
  return ((Number(match[1]) * 60 + Number(match[2])) * 60 + Number(match[3])) * 1000;
}

/** The readings in one answer's headers (unparsable entries are ignored). */
export function parseBudgetHeaders(get: (name: string) => string | undefined): Array<{
  policy: string;
  remaining: number;
  resetsInMs?: number;
}> {
  const out: Array<{ policy: string; remaining: number; resetsInMs?: number }> = [];
  const resource = get("x-ms-ratelimit-remaining-resource");
  // Several policies per header, comma-separated; a proxy may also have joined repeated headers.
  for (const entry of (resource ?? "").split(",")) {
    const match = /^\s*([A-Za-z0-9.]+\/[A-Za-z0-9_.-]+);\s*(\d+)\s*$/.exec(entry);
    if (match) out.push({ policy: match[1] as string, remaining: Number(match[2]) });
  }
  for (const kind of ["reads", "writes", "global-reads", "global-writes"] as const) {
    const value = get(`x-ms-ratelimit-remaining-subscription-${kind}`)?.trim();
    if (value && /^\d+$/.test(value)) out.push({ policy: `subscription-${kind}`, remaining: Number(value) });
  }
  const quota = get("x-ms-user-quota-remaining")?.trim();
  if (quota && /^\d+$/.test(quota)) {
    const resetsInMs = parseResetsAfter(get("x-ms-user-quota-resets-after"));
    out.push({
      policy: RESOURCE_GRAPH_QUOTA,
      remaining: Number(quota),
      ...(resetsInMs !== undefined ? { resetsInMs } : {}),
    });
  }
  return out;
}

/** The share of its full count a reading has left (0..1). */
export const remainingShare = (r: BudgetReading): number =>
  r.full > 0 ? Math.min(1, r.remaining / r.full) : 1;

/** The lowest of some readings by remaining share, if any. */
export function lowestReading(readings: Iterable<BudgetReading>): BudgetReading | undefined {
  let lowest: BudgetReading | undefined;
  for (const r of readings) if (!lowest || remainingShare(r) < remainingShare(lowest)) lowest = r;
  return lowest;
}

/** What the loop asks: are reads short, and how much slower may starts go (1 = full rate). */
export interface BudgetGauge {
  readsLow(): boolean;
  startSlowdown(): number;
  /** The lowest share left of the subscription budgets starts spend (0..1), if any was reported. */
  startBudgetShare?(): number | undefined;
  /** Resource Graph's quota for this principal while its window lasts (discovery on the graph, issue 28). */
  resourceGraphQuota?(): BudgetReading | undefined;
}

export class BudgetTracker implements BudgetGauge {
  private readonly readings = new Map<string, BudgetReading>();
  private readonly listeners = new Set<(reading: BudgetReading) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Reads the headers of every answer (each attempt, errors included); changes nothing else. */
  readonly policy: PipelinePolicy = {
    name: "spotRestarterBudgetReader",
    sendRequest: async (request, next) => {
      try {
        const response = await next(request);
        this.record((name) => response.headers.get(name));
        return response;
      } catch (error) {
        const headers = (error as { response?: { headers?: { get(name: string): string | undefined } } })
          .response?.headers;
        if (headers) this.record((name) => headers.get(name));
        throw error;
      }
    },
  };

  record(get: (name: string) => string | undefined): void {
    const at = this.now();
    for (const { policy, remaining, resetsInMs } of parseBudgetHeaders(get)) {
      // The most seen (a fresh window answers its full count less one), never below the floor.
      const full = Math.max(remaining, this.readings.get(policy)?.full ?? 0, fullCountFloors[policy] ?? 0);
      const reading: BudgetReading = {
        policy,
        remaining,
        full,
        at,
        ...(resetsInMs !== undefined ? { resetsAt: at + resetsInMs } : {}),
      };
      this.readings.set(policy, reading);
      for (const listener of this.listeners) listener(reading);
    }
  }

  /** Called with every reading (the metrics). */
  onReading(listener: (reading: BudgetReading) => void): void {
    this.listeners.add(listener);
  }

  /** The readings still within their window, lowest share first. */
  current(): BudgetReading[] {
    const now = this.now();
    return [...this.readings.values()]
      .filter((r) => (r.resetsAt !== undefined ? now < r.resetsAt : now - r.at < readingLifetimeMs(r.policy)))
      .sort((a, b) => remainingShare(a) - remainingShare(b) || a.policy.localeCompare(b.policy));
  }

  /** The lowest remaining budget Azure reported (within its window), if any. */
  lowest(): BudgetReading | undefined {
    return lowestReading(this.current());
  }

  /** True when a budget that reads spend is below `lowBudgetShare`: reads that can wait, wait. */
  readsLow(): boolean {
    return this.current().some(
      (r) => actsOnFleet(r) && READ_POLICY.test(r.policy) && remainingShare(r) < lowBudgetShare,
    );
  }

  /**
   * Resource Graph's quota for this principal as last reported, while its window lasts (until
   * `x-ms-user-quota-resets-after`); undefined when never read or already reset.
   */
  resourceGraphQuota(): BudgetReading | undefined {
    return this.current().find((r) => r.policy === RESOURCE_GRAPH_QUOTA);
  }

  /**
   * The start pacer's rate factor: 1 while every budget starts spend has at least `lowBudgetShare` left,
   * then in proportion to what is left (a tenth of the low mark: a tenth of the rate), never below 0.05.
   */
  startSlowdown(): number {
    const share = this.startBudgetShare();
    if (share === undefined) return 1;
    return share >= lowBudgetShare ? 1 : Math.max(0.05, share / lowBudgetShare);
  }

  /**
   * What is left of the subscription budgets starts spend (PutVM, the polls that follow a start, ARM's
   * writes), the lowest share within its window; the capacity retry interval stretches as it falls
   * below half (schedule.ts `capacityIntervalFor`).
   */
  startBudgetShare(): number | undefined {
    const lowest = lowestReading(this.current().filter((r) => actsOnFleet(r) && START_POLICY.test(r.policy)));
    return lowest ? remainingShare(lowest) : undefined;
  }
}

/** One line for people: `lowest Azure budget: Microsoft.Compute/HighCostGet3Min 12 of 140 (9%)`. */
export function describeReading(r: BudgetReading): string {
  return `${r.policy} ${r.remaining} of ${r.full} (${Math.round(remainingShare(r) * 100)}%)`;
}
