// The step between "this tagged Spot VM is deallocated and startable" and "start it": asks Azure why
// (causeSource.ts: one Resource Graph query per cycle for every candidate that needs it, one Activity
// Log query per resource group where the annotation is missing or stale), reads the owner's pauses, and
// applies the pure decision of cause.ts. What it decides is told as typed events (events.ts), created
// here where the decision is made: `vm-evicted` once per deallocation when it starts a VM (Azure evicted
// it, or nothing explained it within unknownCauseAfterSeconds), `vm-left-alone` once per deallocation
// when it leaves one (owner's stop, pause, hibernation). A signal that cannot be read (permission
// missing, throttled, down) is reported once and degrades to "unknown": the VM is started after
// unknownCauseAfterSeconds, as before this feature, never left down silently.
//
// Resource Graph's per-caller quota (15 queries per 5 s, "Guidance for throttled requests in Azure
// Resource Graph", https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests)
// is read off its answers (budgets.ts). When the last answer said it is nearly spent (below a quarter
// left: other tools share the principal), the gate holds its query back until the quota resets rather
// than be throttled. It does not fall back to "unknown, start it": only Resource Graph can say "evicted",
// and the Activity Log (still asked) may miss an owner's stop, so a VM nothing explains waits for the
// next query instead of being started past its unknownCauseAfterSeconds. Holding back never starts a
// VM its owner stopped; at worst it delays an evicted VM by one quota window (seconds).
import { describeAzureError } from "../azure/azure";
import { type BudgetReading, lowBudgetShare, remainingShare } from "../azure/budgets";
import { ROLE_ACTIONS } from "../azure/roleActions";
import type { RestarterEvent } from "../core/events";
import { type VmRecord, vmKey } from "../core/vm";
import { type Pause, pauseFor } from "../state/pause";
import {
  type CauseDecision,
  type CauseEvidence,
  decideOnDeallocation,
  evidenceFromAnnotation,
  isCurrent,
  OWNER_SIGNAL_TOLERANCE_MS,
  ownerEvidenceFromActivity,
  vmResourceId,
} from "./cause";
import type { CauseSource } from "./causeSource";

export interface CauseGateSettings {
  readonly restartWhen: "evicted" | "deallocated";
  readonly unknownCauseAfterMs: number;
  readonly subscriptionId: string;
  /** This runtime's own principal: its deallocations (none) are never the owner's. */
  readonly self: { readonly clientId: string; readonly objectId?: string };
}

export interface CauseGateDeps {
  readonly source?: CauseSource;
  /** Resource Graph's quota as its last answer reported it (BudgetTracker.resourceGraphQuota). */
  readonly resourceGraphQuota?: () => BudgetReading | undefined;
  readonly readPauses: () => Promise<Pause[]>;
  readonly settings: CauseGateSettings;
  readonly now: () => number;
}

export interface GateCandidate {
  readonly resourceGroup: string;
  readonly name: string;
  readonly hibernated?: boolean;
}

/**
 * Evidence newer than the VM's last run is kept in its record (`cause`): an eviction is not asked about
 * again; an owner's stop is (a newer eviction may follow it unseen, causeGate.decide).
 */
export type CauseRecord = VmRecord;

type SignalName = "resource-graph" | "activity-log";

export class CauseGate {
  private readonly troubles = new Map<SignalName, string>();
  /** A VM waits for its cause (set by decide). */
  private waiting = false;
  private emit: (event: RestarterEvent) => void = () => {};

  constructor(private readonly deps: CauseGateDeps) {}

  /**
   * The gate of a loop that has none configured: every deallocation is started (as the original
   * script did), announced once as `vm-evicted` (cause `deallocated`).
   */
  static startingEveryDeallocation(now: () => number): CauseGate {
    return new CauseGate({
      readPauses: async () => [],
      settings: {
        restartWhen: "deallocated",
        unknownCauseAfterMs: 0,
        subscriptionId: "",
        self: { clientId: "" },
      },
      now,
    });
  }

