// The eviction history end to end: the real bundle's `run` against the emulator, two evictions of one VM
// (with a restart of `run` between them) and an owner's stop of another; `report --json` then agrees with
// the emulator's own VM history within one loop interval, and the downtime counter with the report.
import "reflect-metadata";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { VmHistoryEntry } from "../../emulator/state";
import { buildRuntimeBundle } from "../../support/bundle";
import { type Receiver, startReceiver } from "../helpers/receiver";
import {
  historyLines as historyOf,
  resourceGroup,
  runCli,
  sameEmulatorInstant,
  secondListAfter,
  spawnCli,
  spotVm,
  startWorld,
  type World,
  waitUntil,
} from "./harness";

const intervalSeconds = 1;

/** Seconds down after each eviction by the emulator's clock: from `evicted` to the next `start-succeeded`. */
function emulatorDowntime(history: readonly VmHistoryEntry[]): { evictions: number; seconds: number } {
  let evictedAt: number | undefined;
  let evictions = 0;
  let seconds = 0;
  for (const entry of history) {
    if (entry.event === "evicted") {
      evictions += 1;
      evictedAt = Date.parse(entry.at);
    } else if (entry.event === "start-succeeded" && evictedAt !== undefined) {
      seconds += (Date.parse(entry.at) - evictedAt) / 1000;
      evictedAt = undefined;
    }
  }
  return { evictions, seconds };
}

