// Fault matrix, throttling: 429 storms with Retry-After on the list, the instance view and the start.
// Azure's compute throttling answers 429 + Retry-After; the rule is that no request reaches ARM before
// Retry-After has passed, and that the cycle resumes afterwards. The rows judge the loop's own wait:
// the SDK's retries are off (armMaxRetries 0, so its pipeline cannot be the one that waits) and
// Retry-After (3 s) is longer than the loop's interval (1 s), so a loop that ignored it would ask again
// at its next cycle, inside the Retry-After.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LoggedRequest } from "../../emulator/testing";
import { figure, type Row, spawnRuntime, spotVm, startRow } from "./harness";

const slackMs = 60;
/** Longer than the loop's interval (intervalSeconds 1 in the harness). */
const RETRY_AFTER_SECONDS = 3;

/**
 * The throttling bucket a request spends, as Azure's compute throttling counts them: the list is a
 * subscription-wide "High Cost Get", an instance view a per-VM "Low Cost Get", a start a per-VM
 * "Update" (docs/architecture.md). Operation polls of an accepted start are not charged to these.
 */
function bucket(request: LoggedRequest): string | undefined {
  const path = request.path.toLowerCase();
  if (request.method === "GET" && path.endsWith("/virtualmachines")) return "list";
  if (request.method === "GET" && path.endsWith("/instanceview"))
    return `instanceView:${path.split("/").at(-2)}`;
  if (request.method === "POST" && path.endsWith("/start")) return `start:${path.split("/").at(-2)}`;
  return undefined;
}

/**
 * Every 429 is followed by silence in its bucket for its Retry-After; and once the loop has learnt of
 * the throttling (its `throttled` log line), no ARM request at all leaves until Retry-After has passed.
 */
function assertRetryAfterHonoured(
  requests: LoggedRequest[],
  retryAfterMs: number,
  throttledLines: Array<{ at: number; until: string }>,
): { throttled: number; minGap: number } {
  let throttled = 0;
  let minGap = Number.POSITIVE_INFINITY;
  for (const [i, request] of requests.entries()) {
    if (request.status !== 429) continue;
    throttled++;
    const at = Date.parse(request.time);
    const next = requests.slice(i + 1).find((r) => bucket(r) === bucket(request));
    if (!next) continue;
    const gap = Date.parse(next.time) - at;
    minGap = Math.min(minGap, gap);
    assert.ok(
      gap >= retryAfterMs - slackMs,
      `${next.method} ${next.path} came ${gap} ms after a 429 with Retry-After ${retryAfterMs} ms`,
    );
  }
  for (const line of throttledLines) {
    const until = Date.parse(line.until);
    const early = requests.filter((r) => {
      const t = Date.parse(r.time);
      return t > line.at + slackMs && t < until - slackMs && bucket(r) !== undefined;
    });
    assert.deepEqual(
      early.map((r) => `${r.method} ${r.path}`),
      [],
      "requests while the loop knew it was throttled",
    );
  }
  return { throttled, minGap };
}

async function storm(
  name: string,
  rule: { method: string; pathPattern: string },
  times: number,
): Promise<{ row: Row; throttled: number; total: number; minGap: number; recoveredMs: number }> {
  const row = await startRow([spotVm("evicted"), spotVm("steady", { powerState: "running" })], {
    config: { armMaxRetries: 0 },
  });
  assert.ok(RETRY_AFTER_SECONDS > row.config.intervalSeconds, "Retry-After outlasts a cycle");
  try {
    await row.control.addFaults({ ...rule, status: 429, retryAfterSeconds: RETRY_AFTER_SECONDS, times });
    const runtime = await spawnRuntime(row);
    const began = Date.now();
    // A hang guard: `times` Retry-Afters of 3 s, on a busy machine.
    await row.waitForVm("evicted", "running", 120_000);
    const recoveredMs = Date.now() - began;
    const exit = await runtime.stop();
    assert.equal(exit.code, 0, runtime.stderr());
    assert.equal((await row.control.faults()).length, 0, "the whole storm was served");
    const requests = await row.armRequests();
    const throttledLines = runtime.events("throttled").map((l) => ({ at: l.at, until: String(l.until) }));
    const { throttled, minGap } = assertRetryAfterHonoured(
      requests,
      RETRY_AFTER_SECONDS * 1000,
      throttledLines,
    );
    assert.equal(throttled, times);
    // Resumes: exactly one start, accepted, and no start in backoff because of throttling.
    const starts = requests.filter((r) => r.method === "POST" && /\/evicted\/start$/i.test(r.path));
    assert.equal(starts.filter((r) => r.status === 202).length, 1, "exactly one start accepted");
    assert.ok(
      starts.every((r) => r.status === 202 || r.status === 429),
      "every other start request was one of the storm's 429s",
    );
    assert.equal((await row.control.vm("personal-network", "steady"))?.startRequests, 0);
    assert.equal(runtime.events("start-failed").length, 0, "throttling is not a failed start");
    figure(
      name,
      `${throttled} × 429 (Retry-After ${RETRY_AFTER_SECONDS} s, no SDK retries) served, ${requests.length} ARM requests, shortest gap in the throttled bucket ${minGap} ms, loop-level throttled waits ${throttledLines.length}, VM running ${recoveredMs} ms after the runtime started`,
    );
    return { row, throttled, total: requests.length, minGap, recoveredMs };
  } finally {
    await row.close();
  }
}

describe("fault matrix: 429 storms with Retry-After", { concurrency: true }, () => {
  it("on the VM list: no request before Retry-After, then the cycle resumes", async () => {
    await storm("429-list", { method: "GET", pathPattern: "/virtualMachines$" }, 3);
  });

  it("on the instance view: no request before Retry-After, then the cycle resumes", async () => {
    await storm("429-instanceView", { method: "GET", pathPattern: "/evicted/instanceView$" }, 3);
  });

  it("on the start: no request before Retry-After, the start goes through afterwards, no backoff", async () => {
    const result = await storm("429-start", { method: "POST", pathPattern: "/evicted/start$" }, 3);
    assert.ok(result.throttled === 3);
  });
});
