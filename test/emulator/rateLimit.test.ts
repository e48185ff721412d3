// The remaining-budget headers, through the real @azure/arm-compute client over HTTPS: counted down
// per Compute policy and window, ARM's reads/writes, and 429 + Retry-After once a budget is spent.
// Header shapes as real Compute answers carry them (Azure/azure-sdk-for-js arm-compute test
// recordings: `Microsoft.Compute/HighCostGet3Min;139,Microsoft.Compute/HighCostGet30Min;699` after one
// list, `Microsoft.Compute/LowCostGet3Min;3999,Microsoft.Compute/LowCostGet30Min;31998` after a GET,
// `Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199` after a VM write; a poll of a VM
// operation `Microsoft.Compute/GetOperation3Min;14797,Microsoft.Compute/GetOperation30Min;29797` after
// 203 polls, recording_virtualmachines_delete_test.js); the 429's body
// as "Troubleshooting API throttling errors" shows it
// (https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import type { FullOperationResponse } from "@azure/core-client";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch, rgPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";

function client(t: TestEmulator, maxRetries = 3): ComputeManagementClient {
  return new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
    endpoint: t.emulator.armEndpoint,
    credentials: { scopes: [ARM_SCOPE] },
    retryOptions: { maxRetries },
  });
}

/** The budget counts of one answer: policy name -> remaining. */
function budgets(response: FullOperationResponse | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const resource = response?.headers.get("x-ms-ratelimit-remaining-resource") ?? "";
  for (const entry of resource.split(",").filter(Boolean)) {
    const [name, count] = entry.split(";");
    out.set(name as string, Number(count));
  }
  for (const kind of ["reads", "writes"]) {
    const value = response?.headers.get(`x-ms-ratelimit-remaining-subscription-${kind}`);
    if (value !== undefined) out.set(`subscription-${kind}`, Number(value));
  }
  return out;
}

async function listOnce(compute: ComputeManagementClient): Promise<FullOperationResponse | undefined> {
  let last: FullOperationResponse | undefined;
  for await (const _ of compute.virtualMachines.list("personal-network", {
    onResponse: (raw) => {
      last = raw;
    },
  })) {
    // every page
  }
  return last;
}

