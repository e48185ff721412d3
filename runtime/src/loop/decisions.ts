// The runtime's decisions, as pure functions over plain data: which VMs to start, how an Azure
// error is classified, how long a VM backs off. No I/O here, so tests use plain objects and
// fast-check properties.

import type { AzureErrorFacts } from "../azure/payloads";
import { type SpotIneligibility, spotIneligibility } from "../core/spotEligibility";
import { type ObservedVm, type RestarterState, type RestartTag, vmKey } from "../core/vm";

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
