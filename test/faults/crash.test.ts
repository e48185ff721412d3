// Fault matrix, the host: SIGKILL mid-start then a restart (state intact, no duplicate start storm, the
// lock recovered), and a read-only or full state directory (the loop keeps restarting VMs and says it
// cannot persist). The disk rows mount a small tmpfs, so they need root; elsewhere they are skipped.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { figure, resourceGroup, sleep, spawnRuntime, spotVm, startRow } from "./harness";

// mode=0700: a fresh tmpfs root is 1777 (world-writable, sticky), which the runtime rightly refuses as a state directory.
function tryMountTmpfs(dir: string, sizeKb: number): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKb}k,mode=0700`, "tmpfs", dir], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}

describe("fault matrix: crashes and a broken disk", { concurrency: true }, () => {
  it("SIGKILL mid-start, then restarts: state intact, no duplicate start, lock recovered", async () => {
    const row = await startRow([spotVm("a"), spotVm("b")], { startSeconds: 14 });
    try {
      const first = await spawnRuntime(row);
      await first.waitFor("start-issued", (l) => String(l.vm).endsWith("/a"));
      await first.waitFor("start-issued", (l) => String(l.vm).endsWith("/b"));
      await sleep(300);
      first.child.kill("SIGKILL");
      const killedAt = Date.now();
      assert.equal((await first.exited).signal, "SIGKILL");

      // The state file is whole (written by rename) and remembers the starts in flight.
      const state = JSON.parse(readFileSync(join(row.stateDir, "state.json"), "utf8")) as {
        vms: Record<string, { lastResult?: { outcome: string } }>;
      };
      assert.equal(state.vms[`${resourceGroup}/a`]?.lastResult?.outcome, "issued");

      // Restarted at once (systemd's RestartSec is 10 s; we try every second): the dead holder's lock
      // refuses a second instance until it goes stale, then it is taken over.
      let attempts = 0;
      let second: Awaited<ReturnType<typeof spawnRuntime>> | undefined;
      let refusal = "";
      while (Date.now() - killedAt < 20_000) {
        attempts++;
        const candidate = await spawnRuntime(row);
        const outcome = await Promise.race([
          candidate.exited.then((e) => ({ exited: e })),
          candidate.waitFor("run-started", () => true, 10_000).then(() => ({ exited: undefined })),
        ]);
        if (outcome.exited === undefined) {
          second = candidate;
          break;
        }
        assert.equal(outcome.exited.code, 5, candidate.stderr());
        refusal ||= candidate.stderr().trim().split("\n").at(-1) ?? "";
        await sleep(1_000);
      }
      assert.ok(second, "the lock was never recovered");
      const recoveredMs = Date.now() - killedAt;
      await row.waitForVm("a", "running", 20_000);
      await row.waitForVm("b", "running", 20_000);
      await sleep(2_000);
      const exit = await second.stop();
      assert.equal(exit.code, 0);
      assert.equal((await row.startRequests("a")).length, 1, "no duplicate start of a");
      assert.equal((await row.startRequests("b")).length, 1, "no duplicate start of b");
      assert.match(refusal, /lock/);
      figure(
        "sigkill-mid-start",
        `state file intact (lastResult issued); ${attempts - 1} refused restarts (exit 5) then lock taken over ${recoveredMs} ms after the kill; 1 start per VM in all`,
      );
    } finally {
      await row.close();
    }
  });

  it("read-only state directory from start-up: still restarts VMs, says it cannot persist", async (t) => {
    const row = await startRow([spotVm("first")], { startSeconds: 0.3 });
    const mount = row.stateDir;
    if (!tryMountTmpfs(mount, 256)) {
      t.skip("needs root to mount a tmpfs");
      await row.close();
      return;
    }
    try {
      execFileSync("mount", ["-o", "remount,ro", mount]);
      const runtime = await spawnRuntime(row);
      const running = await Promise.race([
        row.waitForVm("first", "running", 10_000).then(() => true),
        runtime.exited.then(() => false),
      ]);
      const exit = await runtime.stop();
      figure(
        "state-dir-read-only-at-start",
        `VM restarted: ${running}; exit ${exit.code}: ${runtime.stderr().trim().split("\n").at(-1)}`,
      );
      assert.ok(running, "the VM was restarted");
      assert.ok(
        runtime.lines.some((l) => /persist|read-only|EROFS/i.test(l.msg)),
        "says it cannot persist",
      );
    } finally {
      try {
        execFileSync("umount", ["-l", mount], { stdio: "ignore" });
      } catch {
        // already gone
      }
      await row.close();
    }
  });

  for (const breakage of ["read-only", "full"] as const) {
    it(`${breakage} state directory mid-run: keeps restarting VMs and says it cannot persist`, async (t) => {
      const row = await startRow([spotVm("first"), spotVm("second", { powerState: "running" })], {
        startSeconds: 0.3,
      });
      const mount = row.stateDir;
      if (!tryMountTmpfs(mount, 256)) {
        t.skip("needs root to mount a tmpfs");
        await row.close();
        return;
      }
      try {
        const runtime = await spawnRuntime(row);
        await row.waitForVm("first", "running", 15_000);
        await sleep(1_500);
        if (breakage === "read-only") {
          execFileSync("mount", ["-o", "remount,ro", mount]);
        } else {
          try {
            execFileSync("dd", ["if=/dev/zero", `of=${join(mount, "filler")}`, "bs=4k"], { stdio: "ignore" });
          } catch {
            // ENOSPC: the point
          }
        }
        const brokenAt = Date.now();
        await row.control.evict(resourceGroup, "second");
        await row.waitForVm("second", "running", 15_000);
        const restartedMs = Date.now() - brokenAt;
        // Past proper-lockfile's refresh of the lock (every stale/2 = 5 s), which writes to the disk too.
        await sleep(7_000);
        const alive = runtime.child.exitCode === null;
        const saveFailures = runtime.events("state-save-failed").filter((l) => l.at >= brokenAt);
        const exit = await runtime.stop();
        assert.ok(alive, `the runtime died when the disk broke:\n${runtime.stderr().slice(-2000)}`);
        assert.equal(exit.code, 0, runtime.stderr().slice(-2000));
        assert.ok(saveFailures.length >= 1, "it says it cannot persist");
        assert.match(
          saveFailures[0]?.msg ?? "",
          breakage === "read-only" ? /EROFS|read-only/i : /ENOSPC|no space/i,
        );
        figure(
          `state-dir-${breakage}`,
          `VM restarted ${restartedMs} ms after the disk broke; ${saveFailures.length} state-save-failed lines in ${Math.round((Date.now() - brokenAt) / 1000)} s`,
        );
      } finally {
        try {
          execFileSync("umount", ["-l", mount], { stdio: "ignore" });
        } catch {
          // already gone
        }
        await row.close();
      }
    });
  }
});
