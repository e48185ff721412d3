// The remaining-budget headers Azure sends on every answer, counted down per policy and window.
//
// Compute (per subscription and region) reports each throttling policy that covers a request in
// `x-ms-ratelimit-remaining-resource: Microsoft.Compute/<policy>;<count>`, several comma-separated
// ("Troubleshooting API throttling errors", https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors).
// The policy names and full counts are those real answers carry, as public Azure SDK test recordings
// show them just after a first request: a VM list `Microsoft.Compute/HighCostGet3Min;139,Microsoft.Compute/HighCostGet30Min;699`,
// a GET `LowCostGet3Min;3999,LowCostGet30Min;31999`, a VM write `PutVM3Min;239,PutVM30Min;1199`,
// and a poll of a VM's operation status (`GET …/providers/Microsoft.Compute/locations/{location}/operations/{id}`)
// `GetOperation3Min;14797,GetOperation30Min;29797` after a few hundred polls (Azure/azure-sdk-for-js
// sdk/compute/arm-compute/recordings/node/compute_test/recording_virtualmachines_delete_test.js,
// 2021-11-30): full counts 15,000 and 30,000, the 3-minute one being the documented "Get Operation" budget
// of 5,000 per minute per subscription ("Compute throttling limits",
// https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits).
//
// Not modelled: Compute's per-VM buckets (the same page: "Update VM" 12 refilled at 4 per minute, "Low
// Cost Get" 12 per minute, "Get Operation" 15 per minute, per VM). No public recording or page we could
// find shows the policy name a real answer reports them under (searched Azure SDK for JS/Python and Azure
// CLI recordings, the troubleshooting pages), and a made-up name in the header would teach the runtime a
// contract Azure does not keep. They are left out until a real answer shows their names.
// Resource Manager adds `x-ms-ratelimit-remaining-subscription-reads` (GET) or `-writes` (other
// methods): its token buckets per subscription and principal, reads 250 refilled at 25 per second,
// writes 200 refilled at 10 per second ("Understand how Azure Resource Manager throttles requests",
// https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
// The same page: each kind also has a subscription-wide "global" limit, 15 times one principal's, shared by
// every principal; answers report it as `x-ms-ratelimit-remaining-subscription-global-reads` / `-writes`
// (a recorded answer: `-reads: 249` beside `-global-reads: 3749`).
//
// With `enforce`, a spent budget answers 429 as Azure does (Compute: `OperationNotAllowed` with a
// `TooManyRequests` detail and Retry-After until the window ends; ARM: `SubscriptionRequestsThrottled`);
// without it (the default, so that fast tests and the benchmark are not throttled by the emulator
// itself) the counts stop at 0 and nothing is refused: fault rules make throttling when a test wants it.
//
// Resource Graph has its own quota per caller ("Guidance for throttled requests in Azure Resource
// Graph", https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests):
// "a user can send at most 15 queries within every 5-second window"; every answer carries
// `x-ms-user-quota-remaining` (queries left) and `x-ms-user-quota-resets-after` (`hh:mm:ss` until the
// window resets), and a caller over quota gets 429 with Retry-After. Azure always enforces it, so
// `rateLimits.resourceGraph.enforce` defaults to true (as the emulator did before it was configurable).
import { z } from "zod";

export type ComputePolicyGroup = "highCostGet" | "lowCostGet" | "putVm" | "getOperation";

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
  getOperation: [
    { name: "GetOperation3Min", limit: 15_000, windowSeconds: 180 },
    { name: "GetOperation30Min", limit: 30_000, windowSeconds: 1_800 },
  ],
};

const bucketSchema = z.object({
  capacity: z.number().positive(),
  refillPerSecond: z.number().positive(),
});

