// The eviction history file (stateDir/history.jsonl): append-only JSON lines (historyRecords.ts), kept
// to `historyDays`. Written by the state store's rules (state.ts): the directory private (created 0700,
// refused when another user could write it), the file 0600 from creation and never opened through a
// symlink; pruning rewrites it atomically (temp file, fsync, rename), so a crash leaves the old history
// or the new one. A line that cannot be read (a crash in the middle of an append, a hand edit) is
// skipped and reported; it never stops the loop.
import { constants } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { checkPrivateDirectory } from "./fsSafe";
import { carriedRecords } from "./historyFold";
import {
  type HistoryRecord,
  historyFileName,
  historyLine,
  type NewHistoryRecord,
  parseHistoryLine,
} from "./historyRecords";
import { readStateDirFile, writeFileAtomically } from "./state";

export interface SkippedLine {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly problem: string;
}

export interface LoadedHistory {
  readonly records: HistoryRecord[];
  readonly skipped: SkippedLine[];
  /** Set when the file could not be read at all (an untrusted directory, a symlink): no records. */
  readonly problem?: string;
}

/** Reads the history; a missing file is an empty history. */
export async function readHistory(stateDir: string): Promise<LoadedHistory> {
  const path = join(stateDir, historyFileName);
  const untrusted = await checkPrivateDirectory(stateDir, "read");
  if (untrusted) return { records: [], skipped: [], problem: untrusted };
  let text: string;
  try {
    text = await readStateDirFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { records: [], skipped: [] };
    if (code === "ELOOP") return { records: [], skipped: [], problem: `${path} is a symbolic link` };
    throw error;
  }
  return parseHistoryText(text);
}

export function parseHistoryText(text: string): LoadedHistory {
  const records: HistoryRecord[] = [];
  const skipped: SkippedLine[] = [];
  const lines = text.split("\n");
  lines.forEach((line, index) => {
    if (line.trim() === "") return;
    const parsed = parseHistoryLine(line);
    if ("record" in parsed) records.push(parsed.record);
    else skipped.push({ line: index + 1, problem: parsed.problem });
  });
  // Appends come in time order, but a clock step back must not reorder what the report folds.
  records.sort((a, b) => a.at - b.at);
  return { records, skipped };
}

export interface HistoryWriterOptions {
  readonly stateDir: string;
  /** Records older than this many days are pruned. */
  readonly historyDays: number;
  readonly now: () => number;
  /** A line skipped, a write failing, a prune: told once per kind of trouble, never thrown. */
  readonly warn: (code: string, message: string) => void;
}

/** How often at most the file is read back to prune it (a day's records are few: cheap). */
const PRUNE_EVERY_MS = 3_600_000;

/**
 * Appends records to the history, one append at a time, and prunes it past `historyDays` as it goes (on
 * the first append, then at most hourly). A failing write is reported once per kind of failure and when
 * it works again; the records of a failed append are dropped, never retried into a loop.
 */
export class HistoryWriter {
  private queue: Promise<void> = Promise.resolve();
  private lastPrune: number | undefined;
  private trouble: string | undefined;
  /** The file does not end with a newline (a crash mid-append): the next append starts a new line. */
  private checkedTail = false;

  constructor(private readonly options: HistoryWriterOptions) {}

  get path(): string {
    return join(this.options.stateDir, historyFileName);
  }

  /** Queues records for the file; resolves once they are written (or their write failed). */
  append(records: readonly NewHistoryRecord[]): Promise<void> {
    if (records.length === 0) return this.queue;
    const text = records.map(historyLine).join("");
    this.queue = this.queue.then(() => this.write(text));
    return this.queue;
  }

  /** Resolves when every append asked for so far has ended. */
  settled(): Promise<void> {
    return this.queue;
  }

  private async write(text: string): Promise<void> {
    const { stateDir, now, warn } = this.options;
    try {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const untrusted = await checkPrivateDirectory(stateDir, "write");
      if (untrusted) throw Object.assign(new Error(untrusted), { code: "EUNTRUSTEDSTATEDIR" });
      if (this.lastPrune === undefined || now() - this.lastPrune >= PRUNE_EVERY_MS) {
        await this.prune();
        this.lastPrune = now();
      }
      const handle = await open(
        this.path,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        let prefix = "";
        if (!this.checkedTail) {
          const { size } = await handle.stat();
          if (size > 0) {
            const last = Buffer.alloc(1);
            const reader = await open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
            try {
              await reader.read(last, 0, 1, size - 1);
            } finally {
              await reader.close();
            }
            if (last.toString() !== "\n") prefix = "\n";
          }
          this.checkedTail = true;
        }
        await handle.appendFile(prefix + text);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      if (this.trouble !== undefined) {
        this.trouble = undefined;
        warn("history-written", `the eviction history ${this.path} can be written again`);
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "error";
      if (code === this.trouble) return;
      this.trouble = code;
      warn(
        "history-write-failed",
        `cannot append to the eviction history ${this.path} (${code}: ${(error as Error).message}); restarting VMs goes on, these records are lost`,
      );
    }
  }

  /** Drops records older than historyDays, keeping for each VM a `carried` record of what they told. */
  private async prune(): Promise<void> {
    const { stateDir, historyDays, now, warn } = this.options;
    const loaded = await readHistory(stateDir);
    if (loaded.problem) throw Object.assign(new Error(loaded.problem), { code: "EUNTRUSTEDHISTORY" });
    const cutoff = now() - historyDays * 86_400_000;
    const first = loaded.records[0];
    if (!first || (first.at >= cutoff && loaded.skipped.length === 0)) return;
    const older = loaded.records.filter((record) => record.at < cutoff);
    const kept = loaded.records.filter((record) => record.at >= cutoff);
    const text = [...carriedRecords(older, cutoff), ...kept].map(historyLine).join("");
    await writeFileAtomically(this.path, text, 0o600);
    this.checkedTail = false;
    if (loaded.skipped.length > 0) {
      warn(
        "history-lines-dropped",
        `dropped ${loaded.skipped.length} unreadable line(s) of ${this.path} while pruning it (first: line ${loaded.skipped[0]?.line}, ${loaded.skipped[0]?.problem})`,
      );
    }
  }
}