describe("emulator: remaining-budget headers and Compute throttling", () => {
  describe("counting (not enforced, the default)", () => {
    let t: TestEmulator;
    before(async () => {
      t = await startTestEmulator({ timing: { startSeconds: 0.2, evictionDelaySeconds: 0 } });
    });
    after(() => t.emulator.stop());

    it("a list is a High Cost Get: 3-minute and 30-minute windows count down from 140 and 700", async () => {
      const compute = client(t);
      const first = budgets(await listOnce(compute));
      assert.equal(first.get("Microsoft.Compute/HighCostGet3Min"), 139);
      assert.equal(first.get("Microsoft.Compute/HighCostGet30Min"), 699);
      const second = budgets(await listOnce(compute));
      assert.equal(second.get("Microsoft.Compute/HighCostGet3Min"), 138);
      assert.equal(second.get("Microsoft.Compute/HighCostGet30Min"), 698);
      // ARM's read bucket (250, refilled at 25 per second) is on the same answer.
      const reads = second.get("subscription-reads") as number;
      assert.ok(reads >= 240 && reads < 250, `subscription-reads ${reads}`);
      assert.equal(second.has("subscription-writes"), false);
    });

    it("an instance view is a Low Cost Get; a start is a PutVM and an ARM write", async () => {
      const compute = client(t);
      let view: FullOperationResponse | undefined;
      await compute.virtualMachines.instanceView("personal-network", BACKUP, {
        onResponse: (raw) => {
          view = raw;
        },
      });
      const read = budgets(view);
      assert.equal(read.get("Microsoft.Compute/LowCostGet3Min"), 3999);
      assert.equal(read.get("Microsoft.Compute/LowCostGet30Min"), 31999);
      assert.equal(read.has("Microsoft.Compute/HighCostGet3Min"), false);

      let accepted: FullOperationResponse | undefined;
      const poller = compute.virtualMachines.start("personal-network", BACKUP, {
        updateIntervalInMs: 100,
        onResponse: (raw) => {
          if (raw.request.method === "POST") accepted = raw;
        },
      });
      await poller.pollUntilDone();
      const write = budgets(accepted);
      assert.equal(write.get("Microsoft.Compute/PutVM3Min"), 239);
      assert.equal(write.get("Microsoft.Compute/PutVM30Min"), 1199);
      const writes = write.get("subscription-writes") as number;
      assert.ok(writes >= 190 && writes < 200, `subscription-writes ${writes}`);
    });

    it("each poll of the start's operation is a Get Operation: 3-minute and 30-minute windows from 15000 and 30000", async () => {
      const compute = client(t);
      await compute.virtualMachines.beginDeallocateAndWait("personal-network", BACKUP, {
        updateIntervalInMs: 100,
      });
      // The poller's own requests do not reach `onResponse`: a pipeline policy sees every answer.
      const polls: Array<Map<string, number>> = [];
      const watched = new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
        endpoint: t.emulator.armEndpoint,
        credentials: { scopes: [ARM_SCOPE] },
        additionalPolicies: [
          {
            position: "perRetry",
            policy: {
              name: "watchPolls",
              sendRequest: async (request, next) => {
                const response = await next(request);
                if (request.method === "GET" && /\/operations\//i.test(request.url)) {
                  polls.push(budgets({ headers: response.headers } as FullOperationResponse));
                }
                return response;
              },
            },
          },
        ],
      });
      const poller = watched.virtualMachines.start("personal-network", BACKUP, { updateIntervalInMs: 100 });
      await poller.pollUntilDone();
      assert.ok(polls.length >= 1, "the start was followed to its end");
      const first = polls[0] as Map<string, number>;
      const last = polls.at(-1) as Map<string, number>;
      // The deallocate above was polled too: the windows count every poll in the subscription.
      const before3 = 15_000 - (first.get("Microsoft.Compute/GetOperation3Min") as number);
      assert.ok(
        before3 >= 1 && before3 < 100,
        `GetOperation3Min ${first.get("Microsoft.Compute/GetOperation3Min")}`,
      );
      assert.equal(30_000 - (first.get("Microsoft.Compute/GetOperation30Min") as number), before3);
      assert.equal(
        (first.get("Microsoft.Compute/GetOperation3Min") as number) -
          (last.get("Microsoft.Compute/GetOperation3Min") as number),
        polls.length - 1,
        "one per poll",
      );
      // A poll is no Low Cost Get nor PutVM, and ARM counts it as a read.
      assert.equal(first.has("Microsoft.Compute/LowCostGet3Min"), false);
      assert.equal(first.has("Microsoft.Compute/PutVM3Min"), false);
      assert.ok(first.has("subscription-reads"));
    });

    it("a Resource Graph answer carries the caller's quota, counting down from 15", async () => {
      // "Guidance for throttled requests in Azure Resource Graph": x-ms-user-quota-remaining (int) and
      // x-ms-user-quota-resets-after (hh:mm:ss) on every query response.
      const graph = new ResourceGraphClient(t.credential, {
        endpoint: t.emulator.armEndpoint,
        credentials: { scopes: [ARM_SCOPE] },
      });
      const remaining: number[] = [];
      for (let i = 0; i < 2; i++) {
        await graph.resources(
          { query: "resources | take 1" },
          {
            onResponse: (raw) => {
              remaining.push(Number(raw.headers.get("x-ms-user-quota-remaining")));
              assert.match(raw.headers.get("x-ms-user-quota-resets-after") ?? "", /^00:00:0[0-5]$/);
            },
          },
        );
      }
      assert.ok(remaining[0] !== undefined && remaining[0] <= 14, `remaining ${remaining[0]}`);
      assert.equal(remaining[1], (remaining[0] as number) - 1);
    });
  });

  describe("enforced, with a small budget and a scaled window", () => {
    let t: TestEmulator;
    before(async () => {
      // HighCostGet3Min of 3; windowScale 0.01: the 3-minute window lasts 1.8 s, the 30-minute 18 s.
      t = await startTestEmulator({
        rateLimits: { enforce: true, limits: { HighCostGet3Min: 3 }, windowScale: 0.01 },
      });
    });
    after(() => t.emulator.stop());

    it("refuses the request over budget with 429 OperationNotAllowed / TooManyRequests and Retry-After, then serves it once the window has passed", async () => {
      const compute = client(t, 0);
      await listOnce(compute);
      await listOnce(compute);
      const third = budgets(await listOnce(compute));
      assert.equal(third.get("Microsoft.Compute/HighCostGet3Min"), 0);
      const refused = await listOnce(compute).then(
        () => assert.fail("the fourth list within the window must be throttled"),
        (error: unknown) =>
          error as {
            statusCode?: number;
            code?: string;
            details?: unknown;
            response?: FullOperationResponse;
          },
      );
      assert.equal(refused.statusCode, 429);
      assert.equal(refused.code, "OperationNotAllowed");
      const retryAfter = Number(refused.response?.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter}`);
      // The SDK's paging keeps no error body: the same request raw, still within the window.
      const raw = await armFetch<{
        error?: { code?: string; details?: Array<{ code?: string; target?: string; message?: string }> };
      }>(t, "GET", `${rgPath(t)}/providers/Microsoft.Compute/virtualMachines`);
      assert.equal(raw.status, 429);
      const detail = raw.body.error?.details?.[0];
      assert.equal(detail?.code, "TooManyRequests");
      assert.equal(detail?.target, "HighCostGet3Min");
      assert.equal(JSON.parse(detail?.message ?? "{}").allowedRequestCount, 3);
      assert.equal(budgets(refused.response).get("Microsoft.Compute/HighCostGet3Min"), 0);
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
      const again = budgets(await listOnce(compute));
      assert.equal(again.get("Microsoft.Compute/HighCostGet3Min"), 2, "a new window");
      // The 30-minute window (18 s here) still remembers the three lists served (refused ones cost nothing).
      assert.equal(again.get("Microsoft.Compute/HighCostGet30Min"), 696);
    });

    it("a spent Get Operation budget refuses the poll with 429 OperationNotAllowed / TooManyRequests naming GetOperation3Min", async () => {
      const small = await startTestEmulator({
        timing: { startSeconds: 1, evictionDelaySeconds: 0 },
        rateLimits: { enforce: true, limits: { GetOperation3Min: 2 } },
      });
      try {
        const compute = client(small, 0);
        const poller = await compute.virtualMachines.beginStart("personal-network", BACKUP, {
          updateIntervalInMs: 50,
        });
        const refused = await poller.pollUntilDone().then(
          () => assert.fail("the start takes 1 s; polls every 50 ms spend a budget of 2"),
          (error: unknown) => error as { statusCode?: number; code?: string },
        );
        assert.equal(refused.statusCode, 429);
        // The body as the SDK poller does not keep it: the third poll raw.
        const operation = (await small.control.requests()).find((r) => /\/operations\//i.test(r.path));
        assert.ok(operation, "the start was polled");
        const raw = await armFetch<{
          error?: { code?: string; details?: Array<{ code?: string; target?: string }> };
        }>(small, "GET", `${operation.path}?${operation.query}`);
        assert.equal(raw.status, 429);
        assert.equal(raw.body.error?.code, "OperationNotAllowed");
        assert.equal(raw.body.error?.details?.[0]?.code, "TooManyRequests");
        assert.equal(raw.body.error?.details?.[0]?.target, "GetOperation3Min");
        assert.equal(
          raw.headers.get("x-ms-ratelimit-remaining-resource")?.split(",")[0],
          "Microsoft.Compute/GetOperation3Min;0",
        );
        assert.ok(Number(raw.headers.get("retry-after")) >= 1);
      } finally {
        await small.emulator.stop();
      }
    });

    it("Resource Graph: a seed's smaller quota and longer window; over quota 429 RateLimiting with Retry-After, or only counted when not enforced", async () => {
      for (const enforce of [true, false]) {
        const small = await startTestEmulator({
          rateLimits: { resourceGraph: { quota: 2, windowSeconds: 60, enforce } },
        });
        try {
          const graph = new ResourceGraphClient(small.credential, {
            endpoint: small.emulator.armEndpoint,
            credentials: { scopes: [ARM_SCOPE] },
            retryOptions: { maxRetries: 0 },
          });
          const seen: string[] = [];
          const query = () =>
            graph.resources(
              { query: "resources | take 1" },
              { onResponse: (raw) => seen.push(raw.headers.get("x-ms-user-quota-remaining") ?? "") },
            );
          await query();
          await query();
          if (enforce) {
            const refused = await query().then(
              () => assert.fail("the third query within the window must be throttled"),
              (error: unknown) =>
                error as { statusCode?: number; code?: string; response?: FullOperationResponse },
            );
            assert.equal(refused.statusCode, 429);
            assert.equal(refused.code, "RateLimiting");
            const retryAfter = Number(refused.response?.headers.get("retry-after"));
            assert.ok(retryAfter > 50 && retryAfter <= 60, `Retry-After ${retryAfter}`);
            assert.match(
              refused.response?.headers.get("x-ms-user-quota-resets-after") ?? "",
              /^00:0[01]:\d\d$/,
            );
          } else {
            await query();
          }
          assert.deepEqual(seen, ["1", "0", "0"]);
        } finally {
          await small.emulator.stop();
        }
      }
    });

    it("a spent ARM read bucket answers 429 SubscriptionRequestsThrottled with Retry-After", async () => {
      const small = await startTestEmulator({
        rateLimits: { enforce: true, armReads: { capacity: 2, refillPerSecond: 0.5 } },
      });
      try {
        const compute = client(small, 0);
        await compute.virtualMachines.instanceView("personal-network", BACKUP);
        await compute.virtualMachines.instanceView("personal-network", BACKUP);
        const refused = await compute.virtualMachines.instanceView("personal-network", BACKUP).then(
          () => assert.fail("the third read must be throttled"),
          (error: unknown) =>
            error as { statusCode?: number; code?: string; response?: FullOperationResponse },
        );
        assert.equal(refused.statusCode, 429);
        assert.equal(refused.code, "SubscriptionRequestsThrottled");
        assert.equal(refused.response?.headers.get("x-ms-ratelimit-remaining-subscription-reads"), "0");
        assert.ok(Number(refused.response?.headers.get("retry-after")) >= 1);
      } finally {
        await small.emulator.stop();
      }
    });
  });
});
