// The log as an event sink: each RestarterEvent becomes one log line, at the level below, under the
// event name the log has always used (`deallocated-vm-seen`, `started`, `token-unavailable`, …: the
// demo, the soak run and operators' journald filters read them), with the event's fields as
// metadata and `describeEvent`'s sentence as the message.

import type { EventSink, RestarterEvent, RestarterEventType } from "../core/events";
import { describeEvent } from "./events";
import type { Logger, LogLevel, LogMeta } from "./log";

/**
 * Level and log name of each event type; `null` = not logged (per-poll data for metrics). A new event
 * type does not compile until it has its entry here.
 */
const lines: Record<RestarterEventType, { level: LogLevel; name?: string } | null> = {
  // Decided by the cause gate; a start after the bounded wait with no cause is a warning (below).
  "vm-evicted": { level: "info" },
  // Seen deallocated; whether Azure evicted it is asked next (causeGate.ts), so not "evicted" yet.
  "vm-deallocated": { level: "info", name: "deallocated-vm-seen" },
  "cause-pending": { level: "info", name: "cause-unknown" },
  "cause-known": { level: "info" },
  "cause-signal-failed": { level: "warn" },
  "cause-signal-back": { level: "info" },
  "pauses-unreadable": { level: "warn" },
  "vm-restarted": { level: "info", name: "started" },
  "vm-restart-failing": { level: "warn" },
  "vm-fallback-size": { level: "info" },
  "vm-size-restored": { level: "info" },
  "vm-resize-skipped": { level: "warn" },
  "vm-left-alone": { level: "info" },
  "auth-failing": { level: "warn", name: "token-unavailable" },
  "permission-missing": { level: "error" },
  "permission-restored": { level: "info" },
  "certificate-expiring": { level: "warn", name: "certificate-expires-soon" },
  "start-attempt-ended": { level: "debug", name: "start-ended" },
  "vm-observed": null,
  "cycle-finished": { level: "debug", name: "cycle-done" },
  "start-issued": { level: "info" },
  "start-accepted": { level: "debug" },
  "would-start": { level: "info" },
  "vm-running": { level: "info" },
  "power-state-changed": { level: "info" },
  "vm-forgotten": { level: "info" },
  "provisioning-busy": { level: "info" },
  "start-failed": { level: "warn" },
  "start-interrupted": { level: "info" },
  "start-conflict": { level: "info" },
  "start-timeout": { level: "warn" },
  "token-refused": { level: "error" },
  "token-available": { level: "info" },
  throttled: { level: "warn" },
  "cycle-skipped": { level: "debug" },
  "discovery-fallback": { level: "warn" },
  "discovery-disagreement": { level: "warn" },
  "cycle-failed": { level: "error" },
  "read-failed": { level: "warn" },
  "resource-group-missing": { level: "error" },
  "weekly-report": { level: "debug" },
  "resource-group-found": { level: "info" },
  "state-new": { level: "info" },
  "state-rebuilt": { level: "warn" },
  "state-saved": { level: "info" },
  "state-save-failed": { level: "error" },
};

/** Fields holding a time (ms since epoch): rendered as ISO 8601. */
const timeFields = new Set([
  "until",
  "backoffUntil",
  "occurredAt",
  "expiresAt",
  "nextAttemptAt",
  "downSince",
]);
/** Fields that are the message itself (already in the sentence). */
const sentenceFields = new Set(["type", "at", "message", "detail", "why", "label"]);

export function logLine(event: RestarterEvent): { level: LogLevel; name: string; meta: LogMeta } | undefined {
  const line = lines[event.type];
  if (!line) return undefined;
  // The command's error handler prints it (once); a notification still goes out.
  if (event.type === "auth-failing" && event.ending) return undefined;
  // A few lines keep the names and levels they had before events existed.
  let { level, name = event.type } = line;
  if (event.type === "start-failed" && event.outcome === "price") name = "start-failed-price";
  if (event.type === "vm-evicted" && event.cause === "unknown") {
    level = "warn";
    name = "cause-unknown-starting";
  }
  // A missing eviction-cause permission degrades (causeGate.ts); only a missing start/read permission is fatal.
  if (event.type === "permission-missing" && event.signal !== undefined) level = "warn";
  if (event.type === "power-state-changed" && event.state === "running") {
    level = "debug";
    name = "power-state";
  }
  const meta: LogMeta = {};
  const fields = event as unknown as Record<string, unknown>;
  // Metadata first: the VM as `resourceGroup/name`, as every line has shown it.
  if (typeof fields.vm === "string" && typeof fields.resourceGroup === "string") {
    meta.vm = `${fields.resourceGroup}/${fields.vm}`;
  }
  for (const [key, value] of Object.entries(fields)) {
    if (sentenceFields.has(key) || key in meta || (key === "resourceGroup" && meta.vm !== undefined))
      continue;
    if (typeof value === "number" && timeFields.has(key)) meta[key] = new Date(value).toISOString();
    else if (typeof value === "number" && key.endsWith("Seconds")) meta[key] = Math.round(value * 10) / 10;
    else if (["string", "number", "boolean"].includes(typeof value)) meta[key] = value as string;
  }
  return { level, name, meta };
}

/** A sink writing each event to `log` as one line. */
export function logSink(log: Logger): EventSink {
  return (event) => {
    const line = logLine(event);
    if (line) log[line.level](line.name, line.meta, describeEvent(event));
  };
}
