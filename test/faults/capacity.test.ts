// Fault matrix, start failures: persistent AllocationFailed on one VM while another restarts at once
// (attempts follow the backoff schedule; started within one backoff step once capacity returns), and
// SpotPriceGreaterThanProvidedMaxPrice reported distinctly, with the VM's max price.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { figure, resourceGroup, sleep, spawnRuntime, spotVm, startRow } from "./harness";

const initialSeconds = 1;
const maxSeconds = 4;
const intervalMs = 1_000;
/** The policy's ceiling for the backoff after `attempts` consecutive failures (jitter takes up to 20 % off). */
const ceilingMs = (attempts: number) => Math.min(maxSeconds, initialSeconds * 2 ** (attempts - 1)) * 1000;

describe("fault matrix: capacity and price", { concurrency: true }, () => {
  it("persistent AllocationFailed on one VM: the other starts at once, attempts follow the backoff schedule, recovery within one step", async () => {
    const row = await startRow([spotVm("no-capacity"), spotVm("healthy")], {
      startSeconds: 0.3,
      config: { backoff: { initialSeconds, maxSeconds } },
    });
    try {
      await row.control.addFaults({ vm: "no-capacity", startFailsWith: "AllocationFailed" });
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed", (l) => Number(l.attempts) >= 4, 30_000);
      const starts = await row.startRequests("no-capacity");
      const healthyStarts = await row.startRequests("healthy");
      assert.equal(healthyStarts.length, 1, "the healthy VM is started once");
      assert.ok(
        Math.abs((healthyStarts[0] ?? 0) - (starts[0] ?? 0)) < 500,
        "the healthy VM is started in the same cycle as the first attempt on the failing one",
      );
      assert.equal((await row.control.vm(resourceGroup, "healthy"))?.powerState, "running");

      const failures = runtime.events("start-failed").filter((l) => String(l.vm).endsWith("/no-capacity"));
      assert.deepEqual(
        failures.slice(0, 4).map((f) => f.attempts),
        [1, 2, 3, 4],
      );
      const gaps: string[] = [];
      for (const [i, failure] of failures.slice(0, 3).entries()) {
        assert.equal(failure.code, "AllocationFailed");
        const attempts = Number(failure.attempts);
        const backoffMs = Number(failure.backoffSeconds) * 1000;
        const ceiling = ceilingMs(attempts);
        assert.ok(
          backoffMs <= ceiling + 50 && backoffMs >= ceiling * 0.8 - 100,
          `backoff after ${attempts} failures was ${backoffMs} ms; the policy allows ${ceiling * 0.8}..${ceiling} ms`,
        );
        const next = starts.find((t) => t > failure.at);
        assert.ok(next !== undefined, `no attempt after failure ${attempts}`);
        const gap = next - failure.at;
        // Never before the backoff has passed; at most one interval (+10 % jitter) and a cycle's reads later.
        assert.ok(
          gap >= backoffMs - 60,
          `attempt ${attempts + 1} came ${gap} ms after failure ${attempts}, backoff ${backoffMs} ms`,
        );
        assert.ok(
          gap <= backoffMs + intervalMs * 1.1 + 400,
          `attempt ${attempts + 1} came ${gap} ms after failure ${attempts}, backoff ${backoffMs} ms`,
        );
        const between = starts.filter((t) => t > failure.at && t < next);
        assert.equal(between.length, 0);
        gaps.push(`${gap}/${backoffMs}`);
        if (i === 0)
          assert.equal(
            starts.filter((t) => t < failure.at).length,
            1,
            "one attempt before the first failure",
          );
      }

      // Capacity returns: started within one backoff step (the cap) plus one interval and the start.
      const failuresBefore = failures.length;
      const clearedAt = Date.now();
      await row.control.clearFaults();
      const runningAt = await row.waitForVm("no-capacity", "running", 15_000);
      const firstStartAfter =
        (await row.startRequests("no-capacity")).find((t) => t > clearedAt) ?? Number.NaN;
      const exit = await runtime.stop();
      assert.equal(exit.code, 0);
      assert.ok(
        firstStartAfter - clearedAt <= maxSeconds * 1000 + intervalMs * 1.1 + 400,
        `first start ${firstStartAfter - clearedAt} ms after capacity returned`,
      );
      const total = (await row.startRequests("no-capacity")).length;
      assert.ok(total <= failuresBefore + 2, `${total} attempts for ${failuresBefore} failures`);
      assert.equal((await row.startRequests("healthy")).length, 1, "the healthy VM was never started again");
      figure(
        "allocation-failed",
        `healthy VM: 1 start, same cycle; failing VM: gaps after failure (actual/backoff ms) ${gaps.join(", ")}; ${total} attempts in all; capacity back → start issued after ${firstStartAfter - clearedAt} ms, running after ${runningAt - clearedAt} ms (cap ${maxSeconds} s)`,
      );
    } finally {
      await row.close();
    }
  });

  it("SpotPriceGreaterThanProvidedMaxPrice: its own log event with the VM's max price, status shows it, backs off", async () => {
    const row = await startRow([spotVm("pricey", { maxPrice: 0.0123 })], {
      startSeconds: 0.2,
      config: { backoff: { initialSeconds: 3, maxSeconds: 30 } },
    });
    try {
      await row.control.addFaults({
        vm: "pricey",
        startFailsWith: "SpotPriceGreaterThanProvidedMaxPrice",
        times: 1,
      });
      const runtime = await spawnRuntime(row);
      const line = await runtime.waitFor("start-failed-price", () => true, 15_000);
      assert.equal(line.code, "SpotPriceGreaterThanProvidedMaxPrice");
      assert.equal(line.maxPrice, 0.0123);
      assert.match(line.msg, /0\.0123/);
      assert.equal(runtime.events("start-failed").length, 0, "not reported as a plain start failure");

      const status = await row.cli(["status", "--config", row.configPath, "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const report = JSON.parse(status.stdout) as {
        vms: Array<{ name: string; lastResult: string; backoffUntil: string | null }>;
      };
      const pricey = report.vms.find((vm) => vm.name === "pricey");
      assert.match(pricey?.lastResult ?? "", /price.*SpotPriceGreaterThanProvidedMaxPrice/);
      assert.notEqual(pricey?.backoffUntil, null);

      // Backs off (3 s), then the price is fine again and the VM starts.
      const runningAt = await row.waitForVm("pricey", "running", 15_000);
      const starts = await row.startRequests("pricey");
      assert.equal(starts.length, 2);
      assert.ok((starts[1] ?? 0) - line.at >= 3_000 * 0.8 - 60, "the second attempt waited its backoff");
      await runtime.stop();
      figure(
        "spot-price",
        `start-failed-price event with maxPrice 0.0123; status lastResult "${pricey?.lastResult}"; 2nd attempt ${(starts[1] ?? 0) - line.at} ms after the failure (backoff ${line.backoffSeconds} s); running ${runningAt - line.at} ms after it`,
      );
      await sleep(0);
    } finally {
      await row.close();
    }
  });
});
