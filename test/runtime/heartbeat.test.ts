// Issue 23, item 4: liveness. Each cycle of once/run records a heartbeat in the state directory; status
// shows "last cycle 25 s ago (run, pid 1234)" and warns when no cycle ran for 3 intervals (status --json:
// the same fields at the top level); a second instance's lock message names the holder's pid and how long
// it has held the lock.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  CRON_PERIOD_SECONDS,
  describeHeartbeat,
  type HeartbeatReport,
  heartbeatReport,
  readHeartbeat,
  writeHeartbeat,
} from "../../runtime/src/state/heartbeat";
import { describeLockHolder } from "../../runtime/src/state/lock";
import { buildRuntimeBundle } from "../../support/bundle";
import { runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

describe("the heartbeat, as plain data", () => {
  const now = Date.parse("2026-12-08T03:00:00Z");
  const beat = { mode: "run" as const, pid: 1234, runtimeVersion: "0.1.0", intervalSeconds: 30 };

  it("says when, which mode and which process; stale after 3 intervals", () => {
    const fresh = heartbeatReport({ ...beat, at: now - 25_000 }, now, 30);
    assert.equal(
      describeHeartbeat(fresh)[0],
      "last cycle 25 s ago (run, pid 1234) at 2026-12-08T02:59:35.000Z",
    );
    assert.equal(fresh.stale, false);
    assert.equal(describeHeartbeat(fresh).length, 1);
    assert.equal(heartbeatReport({ ...beat, at: now - 90_000 }, now, 30).stale, false);
    const late = heartbeatReport({ ...beat, at: now - 91_000 }, now, 30);
    assert.equal(late.stale, true);
    assert.match(describeHeartbeat(late)[1] ?? "", /^warning: no cycle for 91 s \(over 3 intervals, 90 s\)/);
  });

  it("once (cron) is stale after 3 minutes of cron's schedule, not 3 intervalSeconds", () => {
    const once = { ...beat, mode: "once" as const };
    assert.equal(
      heartbeatReport({ ...once, at: now - 3 * CRON_PERIOD_SECONDS * 1000 }, now, 30).stale,
      false,
    );
    assert.equal(
      heartbeatReport({ ...once, at: now - 3 * CRON_PERIOD_SECONDS * 1000 - 1000 }, now, 30).stale,
      true,
    );
  });

  it("none recorded: stale, and the table says where to look", () => {
    const none = heartbeatReport(undefined, now, 30);
    assert.deepEqual(
      { lastCycleAt: none.lastCycleAt, pid: none.pid, stale: none.stale },
      { lastCycleAt: null, pid: null, stale: true },
    );
    assert.match(describeHeartbeat(none).join("\n"), /warning: no cycle of once or run has been recorded/);
  });

  it("the lock message names the holder's pid and how long it has held the lock", () => {
    assert.equal(
      describeLockHolder("/var/lib/spot-restarter", { pid: 4321, since: now - 180_000 }, now),
      "another spot-restarter (pid 4321, holding it for 3 min) holds the lock in /var/lib/spot-restarter",
    );
  });
});

describe("the bundle: once and run record it, status shows it", () => {
  let bundle: string;
  let w: World;
  before(async () => {
    bundle = await buildRuntimeBundle();
    w = await startWorld([spotVm("backup", { powerState: "running" })], { config: { intervalSeconds: 1 } });
  });
  after(() => w.emulator.stop());
  const cli = (...args: string[]) =>
    runCli(bundle, [...args, "--config", w.configPath], { caCertFile: w.emulator.caCertFile });
  const status = async () => {
    const result = await cli("status", "--json");
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { heartbeat: HeartbeatReport }).heartbeat;
  };

  it("before any cycle status warns; after once it names once's pid", async () => {
    assert.equal((await status()).lastCycleAt, null);
    const table = await cli("status");
    assert.match(table.stdout, /last cycle: none recorded/);
    const once = spawnCli(bundle, ["once", "--config", w.configPath], { caCertFile: w.emulator.caCertFile });
    const result = await once.done;
    assert.equal(result.code, 0, result.stderr);
    const beat = await status();
    assert.equal(beat.mode, "once");
    assert.equal(beat.pid, once.child.pid);
    assert.equal(beat.stale, false);
    assert.ok(Date.parse(beat.lastCycleAt ?? "") <= Date.now());
  });

  it("while run runs: status names it; a second run and a once name its pid and how long it has held the lock", async () => {
    const running = spawnCli(bundle, ["run", "--config", w.configPath], {
      caCertFile: w.emulator.caCertFile,
    });
    try {
      await running.waitFor(/run-started/, 60_000);
      const pid = running.child.pid;
      // Wait for a cycle of run's own (the heartbeat then names it).
      const deadline = Date.now() + 60_000;
      while ((await readHeartbeat(w.stateDir))?.pid !== pid) {
        assert.ok(Date.now() < deadline, "run recorded no heartbeat");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const table = await cli("status");
      assert.match(table.stdout, new RegExp(`last cycle \\d+ s ago \\(run, pid ${pid}\\)`));
      assert.doesNotMatch(table.stdout, /warning: no cycle/);

      const second = await cli("run");
      assert.equal(second.code, 5, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`another spot-restarter \\(pid ${pid}, holding it for \\d+ s\\) holds the lock in `),
      );
      const once = await cli("once");
      assert.equal(once.code, 0, once.stderr);
      assert.match(once.stderr, new RegExp(`lock-held .*pid ${pid}, holding it for`));
    } finally {
      const stopped = await running.stop();
      assert.equal(stopped.code, 0, stopped.stderr);
    }
  });

  it("an old heartbeat: status warns that no cycle ran for 3 intervals", async () => {
    await writeHeartbeat(w.stateDir, {
      at: Date.now() - 600_000,
      mode: "run",
      pid: 999_999,
      runtimeVersion: "0.1.0",
      intervalSeconds: 30,
    });
    const beat = await status();
    assert.equal(beat.stale, true);
    assert.ok((beat.ageSeconds ?? 0) >= 600);
    const table = await cli("status");
    assert.match(table.stdout, /last cycle 10 min ago \(run, pid 999999\)/);
    assert.match(table.stdout, /warning: no cycle for 10 min \(over 3 intervals, 90 s\)/);
  });
});