const resourceGraphDefaults = { quota: 15, windowSeconds: 5, enforce: true };
const resourceGraphSchema = z.object({
  /** Queries per window per caller (15 documented). */
  quota: z.number().int().nonnegative().default(resourceGraphDefaults.quota),
  windowSeconds: z.number().positive().default(resourceGraphDefaults.windowSeconds),
  /** Over quota answers 429 RateLimiting (Azure always does; false only counts). */
  enforce: z.boolean().default(resourceGraphDefaults.enforce),
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
    resourceGraph: resourceGraphSchema.default(resourceGraphDefaults),
  })
  .default({
    enforce: false,
    limits: {},
    windowScale: 1,
    armReads: { capacity: 250, refillPerSecond: 25 },
    armWrites: { capacity: 200, refillPerSecond: 10 },
    resourceGraph: resourceGraphDefaults,
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

  /** ARM's charge for one request by `principal` (reads for GET, writes otherwise), and the subscription's global one. */
  chargeArm(method: string, subscriptionId: string, principal: string): Charge {
    const kind = method === "GET" || method === "HEAD" ? "reads" : "writes";
    const own = kind === "reads" ? this.settings.armReads : this.settings.armWrites;
    const global = { capacity: own.capacity * 15, refillPerSecond: own.refillPerSecond * 15 };
    const buckets = [
      {
        header: `x-ms-ratelimit-remaining-subscription-${kind}`,
        budget: own,
        key: `${subscriptionId}|${principal}|${kind}`,
      },
      {
        header: `x-ms-ratelimit-remaining-subscription-global-${kind}`,
        budget: global,
        key: `${subscriptionId}|global|${kind}`,
      },
    ].map(({ header, budget, key }) => ({ header, budget, bucket: this.refill(key.toLowerCase(), budget) }));
    const spent = buckets.find((b) => b.bucket.tokens < 1);
    if (spent && this.settings.enforce) {
      const retryAfterSeconds = Math.max(
        1,
        Math.ceil((1 - spent.bucket.tokens) / spent.budget.refillPerSecond),
      );
      return {
        headers: Object.fromEntries(buckets.map((b) => [b.header, String(Math.floor(b.bucket.tokens))])),
        throttled: {
          status: 429,
          code: "SubscriptionRequestsThrottled",
          // ARM's wording for a spent subscription bucket.
          message: `Number of '${kind === "reads" ? "read" : "write"}' requests for subscription '${subscriptionId}' actor '${principal}' exceeded. Please try again after '${retryAfterSeconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.`,
          retryAfterSeconds,
        },
      };
    }
    for (const b of buckets) b.bucket.tokens = Math.max(0, b.bucket.tokens - 1);
    return {
      headers: Object.fromEntries(buckets.map((b) => [b.header, String(Math.floor(b.bucket.tokens))])),
    };
  }

  private refill(key: string, budget: { capacity: number; refillPerSecond: number }) {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: budget.capacity, at: now };
    bucket.tokens = Math.min(
      budget.capacity,
      bucket.tokens + ((now - bucket.at) / 1000) * budget.refillPerSecond,
    );
    bucket.at = now;
    this.buckets.set(key, bucket);
    return bucket;
  }

  /** Resource Graph's charge for one query by `principal`: its quota window (see the header comment). */
  chargeResourceGraph(principal: string): Charge {
    const { quota, windowSeconds, enforce } = this.settings.resourceGraph;
    const now = this.now();
    const key = `resource-graph|${principal}`.toLowerCase();
    let window = this.windows.get(key);
    if (!window || now >= window.startedAt + windowSeconds * 1000) {
      window = { startedAt: now, used: 0 };
      this.windows.set(key, window);
    }
    const resetsAfterMs = window.startedAt + windowSeconds * 1000 - now;
    const resetsAfter = formatDuration(resetsAfterMs);
    if (window.used >= quota && enforce) {
      return {
        headers: { "x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": resetsAfter },
        throttled: {
          status: 429,
          code: "RateLimiting",
          message:
            "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help.",
          retryAfterSeconds: Math.max(1, Math.ceil(resetsAfterMs / 1000)),
        },
      };
    }
    window.used = Math.min(quota, window.used + 1);
    return {
      headers: {
        "x-ms-user-quota-remaining": String(quota - window.used),
        "x-ms-user-quota-resets-after": resetsAfter,
      },
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

/** `hh:mm:ss`, as `x-ms-user-quota-resets-after` carries it (rounded up to whole seconds). */
function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const hh = String(Math.floor(seconds / 3600)).padStart(2, "0");
  const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
  const ss = String(seconds % 60).padStart(2, "0");
  return `${hh}:${mm}:${ss}`;
}
