// Account-wide alarms (certificate expiring, authentication failing, a permission missing) are
// decided again by every `once` that cron starts each minute: this gate, kept in the state
// directory, lets each through at most once per interval, across processes.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { RestarterEvent } from "../../core/events";

/** Minimum time between two messages of the same kind. */
export const repeatIntervalsMs: Partial<Record<RestarterEvent["type"], number>> = {
  "certificate-expiring": 24 * 3600_000,
  "auth-failing": 3600_000,
  "permission-missing": 3600_000,
  // Under cron every `once` finds the group missing again: one message an hour per group.
  "resource-group-missing": 3600_000,
  // One digest a week, however often `run` restarts.
  "weekly-report": 7 * 24 * 3600_000,
};

const gateFile = "notifications.json";

function keyOf(event: RestarterEvent): string | undefined {
  if (!(event.type in repeatIntervalsMs)) return undefined;
  if (event.type === "permission-missing") return `${event.type}:${event.action}`;
  if (event.type === "resource-group-missing") return `${event.type}:${event.resourceGroup.toLowerCase()}`;
  return event.type;
}

/**
 * Returns the filter: true = send. Without a state directory (or when it cannot be written) the gate
 * works from memory for this process only; it never throws.
 */
export function createRepeatGate(stateDir: string | undefined): (event: RestarterEvent) => boolean {
  const path = stateDir ? join(stateDir, gateFile) : undefined;
  let sent: Record<string, number> = {};
  if (path) {
    try {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
      if (parsed && typeof parsed === "object") {
        sent = Object.fromEntries(
          Object.entries(parsed).filter((entry): entry is [string, number] => typeof entry[1] === "number"),
        );
      }
    } catch {
      // Missing or unreadable: nothing sent yet, as far as we know.
    }
  }
  return (event) => {
    const key = keyOf(event);
    if (key === undefined) return true;
    const interval = repeatIntervalsMs[event.type] ?? 0;
    const last = sent[key];
    if (last !== undefined && event.at - last < interval && event.at >= last) return false;
    sent[key] = event.at;
    if (path) {
      try {
        // A `once` that fails to sign in runs before the state store created the directory.
        if (stateDir) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
        writeGateFile(path, JSON.stringify(sent));
      } catch {
        // A read-only state directory: the in-memory gate still holds for this process.
      }
    }
    return true;
  };
}

/**
 * The gate's file, replaced atomically as the state store's writer does (state/state.ts
 * writeFileAtomically), but synchronously: the gate answers at once. The temporary name is random and
 * created exclusively, never through a symlink: a fixed `.<pid>.tmp` name let a local user plant a link
 * there and have the runtime (root, under systemd's layout) write through it.
 */
function writeGateFile(path: string, text: string): void {
  const temporary = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fd = openSync(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
