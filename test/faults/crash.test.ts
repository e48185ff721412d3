// Fault matrix, the host: SIGKILL mid-start then a restart (state intact, no duplicate start storm, the
// lock recovered), and a read-only or full state directory (the loop keeps restarting VMs and says it
// cannot persist). The disk rows mount a small tmpfs: as root on the host, and without privileges in a
// user + mount namespace of the runtime's own; each variant runs where it can (under CI=true, both must).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { skipUnlessTool } from "../helpers/tools";
import {
  eventually,
  figure,
  type Row,
  resourceGroup,
  sleep,
  spawnRuntime,
  spotVm,
  startRow,
} from "./harness";

/**
 * A small disk for the state directory that a row can break: made read-only, or filled (ENOSPC). Two
 * ways to get one, each run where it is available, so the rows need no privileges:
 * - `mount`: a tmpfs mounted on the host (needs root);
 * - `userns`: a tmpfs mounted in a user + mount namespace of the runtime's own (`unshare -rm`, which an
 *   unprivileged user may do where the kernel allows it); the test breaks it from outside with
 *   `nsenter` into those namespaces. Only the runtime sees that disk; the test reads no file on it.
 */
interface ScratchDisk {
  /** The runtime's command line, wrapped so that it runs with the disk mounted on `dir` (read-only at once if asked). */
  wrap(argv: string[], options?: { readOnly?: boolean }): string[];
  /** Breaks the disk under the running runtime (`pid`: its process). */
  break(pid: number, how: "read-only" | "full"): void;
  release(): void;
}

const SIZE = "size=256k,mode=0700";

