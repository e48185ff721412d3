// Azure's throttling budgets, and the share of them this runtime allows itself: the facts the retry
// schedule (loop/schedule.ts), the budget tracker (azure/budgets.ts) and the config's limits are derived from.
//
// The budgets, and where they come from:
//
// - Compute ("Compute throttling limits", https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits,
//   table "Throttling limits for Virtual machines"; token buckets, per region):
//   Start is in the "Update VM" policy: per VM a bucket of 12 refilled at 4 per minute; per
//   subscription 1,500 refilled at 500 per minute. "Low Cost Get" (GET, instanceView,
//   vmSizes): per VM 12 per minute (bucket 36), per subscription 8,000 per minute. "High Cost Get"
//   (List): per subscription only, 300 per minute (bucket 900). "Get Operation" (polls): per VM 15
//   per minute, per subscription 5,000 per minute.
// - Resource Manager ("Understand how Azure Resource Manager throttles requests",
//   https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling,
//   "Regional throttling and token bucket algorithm"): per subscription, per principal and per
//   region, writes: a bucket of 200 refilled at 10 per second; reads: 250 refilled at 25 per second.
// - Both answer 429 with `Retry-After` once a budget is spent ("Troubleshooting API throttling
//   errors", https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors);
//   the loop waits that out (`throttledUntil`) and the SDK pipeline retries the request itself.

/** A token bucket as Azure documents it: `capacity` tokens, `refillPerMinute` added each minute. */
export interface TokenBucketBudget {
  readonly capacity: number;
  readonly refillPerMinute: number;
}

/** The documented budgets (sources in the header comment). */
export const azureBudgets = {
  /** Compute "Update VM" policy (Start), per VM. */
  startPerVm: { capacity: 12, refillPerMinute: 4 },
  /** Compute "Update VM" policy (Start), per subscription and region. */
  startPerSubscription: { capacity: 1_500, refillPerMinute: 500 },
  /** Compute "Low Cost Get" (instanceView, GET, vmSizes), per VM. */
  lowCostGetPerVm: { capacity: 36, refillPerMinute: 12 },
  /** Compute "High Cost Get" (List), per subscription and region. */
  listPerSubscription: { capacity: 900, refillPerMinute: 300 },
  /** Resource Manager writes (every POST/PUT/PATCH), per subscription, principal and region. */
  armWrites: { capacity: 200, refillPerMinute: 10 * 60 },
  /** Resource Manager reads (every GET), per subscription, principal and region. */
  armReads: { capacity: 250, refillPerMinute: 25 * 60 },
} as const satisfies Record<string, TokenBucketBudget>;

/**
 * The share of a budget this runtime allows itself: a quarter, so that the owner's portal, `az`,
 * Terraform and other automation in the same subscription keep the rest.
 */
export const budgetShare = 0.25;

/**
 * The shortest gap between two start requests for one VM: one per token its Start bucket refills
 * (4 per minute: 15 s), so the bucket never drains. No production setting retries a VM faster.
 */
export const minStartSpacingMs = Math.round(60_000 / azureBudgets.startPerVm.refillPerMinute);

/**
 * Start requests per minute across all VMs: a quarter of the tighter of the subscription's Start
 * refill (500 per minute) and ARM's write refill (600 per minute), i.e. 125 per minute.
 */
export const fleetStartsPerMinute = Math.floor(
  Math.min(azureBudgets.startPerSubscription.refillPerMinute, azureBudgets.armWrites.refillPerMinute) *
    budgetShare,
);

/**
 * How many start requests may leave at once before pacing begins: a quarter of ARM's write bucket
 * (200), so the evictions of one cycle (a whole region reclaiming Spot capacity) are all requested
 * at once, while retries of a large fleet are spread out.
 */
export const fleetStartBurst = Math.floor(azureBudgets.armWrites.capacity * budgetShare);
