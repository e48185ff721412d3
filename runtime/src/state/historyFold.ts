// The eviction history folded into what `report`, the status page and the downtime metric show: per VM,
// a timeline of phases (running / evicted and waiting / owner-stopped / paused / down for another or a
// not yet known reason), its eviction outages, owner stops and start requests. Pure functions over the
// records (historyRecords.ts), so every reader counts the same way.
import type { HistoryRecord } from "./historyRecords";

export type Phase = "running" | "evicted" | "owner" | "paused" | "down";

export interface PhaseSegment {
  readonly from: number;
  readonly to: number;
  readonly phase: Phase;
}

/** Down after an eviction: from the eviction (Azure's time when it said, else first seen) until running again. */
export interface Outage {
  readonly from: number;
  readonly to: number;
  /** Still down at the end of the fold. */
  readonly ongoing: boolean;
}

export interface VmTimeline {
  readonly resourceGroup: string;
  readonly name: string;
  readonly firstSeenAt: number;
  readonly segments: PhaseSegment[];
  readonly outages: Outage[];
  /** When each eviction began (one per deallocation that was started as evicted). */
  readonly evictions: number[];
  /** When each deallocation its owner made began. */
  readonly ownerStops: number[];
  readonly startRequests: number[];
  /** Periods in a fallback size (`fallbackSizes`). */
  readonly fallback: Array<{ from: number; to: number }>;
}

export const timelineKey = (resourceGroup: string, name: string) =>
  `${resourceGroup.toLowerCase()}/${name.toLowerCase()}`;

interface DownPeriod {
  start: number;
  /** Index in `points` of the phase change that began it. */
  startIndex: number;
  kind?: "evicted" | "owner";
  /** Set once an eviction cause is known: where its outage begins. */
  evictedFrom?: number;
}

const evictionCauses: ReadonlySet<string> = new Set(["evicted", "unknown", "deallocated"]);

/** One VM's fold, fed its records in time order. */
class VmFold {
  readonly points: Array<{ at: number; phase: Phase }> = [];
  readonly outages: Outage[] = [];
  readonly evictions: number[] = [];
  readonly ownerStops: number[] = [];
  readonly startRequests: number[] = [];
  readonly fallback: Array<{ from: number; to: number }> = [];
  fallbackSince: number | undefined;
  down: DownPeriod | undefined;
  readonly firstSeenAt: number;

  constructor(
    readonly resourceGroup: string,
    readonly name: string,
    first: HistoryRecord,
  ) {
    this.firstSeenAt = first.kind === "carried" ? first.firstSeenAt : first.at;
  }

  private setPhase(at: number, phase: Phase): void {
    const last = this.points.at(-1);
    if (last?.phase === phase) return;
    this.points.push({ at: Math.max(at, last?.at ?? at), phase });
  }

  get phase(): Phase | undefined {
    return this.points.at(-1)?.phase;
  }

  private beginDown(at: number): void {
    if (this.down) return;
    this.setPhase(at, "down");
    this.down = { start: at, startIndex: this.points.length - 1 };
  }

  private endDown(at: number): void {
    const down = this.down;
    if (!down) return;
    if (down.evictedFrom !== undefined) {
      this.outages.push({ from: down.evictedFrom, to: Math.max(at, down.evictedFrom), ongoing: false });
    }
    this.down = undefined;
  }

