// The eviction history's record types: one JSON line per record in stateDir/history.jsonl. Every
// kind is one member of the discriminated union below (`kind` tells them apart); a new kind is a new
// member here, and the readers (historyFold.ts) ignore kinds they do not fold. Times are written as
// RFC 3339 strings (the file is for people too) and read back as milliseconds since the epoch.
import { z } from "zod";
import { printablePath } from "../core/text";

export const historyFileName = "history.jsonl";
export const HISTORY_DAYS = 90;

const time = z.iso.datetime({ offset: true }).transform((text) => Date.parse(text));

const base = {
  v: z.literal(1),
  at: time,
  resourceGroup: z.string().min(1),
  vm: z.string().min(1),
};

/** Where a deallocation's cause was read (cause.ts); open to new signals. */
const source = z.string().max(64);

export const historyRecordSchema = z.discriminatedUnion("kind", [
  /** The power state observed changed (a VM's first record is one): `running`, `deallocated`, … */
  z.object({
    ...base,
    kind: z.literal("power"),
    powerState: z.string().max(32),
    was: z.string().max(32).optional(),
    /** `start`: a start of ours ended Succeeded; absent: seen in the instance view. */
    by: z.literal("start").optional(),
  }),
  /**
   * Why the current deallocation happened: `evicted` (Azure says so), `unknown` (nothing said why and it was
   * started as if evicted), `deallocated` (restartWhen "deallocated"), `owner` (its owner's stop).
   */
  z.object({
    ...base,
    kind: z.literal("cause"),
    cause: z.enum(["evicted", "unknown", "deallocated", "owner"]),
    source: source.optional(),
    /** When Azure says it happened. */
    occurredAt: time.optional(),
    by: z.string().max(256).optional(),
    /** From the deallocation first seen until Azure said why (seconds), when the runtime learnt it by asking (issue 31). */
    knownAfterSeconds: z.number().nonnegative().optional(),
  }),
  /** A deallocated VM left alone for another reason than its owner's stop. */
  z.object({
    ...base,
    kind: z.literal("left-alone"),
    reason: z.enum(["paused", "hibernated", "conflict"]),
    until: time.optional(),
  }),
  z.object({ ...base, kind: z.literal("start-requested"), attempt: z.number().int().min(1) }),
  z.object({
    ...base,
    kind: z.literal("start-ended"),
    result: z.enum(["succeeded", "failed", "throttled", "interrupted"]),
    code: z.string().max(128).optional(),
  }),
  /** A resize before a start: to a fallback size (`fallback: true`) or back to its own. */
  z.object({
    ...base,
    kind: z.literal("size"),
    from: z.string().max(64),
    to: z.string().max(64),
    fallback: z.boolean(),
  }),
  /**
   * Written when older records are pruned (historyDays): what they told about the VM as of `at`, so a
   * window that starts after the cut still knows whether the VM was up, and since when.
   */
  z.object({
    ...base,
    kind: z.literal("carried"),
    firstSeenAt: time,
    phase: z.enum(["running", "evicted", "owner", "paused", "down"]),
    /** When the phase began (before `at` for an outage that spans the cut). */
    phaseSince: time,
    /** In a fallback size since this time (absent: its own size). */
    fallbackSince: time.optional(),
  }),
]);

/** One record as read back (times in ms since the epoch). */
export type HistoryRecord = z.output<typeof historyRecordSchema>;
export type HistoryRecordKind = HistoryRecord["kind"];
/** A record to append (the version is the writer's). */
export type NewHistoryRecord = HistoryRecord extends infer R
  ? R extends unknown
    ? Omit<R, "v">
    : never
  : never;

const timeFields = new Set(["at", "occurredAt", "until", "firstSeenAt", "phaseSince", "fallbackSince"]);

/** One record as a line of the file: times as RFC 3339, `v` first, then the kind. */
export function historyLine(record: NewHistoryRecord | HistoryRecord): string {
  const out: Record<string, unknown> = { v: 1 };
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined || key === "v") continue;
    out[key] = timeFields.has(key) && typeof value === "number" ? new Date(value).toISOString() : value;
  }
  return `${JSON.stringify(out)}\n`;
}

/** A line of the file back into a record; a reason (no line content: the file is not ours to echo) when it is not one. */
export function parseHistoryLine(line: string): { record: HistoryRecord } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { problem: "not valid JSON" };
  }
  const parsed = historyRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      problem: `not a history record (${issue ? printablePath(issue.path as (string | number)[]) || "top level" : "top level"}: ${issue?.message})`,
    };
  }
  return { record: parsed.data };
}
