// The remaining-budget headers, through the real @azure/arm-compute client over HTTPS: counted down
// per Compute policy and window, ARM's reads/writes, and 429 + Retry-After once a budget is spent.
// Header shapes as real Compute answers carry them (Azure/azure-sdk-for-js arm-compute test
// recordings: `Microsoft.Compute/HighCostGet3Min;139,Microsoft.Compute/HighCostGet30Min;699` after one
// list, `Microsoft.Compute/LowCostGet3Min;3999,Microsoft.Compute/LowCostGet30Min;31998` after a GET,
// `Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199` after a VM write); the 429's body
// as "Troubleshooting API throttling errors" shows it
// (https://learn.microsoft.com/troubleshoot/azure/virtual-machines/troubleshooting-throttling-errors).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
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