  /**
   * Decides every candidate; updates its record (cause, once-per-deallocation marks) and tells what it
   * decided through `emit`.
   */
  async decide(
    candidates: readonly GateCandidate[],
    recordOf: (candidate: GateCandidate) => CauseRecord,
    signal: AbortSignal,
    emit: (event: RestarterEvent) => void = () => {},
  ): Promise<Map<string, CauseDecision>> {
    this.emit = emit;
    const { settings } = this.deps;
    const now = this.deps.now();
    const decisions = new Map<string, CauseDecision>();
    this.waiting = false;
    if (candidates.length === 0) return decisions;
    const pauses = await this.readPauses(now);
    const evidence = new Map<string, CauseEvidence[]>();
    const needing: GateCandidate[] = [];
    for (const candidate of candidates) {
      const record = recordOf(candidate);
      const cached = record.cause && isCurrent(record.cause, record.lastRanAt) ? [record.cause] : [];
      evidence.set(key(candidate), cached);
      const paused = pauseFor(pauses, candidate.resourceGroup, candidate.name, now);
      // An owner's stop is asked about again every cycle (in the same one query): its owner may start the
      // VM and Azure evict it before the next cycle sees it running, and only a newer annotation tells.
      const ownerSaid = cached.some((item) => item.kind === "owner");
      if (
        settings.restartWhen === "evicted" &&
        (cached.length === 0 || ownerSaid) &&
        !paused &&
        !candidate.hibernated
      ) {
        needing.push(candidate);
      }
    }
    const quota = this.deps.resourceGraphQuota?.();
    const heldBack =
      this.deps.source && needing.length > 0 && quota !== undefined && remainingShare(quota) < lowBudgetShare
        ? quota
        : undefined;
    if (needing.length > 0 && this.deps.source) {
      if (heldBack) this.quotaLow(heldBack, now);
      else await this.readAnnotations(needing, recordOf, evidence, signal);
      const unexplained = needing.filter((candidate) => (evidence.get(key(candidate)) ?? []).length === 0);
      await this.readActivity(unexplained, recordOf, evidence, signal);
    }
    for (const candidate of candidates) {
      const record = recordOf(candidate);
      const paused = pauseFor(pauses, candidate.resourceGroup, candidate.name, now);
      let decision = decideOnDeallocation({
        restartWhen: settings.restartWhen,
        unknownCauseAfterMs: settings.unknownCauseAfterMs,
        now,
        deallocatedSince: record.evictedSince ?? now,
        ...(record.lastRanAt !== undefined ? { lastRanAt: record.lastRanAt } : {}),
        evidence: evidence.get(key(candidate)) ?? [],
        hibernated: candidate.hibernated === true,
        ...(paused ? { pause: paused.until !== undefined ? { until: paused.until } : {} } : {}),
      });
      if (
        heldBack &&
        decision.action === "start" &&
        decision.cause === "unknown" &&
        needing.includes(candidate)
      ) {
        // Not asked this cycle: wait for the quota rather than start a VM Resource Graph may say the owner stopped.
        decision = { action: "wait", cause: "unknown", until: heldBack.resetsAt ?? now + 5_000 };
      }
      if ("evidence" in decision && decision.evidence) this.learn(candidate, record, decision.evidence, now);
      this.report(candidate, record, decision, now);
      if (decision.action === "wait" && this.deps.source) this.waiting = true;
      decisions.set(key(candidate), decision);
    }
    return decisions;
  }

  /**
   * Keeps the evidence a decision rests on; evidence new to this deallocation is stamped with how long after
   * the VM was first seen deallocated it was learnt, and told (`cause-known`: the log, the metrics' histogram).
   */
  private learn(candidate: GateCandidate, record: CauseRecord, evidence: CauseEvidence, now: number): void {
    const known = record.cause;
    if (
      known &&
      known.kind === evidence.kind &&
      known.at === evidence.at &&
      known.source === evidence.source
    ) {
      record.cause = {
        ...evidence,
        ...(known.knownAfterMs !== undefined ? { knownAfterMs: known.knownAfterMs } : {}),
      };
      return;
    }
    const since = record.evictedSince;
    if (since === undefined) {
      record.cause = evidence;
      return;
    }
    const knownAfterMs = Math.max(0, now - since);
    record.cause = { ...evidence, knownAfterMs };
    this.emit({
      type: "cause-known",
      resourceGroup: candidate.resourceGroup,
      vm: candidate.name,
      at: now,
      kind: evidence.kind,
      source: evidence.source,
      knownAfterSeconds: Math.round(knownAfterMs / 100) / 10,
    });
  }

