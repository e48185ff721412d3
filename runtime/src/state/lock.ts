// One instance at a time per stateDir. proper-lockfile takes the lock with an atomic mkdir and
// keeps refreshing its mtime; a holder that dies (even SIGKILL) stops refreshing, and after
// `staleMs` the next process may take the lock over, so a crash never blocks restarts for long.
// It is released on normal exit and on SIGTERM/SIGINT (cli.ts turns those into a clean exit).
import { accessSync, constants } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import lockfile from "proper-lockfile";

export const lockFileName = "spot-restarter.lock";

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
    let released = false;
    return {
      async release() {
        if (released) return;
        released = true;
        await release().catch(() => {});
      },
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOCKED") return undefined;
    throw error;
  }
}