  /** The first cause of a down period labels it from its start; a later, different one from its own time. */
  private cause(record: Extract<HistoryRecord, { kind: "cause" }>): void {
    if (!this.down) this.beginDown(record.at);
    const down = this.down as DownPeriod;
    const kind = evictionCauses.has(record.cause) ? "evicted" : "owner";
    if (down.kind === kind) return;
    if (down.kind === undefined) {
      // Azure's own time of the eviction, when it said, is earlier than our first sighting; never before
      // the VM was last known up (a stale annotation is about an earlier deallocation, cause.ts).
      const previous = this.points[down.startIndex - 1];
      if (record.occurredAt !== undefined && record.occurredAt < down.start) {
        const start = Math.max(record.occurredAt, previous?.at ?? this.firstSeenAt);
        const point = this.points[down.startIndex];
        if (point) point.at = start;
        down.start = start;
      }
      for (let i = down.startIndex; i < this.points.length; i++) {
        const point = this.points[i];
        if (point?.phase === "down") point.phase = kind;
      }
      this.mergePoints();
      down.kind = kind;
      if (kind === "evicted") down.evictedFrom = down.start;
      (kind === "evicted" ? this.evictions : this.ownerStops).push(down.start);
      // A pause that began before the cause was known stays a pause until the cause (the gate tells
      // an eviction only once it starts the VM, so once the pause is over).
      this.setPhase(record.at, kind);
      return;
    }
    down.kind = kind;
    if (kind === "evicted") down.evictedFrom ??= record.at;
    (kind === "evicted" ? this.evictions : this.ownerStops).push(record.at);
    this.setPhase(record.at, kind);
  }

  private mergePoints(): void {
    for (let i = this.points.length - 1; i > 0; i--) {
      if (this.points[i]?.phase === this.points[i - 1]?.phase) {
        this.points.splice(i, 1);
        if (this.down && this.down.startIndex >= i) this.down.startIndex -= 1;
      }
    }
  }

  add(record: HistoryRecord): void {
    switch (record.kind) {
      case "power":
        if (record.powerState === "running") {
          this.endDown(record.at);
          this.setPhase(record.at, "running");
        } else {
          this.beginDown(record.at);
        }
        break;
      case "cause":
        this.cause(record);
        break;
      case "left-alone":
        if (record.reason === "paused") {
          this.beginDown(record.at);
          this.setPhase(record.at, "paused");
        } else if (record.reason === "hibernated") {
          // A person hibernated it: the owner's stop.
          this.cause({ ...record, kind: "cause", cause: "owner" });
        }
        break;
      case "start-requested":
        this.startRequests.push(record.at);
        break;
      case "start-ended":
        break;
      case "size":
        if (record.fallback) this.fallbackSince ??= record.at;
        else if (this.fallbackSince !== undefined) {
          this.fallback.push({ from: this.fallbackSince, to: record.at });
          this.fallbackSince = undefined;
        }
        break;
      case "carried":
        this.setPhase(record.at, record.phase);
        this.fallbackSince = record.fallbackSince;
        if (record.phase !== "running") {
          this.down = {
            start: record.phaseSince,
            startIndex: this.points.length - 1,
            ...(record.phase === "evicted" || record.phase === "owner" ? { kind: record.phase } : {}),
            ...(record.phase === "evicted" ? { evictedFrom: record.phaseSince } : {}),
          };
        }
        break;
    }
  }

  finish(until: number): VmTimeline {
    const segments: PhaseSegment[] = [];
    this.points.forEach((point, index) => {
      const to = Math.min(this.points[index + 1]?.at ?? until, until);
      if (to > point.at) segments.push({ from: point.at, to, phase: point.phase });
    });
    const outages = [...this.outages];
    if (this.down?.evictedFrom !== undefined) {
      outages.push({
        from: this.down.evictedFrom,
        to: Math.max(until, this.down.evictedFrom),
        ongoing: true,
      });
    }
    const fallback = [...this.fallback];
    if (this.fallbackSince !== undefined) fallback.push({ from: this.fallbackSince, to: until });
    return {
      resourceGroup: this.resourceGroup,
      name: this.name,
      firstSeenAt: this.firstSeenAt,
      segments,
      outages,
      evictions: [...this.evictions],
      ownerStops: [...this.ownerStops],
      startRequests: [...this.startRequests],
      fallback,
    };
  }
}

function foldAll(records: readonly HistoryRecord[]): Map<string, VmFold> {
  const folds = new Map<string, VmFold>();
  for (const record of records) {
    const key = timelineKey(record.resourceGroup, record.vm);
    let fold = folds.get(key);
    if (!fold) {
      fold = new VmFold(record.resourceGroup, record.vm, record);
      folds.set(key, fold);
    }
    fold.add(record);
  }
  return folds;
}