  /** True when the last decision left a VM waiting for Azure to say why: the loop asks again sooner. */
  get awaitingCause(): boolean {
    return this.waiting;
  }

  private async readPauses(now: number): Promise<Pause[]> {
    try {
      return await this.deps.readPauses();
    } catch (error) {
      this.emit({ type: "pauses-unreadable", at: now, message: (error as Error).message });
      return [];
    }
  }

  private async readAnnotations(
    candidates: readonly GateCandidate[],
    recordOf: (candidate: GateCandidate) => CauseRecord,
    evidence: Map<string, CauseEvidence[]>,
    signal: AbortSignal,
  ): Promise<void> {
    const source = this.deps.source;
    if (!source) return;
    const ids = new Map(candidates.map((c) => [this.idOf(c).toLowerCase(), c]));
    try {
      const annotations = await source.readAnnotations([...ids.keys()], signal);
      this.signalOk("resource-graph");
      for (const annotation of annotations) {
        const candidate = ids.get(annotation.targetResourceId.toLowerCase());
        const item = evidenceFromAnnotation(annotation);
        if (!candidate || !item) continue;
        if (!isCurrent(item, recordOf(candidate).lastRanAt)) continue;
        evidence.get(key(candidate))?.push(item);
      }
    } catch (error) {
      if (signal.aborted) throw error;
      this.signalFailed("resource-graph", error);
    }
  }

  private async readActivity(
    candidates: readonly GateCandidate[],
    recordOf: (candidate: GateCandidate) => CauseRecord,
    evidence: Map<string, CauseEvidence[]>,
    signal: AbortSignal,
  ): Promise<void> {
    const source = this.deps.source;
    if (!source) return;
    const groups = new Map<string, GateCandidate[]>();
    for (const candidate of candidates) {
      const group = groups.get(candidate.resourceGroup.toLowerCase()) ?? [];
      group.push(candidate);
      groups.set(candidate.resourceGroup.toLowerCase(), group);
    }
    const now = this.deps.now();
    for (const group of groups.values()) {
      // From just before the earliest last run among them (an hour back when never seen running).
      const since =
        Math.min(
          ...group.map((c) => {
            const record = recordOf(c);
            return record.lastRanAt ?? (record.evictedSince ?? now) - 3_600_000;
          }),
        ) - OWNER_SIGNAL_TOLERANCE_MS;
      try {
        const records = await source.readActivity(group[0]?.resourceGroup ?? "", since, signal);
        this.signalOk("activity-log");
        for (const candidate of group) {
          const found = ownerEvidenceFromActivity(
            records,
            this.idOf(candidate),
            this.deps.settings.self,
          ).filter((item) => isCurrent(item, recordOf(candidate).lastRanAt));
          evidence.get(key(candidate))?.push(...found);
        }
      } catch (error) {
        if (signal.aborted) throw error;
        this.signalFailed("activity-log", error);
        return;
      }
    }
  }

  /** Told once while the quota stays low; `cause-signal-back` follows once the query is asked again. */
  private quotaLow(quota: BudgetReading, now: number): void {
    if (this.troubles.get("resource-graph") === "quota-low") return;
    this.troubles.set("resource-graph", "quota-low");
    const until = quota.resetsAt !== undefined ? ` until ${new Date(quota.resetsAt).toISOString()}` : "";
    this.emit({
      type: "cause-signal-failed",
      at: now,
      signal: "resource-graph",
      code: "quota-low",
      message: `Resource Graph's query quota is nearly spent (${quota.remaining} of ${quota.full} left${until}): not asking ${signalLabel["resource-graph"]} this cycle; deallocated VMs nothing explains wait for the next query rather than start`,
    });
  }

  private idOf(candidate: GateCandidate): string {
    return vmResourceId(this.deps.settings.subscriptionId, candidate.resourceGroup, candidate.name);
  }

  private signalOk(name: SignalName): void {
    if (!this.troubles.has(name)) return;
    this.troubles.delete(name);
    this.emit({ type: "cause-signal-back", at: this.deps.now(), signal: name, label: signalLabel[name] });
  }

