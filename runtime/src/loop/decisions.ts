// The runtime's decisions, as pure functions over plain data: which VMs to start, how an Azure
// error is classified, how long a VM backs off. No I/O here, so tests use plain objects and
// fast-check properties.

import { type SpotIneligibility, spotIneligibility } from "../core/spotEligibility";
import type { SizeRecord } from "./fallback";

/** Power states as the instance view reports them (`PowerState/<state>`). */
export type PowerState = "running" | "starting" | "stopped" | "stopping" | "deallocating" | "deallocated";

/** One VM as discovery saw it this cycle: list fields, plus the instance view for candidates only. */
export interface ObservedVm {
  readonly resourceGroup: string;
  readonly name: string;
  /** `Spot` or `Regular` (absent on old VMs means Regular). */
  readonly priority: string | undefined;
  /** `Deallocate` or `Delete`; only set on Spot VMs. */
  readonly evictionPolicy: string | undefined;
  /** `billingProfile.maxPrice`: -1 (up to on-demand) or a price in USD. */
  readonly maxPrice: number | undefined;
  readonly tags: Readonly<Record<string, string>>;
  /** Undefined when the instance view was not read (not a candidate) or had no PowerState status. */
  readonly powerState: string | undefined;
  /** The instance view's `ProvisioningState/<state>` (lower-cased, without an error code), when read. */
  readonly provisioningState?: string;
  /** The instance view has `HibernationState/Hibernated` (beside `PowerState/deallocated`). */
  readonly hibernated?: boolean;
  /** `hardwareProfile.vmSize` as the list reports it (fallback sizes compare against it). */
  readonly vmSize?: string;
}

export interface RestartTag {
  readonly name: string;
  readonly value: string;
}

/** Per-VM memory kept between cycles (the state file holds one per VM). */
export interface VmRecord {
  readonly resourceGroup: string;
  readonly name: string;
  /** Last power state observed (instance view), if any. */
  powerState?: string;
  /** When the VM was first seen deallocated in its current eviction (ms since epoch). */
  evictedSince?: number;
  /** Last time an eviction (a transition to deallocated) was seen. */
  lastEvictionSeenAt?: number;
  /** Consecutive failed start attempts since the last success. */
  startAttempts: number;
  /** No start before this time (ms since epoch). */
  backoffUntil?: number;
  lastStartAt?: number;
  lastStartedAt?: number;
  /** The last time the VM was known to run (seen running, or a start of ours succeeded). */
  lastRanAt?: number;
  /** Why it is deallocated, once known for this deallocation (eviction cause, cause.ts). */
  cause?: {
    kind: "evicted" | "owner";
    at: number;
    source: "resource-health" | "activity-log" | "start-preempted";
    by?: string;
  };
  /** Last provisioning state observed (instance view, lower-cased), if any. */
  provisioningState?: string;
  /** Last seen hibernated (`HibernationState/Hibernated`). */
  hibernated?: boolean;
  /** `evictedSince` of the deallocation already announced as `vm-evicted` (announced once per deallocation). */
  evictionAnnouncedFor?: number;
  /** Since when starts have failed for lack of capacity, without a success in between (fallback.ts). */
  capacityFailingSince?: number;
  /** A resize to a fallback size, remembered until the VM is back at its own size (fallback.ts). */
  size?: SizeRecord;
  /** Marks the leave-alone (or wait) already logged for this deallocation, so it is logged once. */
  leftAloneLogged?: string;
  lastResult?: {
    outcome: StartOutcomeKind | "issued" | "interrupted" | "token-unavailable";
    code?: string;
    at: number;
  };
}

export interface RestarterState {
  /** Keyed by `vmKey(resourceGroup, name)`. */
  vms: Record<string, VmRecord>;
  /** ARM asked us to slow down: no requests before this time (ms since epoch). */
  throttledUntil?: number;
}

export type SkipReason =
  /** Never restartable (core/spotEligibility.ts, the rule `pulumi up` and `doctor` apply too). */
  | SpotIneligibility
  | "untagged"
  | "power-state-unknown"
  | "running"
  | "starting"
  | "stopped"
  | "stopping"
  | "deallocating"
  /** Deallocated by a hibernation: a person did it (issue 10). */
  | "hibernated"
  /** A control-plane operation is running on it (`ProvisioningState/creating|updating|deleting|migrating`). */
  | "provisioning-busy"
  | "in-backoff"
  | "start-in-flight";

