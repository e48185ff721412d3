// Fault matrix, transient failures: 5xx bursts, dropped connections, and Entra ID's token endpoint down
// or slow, at start-up and mid-run. The loop must survive each, say what is wrong in one clear log
// line, and start the evicted VM soon after the fault clears, without being restarted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { figure, resourceGroup, sleep, spawnRuntime, spotVm, startRow } from "./harness";

const TOKEN_PATH = "/oauth2/v2.0/token$";

describe("fault matrix: transient failures", { concurrency: true }, () => {
  describe("5xx bursts and dropped connections", { concurrency: true }, () => {
    for (const status of [500, 503]) {
      it(`a ${status} burst on every ARM request: the loop survives and starts the VM once it clears`, async () => {
        const row = await startRow([spotVm("evicted")]);
        try {
          await row.control.addFaults({ pathPattern: "^/subscriptions/", status });
          const runtime = await spawnRuntime(row);
          await runtime.waitFor("run-started");
          // Longer than the SDK pipeline's own retries (3, exponential from 0.8 s), so the loop sees it.
          await sleep(7_000);
          const failedDuring = (await row.armRequests()).filter((r) => r.status === status).length;
          const clearedAt = Date.now();
          await row.control.clearFaults();
          const runningAt = await row.waitForVm("evicted", "running", 20_000);
          const exit = await runtime.stop();
          assert.equal(exit.code, 0, runtime.stderr());
          assert.ok(failedDuring >= 2, `only ${failedDuring} requests met the burst`);
          assert.ok(runtime.events("read-failed").length >= 1, "the failure is logged");
          assert.equal((await row.control.vm("personal-network", "evicted"))?.startRequests, 1);
          figure(
            `${status}-burst`,
            `${failedDuring} requests answered ${status} in 7 s, ${runtime.events("read-failed").length} read-failed log lines; VM running ${runningAt - clearedAt} ms after the burst cleared; 1 start`,
          );
        } finally {
          await row.close();
        }
      });
    }

    it("a 500 on the start itself is retried by the pipeline: one accepted start, no backoff", async () => {
      const row = await startRow([spotVm("evicted")]);
      try {
        await row.control.addFaults({ method: "POST", pathPattern: "/start$", status: 500, times: 2 });
        const runtime = await spawnRuntime(row);
        await row.waitForVm("evicted", "running", 20_000);
        await runtime.waitFor("started");
        await runtime.stop();
        const starts = (await row.armRequests()).filter((r) => r.method === "POST");
        assert.deepEqual(
          starts.map((r) => r.status),
          [500, 500, 202],
        );
        assert.equal(runtime.events("start-failed").length, 0);
        figure("500-start", "2 × 500 then 202: 3 start requests, 0 failed starts logged, no backoff");
      } finally {
        await row.close();
      }
    });

    it("dropped connections on list and instance view: survives, starts the VM when they stop", async () => {
      const row = await startRow([spotVm("evicted")]);
      try {
        await row.control.addFaults(
          { pathPattern: "/virtualMachines$", dropConnection: true, times: 2 },
          { pathPattern: "/instanceView$", dropConnection: true },
        );
        const runtime = await spawnRuntime(row);
        await runtime.waitFor("run-started");
        await sleep(4_000);
        const clearedAt = Date.now();
        await row.control.clearFaults();
        const runningAt = await row.waitForVm("evicted", "running", 20_000);
        const exit = await runtime.stop();
        assert.equal(exit.code, 0, runtime.stderr());
        const dropped = (await row.armRequests()).filter((r) => r.status === 0).length;
        assert.ok(dropped >= 3, `${dropped} dropped`);
        figure(
          "dropped-connections",
          `${dropped} connections dropped in 4 s; VM running ${runningAt - clearedAt} ms after they stopped`,
        );
      } finally {
        await row.close();
      }
    });

    it("ARM accepts requests and never answers: each attempt times out, the loop says so and goes on", async () => {
      const row = await startRow([spotVm("evicted", { powerState: "running" })], {
        config: { armRequestTimeoutSeconds: 1, armMaxRetries: 1 },
      });
      try {
        const runtime = await spawnRuntime(row);
        await runtime.waitFor("run-started");
        await sleep(1_000);
        await row.control.addFaults({ pathPattern: "^/subscriptions/", delayMs: 600_000 });
        const hungAt = Date.now();
        const said = await runtime.waitFor(
          "read-failed",
          (l) => /no answer .* within 1 s/.test(l.msg),
          15_000,
        );
        await row.control.evict(resourceGroup, "evicted");
        await row.control.clearFaults();
        const clearedAt = Date.now();
        const runningAt = await row.waitForVm("evicted", "running", 20_000);
        const exit = await runtime.stop();
        assert.equal(exit.code, 0, runtime.stderr());
        figure(
          "arm-never-answers",
          `first read-failed ("no answer … within 1 s") ${said.at - hungAt} ms after ARM went silent; VM evicted meanwhile running ${runningAt - clearedAt} ms after ARM answered again`,
        );
      } finally {
        await row.close();
      }
    });
  });

  describe("Entra ID token endpoint", { concurrency: true }, () => {
    it("slow at start-up (3 s per token request): starts normally, a bit later", async () => {
      const row = await startRow([spotVm("evicted")]);
      try {
        await row.control.addFaults({ pathPattern: TOKEN_PATH, delayMs: 3_000, times: 2 });
        const began = Date.now();
        const runtime = await spawnRuntime(row);
        const runningAt = await row.waitForVm("evicted", "running", 30_000);
        const exit = await runtime.stop();
        assert.equal(exit.code, 0, runtime.stderr());
        figure("token-slow-startup", `VM running ${runningAt - began} ms after spawn with 3 s token latency`);
      } finally {
        await row.close();
      }
    });

    it("down at start-up (503 for 8 s): a clear log line, then it recovers without a restart", async () => {
      const row = await startRow([spotVm("evicted")]);
      try {
        await row.control.addFaults({ pathPattern: TOKEN_PATH, status: 503 });
        const runtime = await spawnRuntime(row);
        await sleep(8_000);
        assert.equal(
          runtime.child.exitCode,
          null,
          `the runtime exited while Entra ID was down:\n${runtime.stderr()}`,
        );
        const said = runtime.lines.filter(
          (l) => /token|entra/i.test(`${l.event} ${l.msg}`) && /503|unavailable/i.test(l.msg),
        );
        assert.ok(said.length >= 1, `no clear log line about the token endpoint:\n${runtime.stderr()}`);
        const clearedAt = Date.now();
        await row.control.clearFaults();
        const runningAt = await row.waitForVm("evicted", "running", 20_000);
        const exit = await runtime.stop();
        assert.equal(exit.code, 0);
        figure(
          "token-down-startup",
          `VM running ${runningAt - clearedAt} ms after Entra ID came back, same process`,
        );
      } finally {
        await row.close();
      }
    });

    it("down mid-run (503 without Retry-After, token lifetime 5 s): a clear log line, recovery without a restart", async () => {
      const row = await startRow([spotVm("evicted")], { timing: { tokenLifetimeSeconds: 5 } });
      try {
        const runtime = await spawnRuntime(row);
        await row.waitForVm("evicted", "running", 20_000);
        await row.control.addFaults({ pathPattern: TOKEN_PATH, status: 503 });
        await sleep(6_000); // the token in hand expires
        await row.control.evict("personal-network", "evicted");
        await sleep(4_000);
        const startsWhileDown = (await row.control.vm("personal-network", "evicted"))?.startRequests;
        const said = runtime.lines.filter(
          (l) => /token|entra/i.test(`${l.event} ${l.msg}`) && /503|unavailable/i.test(l.msg),
        );
        const clearedAt = Date.now();
        await row.control.clearFaults();
        const runningAt = await row.waitForVm("evicted", "running", 20_000);
        const exit = await runtime.stop();
        assert.equal(exit.code, 0);
        assert.equal(startsWhileDown, 1, "no start could be sent without a token");
        assert.ok(said.length >= 1, `no clear log line about the token endpoint:\n${runtime.stderr()}`);
        figure(
          "token-down-midrun",
          `VM running ${runningAt - clearedAt} ms after Entra ID came back, same process`,
        );
      } finally {
        await row.close();
      }
    });
  });
});
