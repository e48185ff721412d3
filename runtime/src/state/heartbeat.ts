// Liveness (issue 23, item 4): each cycle of `once` or `run` records a heartbeat in the state directory
// (`heartbeat.json`: when, which mode, which process, which version), so `status` can say "last cycle
// 25 s ago (run, pid 1234)" and warn when no cycle ran for 3 intervals: nothing else shows that the loop
// is alive (`once` prints nothing when there is nothing to do). Written like state.json (atomic, 0600,
// only into a trusted directory) and read under the same trust rules.
import { join } from "node:path";
import { z } from "zod";
import type { EventSink } from "../core/events";
import { checkPrivateDirectory } from "./fsSafe";
import { readStateDirFile, writeStateDirFile } from "./state";

export const heartbeatFileName = "heartbeat.json";

/**
 * How often `once` runs when cron runs it: the installed cron line runs it every minute
 * (install/layout.ts). A heartbeat of `once` is stale after 3 of these (or 3 intervalSeconds, if longer).
 */
export const CRON_PERIOD_SECONDS = 60;

/** How many intervals without a cycle make `status` warn. */
export const STALE_INTERVALS = 3;

const heartbeatSchema = z.object({
  version: z.literal(1),
  /** ms since epoch, when the cycle ended. */
  at: z.number().finite(),
  mode: z.enum(["run", "once"]),
  pid: z.number().int().positive(),
  /** spot-restarter's version. */
  runtimeVersion: z.string().max(40),
  /** The loop's intervalSeconds (run), so a reader knows when a cycle is overdue. */
  intervalSeconds: z.number().positive(),
});
export type Heartbeat = Omit<z.output<typeof heartbeatSchema>, "version">;

export function writeHeartbeat(stateDir: string, beat: Heartbeat): Promise<void> {
  return writeStateDirFile(stateDir, heartbeatFileName, `${JSON.stringify({ version: 1, ...beat })}\n`);
}

/**
 * A sink of the event bus: each cycle's end (`cycle-finished`, or `cycle-skipped` while ARM's Retry-After
 * runs: the loop is alive) writes the heartbeat, one write at a time and never failing the loop (a state
 * directory that cannot be written is already reported by the state file's saver).
 */
export function heartbeatRecorder(
  stateDir: string,
  fields: Omit<Heartbeat, "at">,
): { sink: EventSink; settled(): Promise<void> } {
  let writing: Promise<void> = Promise.resolve();
  return {
    sink(event) {
      if (event.type !== "cycle-finished" && event.type !== "cycle-skipped") return;
      const beat = { ...fields, at: event.at };
      writing = writing.then(() => writeHeartbeat(stateDir, beat)).catch(() => {});
    },
    settled: () => writing,
  };
}

/** The last heartbeat; undefined when none was written (or the file is not one, or the directory is untrusted). */
export async function readHeartbeat(stateDir: string): Promise<Heartbeat | undefined> {
  if (await checkPrivateDirectory(stateDir, "read")) return undefined;
  let text: string;
  try {
    text = await readStateDirFile(join(stateDir, heartbeatFileName));
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = heartbeatSchema.safeParse(json);
  if (!parsed.success) return undefined;
  const { version: _, ...beat } = parsed.data;
  return beat;
}

/** The heartbeat as `status --json` shows it (top level `heartbeat`). */
export interface HeartbeatReport {
  /** RFC 3339: when the last cycle ended; null when no cycle was recorded. */
  readonly lastCycleAt: string | null;
  readonly mode: "run" | "once" | null;
  readonly pid: number | null;
  readonly version: string | null;
  readonly ageSeconds: number | null;
  /** No cycle for STALE_INTERVALS intervals (or none recorded): is the service or cron job running? */
  readonly stale: boolean;
  /** The seconds after which it counts as stale. */
  readonly staleAfterSeconds: number;
}

export function heartbeatReport(
  beat: Heartbeat | undefined,
  now: number,
  intervalSeconds: number,
): HeartbeatReport {
  const period = Math.max(
    beat?.intervalSeconds ?? intervalSeconds,
    beat?.mode === "run" ? 0 : CRON_PERIOD_SECONDS,
  );
  const staleAfterSeconds = STALE_INTERVALS * period;
  if (!beat) {
    return {
      lastCycleAt: null,
      mode: null,
      pid: null,
      version: null,
      ageSeconds: null,
      stale: true,
      staleAfterSeconds,
    };
  }
  const ageSeconds = Math.max(0, Math.round((now - beat.at) / 1000));
  return {
    lastCycleAt: new Date(beat.at).toISOString(),
    mode: beat.mode,
    pid: beat.pid,
    version: beat.runtimeVersion,
    ageSeconds,
    stale: ageSeconds > staleAfterSeconds,
    staleAfterSeconds,
  };
}

/** `last cycle 25 s ago (run, pid 1234)`, and the warning when overdue; lines for the status table. */
export function describeHeartbeat(report: HeartbeatReport): string[] {
  if (report.lastCycleAt === null) {
    return [
      "last cycle: none recorded in the state directory",
      "warning: no cycle of once or run has been recorded: is the service (systemctl status spot-restarter) or the cron job (/etc/cron.d/spot-restarter) installed and running?",
    ];
  }
  const lines = [
    `last cycle ${ago(report.ageSeconds ?? 0)} ago (${report.mode}, pid ${report.pid}) at ${report.lastCycleAt}`,
  ];
  if (report.stale) {
    lines.push(
      `warning: no cycle for ${ago(report.ageSeconds ?? 0)} (over ${STALE_INTERVALS} intervals, ${report.staleAfterSeconds} s): is the service (systemctl status spot-restarter) or the cron job running? journalctl -u spot-restarter says why it stopped`,
    );
  }
  return lines;
}

function ago(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