describe("the eviction history against the emulator", () => {
  let bundle: string;
  let world: World;
  let receiver: Receiver;
  before(async () => {
    bundle = await buildRuntimeBundle();
    world = await startWorld(
      [spotVm("backup", { powerState: "running" }), spotVm("builder", { powerState: "running" })],
      { startSeconds: 0.3 },
    );
    receiver = await startReceiver();
    world.writeConfig({
      intervalSeconds,
      metrics: { textfile: join(world.dir, "spot-restarter.prom") },
      // The weekly digest, to a channel that asks for it by name (and for nothing else).
      notifications: [{ type: "webhook", url: `${receiver.origin}/weekly`, events: ["weekly-report"] }],
    });
  });
  after(async () => {
    await receiver?.close();
    await world?.emulator.stop();
  });

  const historyLines = () => historyOf(world);
  const restartsRecorded = () =>
    historyLines().filter((r) => r.vm === "backup" && r.kind === "power" && r.by === "start").length;
  const startRun = async () => {
    const running = spawnCli(bundle, ["run", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
      timeoutMs: 120_000,
    });
    await running.waitFor(/run-started/);
    return running;
  };
  const evictAndWaitForRestart = async (restarts: number) => {
    await world.control.evict(resourceGroup, "backup");
    await waitUntil(`restart ${restarts} of backup in the history`, () =>
      restartsRecorded() >= restarts ? true : undefined,
    );
    // Two more cycles (the bound each outage is judged by below) before anything else happens.
    const up = (await world.control.vm(resourceGroup, "backup"))?.history
      .filter((e) => e.event === "start-succeeded")
      .at(-1);
    await waitUntil("two cycles after the restart", () => secondListAfter(world, Date.parse(up?.at ?? "")));
  };

  it("report --json gives the evicted VM its evictions and downtime, the owner-stopped VM no downtime", async () => {
    let run = await startRun();
    // Seen running first: the history starts with each VM up.
    await waitUntil("both VMs in the history", () =>
      new Set(historyLines().map((r) => r.vm)).size === 2 ? true : undefined,
    );
    await evictAndWaitForRestart(1);
    await world.control.deallocate(resourceGroup, "builder");
    await waitUntil("the owner's stop in the history", () =>
      historyLines().some((r) => r.vm === "builder" && r.cause === "owner") ? true : undefined,
    );
    // The history survives a restart of `run`.
    const stopped = await run.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
    run = await startRun();
    await evictAndWaitForRestart(2);
    const second = await run.stop();
    assert.equal(second.code, 0, second.stderr);

    const result = await runCli(bundle, ["report", "--config", world.configPath, "--json", "--since", "1h"], {
      caCertFile: world.emulator.caCertFile,
    });
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual(Object.keys(report), ["since", "until", "vms", "totals"]);
    const backup = report.vms.find((vm: { name: string }) => vm.name === "backup");
    const builder = report.vms.find((vm: { name: string }) => vm.name === "builder");
    assert.deepEqual(Object.keys(backup), [
      "resourceGroup",
      "name",
      "evictions",
      "ownerStops",
      "downtimeSeconds",
      "longestOutageSeconds",
      "startRequests",
      "availability",
      "fallbackSeconds",
    ]);

    const emulated = emulatorDowntime((await world.control.vm(resourceGroup, "backup"))?.history ?? []);
    assert.equal(emulated.evictions, 2);
    assert.equal(backup.evictions, 2);
    assert.equal(backup.ownerStops, 0);
    assert.ok(backup.downtimeSeconds > 0);
    const startRequests = (await world.control.vm(resourceGroup, "backup"))?.startRequests;
    assert.equal(backup.startRequests, startRequests);
    // Each outage begins at Azure's eviction time (the Resource Health annotation's) and ends when the start
    // is seen Succeeded, at its next poll: never before the emulator's success, and within one loop interval
    // of it (before the cycle after next has listed the group). The report sums those outages.
    const history = (await world.control.vm(resourceGroup, "backup"))?.history ?? [];
    const evicted = history.filter((e) => e.event === "evicted").map((e) => Date.parse(e.at));
    const succeeded = history.filter((e) => e.event === "start-succeeded").map((e) => Date.parse(e.at));
    const recorded = historyLines().filter((r) => r.vm === "backup");
    const causes = recorded.filter((r) => r.kind === "cause").map((r) => Date.parse(String(r.occurredAt)));
    const ups = recorded
      .filter((r) => r.kind === "power" && r.by === "start")
      .map((r) => Date.parse(String(r.at)));
    assert.equal(causes.length, evicted.length);
    for (const [i, at] of causes.entries()) {
      assert.ok(
        sameEmulatorInstant(at, evicted[i] ?? 0),
        "each outage begins at the emulator's eviction time",
      );
    }
    let recordedSeconds = 0;
    for (const [i, up] of ups.entries()) {
      const azureUp = succeeded.find((at) => at >= (evicted[i] ?? 0)) ?? Number.NaN;
      const bound = (await secondListAfter(world, azureUp)) ?? Number.NaN;
      assert.ok(
        up >= azureUp && up <= bound,
        `outage ${i}: up at ${up}, emulator ${azureUp}, bound ${bound}`,
      );
      recordedSeconds += (up - (evicted[i] ?? up)) / 1000;
    }
    process.stdout.write(`# downtime: report ${backup.downtimeSeconds} s, emulator ${emulated.seconds} s\n`);
    assert.equal(backup.downtimeSeconds, Math.round(recordedSeconds));
    assert.ok(backup.downtimeSeconds >= Math.round(emulated.seconds) - 1);
    assert.ok(backup.availability > 0 && backup.availability < 1);

    assert.equal(builder.ownerStops, 1);
    assert.equal(builder.evictions, 0);
    assert.equal(builder.downtimeSeconds, 0);
    assert.equal(report.totals.evictions, 2);
    assert.equal(report.totals.ownerStops, 1);

    // The downtime counter (kept across the two runs by the textfile) says the same.
    const prom = readFileSync(join(world.dir, "spot-restarter.prom"), "utf8");
    const counted = Number(
      /^spot_restarter_downtime_seconds_total\{resource_group="personal-network",vm="backup"\} ([0-9.e+-]+)$/m.exec(
        prom,
      )?.[1],
    );
    assert.ok(
      Math.abs(counted - backup.downtimeSeconds) <= 1,
      `counter ${counted}, report ${backup.downtimeSeconds}`,
    );

    // The weekly digest: offered when `run` started, sent once; the restart a minute later sent none (the
    // repeat gate in the state directory holds it for a week).
    assert.equal(receiver.requests.length, 1);
    const digest = JSON.parse(receiver.requests[0]?.body ?? "{}");
    assert.equal(digest.event, "weekly-report");
    assert.match(digest.message, /^the last 7 days: 0 evictions, /);
    assert.match(digest.message, /\nVM +EVICTIONS +OWNER STOPS +DOWNTIME/);

    const table = await runCli(bundle, ["report", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
    });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^personal-network\/backup +2 +0 +\d+ s /m);
    assert.match(table.stdout, /^personal-network\/builder +0 +1 +- /m);
  });

  it("report refuses a window it cannot read, naming the flag", async () => {
    const result = await runCli(bundle, ["report", "--config", world.configPath, "--since", "last week"]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /report: --since expects a duration like 30d, 7d, 12h or 1d12h, got "last week"/,
    );
  });
});
