// Why is a tagged Spot VM deallocated, and does that mean "start it"? Pure functions over plain data.
//
// The instance view cannot tell: the portal's Stop, `az vm deallocate` and auto-shutdown end in
// `PowerState/deallocated` like an eviction. Azure says it in two other places:
// - Resource Health VM annotations, read through Resource Graph's `healthresources` table:
//   `VirtualMachinePreempted` (context "Platform Initiated") for a Spot eviction,
//   `VirtualMachineDeallocationInitiated` ("Customer Initiated") for an owner's deallocation
//   (https://learn.microsoft.com/azure/service-health/resource-health-vm-annotation,
//   https://learn.microsoft.com/azure/virtual-machines/resource-graph-availability);
// - the Activity Log's `Microsoft.Compute/virtualMachines/deallocate/action` with its caller, a durable
//   record of the owner's side when the annotation is missing or late
//   (https://learn.microsoft.com/rest/api/monitor/activity-logs/list).
// A start of ours that Azure ends with `OperationPreempted` is a third owner signal: someone acted on
// the VM while we started it.

import { resourceGroupIdOfEntry } from "../core/resourceIds";

/**
 * An owner's deallocation up to this long before the runtime last saw the VM running still counts as
 * the current one (the instance view can lag a deallocation that has begun). Evictions get no such
 * allowance: a stale eviction must never restart a VM its owner has stopped since.
 */
export const OWNER_SIGNAL_TOLERANCE_MS = 30_000;

export const PREEMPTED_ANNOTATION = "VirtualMachinePreempted";
export const OWNER_DEALLOCATION_ANNOTATION = "VirtualMachineDeallocationInitiated";
export const DEALLOCATE_OPERATION = "Microsoft.Compute/virtualMachines/deallocate/action";

/** One thing Azure (or a start of ours) says about why the VM went down, and when. */
export interface CauseEvidence {
  readonly kind: "evicted" | "owner";
  /** When it happened (ms since epoch, Azure's clock). */
  readonly at: number;
  readonly source: "resource-health" | "activity-log" | "start-preempted";
  /** Who deallocated it (the Activity Log's caller), when known. */
  readonly by?: string;
  /** How long after the VM was first seen deallocated the runtime learnt this (ms), when it did by asking. */
  readonly knownAfterMs?: number;
}

/** A Resource Health annotation as the Resource Graph query returns it. */
export interface AnnotationRecord {
  readonly targetResourceId: string;
  readonly annotationName: string;
  readonly context?: string;
  readonly occurredAt: number;
}

/** Reads an annotation as evidence; annotations that say nothing about a deallocation give none. */
export function evidenceFromAnnotation(annotation: AnnotationRecord): CauseEvidence | undefined {
  const name = annotation.annotationName.toLowerCase();
  if (name === PREEMPTED_ANNOTATION.toLowerCase()) {
    return { kind: "evicted", at: annotation.occurredAt, source: "resource-health" };
  }
  if (name === OWNER_DEALLOCATION_ANNOTATION.toLowerCase()) {
    return { kind: "owner", at: annotation.occurredAt, source: "resource-health" };
  }
  return undefined;
}

export interface CauseInput {
  readonly restartWhen: "evicted" | "deallocated";
  readonly unknownCauseAfterMs: number;
  readonly now: number;
  /** When the runtime first saw the VM deallocated, this time. */
  readonly deallocatedSince: number;
  /** The last time the VM was known to run (seen running, or a start of ours succeeded); absent = never. */
  readonly lastRanAt?: number;
  readonly evidence: readonly CauseEvidence[];
  /** The instance view says `HibernationState/Hibernated`: a person hibernated it. */
  readonly hibernated?: boolean;
  /** `pause` is in force: until this time (ms), or until `resume` when `until` is absent. */
  readonly pause?: { readonly until?: number };
}

export type CauseDecision =
  | { readonly action: "start"; readonly cause: "evicted"; readonly evidence: CauseEvidence }
  /** Nothing explained it within unknownCauseAfterMs: started anyway, with a warning. */
  | { readonly action: "start"; readonly cause: "unknown"; readonly waitedMs: number }
  /** `restartWhen: "deallocated"`: any deallocation is started (the evidence, if any, is for status). */
  | { readonly action: "start"; readonly cause: "deallocated"; readonly evidence?: CauseEvidence }
  | {
      readonly action: "leave-alone";
      readonly reason: "owner-deallocated";
      readonly evidence: CauseEvidence;
    }
  | { readonly action: "leave-alone"; readonly reason: "hibernated" }
  | { readonly action: "leave-alone"; readonly reason: "paused"; readonly until?: number }
  /** Nothing explains it yet: ask again next cycle, start at `until` at the latest. */
  | { readonly action: "wait"; readonly cause: "unknown"; readonly until: number };

/** Whether a piece of evidence is about the current deallocation (not one before the VM last ran). */
export function isCurrent(evidence: CauseEvidence, lastRanAt: number | undefined): boolean {
  if (lastRanAt === undefined) return true;
  return evidence.kind === "owner"
    ? evidence.at > lastRanAt - OWNER_SIGNAL_TOLERANCE_MS
    : evidence.at > lastRanAt;
}

