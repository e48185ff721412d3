// Fault matrix, notification receivers: a channel whose receiver refuses connections, or accepts and
// never answers in time, changes no restart timing. The eviction is answered as fast as with no
// channel at all, the failure is logged once (URL redacted), and SIGTERM still ends `run` promptly
// (the flush on exit is bounded).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { deadUrl, type Receiver, startReceiver } from "../helpers/receiver";
import { figure, resourceGroup, spawnRuntime, spotVm, startRow } from "./harness";

const receivers: Receiver[] = [];
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});

async function channelFor(kind: "none" | "down" | "slow") {
  if (kind === "none") return [];
  if (kind === "down") return [{ type: "webhook", url: await deadUrl("/hook/SECRET-down-token") }];
  // Accepts the connection, answers after 60 s: every attempt runs into the 10 s timeout.
  const slow = await startReceiver({ delayMs: 60_000 });
  receivers.push(slow);
  return [{ type: "slack", url: `${slow.origin}/services/T0SECRET/B0SECRET/slowtoken` }];
}

describe("fault matrix: notification receivers", { concurrency: true }, () => {
  for (const kind of ["none", "down", "slow"] as const) {
    // A failing row ends (issue 24 item 7): every wait below has its own deadline, row.close() in `finally`
    // kills the runtime and stops the emulator, and this timeout ends the test should anything else hang.
    it(`receiver ${kind === "none" ? "absent (baseline)" : kind}: the eviction is answered on time, run stops promptly`, {
      timeout: 180_000,
    }, async () => {
      const row = await startRow([spotVm("backup", { powerState: "running" })], {
        config: { notifications: await channelFor(kind) },
      });
      try {
        const runtime = await spawnRuntime(row);
        await runtime.waitFor("run-started");
        const evictedAt = Date.now();
        await row.control.evict(resourceGroup, "backup");
        const runningAt = await row.waitForVm("backup", "running", 20_000);
        const [startAt] = await row.startRequests("backup");
        await runtime.waitFor("started");
        // Down: the messages' retries (2, 4, 8 s) end in one failure line; slow ones are cut short by SIGTERM.
        if (kind === "down") await runtime.waitFor("notification-failed", () => true, 30_000);
        const stopAt = Date.now();
        const exit = await runtime.stop();
        const stopMs = Date.now() - stopAt;
        assert.equal(exit.code, 0, runtime.stderr());
        const startMs = startAt - evictedAt;
        // Interval 1 s + the annotation's 1 s + jitter: the same bound with or without a channel.
        assert.ok(startMs < 6_000, `start requested ${startMs} ms after the eviction`);
        assert.ok(stopMs < 8_000, `run took ${stopMs} ms to stop after SIGTERM`);
        const failures = runtime.events("notification-failed");
        if (kind === "none") assert.equal(failures.length, 0);
        else if (kind === "down") {
          assert.equal(failures.length, 1, "logged once, however many messages failed");
          assert.match(String(failures[0].reason), /ECONNREFUSED/);
        } else {
          // Still retrying when SIGTERM's bounded flush (5 s) ends: abandoned, and said so once.
          assert.ok(failures.length <= 1);
          assert.equal(runtime.events("notifications-undelivered").length, 1);
        }
        assert.ok(!runtime.stderr().includes("SECRET"), "no notification URL in the log");
        figure(
          `notifications-${kind}`,
          `start requested ${startMs} ms and VM running ${runningAt - evictedAt} ms after the eviction; run stopped ${stopMs} ms after SIGTERM; ${failures.length} notification-failed, ${runtime.events("notifications-undelivered").length} notifications-undelivered lines`,
        );
      } finally {
        await row.close();
      }
    });
  }
});