  /** Warned once per kind of failure, not per cycle; the decision degrades to "unknown". */
  private signalFailed(name: SignalName, error: unknown): void {
    const facts = describeAzureError(error);
    const forbidden = facts.statusCode === 403 || facts.code === "AuthorizationFailed";
    const kind = forbidden
      ? "forbidden"
      : facts.statusCode === 429
        ? "throttled"
        : (facts.code ?? `HTTP${facts.statusCode}`);
    if (this.troubles.get(name) === kind) return;
    this.troubles.set(name, kind);
    const action = ROLE_ACTIONS.find(
      (entry) =>
        entry.feature === "eviction-cause" &&
        (name === "activity-log") === entry.action.startsWith("Microsoft.Insights/"),
    )?.action;
    const fallback = `deallocated VMs nothing explains are started after ${Math.round(this.deps.settings.unknownCauseAfterMs / 1000)} s, as if evicted`;
    const at = this.deps.now();
    if (forbidden && action) {
      this.emit({
        type: "permission-missing",
        at,
        action,
        signal: name,
        message: `the service principal cannot read ${signalLabel[name]} (it lacks ${action}); an owner's stop may go unrecognised: ${fallback}`,
      });
    } else {
      this.emit({
        type: "cause-signal-failed",
        at,
        signal: name,
        code: kind,
        message: `reading ${signalLabel[name]} failed (${facts.message}); ${fallback}; retrying every cycle`,
      });
    }
  }

  /** Tells what was decided: each leave-alone and wait once per deallocation, `vm-evicted` once per deallocation. */
  private report(candidate: GateCandidate, record: CauseRecord, decision: CauseDecision, now: number): void {
    const ref = { resourceGroup: candidate.resourceGroup, vm: candidate.name, at: now };
    const once = (marker: string, event: RestarterEvent) => {
      if (record.leftAloneLogged === marker) return;
      record.leftAloneLogged = marker;
      this.emit(event);
    };
    switch (decision.action) {
      case "leave-alone":
        if (decision.reason === "owner-deallocated") {
          const { evidence } = decision;
          once(`owner:${evidence.at}`, {
            type: "vm-left-alone",
            ...ref,
            reason: "owner-deallocated",
            occurredAt: evidence.at,
            source: evidence.source,
            ...(evidence.by ? { by: evidence.by } : {}),
            ...knownAfter(evidence),
          });
        } else if (decision.reason === "paused") {
          once(`paused:${decision.until ?? "resume"}`, {
            type: "vm-left-alone",
            ...ref,
            reason: "paused",
            ...(decision.until !== undefined ? { until: decision.until } : {}),
          });
        } else {
          once("hibernated", { type: "vm-left-alone", ...ref, reason: "hibernated" });
        }
        return;
      case "wait":
        once(`wait:${decision.until}`, { type: "cause-pending", ...ref, until: decision.until });
        return;
      case "start": {
        record.leftAloneLogged = undefined;
        // Once per deallocation: a start that fails and is retried after its backoff is not a new eviction.
        const deallocation = record.evictedSince ?? -1;
        if (record.evictionAnnouncedFor === deallocation) return;
        record.evictionAnnouncedFor = deallocation;
        if (decision.cause === "unknown") {
          this.emit({
            type: "vm-evicted",
            ...ref,
            cause: "unknown",
            waitedSeconds: Math.round(decision.waitedMs / 1000),
          });
        } else if (decision.cause === "evicted") {
          this.emit({
            type: "vm-evicted",
            ...ref,
            cause: "evicted",
            occurredAt: decision.evidence.at,
            source: decision.evidence.source,
            ...knownAfter(decision.evidence),
          });
        } else {
          this.emit({
            type: "vm-evicted",
            ...ref,
            cause: "deallocated",
            ...(decision.evidence
              ? { occurredAt: decision.evidence.at, source: decision.evidence.source }
              : {}),
          });
        }
        return;
      }
    }
  }
}

const signalLabel: Record<SignalName, string> = {
  "resource-graph": "Resource Health annotations (Resource Graph)",
  "activity-log": "the Activity Log",
};

/** The cause's delay in seconds (one decimal), for the events that tell it (and the history that keeps it). */
function knownAfter(evidence: CauseEvidence): { knownAfterSeconds?: number } {
  return evidence.knownAfterMs !== undefined
    ? { knownAfterSeconds: Math.round(evidence.knownAfterMs / 100) / 10 }
    : {};
}

function key(candidate: GateCandidate): string {
  return vmKey(candidate.resourceGroup, candidate.name);
}