export type Decision =
  | { readonly vm: ObservedVm; readonly action: "start" }
  | { readonly vm: ObservedVm; readonly action: "skip"; readonly reason: SkipReason };

/** Azure resource names are case-insensitive; so is our key. */
export function vmKey(resourceGroup: string, name: string): string {
  return `${resourceGroup}/${name}`.toLowerCase();
}

/** Tag names match case-insensitively as in Azure; the value `true` matches case-insensitively too. */
export function hasRestartTag(tags: Readonly<Record<string, string>> | undefined, tag: RestartTag): boolean {
  if (!tags) return false;
  const wantedName = tag.name.toLowerCase();
  const wantedValue = tag.value.toLowerCase();
  return Object.entries(tags).some(
    ([name, value]) => name.toLowerCase() === wantedName && String(value).toLowerCase() === wantedValue,
  );
}

/**
 * A VM whose instance view is worth reading: Spot or SpotPlus, evicted to deallocation (a `Delete` Spot
 * VM is gone after eviction; no policy means Azure's default, Deallocate), and tagged for restart.
 */
export function isRestartCandidate(
  vm: Pick<ObservedVm, "priority" | "evictionPolicy" | "tags">,
  tag: RestartTag,
): boolean {
  return eligibility(vm, tag) === undefined;
}

function eligibility(
  vm: Pick<ObservedVm, "priority" | "evictionPolicy" | "tags">,
  tag: RestartTag,
): SkipReason | undefined {
  const never = spotIneligibility(vm);
  if (never) return never;
  if (!hasRestartTag(vm.tags, tag)) return "untagged";
  return undefined;
}

/**
 * Reads the power state from an instance view's statuses: the `PowerState/` entry wherever it
 * sits (it is usually second, after `ProvisioningState/`, but that order is not a contract).
 */
export function powerStateFromStatuses(
  statuses: ReadonlyArray<{ code?: string }> | undefined,
): string | undefined {
  const status = statuses?.find((s) => s.code?.toLowerCase().startsWith("powerstate/"));
  return status?.code?.slice("PowerState/".length).toLowerCase();
}

/**
 * Provisioning states during which a start is not sent: a control-plane operation (creating, updating,
 * deleting, migrating) is running on the VM. `failed` is not among them: a start that found no capacity
 * leaves `ProvisioningState/failed/AllocationFailed` on a deallocated VM, and starting it again is
 * exactly how it comes back. Source: "States and billing status of Azure Virtual Machines"
 * (https://learn.microsoft.com/azure/virtual-machines/states-billing; MicrosoftDocs/azure-compute-docs
 * articles/virtual-machines/states-billing.md): the instance view carries
 * `ProvisioningState/<state>[/<errorCode>]`, states Creating, Updating, Failed, Succeeded, Deleting, Migrating.
 */
export const busyProvisioningStates: ReadonlySet<string> = new Set([
  "creating",
  "updating",
  "deleting",
  "migrating",
]);

/** What the runtime reads from one VM's instance view. */
export interface InstanceState {
  /** `PowerState/<state>`, lower-cased; undefined when absent. */
  readonly powerState: string | undefined;
  /** `ProvisioningState/<state>[/<errorCode>]`: the state, lower-cased, without the error code. */
  readonly provisioningState: string | undefined;
  /**
   * `HibernationState/Hibernated`: a hibernated VM is `PowerState/deallocated` with this third status
   * (https://learn.microsoft.com/azure/virtual-machines/hibernate-resume, "View state of hibernated VM";
   * the portal shows "Hibernated (deallocated)"). Only a person (or their automation) hibernates a VM.
   */
  readonly hibernated: boolean;
}

/** Reads power state, provisioning state and hibernation from an instance view's statuses, wherever each sits. */
export function instanceStateFromStatuses(
  statuses: ReadonlyArray<{ code?: string }> | undefined,
): InstanceState {
  const provisioning = statuses?.find((s) => s.code?.toLowerCase().startsWith("provisioningstate/"));
  return {
    powerState: powerStateFromStatuses(statuses),
    provisioningState: provisioning?.code?.split("/")[1]?.toLowerCase() || undefined,
    hibernated: statuses?.some((s) => s.code?.toLowerCase() === "hibernationstate/hibernated") ?? false,
  };
}

