// Fault matrix, start failures: persistent AllocationFailed on one VM while another restarts at once
// (attempts at a steady interval from the last request, never doubling; started within about one
// interval once capacity returns), and SpotPriceGreaterThanProvidedMaxPrice reported distinctly, with
// the VM's max price, backing off in minutes (runtime/src/loop/schedule.ts; scaled down here by config).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { figure, resourceGroup, sleep, spawnRuntime, spotVm, startRow } from "./harness";

/** `retry.capacitySeconds` (production: 20 s, stretching to 60 s as Azure's budgets run low). */
const capacitySeconds = 1;
/** The cycle interval: longer than the capacity interval, so a retry due between cycles must wake the loop. */
const intervalMs = 3_000;

describe("fault matrix: capacity and price", { concurrency: true }, () => {
  it("persistent AllocationFailed on one VM: the other starts at once, attempts once per interval (no doubling), recovery within about one interval", async () => {
    const row = await startRow([spotVm("no-capacity"), spotVm("healthy")], {
      startSeconds: 0.3,
      config: { retry: { capacitySeconds }, intervalSeconds: intervalMs / 1000 },
    });
    try {
      await row.control.addFaults({ vm: "no-capacity", startFailsWith: "AllocationFailed" });
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed", (l) => Number(l.attempts) >= 5, 40_000);
      const starts = await row.startRequests("no-capacity");
      const healthyStarts = await row.startRequests("healthy");
      assert.equal(healthyStarts.length, 1, "the healthy VM is started once");
      // Same cycle: a cycle issues its starts together, and the next cycle comes a whole interval
      // (intervalMs) later, so half an interval tells the two apart whatever the load.
      assert.ok(
        Math.abs((healthyStarts[0] ?? 0) - (starts[0] ?? 0)) < intervalMs / 2,
        "the healthy VM is started in the same cycle as the first attempt on the failing one",
      );
      assert.equal((await row.control.vm(resourceGroup, "healthy"))?.powerState, "running");

      const failures = runtime.events("start-failed").filter((l) => String(l.vm).endsWith("/no-capacity"));
      assert.deepEqual(
        failures.slice(0, 5).map((f) => f.attempts),
        [1, 2, 3, 4, 5],
      );
      for (const failure of failures) assert.equal(failure.code, "AllocationFailed");
      // Attempt to attempt, against the policy and this run's own measurements rather than a fixed
      // budget (a 700 ms allowance failed on a loaded 2-core machine with gaps of 1.5-2.4 s).
      // 1. The policy. Each retry is scheduled (start-failed's backoffUntil) one interval after its
      //    attempt's request, plus at most 5 % jitter, or when the failure became known if that is later
      //    (runtime/src/loop/schedule.ts nextAttemptAt; on a loaded machine following a start can take longer
      //    than the interval). The request left the runtime (at requestedAt, which the log does not
      //    show) after the runtime logged start-issued and before Azure stamped it on arrival, so, per
      //    attempt: due <= max(arrival + interval * 1.05, failure logged) (no doubling), and the next
      //    attempt arrives no sooner than due, hence at least interval - (arrival - start-issued) after
      //    it (never sooner than the interval, the request's own measured transit aside). 2 ms: log
      //    times are rounded to the millisecond.
      const issued = runtime
        .events("start-issued")
        .filter((l) => String(l.vm).endsWith("/no-capacity"))
        .map((l) => l.at);
      const scheduled = failures.slice(0, 4).map((f) => Date.parse(String(f.backoffUntil)));
      scheduled.forEach((due, i) => {
        const arrival = starts[i] ?? Number.NaN;
        const next = starts[i + 1] ?? Number.NaN;
        const transit = arrival - (issued[i] ?? Number.NaN);
        const failedAt = failures[i]?.at ?? Number.NaN;
        assert.ok(
          due <= Math.max(arrival + capacitySeconds * 1000 * 1.05, failedAt) + 2,
          `attempt ${i + 1}: retry due ${due - arrival} ms after it reached Azure, ${due - failedAt} ms after its failure was logged (interval ${capacitySeconds * 1000} ms + 5 %)`,
        );
        assert.ok(next >= due - 2, `attempt ${i + 2} reached Azure ${due - next} ms before it was due`);
        assert.ok(
          next - arrival >= capacitySeconds * 1000 - transit - 2,
          `attempts ${i + 1} and ${i + 2} reached Azure ${next - arrival} ms apart (transit ${transit} ms)`,
        );
      });
      // 2. As Azure saw it: the retry's cycle (its resource-group list, the first request of a cycle)
      //    begins when the retry is due, not when the 3 s cycle would have come round. A loop held back
      //    to the cycle would begin it up to intervalMs - interval = 2 s late; half that separates the
      //    two, leaving a loaded machine 1 s to wake the loop. The cycle's own work (list, instance view,
      //    start) is measured, not budgeted: it is excluded by starting from the list request.
      const requests = await row.armRequests();
      const lists = requests
        .filter(
          (r) =>
            r.method === "GET" &&
            /\/resourceGroups\/[^/]+\/providers\/Microsoft\.Compute\/virtualMachines$/i.test(r.path),
        )
        .map((r) => Date.parse(r.time));
      const gaps = starts.slice(1, 5).map((t, i) => t - (starts[i] ?? 0));
      const wakeLate = starts.slice(1, 5).map((start, i) => {
        const cycleBegan = lists.filter((t) => t <= start).at(-1) ?? Number.NaN;
        return cycleBegan - (scheduled[i] ?? Number.NaN);
      });
      for (const late of wakeLate) {
        assert.ok(
          late < (intervalMs - capacitySeconds * 1000) / 2,
          `retry cycles began ${wakeLate.join(", ")} ms after their due times (attempts ${gaps.join(", ")} ms apart)`,
        );
      }

      // Capacity returns: the next attempt comes within about one interval, and it starts.
      const clearedAt = Date.now();
      await row.control.clearFaults();
      const runningAt = await row.waitForVm("no-capacity", "running", 15_000);
      const firstStartAfter =
        (await row.startRequests("no-capacity")).find((t) => t > clearedAt) ?? Number.NaN;
      const exit = await runtime.stop();
      assert.equal(exit.code, 0);
      // The retry already due (at most the interval plus jitter after the last attempt, which came before
      // the faults were cleared) brings it back: no attempt is skipped or pushed to a later cycle.
      const lastFailure = runtime
        .events("start-failed")
        .filter((l) => String(l.vm).endsWith("/no-capacity"))
        .at(-1);
      const retryDue = Date.parse(String(lastFailure?.backoffUntil));
      assert.ok(
        firstStartAfter - retryDue < intervalMs - capacitySeconds * 1000,
        `first start ${firstStartAfter - clearedAt} ms after capacity returned, ${firstStartAfter - retryDue} ms after the retry was due`,
      );
      const total = (await row.startRequests("no-capacity")).length;
      // Counted now, after the runtime stopped: attempts go on (one a second) while the checks above run.
      const allFailures = runtime
        .events("start-failed")
        .filter((l) => String(l.vm).endsWith("/no-capacity")).length;
      assert.equal(total, allFailures + 1, `${total} attempts for ${allFailures} failures`);
      assert.equal((await row.startRequests("healthy")).length, 1, "the healthy VM was never started again");
      figure(
        "allocation-failed",
        `healthy VM: 1 start, same cycle; failing VM: attempts ${gaps.join(", ")} ms apart (interval ${capacitySeconds * 1000} ms, cycle ${intervalMs} ms); ${total} attempts in all; capacity back → start issued after ${firstStartAfter - clearedAt} ms, running after ${runningAt - clearedAt} ms`,
      );
    } finally {
      await row.close();
    }
  });

  it("a Start budget header below half stretches the capacity interval; a 429 with Retry-After still pauses every request", async () => {
    // Other clients of the subscription have spent PutVM3Min down to 100 of the 240 a window starts with
    // (Azure/azure-sdk-for-js arm-compute recordings: `PutVM3Min;239` after one write): the emulator reports
    // `Microsoft.Compute/PutVM3Min;<100 - n>` after our n-th start, so the runtime's retry after it must come
    // at 2 s stretched toward 6 s by (0.5 - share) / 0.25 (runtime/src/loop/schedule.ts capacityIntervalFor).
    const retry = { capacitySeconds: 2, capacityMaxSeconds: 6 };
    const row = await startRow([spotVm("thin-budget")], {
      startSeconds: 0.2,
      seed: { rateLimits: { limits: { PutVM3Min: 100 } } },
      config: { retry, intervalSeconds: 9, armMaxRetries: 0 },
    });
    try {
      await row.control.addFaults({ vm: "thin-budget", startFailsWith: "AllocationFailed" });
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed", (l) => Number(l.attempts) >= 4, 90_000);
      const issued = runtime.events("start-issued").map((l) => l.at);
      const failures = runtime.events("start-failed");
      const expected = (n: number) => {
        const share = (100 - n) / 240;
        const pull = Math.min(1, Math.max(0, (0.5 - share) / 0.25));
        return Math.ceil(
          retry.capacitySeconds * 1000 + (retry.capacityMaxSeconds - retry.capacitySeconds) * 1000 * pull,
        );
      };
      // From the second failure on (the first retry carries up to 5 % jitter): due exactly the stretched
      // interval after its request, or when the failure was known if that is later; judged on the runtime's
      // own send and log times, not on how fast the machine is.
      for (let n = 2; n <= 3; n++) {
        const due = Date.parse(String(failures[n - 1]?.backoffUntil));
        const sent = issued[n - 1] ?? Number.NaN;
        // Within 2 ms: the send time logged and the one the schedule counts from are separate reads of the
        // clock (seen 1 ms apart in one run in four); the stretch itself is about 1,400 ms, the check's point.
        const wanted = Math.max(sent + expected(n), failures[n - 1]?.at ?? Number.NaN);
        assert.ok(
          Math.abs(due - wanted) <= 2,
          `attempt ${n}: retry due ${due - sent} ms after it was sent (stretched interval ${expected(n)} ms)`,
        );
        assert.ok(expected(n) > retry.capacitySeconds * 1000, "the interval did stretch");
        assert.ok((issued[n] ?? 0) >= due, `attempt ${n + 1} sent before it was due`);
      }

      // Now Azure throttles the next start (429, Retry-After longer than the interval): every request
      // waits it out, the capacity retries included.
      const retryAfterSeconds = 8;
      await row.control.addFaults({
        method: "POST",
        pathPattern: "/thin-budget/start$",
        status: 429,
        retryAfterSeconds,
        errorCode: "TooManyRequests",
        times: 1,
      });
      const throttled = await runtime.waitFor("throttled", () => true, 60_000);
      await runtime.waitFor("start-issued", (l) => l.at > throttled.at, 60_000);
      await runtime.stop();
      const requests = await row.armRequests();
      const refused = requests.find((r) => r.status === 429);
      assert.ok(refused, "the 429 was served");
      const refusedAt = Date.parse(refused.time);
      const after = requests.filter((r) => Date.parse(r.time) > refusedAt);
      assert.ok(after.length > 0, "requests resumed");
      for (const r of after)
        assert.ok(
          Date.parse(r.time) >= refusedAt + retryAfterSeconds * 1000 - 60,
          `${r.method} ${r.path} ${Date.parse(r.time) - refusedAt} ms after a 429 with Retry-After ${retryAfterSeconds} s`,
        );
      figure(
        "budget-stretch",
        `PutVM3Min 100 of 240: retries due ${[2, 3].map(expected).join(", ")} ms after their requests (interval 2000 ms, cap 6000 ms); after a 429 (Retry-After ${retryAfterSeconds} s) the next request ${Math.min(...after.map((r) => Date.parse(r.time))) - refusedAt} ms later`,
      );
    } finally {
      await row.close();
    }
  });

  it("slow discovery does not stretch the retry interval: the loop wakes ahead by its measured discovery time", async () => {
    // Every list of the resource group (the first request of a cycle) takes `listDelayMs` longer. Were the
    // loop to wake when a retry is due, each attempt would leave one discovery late, and since the next
    // is due one interval after the request, attempts would come interval + discovery apart (the bench saw
    // 70 s instead of 60 at x30). It wakes ahead instead (runtime/src/loop/schedule.ts RetryLead) and the
    // request waits for the due time (starts.ts), so attempts come one interval apart: never sooner (the
    // budget's floor), and later only by timer and transit noise, far less than the delay.
    const retrySeconds = 6;
    const listDelayMs = 800;
    const row = await startRow([spotVm("slow-world")], {
      startSeconds: 0.2,
      config: { retry: { capacitySeconds: retrySeconds }, intervalSeconds: 9 },
    });
    try {
      await row.control.addFaults(
        { vm: "slow-world", startFailsWith: "AllocationFailed" },
        {
          method: "GET",
          pathPattern: "/resourceGroups/[^/]+/providers/Microsoft\\.Compute/virtualMachines$",
          delayMs: listDelayMs,
        },
      );
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed", (l) => Number(l.attempts) >= 5, 90_000);
      await runtime.stop();
      const starts = await row.startRequests("slow-world");
      const issued = runtime
        .events("start-issued")
        .filter((l) => String(l.vm).endsWith("/slow-world"))
        .map((l) => l.at);
      // From the second retry on (the first carries the one-time jitter of up to 5 % of the interval).
      const gaps = starts.slice(2, 5).map((t, i) => t - (starts[i + 1] ?? Number.NaN));
      gaps.forEach((gap, i) => {
        const transit = (starts[i + 1] ?? 0) - (issued[i + 1] ?? 0);
        assert.ok(gap >= retrySeconds * 1000 - transit - 2, `attempts ${gaps.join(", ")} ms apart: too soon`);
        assert.ok(
          gap < retrySeconds * 1000 + listDelayMs / 2,
          `attempts ${gaps.join(", ")} ms apart with every list ${listDelayMs} ms slow (interval ${retrySeconds * 1000} ms): the discovery time adds up`,
        );
      });
      figure(
        "slow-discovery",
        `every list +${listDelayMs} ms: attempts ${gaps.join(", ")} ms apart (interval ${retrySeconds * 1000} ms)`,
      );
    } finally {
      await row.close();
    }
  });

  it("SpotPriceGreaterThanProvidedMaxPrice: its own log event with the VM's max price, status shows it, backs off", async () => {
    const row = await startRow([spotVm("pricey", { maxPrice: 0.0123 })], { startSeconds: 0.2 });
    try {
      // The backoff must outlast one `status` run, which is read while the VM backs off. Not a fixed
      // 10 s (a loaded 2-core machine took longer than that to run status): three times a `status` run
      // measured here, on this machine now, and never under 10 s. With the backoff's jitter (down to
      // 80 %) that leaves status 2.4 times its measured time.
      const measured = await row.cli(["status", "--config", row.configPath, "--json"]);
      assert.equal(measured.code, 0, measured.stderr);
      const priceBackoffSeconds = Math.max(10, Math.ceil((3 * measured.ms) / 1000));
      row.writeConfig({
        retry: {
          capacitySeconds: 1,
          price: { initialSeconds: priceBackoffSeconds, maxSeconds: 3 * priceBackoffSeconds },
        },
      });
      await row.control.addFaults({
        vm: "pricey",
        startFailsWith: "SpotPriceGreaterThanProvidedMaxPrice",
        times: 1,
      });
      const runtime = await spawnRuntime(row);
      // A bound on waiting, not a claim about speed: generous, for a loaded machine.
      const line = await runtime.waitFor("start-failed-price", () => true, 60_000);
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

      // Backs off, then the price is fine again and the VM starts. The second attempt comes no sooner
      // than the backoff's floor (80 % of it) after the failure; the failure's log line is stamped as it
      // is written, a little after the failure was known (60 ms allows for that and the rounding).
      const runningAt = await row.waitForVm("pricey", "running", priceBackoffSeconds * 1000 + 30_000);
      const starts = await row.startRequests("pricey");
      assert.equal(starts.length, 2);
      assert.ok(
        (starts[1] ?? 0) - line.at >= priceBackoffSeconds * 1000 * 0.8 - 60,
        "the second attempt waited its backoff",
      );
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