/**
 * The latest current evidence; on a tie the owner's word wins (leaving a VM down by mistake is
 * visible and reversible with `resume`; starting one its owner stopped costs money behind their back).
 */
export function latestEvidence(
  evidence: readonly CauseEvidence[],
  lastRanAt: number | undefined,
): CauseEvidence | undefined {
  let best: CauseEvidence | undefined;
  for (const item of evidence) {
    if (!isCurrent(item, lastRanAt)) continue;
    if (!best || item.at > best.at || (item.at === best.at && item.kind === "owner")) best = item;
  }
  return best;
}

/** What to do with a tagged Spot VM found deallocated (and otherwise startable). */
export function decideOnDeallocation(input: CauseInput): CauseDecision {
  if (input.pause && (input.pause.until === undefined || input.pause.until > input.now)) {
    return input.pause.until === undefined
      ? { action: "leave-alone", reason: "paused" }
      : { action: "leave-alone", reason: "paused", until: input.pause.until };
  }
  if (input.hibernated) return { action: "leave-alone", reason: "hibernated" };
  const latest = latestEvidence(input.evidence, input.lastRanAt);
  if (input.restartWhen === "deallocated") {
    return latest
      ? { action: "start", cause: "deallocated", evidence: latest }
      : { action: "start", cause: "deallocated" };
  }
  if (latest?.kind === "owner")
    return { action: "leave-alone", reason: "owner-deallocated", evidence: latest };
  if (latest?.kind === "evicted") return { action: "start", cause: "evicted", evidence: latest };
  const waitedMs = Math.max(0, input.now - input.deallocatedSince);
  if (waitedMs >= input.unknownCauseAfterMs) return { action: "start", cause: "unknown", waitedMs };
  return { action: "wait", cause: "unknown", until: input.deallocatedSince + input.unknownCauseAfterMs };
}

/**
 * A KQL string literal holding `value` exactly: the verbatim form @'…', in which a backslash stands for
 * itself and a single quote is written twice (learn.microsoft.com/azure/kusto/query/scalar-data-types/string,
 * "Verbatim string literals"). Azure names hold neither character; this is defence in depth (issue 25,
 * item 5): stripping quotes alone left `\` to escape the closing quote and run the rest as query text.
 */
export function kqlStringLiteral(value: string): string {
  return `@'${value.replaceAll("'", "''")}'`;
}

/**
 * The one Resource Graph query of a cycle: the latest annotation of each candidate VM. Ids are
 * lower-cased on both sides (`in` is exact; Resource Graph keeps ids as ARM spells them), each one a
 * verbatim literal (kqlStringLiteral), so whatever an id holds it is compared, never run.
 */
export function annotationsQuery(vmIds: readonly string[]): string {
  const literals = vmIds.map((id) => kqlStringLiteral(id.toLowerCase())).join(", ");
  return [
    "healthresources",
    "| where type =~ 'microsoft.resourcehealth/resourceannotations'",
    "| extend targetResourceId = tolower(tostring(properties.targetResourceId))",
    `| where targetResourceId in (${literals})`,
    "| project targetResourceId, annotationName = tostring(properties.annotationName), context = tostring(properties.context), occurredTime = todatetime(properties.occurredTime)",
  ].join("\n");
}

/** One Activity Log entry, as much of it as the decision needs. */
export interface ActivityRecord {
  readonly resourceId?: string;
  readonly operationName?: string;
  readonly status?: string;
  readonly caller?: string;
  readonly callerObjectId?: string;
  readonly at?: number;
}

/**
 * Owner deallocations of one VM in Activity Log entries: `deallocate/action`, not failed, by someone
 * other than this runtime's own service principal (which never deallocates, but is excluded all the same).
 */
export function ownerEvidenceFromActivity(
  records: readonly ActivityRecord[],
  vmId: string,
  self: { readonly clientId: string; readonly objectId?: string },
): CauseEvidence[] {
  const out: CauseEvidence[] = [];
  for (const record of records) {
    if (record.resourceId?.toLowerCase() !== vmId.toLowerCase()) continue;
    if (record.operationName?.toLowerCase() !== DEALLOCATE_OPERATION.toLowerCase()) continue;
    if (record.status?.toLowerCase() === "failed" || record.at === undefined) continue;
    const caller = record.caller ?? "";
    const isSelf =
      caller.toLowerCase() === self.clientId.toLowerCase() ||
      (self.objectId !== undefined &&
        (caller.toLowerCase() === self.objectId.toLowerCase() ||
          record.callerObjectId?.toLowerCase() === self.objectId.toLowerCase()));
    if (isSelf) continue;
    out.push({ kind: "owner", at: record.at, source: "activity-log", ...(caller ? { by: caller } : {}) });
  }
  return out;
}

/** The ARM id of a VM; `resourceGroup` is a config `resourceGroups` entry (a name, or a group id in another subscription). */
export function vmResourceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `${resourceGroupIdOfEntry(resourceGroup, subscriptionId)}/providers/Microsoft.Compute/virtualMachines/${name}`;
}
