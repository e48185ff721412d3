// A holder of the lock that dies without cleaning up (SIGKILL) blocks others only until the lock
// goes stale (10 s without a refresh), never forever.
import "reflect-metadata";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildRuntimeBundle } from "../../support/bundle";
import { runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

describe("a SIGKILLed lock holder", () => {
  let world: World;
  let bundle: string;
  before(async () => {
    [bundle, world] = await Promise.all([
      buildRuntimeBundle(),
      startWorld([spotVm("a", { powerState: "running" })]),
    ]);
  });
  after(() => world.emulator.stop());

  it("blocks `once` only until its lock is stale", async () => {
    const holder = spawnCli(bundle, ["run", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
    });
    await holder.waitFor(/run-started/);
    holder.child.kill("SIGKILL");
    await holder.done;
    const killedAt = Date.now();
    assert.ok(
      existsSync(join(world.stateDir, "spot-restarter.lock")),
      "the dead holder left its lock behind",
    );
    const cli = () =>
      runCli(bundle, ["once", "--json", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
    const blocked = await cli();
    assert.equal(blocked.code, 0, blocked.stderr);
    assert.equal(JSON.parse(blocked.stdout).skipped, "locked");
    let ran: { skipped: string | null } | undefined;
    while (Date.now() - killedAt < 15_000) {
      await new Promise((r) => setTimeout(r, 1_000));
      const result = await cli();
      assert.equal(result.code, 0, result.stderr);
      const summary = JSON.parse(result.stdout);
      if (summary.skipped === null) {
        ran = summary;
        break;
      }
    }
    assert.ok(ran, "the stale lock was taken over");
    const waited = Date.now() - killedAt;
    assert.ok(waited >= 9_000, `took over after ${waited} ms: too early for a 10 s staleness`);
    process.stdout.write(`# stale lock of a SIGKILLed holder taken over after ${waited} ms\n`);
  });
});