/**
 * The history folded as it grows: `run` feeds it each record it appends, the status page and the
 * downtime metric read it. `add` returns the eviction outage a record closed, if any.
 */
export class HistoryFolder {
  private readonly folds: Map<string, VmFold>;

  constructor(records: readonly HistoryRecord[] = []) {
    this.folds = foldAll(records);
  }

  add(record: HistoryRecord): Outage | undefined {
    const key = timelineKey(record.resourceGroup, record.vm);
    let fold = this.folds.get(key);
    if (!fold) {
      fold = new VmFold(record.resourceGroup, record.vm, record);
      this.folds.set(key, fold);
    }
    const closed = fold.outages.length;
    fold.add(record);
    return fold.outages[closed];
  }

  timelines(until: number): VmTimeline[] {
    return [...this.folds.values()].map((fold) => fold.finish(until));
  }
}

/** Every VM's timeline from its records (in time order) up to `until`. */
export function foldHistory(records: readonly HistoryRecord[], until: number): VmTimeline[] {
  return [...foldAll(records.filter((record) => record.at <= until)).values()].map((fold) =>
    fold.finish(until),
  );
}

/** What the records before `cutoff` told about each VM, as one `carried` record per VM at `cutoff`. */
export function carriedRecords(
  older: readonly HistoryRecord[],
  cutoff: number,
): Array<Extract<HistoryRecord, { kind: "carried" }>> {
  return [...foldAll(older).values()].flatMap((fold) => {
    const phase = fold.phase;
    if (!phase) return [];
    const lastPoint = fold.points.at(-1);
    return [
      {
        v: 1 as const,
        kind: "carried" as const,
        at: cutoff,
        resourceGroup: fold.resourceGroup,
        vm: fold.name,
        firstSeenAt: fold.firstSeenAt,
        phase,
        phaseSince: fold.down?.evictedFrom ?? fold.down?.start ?? lastPoint?.at ?? cutoff,
        ...(fold.fallbackSince !== undefined ? { fallbackSince: fold.fallbackSince } : {}),
      },
    ];
  });
}

/** The report's figures for one VM over [since, until] (runtime/README.md "report"). */
export interface VmFigures {
  readonly evictions: number;
  readonly ownerStops: number;
  readonly downtimeSeconds: number;
  readonly longestOutageSeconds: number;
  readonly startRequests: number;
  /** Running time over the window since the VM was first seen (0-1); null when not seen in the window. */
  readonly availability: number | null;
  readonly fallbackSeconds: number;
}

const overlap = (from: number, to: number, since: number, until: number) =>
  Math.max(0, Math.min(to, until) - Math.max(from, since));
const inWindow = (at: number, since: number, until: number) => at >= since && at <= until;
const secondsOf = (ms: number) => Math.round(ms / 1000);

export function figuresFor(timeline: VmTimeline, since: number, until: number): VmFigures {
  const overlapping = timeline.outages.filter((o) => o.to > since && o.from < until);
  const seenFrom = Math.max(since, timeline.segments[0]?.from ?? until);
  const observed = until - seenFrom;
  const running = timeline.segments
    .filter((s) => s.phase === "running")
    .reduce((sum, s) => sum + overlap(s.from, s.to, since, until), 0);
  return {
    evictions: timeline.evictions.filter((at) => inWindow(at, since, until)).length,
    ownerStops: timeline.ownerStops.filter((at) => inWindow(at, since, until)).length,
    downtimeSeconds: secondsOf(overlapping.reduce((sum, o) => sum + overlap(o.from, o.to, since, until), 0)),
    // The whole outage, also the part before the window: "how long did the longest outage last".
    longestOutageSeconds: secondsOf(Math.max(0, ...overlapping.map((o) => o.to - o.from))),
    startRequests: timeline.startRequests.filter((at) => inWindow(at, since, until)).length,
    availability: observed > 0 ? Math.round((running / observed) * 10_000) / 10_000 : null,
    fallbackSeconds: secondsOf(
      timeline.fallback.reduce((sum, p) => sum + overlap(p.from, p.to, since, until), 0),
    ),
  };
}
