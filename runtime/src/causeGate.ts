// The step between "this tagged Spot VM is deallocated and startable" and "start it": asks Azure why
// (causeSource.ts: one Resource Graph query per cycle for every candidate that needs it, one Activity
// Log query per resource group where the annotation is missing or stale), reads the owner's pauses, and
// applies the pure decision of cause.ts. Logs each leave-alone once per deallocation. A signal that
// cannot be read (permission missing, throttled, down) is warned about once and degrades to "unknown":
// the VM is started after unknownCauseAfterSeconds, as before this feature, never left down silently.
import { describeAzureError } from "./azure";
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
import { type VmRecord, vmKey } from "./decisions";
import type { Logger } from "./log";
import { type Pause, pauseFor } from "./pause";
import { ROLE_ACTIONS } from "./roleActions";

export interface CauseGateSettings {
  readonly restartWhen: "evicted" | "deallocated";
  readonly unknownCauseAfterMs: number;
  readonly subscriptionId: string;
  /** This runtime's own principal: its deallocations (none) are never the owner's. */
  readonly self: { readonly clientId: string; readonly objectId?: string };
}

export interface CauseGateDeps {
  readonly source?: CauseSource;
  readonly readPauses: () => Promise<Pause[]>;
  readonly log: Logger;
  readonly settings: CauseGateSettings;
  readonly now: () => number;
}

export interface GateCandidate {
  readonly resourceGroup: string;
  readonly name: string;
  readonly hibernated?: boolean;
}

/** Evidence newer than the VM's last run is kept in its record (`cause`), so a decided cause is not asked again. */
export type CauseRecord = VmRecord;

type SignalName = "resource-graph" | "activity-log";

export class CauseGate {
  private readonly troubles = new Map<SignalName, string>();

  constructor(private readonly deps: CauseGateDeps) {}

  /** Decides every candidate; updates its record (cause, logging marks). */
  async decide(
    candidates: readonly GateCandidate[],
    recordOf: (candidate: GateCandidate) => CauseRecord,
    signal: AbortSignal,
  ): Promise<Map<string, CauseDecision>> {
    const { settings } = this.deps;
    const now = this.deps.now();
    const decisions = new Map<string, CauseDecision>();
    if (candidates.length === 0) return decisions;
    const pauses = await this.readPauses();
    const evidence = new Map<string, CauseEvidence[]>();
    const needing: GateCandidate[] = [];
    for (const candidate of candidates) {
      const record = recordOf(candidate);
      const cached = record.cause && isCurrent(record.cause, record.lastRanAt) ? [record.cause] : [];
      evidence.set(key(candidate), cached);
      const paused = pauseFor(pauses, candidate.resourceGroup, candidate.name, now);
      if (settings.restartWhen === "evicted" && cached.length === 0 && !paused && !candidate.hibernated) {
        needing.push(candidate);
      }
    }
    if (needing.length > 0 && this.deps.source) {
      await this.readAnnotations(needing, recordOf, evidence, signal);
      const unexplained = needing.filter((candidate) => (evidence.get(key(candidate)) ?? []).length === 0);
      await this.readActivity(unexplained, recordOf, evidence, signal);
    }
    for (const candidate of candidates) {
      const record = recordOf(candidate);
      const paused = pauseFor(pauses, candidate.resourceGroup, candidate.name, now);
      const decision = decideOnDeallocation({
        restartWhen: settings.restartWhen,
        unknownCauseAfterMs: settings.unknownCauseAfterMs,
        now,
        deallocatedSince: record.evictedSince ?? now,
        ...(record.lastRanAt !== undefined ? { lastRanAt: record.lastRanAt } : {}),
        evidence: evidence.get(key(candidate)) ?? [],
        hibernated: candidate.hibernated === true,
        ...(paused ? { pause: paused.until !== undefined ? { until: paused.until } : {} } : {}),
      });
      if ("evidence" in decision && decision.evidence) record.cause = decision.evidence;
      this.report(candidate, record, decision);
      decisions.set(key(candidate), decision);
    }
    return decisions;
  }

