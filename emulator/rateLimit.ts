// The remaining-budget headers Azure sends on every answer, counted down per policy and window.
//
// Compute (per subscription and region) reports each throttling policy that covers a request in
// `x-ms-ratelimit-remaining-resource: Microsoft.Compute/<policy>;<count>`, several comma-separated
// ("Troubleshooting API throttling errors", https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors).
// The policy names and full counts are those real answers carry, as public Azure SDK test recordings
// show them just after a first request: a VM list `Microsoft.Compute/HighCostGet3Min;139,Microsoft.Compute/HighCostGet30Min;699`,
// a GET `LowCostGet3Min;3999,LowCostGet30Min;31999`, a VM write `PutVM3Min;239,PutVM30Min;1199`.
// Resource Manager adds `x-ms-ratelimit-remaining-subscription-reads` (GET) or `-writes` (other
// methods): its token buckets per subscription and principal, reads 250 refilled at 25 per second,
// writes 200 refilled at 10 per second ("Understand how Azure Resource Manager throttles requests",
// https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
//
// With `enforce`, a spent budget answers 429 as Azure does (Compute: `OperationNotAllowed` with a
// `TooManyRequests` detail and Retry-After until the window ends; ARM: `SubscriptionRequestsThrottled`);
// without it (the default, so that fast tests and the benchmark are not throttled by the emulator
// itself) the counts stop at 0 and nothing is refused: fault rules make throttling when a test wants it.
import { z } from "zod";

export type ComputePolicyGroup = "highCostGet" | "lowCostGet" | "putVm";

/** The policies each group of requests is charged to, with their full counts and windows. */
export const computePolicies: Record<
  ComputePolicyGroup,
  ReadonlyArray<{ name: string; limit: number; windowSeconds: number }>
> = {
  highCostGet: [
    { name: "HighCostGet3Min", limit: 140, windowSeconds: 180 },
    { name: "HighCostGet30Min", limit: 700, windowSeconds: 1_800 },
  ],
  lowCostGet: [
    { name: "LowCostGet3Min", limit: 4_000, windowSeconds: 180 },
    { name: "LowCostGet30Min", limit: 32_000, windowSeconds: 1_800 },
  ],
  putVm: [
    { name: "PutVM3Min", limit: 240, windowSeconds: 180 },
    { name: "PutVM30Min", limit: 1_200, windowSeconds: 1_800 },
  ],
};

const bucketSchema = z.object({
  capacity: z.number().positive(),
  refillPerSecond: z.number().positive(),
});

/** Seed `rateLimits`: all optional; limits by policy name (e.g. `{"PutVM3Min": 5}`). */
export const rateLimitsSchema = z
  .object({
    enforce: z.boolean().default(false),
    limits: z.record(z.string(), z.number().int().nonnegative()).default({}),
    /** Multiplies every Compute window (0.01: a 3-minute window lasts 1.8 s), for time-scaled tests. */
    windowScale: z.number().positive().default(1),
    armReads: bucketSchema.default({ capacity: 250, refillPerSecond: 25 }),
    armWrites: bucketSchema.default({ capacity: 200, refillPerSecond: 10 }),
  })
  .default({
    enforce: false,
    limits: {},
    windowScale: 1,
    armReads: { capacity: 250, refillPerSecond: 25 },
    armWrites: { capacity: 200, refillPerSecond: 10 },
  });
export type RateLimits = z.output<typeof rateLimitsSchema>;

export interface Charge {
  headers: Record<string, string>;
  /** Set when `enforce` is on and a budget is spent. */
  throttled?: { status: 429; code: string; message: string; retryAfterSeconds: number; details?: unknown[] };
}

interface Window {
  startedAt: number;
  used: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly settings: RateLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** ARM's charge for one request by `principal` (reads for GET, writes otherwise). */
  chargeArm(method: string, subscriptionId: string, principal: string): Charge {
    const kind = method === "GET" || method === "HEAD" ? "reads" : "writes";
    const budget = kind === "reads" ? this.settings.armReads : this.settings.armWrites;
    const key = `${subscriptionId}|${principal}|${kind}`.toLowerCase();
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: budget.capacity, at: now };
    bucket.tokens = Math.min(
      budget.capacity,
      bucket.tokens + ((now - bucket.at) / 1000) * budget.refillPerSecond,
    );
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1 && this.settings.enforce) {
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / budget.refillPerSecond));
      return {
        headers: { [`x-ms-ratelimit-remaining-subscription-${kind}`]: "0" },
        throttled: {
          status: 429,
          code: "SubscriptionRequestsThrottled",
          // ARM's wording for a spent subscription bucket.
          message: `Number of '${kind === "reads" ? "read" : "write"}' requests for subscription '${subscriptionId}' actor '${principal}' exceeded. Please try again after '${retryAfterSeconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.`,
          retryAfterSeconds,
        },
      };
    }
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    return {
      headers: { [`x-ms-ratelimit-remaining-subscription-${kind}`]: String(Math.floor(bucket.tokens)) },
    };
  }

  /** Compute's charge for one request of `group` in the subscription. */
  chargeCompute(group: ComputePolicyGroup, subscriptionId: string): Charge {
    const now = this.now();
    const states = computePolicies[group].map((policy) => {
      const limit = this.settings.limits[policy.name] ?? policy.limit;
      const windowMs = policy.windowSeconds * 1000 * this.settings.windowScale;
      const key = `${subscriptionId}|${policy.name}`.toLowerCase();
      let window = this.windows.get(key);
      if (!window || now >= window.startedAt + windowMs) {
        window = { startedAt: now, used: 0 };
        this.windows.set(key, window);
      }
      return { policy, limit, windowMs, window };
    });
    const spent = states.find((s) => s.window.used >= s.limit);
    if (spent && this.settings.enforce) {
      const retryAfterSeconds = Math.max(
        1,
        Math.ceil((spent.window.startedAt + spent.windowMs - now) / 1000),
      );
      const iso = (ms: number) => new Date(ms).toISOString();
      return {
        headers: { "x-ms-ratelimit-remaining-resource": header(states) },
        throttled: {
          status: 429,
          code: "OperationNotAllowed",
          message:
            "The server rejected the request because too many requests have been received for this subscription.",
          retryAfterSeconds,
          details: [
            {
              code: "TooManyRequests",
              target: spent.policy.name,
              message: JSON.stringify({
                operationGroup: spent.policy.name,
                startTime: iso(spent.window.startedAt),
                endTime: iso(spent.window.startedAt + spent.windowMs),
                allowedRequestCount: spent.limit,
                measuredRequestCount: spent.window.used + 1,
              }),
            },
          ],
        },
      };
    }
    for (const s of states) s.window.used = Math.min(s.limit, s.window.used + 1);
    return { headers: { "x-ms-ratelimit-remaining-resource": header(states) } };
  }
}

function header(states: Array<{ policy: { name: string }; limit: number; window: Window }>): string {
  return states
    .map((s) => `Microsoft.Compute/${s.policy.name};${Math.max(0, s.limit - s.window.used)}`)
    .join(",");
}
