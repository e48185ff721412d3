// The eviction history as a sink of the event bus: each event that changes what a VM went through
// becomes a record appended to stateDir/history.jsonl (state/history.ts), and is folded as it comes
// (state/historyFold.ts) for the status page and the downtime metric. `once` and `run` both record.

import type { EventSink, RestarterEvent, VmRef } from "../core/events";
import { HistoryWriter, readHistory } from "../state/history";
import { HistoryFolder, type Outage } from "../state/historyFold";
import type { HistoryRecord, NewHistoryRecord } from "../state/historyRecords";
import type { Logger } from "./log";

/** The record an event adds to the history, if any (the rest is log-only or already told). */
export function historyRecordFor(event: RestarterEvent): NewHistoryRecord | undefined {
  if (!("vm" in event) || event.vm === undefined || event.resourceGroup === undefined) return undefined;
  const vm = { at: event.at, resourceGroup: event.resourceGroup, vm: event.vm };
  switch (event.type) {
    case "vm-deallocated":
      return { ...vm, kind: "power", powerState: "deallocated", ...(event.was ? { was: event.was } : {}) };
    case "power-state-changed":
      return event.state
        ? { ...vm, kind: "power", powerState: event.state, ...(event.was ? { was: event.was } : {}) }
        : undefined;
    case "vm-running":
      return { ...vm, kind: "power", powerState: "running", ...(event.was ? { was: event.was } : {}) };
    case "vm-restarted":
      return { ...vm, kind: "power", powerState: "running", was: "deallocated", by: "start" };
    case "vm-evicted":
      return {
        ...vm,
        kind: "cause",
        cause: event.cause,
        ...(event.source ? { source: event.source } : {}),
        ...(event.occurredAt !== undefined ? { occurredAt: event.occurredAt } : {}),
        ...(event.knownAfterSeconds !== undefined ? { knownAfterSeconds: event.knownAfterSeconds } : {}),
      };
    case "vm-left-alone":
      if (event.reason === "owner-deallocated") {
        return {
          ...vm,
          kind: "cause",
          cause: "owner",
          ...(event.source ? { source: event.source } : {}),
          ...(event.occurredAt !== undefined ? { occurredAt: event.occurredAt } : {}),
          ...(event.by ? { by: event.by } : {}),
          ...(event.knownAfterSeconds !== undefined ? { knownAfterSeconds: event.knownAfterSeconds } : {}),
        };
      }
      return {
        ...vm,
        kind: "left-alone",
        reason: event.reason,
        ...(event.until !== undefined ? { until: event.until } : {}),
      };
    case "start-issued":
      return { ...vm, kind: "start-requested", attempt: event.attempt };
    case "start-attempt-ended":
      return {
        ...vm,
        kind: "start-ended",
        result: event.result,
        ...(event.code ? { code: event.code } : {}),
      };
    case "vm-fallback-size":
      return { ...vm, kind: "size", from: event.fromSize, to: event.toSize, fallback: true };
    case "vm-size-restored":
      return { ...vm, kind: "size", from: event.fromSize, to: event.toSize, fallback: false };
    default:
      return undefined;
  }
}

export interface HistoryRecorder {
  readonly sink: EventSink;
  /** The history so far, folded (the status page's timelines and figures). */
  readonly folder: HistoryFolder;
  /** Called when a VM runs again after an eviction, with that outage (the downtime metric). */
  onOutageEnded(listener: (vm: VmRef, outage: Outage) => void): void;
  /** Resolves when every record so far is written (or its write failed). */
  settled(): Promise<void>;
}

/** Reads the history (skipping, and reporting, lines it cannot read) and returns the sink that extends it. */
export async function openHistoryRecorder(options: {
  readonly stateDir: string;
  readonly historyDays: number;
  readonly log: Logger;
  readonly now?: () => number;
}): Promise<HistoryRecorder> {
  const { log } = options;
  const now = options.now ?? Date.now;
  const loaded = await readHistory(options.stateDir).catch((error: unknown) => ({
    records: [],
    skipped: [],
    problem: `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
  }));
  if (loaded.problem) {
    log.warn("history-unreadable", { stateDir: options.stateDir }, `eviction history: ${loaded.problem}`);
  }
  reportSkippedLines(loaded.skipped, log);
  const folder = new HistoryFolder(loaded.records);
  const writer = new HistoryWriter({
    stateDir: options.stateDir,
    historyDays: options.historyDays,
    now,
    warn: (code, message) => log.warn(code, { path: writer.path }, message),
  });
  const listeners: Array<(vm: VmRef, outage: Outage) => void> = [];
  return {
    folder,
    sink(event) {
      const record = historyRecordFor(event);
      if (!record) return;
      const closed = folder.add({ v: 1, ...record } as HistoryRecord);
      void writer.append([record]);
      if (closed) {
        for (const listener of listeners)
          listener({ resourceGroup: record.resourceGroup, vm: record.vm }, closed);
      }
    },
    onOutageEnded: (listener) => listeners.push(listener),
    settled: () => writer.settled(),
  };
}

/** One warning for the lines of the history that could not be read: how many, and the first. */
export function reportSkippedLines(
  skipped: ReadonlyArray<{ line: number; problem: string }>,
  log: Pick<Logger, "warn">,
): void {
  const first = skipped[0];
  if (!first) return;
  log.warn(
    "history-line-skipped",
    { lines: skipped.length, firstLine: first.line },
    `skipped ${skipped.length} unreadable line(s) of the eviction history (line ${first.line}: ${first.problem}); the rest is used`,
  );
}