  private async readPauses(): Promise<Pause[]> {
    try {
      return await this.deps.readPauses();
    } catch (error) {
      this.deps.log.warn("pauses-unreadable", {}, `cannot read the pauses file: ${(error as Error).message}`);
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

  private idOf(candidate: GateCandidate): string {
    return vmResourceId(this.deps.settings.subscriptionId, candidate.resourceGroup, candidate.name);
  }

  private signalOk(name: SignalName): void {
    if (!this.troubles.has(name)) return;
    this.troubles.delete(name);
    this.deps.log.info("cause-signal-back", { signal: name }, `${signalLabel[name]} answers again`);
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
    if (forbidden) {
      this.deps.log.warn(
        "permission-missing",
        { signal: name, permission: action },
        `the service principal cannot read ${signalLabel[name]} (it lacks ${action}); an owner's stop may go unrecognised: ${fallback}`,
      );
    } else {
      this.deps.log.warn(
        "cause-signal-failed",
        { signal: name, code: kind },
        `reading ${signalLabel[name]} failed (${facts.message}); ${fallback}; retrying every cycle`,
      );
    }
  }

  private report(candidate: GateCandidate, record: CauseRecord, decision: CauseDecision): void {
    const { log } = this.deps;
    const vm = `${candidate.resourceGroup}/${candidate.name}`;
    const once = (marker: string, write: () => void) => {
      if (record.leftAloneLogged === marker) return;
      record.leftAloneLogged = marker;
      write();
    };
    const iso = (ms: number) => new Date(ms).toISOString();
    switch (decision.action) {
      case "leave-alone":
        if (decision.reason === "owner-deallocated") {
          const { evidence } = decision;
          once(`owner:${evidence.at}`, () =>
            log.info(
              "vm-left-alone",
              { vm, reason: decision.reason, by: evidence.by, source: evidence.source },
              `deallocated by its owner${evidence.by ? ` (${evidence.by})` : ""} at ${iso(evidence.at)}; not restarting`,
            ),
          );
        } else if (decision.reason === "paused") {
          once(`paused:${decision.until ?? "resume"}`, () =>
            log.info(
              "vm-left-alone",
              { vm, reason: "paused", until: decision.until ? iso(decision.until) : "resume" },
              decision.until
                ? `paused until ${iso(decision.until)}; not restarting`
                : "paused until `resume`; not restarting",
            ),
          );
        } else {
          once("hibernated", () =>
            log.info("vm-left-alone", { vm, reason: "hibernated" }, "hibernated by a person; not restarting"),
          );
        }
        return;
      case "wait":
        once(`wait:${decision.until}`, () =>
          log.info(
            "cause-unknown",
            { vm, until: iso(decision.until) },
            `deallocated and Azure does not say why yet; waiting for Resource Health or the Activity Log, starting it at ${iso(decision.until)} at the latest`,
          ),
        );
        return;
      case "start":
        record.leftAloneLogged = undefined;
        if (decision.cause === "unknown") {
          log.warn(
            "cause-unknown-starting",
            { vm, waitedSeconds: Math.round(decision.waitedMs / 1000) },
            "nothing says why this VM is deallocated; starting it as if evicted",
          );
        } else if (decision.cause === "evicted") {
          log.info(
            "vm-evicted",
            { vm, at: iso(decision.evidence.at), source: decision.evidence.source },
            `Azure evicted it at ${iso(decision.evidence.at)}; starting it`,
          );
        }
        return;
    }
  }
}

const signalLabel: Record<SignalName, string> = {
  "resource-graph": "Resource Health annotations (Resource Graph)",
  "activity-log": "the Activity Log",
};

function key(candidate: GateCandidate): string {
  return vmKey(candidate.resourceGroup, candidate.name);
}