function hostMount(dir: string): ScratchDisk | undefined {
  mkdirSync(dir, { recursive: true });
  try {
    // mode=0700: a fresh tmpfs root is 1777 (world-writable, sticky), which the runtime rightly refuses as a state directory.
    execFileSync("mount", ["-t", "tmpfs", "-o", SIZE, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  return {
    wrap(argv, options = {}) {
      if (options.readOnly) execFileSync("mount", ["-o", "remount,ro", dir]);
      return argv;
    },
    break(_pid, how) {
      if (how === "read-only") execFileSync("mount", ["-o", "remount,ro", dir]);
      else fill(dir, []);
    },
    release() {
      try {
        execFileSync("umount", ["-l", dir], { stdio: "ignore" });
      } catch {
        // already gone
      }
    },
  };
}

/** `dd` until the disk is full; `enter` runs it inside the runtime's namespaces. */
function fill(dir: string, enter: string[]): void {
  const dd = ["dd", "if=/dev/zero", `of=${join(dir, "filler")}`, "bs=4k"];
  try {
    execFileSync(enter[0] ?? dd[0], [...enter.slice(1), ...(enter.length ? dd : dd.slice(1))], {
      stdio: "ignore",
    });
  } catch {
    // ENOSPC: the point
  }
}

/** Whether this user may make a user + mount namespace and mount a tmpfs in it. */
const userNamespaces = (() => {
  try {
    execFileSync("unshare", ["-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmpdir()], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
})();

function userNamespaceMount(dir: string): ScratchDisk | undefined {
  if (!userNamespaces) return undefined;
  mkdirSync(dir, { recursive: true });
  // The namespace's root may remount a bind mount read-only (MS_REMOUNT|MS_BIND|MS_RDONLY); a plain
  // `remount,ro` of the tmpfs itself is refused there.
  const readOnly = (target: string) =>
    `mount --bind "${target}" "${target}" && mount -o remount,bind,ro "${target}"`;
  return {
    wrap(argv, options = {}) {
      const script = `mount -t tmpfs -o ${SIZE} tmpfs "$0" && ${options.readOnly ? `${readOnly("$0")} && ` : ""}exec "$@"`;
      // No --fork: unshare and then sh exec the runtime, so the child's pid is the runtime's, in the namespaces.
      return ["unshare", "-rm", "sh", "-c", script, dir, ...argv];
    },
    break(pid, how) {
      const enter = ["nsenter", "--preserve-credentials", "-U", "-m", "-t", String(pid)];
      if (how === "read-only")
        execFileSync(enter[0] as string, [...enter.slice(1), "sh", "-c", readOnly(dir)]);
      else fill(dir, enter);
    },
    release() {
      // The mount goes with the namespace, when the runtime exits.
    },
  };
}

/** The row's disk, or undefined after skipping the test (or failing it, under CI) where it cannot be had. */
async function scratchDisk(
  disk: (typeof disks)[keyof typeof disks],
  row: Row,
  t: TestContext,
): Promise<ScratchDisk | undefined> {
  const scratch = disk.make(row.stateDir);
  if (scratch) return scratch;
  await row.close();
  const skip = skipUnlessTool(false, disk.needs);
  if (!skip) assert.fail(`needs ${disk.needs}, which CI promises`);
  t.skip(skip);
  return undefined;
}

const disks = {
  mount: { make: hostMount, needs: "root to mount a tmpfs" },
  userns: { make: userNamespaceMount, needs: "unshare -rm (user namespaces) to mount a tmpfs without root" },
} as const;

// Four rows at a time (seven in all, each with its own runtime and emulator): more at once starved each
// other past their waits on a loaded 2-core machine.
describe("fault matrix: crashes and a broken disk", { concurrency: 4 }, () => {
  it("SIGKILL mid-start, then restarts: state intact, no duplicate start, lock recovered", async () => {
    const row = await startRow([spotVm("a"), spotVm("b")], { startSeconds: 14 });
    try {
      const first = await spawnRuntime(row);
      await first.waitFor("start-issued", (l) => String(l.vm).endsWith("/a"), 60_000);
      await first.waitFor("start-issued", (l) => String(l.vm).endsWith("/b"), 60_000);
      // Killed once the state file records both starts (not after a fixed 300 ms: under load the save
      // may take longer). The file is replaced by rename, so a read sees a whole one or the last one.
      await eventually(
        async () => {
          try {
            const saved = JSON.parse(readFileSync(join(row.stateDir, "state.json"), "utf8"));
            return ["a", "b"].every(
              (vm) => saved.vms?.[`${resourceGroup}/${vm}`]?.lastResult?.outcome === "issued",
            );
          } catch {
            return false;
          }
        },
        60_000,
        "both starts saved",
      );
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

  for (const [kind, disk] of Object.entries(disks)) {
    it(`read-only state directory from start-up (${kind}): still restarts VMs, says it cannot persist`, async (t) => {
      const row = await startRow([spotVm("first")], { startSeconds: 0.3 });
      const scratch = await scratchDisk(disk, row, t);
      if (!scratch) return;
      try {
        const runtime = await spawnRuntime(row, ["run"], {
          wrap: (argv) => scratch.wrap(argv, { readOnly: true }),
        });
        const running = await Promise.race([
          row.waitForVm("first", "running", 60_000).then(() => true),
          runtime.exited.then(() => false),
        ]);
        const exit = await runtime.stop();
        figure(
          `state-dir-read-only-at-start-${kind}`,
          `VM restarted: ${running}; exit ${exit.code}: ${runtime.stderr().trim().split("\n").at(-1)}`,
        );
        assert.ok(running, `the VM was restarted:\n${runtime.stderr().slice(-2000)}`);
        assert.ok(
          runtime.lines.some((l) => /persist|read-only|EROFS/i.test(l.msg)),
          "says it cannot persist",
        );
      } finally {
        scratch.release();
        await row.close();
      }
    });
  }

  for (const [kind, disk] of Object.entries(disks))
    for (const breakage of ["read-only", "full"] as const) {
      it(`${breakage} state directory mid-run (${kind}): keeps restarting VMs and says it cannot persist`, async (t) => {
        const row = await startRow([spotVm("first"), spotVm("second", { powerState: "running" })], {
          startSeconds: 0.3,
        });
        const scratch = await scratchDisk(disk, row, t);
        if (!scratch) return;
        try {
          const runtime = await spawnRuntime(row, ["run"], { wrap: (argv) => scratch.wrap(argv) });
          await row.waitForVm("first", "running", 60_000);
          await sleep(1_500);
          scratch.break(runtime.child.pid as number, breakage);
          const brokenAt = Date.now();
          await row.control.evict(resourceGroup, "second");
          await row.waitForVm("second", "running", 60_000);
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
            `state-dir-${breakage}-${kind}`,
            `VM restarted ${restartedMs} ms after the disk broke; ${saveFailures.length} state-save-failed lines in ${Math.round((Date.now() - brokenAt) / 1000)} s`,
          );
        } finally {
          scratch.release();
          await row.close();
        }
      });
    }
});