/**
 * Decides, for every observed VM, whether this cycle starts it: exactly the tagged Spot
 * `Deallocate` VMs that are `deallocated`, not hibernated, not in a control-plane operation, not in
 * backoff and not already being started.
 *
 * `retryLeadMs`: a VM whose retry falls due within that much of `now` is started too (its start
 * request waits for the due time, starts.ts): the loop passes the time before its next cycle could
 * begin (and wakes ahead of a retry by its own discovery time), so the request leaves when due rather
 * than a discovery, or a gap between cycles, later.
 */
export function selectRestartCandidates(
  vms: readonly ObservedVm[],
  state: RestarterState,
  now: number,
  tag: RestartTag,
  inFlight: ReadonlySet<string> = new Set(),
  retryLeadMs = 0,
): Decision[] {
  return vms.map((vm): Decision => {
    const ineligible = eligibility(vm, tag);
    if (ineligible) return { vm, action: "skip", reason: ineligible };
    const powerState = vm.powerState?.toLowerCase();
    if (powerState !== "deallocated") {
      const reason = (["running", "starting", "stopped", "stopping", "deallocating"] as const).find(
        (s) => s === powerState,
      );
      return { vm, action: "skip", reason: reason ?? "power-state-unknown" };
    }
    const key = vmKey(vm.resourceGroup, vm.name);
    if (inFlight.has(key)) return { vm, action: "skip", reason: "start-in-flight" };
    if (vm.hibernated) return { vm, action: "skip", reason: "hibernated" };
    if (
      vm.provisioningState !== undefined &&
      busyProvisioningStates.has(vm.provisioningState.toLowerCase())
    ) {
      return { vm, action: "skip", reason: "provisioning-busy" };
    }
    const backoffUntil = state.vms[key]?.backoffUntil;
    if (backoffUntil !== undefined && backoffUntil > now + retryLeadMs) {
      return { vm, action: "skip", reason: "in-backoff" };
    }
    return { vm, action: "start" };
  });
}

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** What an ARM operation was doing when it failed; names the permission it needs. */
export type ArmOperation =
  | "list"
  | "instanceView"
  | "start"
  | "followStart"
  | "simulateEviction"
  | "listSizes"
  | "resize";

/** Each operation's action, as runtime/src/azure/roleActions.ts lists it (test/program/contracts.test.ts checks). */
export const requiredPermission: Record<ArmOperation, string> = {
  list: "Microsoft.Compute/virtualMachines/read",
  instanceView: "Microsoft.Compute/virtualMachines/instanceView/read",
  start: "Microsoft.Compute/virtualMachines/start/action",
  // Polling the start's Azure-AsyncOperation / Location URL (…/locations/{l}/operations/{id}).
  followStart: "Microsoft.Compute/locations/operations/read",
  simulateEviction: "Microsoft.Compute/virtualMachines/simulateEviction/action",
  // Fallback sizes (opt-in): VirtualMachines_ListAvailableSizes and a PATCH of hardwareProfile.vmSize.
  listSizes: "Microsoft.Compute/virtualMachines/vmSizes/read",
  resize: "Microsoft.Compute/virtualMachines/write",
};

export type StartOutcomeKind =
  | "started"
  | "capacity"
  | "price"
  | "quota"
  | "throttled"
  | "gone"
  | "conflict"
  | "unauthorized"
  | "forbidden"
  | "timeout"
  | "failed";

/** The result of classifying an Azure error (or success) once, in one place. */
export type AzureOutcome =
  | { kind: "started" }
  /** No capacity for this size/zone now: back off and try again. */
  | { kind: "capacity"; code: string; message: string }
  /** The Spot price is above the VM's max price: back off (reported distinctly). */
  | { kind: "price"; code: string; message: string }
  /** Quota (`OperationNotAllowed` without throttling): back off. */
  | { kind: "quota"; code: string; message: string }
  /** ARM throttled us: wait out Retry-After before the next request. */
  | { kind: "throttled"; code: string; message: string; retryAfterMs: number | undefined }
  /** 404: the VM no longer exists; forget it. */
  | { kind: "gone"; code: string; message: string }
  /** 409 / another operation in progress: retry next cycle, no backoff. */
  | { kind: "conflict"; code: string; message: string }
  /** 401: the token was refused (audience, tenant, expired). Fatal. */
  | { kind: "unauthorized"; code: string; message: string }
  /** 403: the principal lacks a permission. Fatal, names the permission. */
  | { kind: "forbidden"; code: string; message: string; permission: string }
  /** We stopped following the start (time bound); the next cycle looks again. */
  | { kind: "timeout"; code: string; message: string }
  /** Anything else: back off so we never tight-loop. */
  | { kind: "failed"; code: string; message: string };

