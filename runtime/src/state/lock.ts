// One instance at a time per stateDir. proper-lockfile takes the lock with an atomic mkdir and
// keeps refreshing its mtime; a holder that dies (even SIGKILL) stops refreshing, and after
// `staleMs` the next process may take the lock over, so a crash never blocks restarts for long.
// It is released on normal exit and on SIGTERM/SIGINT (cli.ts turns those into a clean exit).
import { accessSync, constants } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import lockfile from "proper-lockfile";
import { readStateDirFile, writeStateDirFile } from "./state";

export const lockFileName = "spot-restarter.lock";
/**
 * Who holds the lock and since when, beside it (the lock is a directory proper-lockfile removes with
 * rmdir, so nothing may go inside): the message of a second instance names the holder (issue 23, item 4).
 */
export const lockOwnerFileName = "lock-owner.json";

export interface LockOwner {
  readonly pid: number;
  /** ms since epoch, when it took the lock. */
  readonly since: number;
}

/** The holder as it recorded itself; undefined when unknown (no file, not ours to read, not one). */
export async function readLockOwner(stateDir: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(
      await readStateDirFile(join(stateDir, lockOwnerFileName)),
    ) as Partial<LockOwner>;
    if (Number.isSafeInteger(parsed.pid) && Number.isFinite(parsed.since)) {
      return { pid: parsed.pid as number, since: parsed.since as number };
    }
  } catch {
    // unknown holder
  }
  return undefined;
}

/** `another spot-restarter (pid 1234, holding it for 3 min) holds the lock in DIR`. */
export function describeLockHolder(stateDir: string, owner: LockOwner | undefined, now: number): string {
  if (!owner) return `another spot-restarter holds the lock in ${stateDir}`;
  const seconds = Math.max(0, Math.round((now - owner.since) / 1000));
  const held =
    seconds < 120
      ? `${seconds} s`
      : seconds < 7200
        ? `${Math.round(seconds / 60)} min`
        : `${(seconds / 3600).toFixed(1)} h`;
  return `another spot-restarter (pid ${owner.pid}, holding it for ${held}) holds the lock in ${stateDir}`;
}

const unwritableCodes = new Set(["EROFS", "EACCES", "EPERM", "ENOSPC", "EDQUOT"]);

/** The state directory cannot be written (read-only, full, no permission): not a reason to stop. */
export function isUnwritableError(error: unknown): error is NodeJS.ErrnoException {
  return unwritableCodes.has((error as NodeJS.ErrnoException)?.code ?? "");
}

/** Whether the state directory can be written right now. */
export function isWritable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export interface HeldLock {
  release(): Promise<void>;
}

export interface LockOptions {
  /** A lock not refreshed for this long is considered abandoned. */
  staleMs?: number;
  /** Called if the lock was taken from us (e.g. the host was suspended past staleMs). */
  onCompromised?: (error: Error) => void;
}

/** Takes the lock, or returns undefined when another live process holds it. */
export async function tryAcquireLock(
  stateDir: string,
  options: LockOptions = {},
): Promise<HeldLock | undefined> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  try {
    const release = await lockfile.lock(stateDir, {
      lockfilePath: join(stateDir, lockFileName),
      realpath: false,
      retries: 0,
      stale: options.staleMs ?? 10_000,
      onCompromised: options.onCompromised ?? (() => {}),
    });
    // Best effort: a state directory that cannot be written still lets the loop run (azureCommands.ts).
    await writeStateDirFile(
      stateDir,
      lockOwnerFileName,
      `${JSON.stringify({ pid: process.pid, since: Date.now() })}\n`,
    ).catch(() => {});
    let released = false;
    return {
      async release() {
        if (released) return;
        released = true;
        // Removed while the lock is still ours, so it never names the next holder wrongly.
        await rm(join(stateDir, lockOwnerFileName), { force: true }).catch(() => {});
        await release().catch(() => {});
      },
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOCKED") return undefined;
    throw error;
  }
}
