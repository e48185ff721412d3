// Fault matrix, the world changing under the loop: a VM evicted again while its start is in flight, a
// VM deleted, a VM started by someone else while in backoff, the restart tag removed mid-run. None of
// them may cause a wrong start (a start of a VM that is not a deallocated, tagged Spot VM).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ARM_SCOPE } from "../../emulator/testing";
import { figure, type Row, resourceGroup, sleep, spawnRuntime, spotVm, startRow } from "./harness";

/** Samples the VM's power state every 50 ms so a start can be checked against the state it met. */
function watchPowerState(row: Row, vm: string) {
  const samples: Array<{ at: number; powerState: string }> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const found = await row.control.vm(resourceGroup, vm);
      samples.push({ at: Date.now(), powerState: found?.powerState ?? "gone" });
      await sleep(50);
    }
  })();
  return {
    samples,
    /** The state last sampled before `at`. */
    before: (at: number) => [...samples].reverse().find((s) => s.at < at)?.powerState,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function patchTags(row: Row, vm: string, operation: "Delete" | "Merge", tags: Record<string, string>) {
  const token = await row.credential.getToken(ARM_SCOPE);
  const scope = `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${vm}`;
  const response = await fetch(
    `${row.emulator.armEndpoint}${scope}/providers/Microsoft.Resources/tags/default?api-version=2021-04-01`,
    {
      method: "PATCH",
      headers: { Authorization: `Bearer ${token?.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ operation, properties: { tags } }),
    },
  );
  assert.equal(response.status, 200, await response.text());
}

describe("fault matrix: the world changes under the loop", { concurrency: true }, () => {
  it("a VM evicted again while its start is in flight is started again, never while it runs", async () => {
    const row = await startRow([spotVm("flaky")], { startSeconds: 2 });
    const watch = watchPowerState(row, "flaky");
    try {
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-issued");
      await sleep(500);
      assert.equal((await row.control.vm(resourceGroup, "flaky"))?.powerState, "starting");
      await row.control.evict(resourceGroup, "flaky");
      const evictedAt = Date.now();
      await runtime.waitFor("start-issued", (l) => l.at > evictedAt, 15_000);
      await row.waitForVm("flaky", "running", 15_000);
      await sleep(2_500); // a few more cycles: nothing more to do
      await runtime.stop();
      await watch.stop();
      const starts = await row.startRequests("flaky");
      assert.equal(starts.length, 2, "the original start and one after the second eviction");
      for (const at of starts)
        assert.equal(watch.before(at), "deallocated", "every start met a deallocated VM");
      figure(
        "evicted-during-start",
        `2 starts, both of a deallocated VM; 2nd ${(starts[1] ?? 0) - evictedAt} ms after the 2nd eviction`,
      );
    } finally {
      await watch.stop();
      await row.close();
    }
  });

  it("a VM deleted while in backoff is forgotten: no start of it ever again, the loop goes on", async () => {
    const row = await startRow([spotVm("doomed"), spotVm("other", { powerState: "running" })], {
      startSeconds: 0.2,
      config: { backoff: { initialSeconds: 2, maxSeconds: 2 } },
    });
    try {
      await row.control.addFaults({ vm: "doomed", startFailsWith: "AllocationFailed" });
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed");
      await row.control.deleteVm(resourceGroup, "doomed");
      const deletedAt = Date.now();
      await runtime.waitFor("vm-forgotten", (l) => String(l.vm).endsWith("/doomed"), 5_000);
      await sleep(3_500); // past the backoff
      await row.control.evict(resourceGroup, "other");
      await row.waitForVm("other", "running", 10_000);
      await runtime.stop();
      // A read already on its way when the VM went may land just after (and get a 404); a start may not.
      const late = (await row.armRequests()).filter(
        (r) =>
          r.path.toLowerCase().includes("/doomed") &&
          Date.parse(r.time) > deletedAt &&
          (r.method !== "GET" || Date.parse(r.time) > deletedAt + 500),
      );
      assert.deepEqual(
        late.map((r) => `${r.method} ${r.path} ${r.status} +${Date.parse(r.time) - deletedAt} ms`),
        [],
        "no request about the deleted VM",
      );
      const state = JSON.parse(readFileSync(join(row.stateDir, "state.json"), "utf8")) as {
        vms: Record<string, unknown>;
      };
      assert.equal(state.vms[`${resourceGroup}/doomed`], undefined, "the state file forgot it");
      figure(
        "vm-deleted",
        "0 requests about the deleted VM after deletion; forgotten in state; another VM restarted afterwards",
      );
    } finally {
      await row.close();
    }
  });

  it("a VM started by someone else while in backoff: no start from us, backoff reset, next eviction restarted at once", async () => {
    const row = await startRow([spotVm("shared")], {
      startSeconds: 0.2,
      config: { backoff: { initialSeconds: 5, maxSeconds: 5 } },
    });
    const watch = watchPowerState(row, "shared");
    try {
      await row.control.addFaults({ vm: "shared", startFailsWith: "AllocationFailed", times: 1 });
      const runtime = await spawnRuntime(row);
      await runtime.waitFor("start-failed");
      await row.control.setVm(resourceGroup, "shared", { powerState: "running" });
      await runtime.waitFor("vm-running", () => true, 5_000);
      await sleep(5_000); // the old backoff has passed: still nothing to do
      assert.equal((await row.startRequests("shared")).length, 1);
      await row.control.evict(resourceGroup, "shared");
      const evictedAt = Date.now();
      await row.waitForVm("shared", "running", 10_000);
      await runtime.stop();
      await watch.stop();
      const starts = await row.startRequests("shared");
      assert.equal(starts.length, 2);
      for (const at of starts) assert.equal(watch.before(at), "deallocated");
      const reaction = (starts[1] ?? 0) - evictedAt;
      assert.ok(
        reaction < 1_000 * 1.1 + 500,
        `restarted ${reaction} ms after the new eviction (no stale backoff)`,
      );
      figure(
        "started-by-someone-else",
        `1 start of ours before, 0 while it ran; new eviction restarted ${reaction} ms later`,
      );
    } finally {
      await watch.stop();
      await row.close();
    }
  });

  for (const change of ["removed", "set to false"] as const) {
    it(`the restart tag ${change} mid-run (Tags API) while in backoff: never started again`, async () => {
      const row = await startRow([spotVm("untag-me")], {
        startSeconds: 0.2,
        config: { backoff: { initialSeconds: 2, maxSeconds: 2 } },
      });
      try {
        await row.control.addFaults({ vm: "untag-me", startFailsWith: "AllocationFailed", times: 1 });
        const runtime = await spawnRuntime(row);
        await runtime.waitFor("start-failed");
        if (change === "removed")
          await patchTags(row, "untag-me", "Delete", { AttemptRestartAfterEviction: "true" });
        else await patchTags(row, "untag-me", "Merge", { AttemptRestartAfterEviction: "false" });
        const untaggedAt = Date.now();
        await runtime.waitFor("vm-forgotten", () => true, 5_000);
        await sleep(4_000); // twice the backoff
        await runtime.stop();
        const late = (await row.startRequests("untag-me")).filter((t) => t > untaggedAt);
        assert.deepEqual(late, [], "no start after the tag went");
        assert.equal((await row.control.vm(resourceGroup, "untag-me"))?.powerState, "deallocated");
        figure(
          `tag-${change.replace(/ /g, "-")}`,
          "0 starts after the change (4 s = 2 backoffs); VM left deallocated; forgotten",
        );
      } finally {
        await row.close();
      }
    });
  }
});