export const capacityCodes: ReadonlySet<string> = new Set([
  "AllocationFailed",
  "ZonalAllocationFailed",
  "OverconstrainedAllocationRequest",
  "OverconstrainedZonalAllocationRequest",
  "SkuNotAvailable",
]);

export const priceCode = "SpotPriceGreaterThanProvidedMaxPrice";

/** The facts classification needs, read off whatever the SDK threw (see `describeAzureError`). */
export interface AzureErrorFacts {
  readonly statusCode?: number;
  readonly code?: string;
  readonly message: string;
  readonly retryAfterMs?: number;
  /** Inner error codes (e.g. `details[].code`), where `TooManyRequests` marks throttling. */
  readonly detailCodes?: readonly string[];
  /** Set when the error is the failed end of a long-running operation (no HTTP status). */
  readonly operationFailed?: boolean;
  /** Set when our own time bound ended the wait. */
  readonly timedOut?: boolean;
  /** Set when ARM had accepted the start and the error came while following it (a status poll). */
  readonly afterAccepted?: boolean;
}

/**
 * Classifies the outcome of an ARM operation (a start, or a read during discovery) from the
 * facts of its error. `undefined` means success. This is the only place that maps Azure codes to
 * behaviour.
 */
export function classifyStartOutcome(
  error: AzureErrorFacts | undefined,
  operation: ArmOperation = "start",
): AzureOutcome {
  if (!error) return { kind: "started" };
  const code = error.code ?? (error.statusCode ? `HTTP${error.statusCode}` : "Unknown");
  const message = error.message;
  if (error.timedOut) return { kind: "timeout", code: "Timeout", message };
  const throttled =
    error.statusCode === 429 ||
    code === "TooManyRequests" ||
    (code === "OperationNotAllowed" && (error.detailCodes ?? []).includes("TooManyRequests"));
  if (throttled) return { kind: "throttled", code, message, retryAfterMs: error.retryAfterMs };
  if (capacityCodes.has(code)) return { kind: "capacity", code, message };
  if (code === priceCode) return { kind: "price", code, message };
  // The same code says "the VM's state forbids this now" (another operation in progress): a conflict,
  // not a quota refusal. Compute's message: "Operation 'start' is not allowed on VM '…' since the VM is
  // deallocating. Retry after the current operation completes."
  if (
    code === "OperationNotAllowed" &&
    /since the VM is|current operation|operation is in progress/i.test(message)
  ) {
    return { kind: "conflict", code, message };
  }
  if (code === "OperationNotAllowed") return { kind: "quota", code, message };
  if (error.statusCode === 404 || code === "ResourceNotFound" || code === "NotFound") {
    return { kind: "gone", code, message };
  }
  if (error.statusCode === 409 || code === "Conflict" || code === "OperationPreempted") {
    return { kind: "conflict", code, message };
  }
  if (error.statusCode === 401) return { kind: "unauthorized", code, message };
  if (error.statusCode === 403 || code === "AuthorizationFailed" || code === "LinkedAuthorizationFailed") {
    const named = /action '([^']+)'/i.exec(message)?.[1];
    if (error.afterAccepted) {
      // The start itself went through (the VM is starting); only learning how it ended was refused.
      const permission = named ?? requiredPermission.followStart;
      return {
        kind: "forbidden",
        code,
        permission,
        message: `ARM accepted the start, but following it to its outcome needs ${permission}: ${message}`,
      };
    }
    return { kind: "forbidden", code, message, permission: named ?? requiredPermission[operation] };
  }
  return { kind: "failed", code, message };
}

/** Outcomes that put the VM into backoff. */
export function isBackoffOutcome(outcome: AzureOutcome): boolean {
  return (
    outcome.kind === "capacity" ||
    outcome.kind === "price" ||
    outcome.kind === "quota" ||
    outcome.kind === "failed"
  );
}
