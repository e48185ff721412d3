// What happens to one VM's record when something is observed or a start ends, as pure functions
// returning the new record and the events the change produces (`{ record, events }`). The loop
// (restarter.ts) stores the record and emits the events; tests use plain objects. Effects beyond the
// VM's own record (ARM throttling, forgetting the VM, a fatal error) are returned, not performed.

import { AuthError, messageChain, type PermissionError, permissionError } from "../core/errors";
import type { RestarterEvent } from "../core/events";
import type { ObservedVm, VmRecord } from "../core/vm";
import { type AzureOutcome, busyProvisioningStates, isBackoffOutcome, requiredPermission } from "./decisions";
import { nextAttemptAt, quotaAdvice, type RetryCause, type RetryPolicy } from "./schedule";

export interface Transition {
  readonly record: VmRecord;
  readonly events: RestarterEvent[];
}

/** How a start ended: an Azure outcome, or we stopped following it, or no token could be had. */
export type StartEnd =
  | AzureOutcome
  | { kind: "interrupted" }
  | { kind: "token-unavailable"; message: string };

/** Errors that end the loop: carrying on is pointless when the principal cannot do its job. */
export type FatalError = AuthError | PermissionError;

/** What the loop must do beyond storing the record. */
export type StartEffect =
  | { readonly kind: "throttle"; readonly retryAfterMs: number | undefined; readonly code: string }
  | { readonly kind: "forget"; readonly why: string }
  | { readonly kind: "fatal"; readonly error: FatalError };

type VmName = Pick<ObservedVm, "resourceGroup" | "name">;

export function newRecord(vm: VmName): VmRecord {
  return { resourceGroup: vm.resourceGroup, name: vm.name, startAttempts: 0 };
}

const ref = (vm: VmName) => ({ resourceGroup: vm.resourceGroup, vm: vm.name });
const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** What else the instance view said, beside the power state (absent: not read). */
export interface InstanceExtras {
  readonly provisioningState?: string;
  readonly hibernated?: boolean;
}

/**
 * The instance view showed `powerState` (undefined: no PowerState status). A change to deallocated
 * starts a deallocation (`evictedSince`; why is the cause gate's question); running clears the eviction and the backoff. Every observation also yields a
 * `vm-observed` (for metrics), changed or not. A deallocated VM first seen hibernated yields
 * `vm-left-alone` (a person hibernated it), and one first seen in a control-plane operation
 * (`ProvisioningState/updating`, …) `provisioning-busy`: each once, not per cycle.
 */
export function observePowerState(
  previous: VmRecord | undefined,
  vm: VmName & Partial<Pick<ObservedVm, "vmSize" | "location" | "osType">>,
  powerState: string | undefined,
  now: number,
  extras?: InstanceExtras,
): Transition {
  const before = previous ?? newRecord(vm);
  const events: RestarterEvent[] = [];
  let record: VmRecord = before;
  if (extras) {
    const deallocated = powerState === "deallocated";
    const wasDeallocated = before.powerState === "deallocated";
    const hibernated = extras.hibernated === true;
    const provisioningState = extras.provisioningState?.toLowerCase();
    if (deallocated && hibernated && !(wasDeallocated && before.hibernated)) {
      events.push({ type: "vm-left-alone", ...ref(vm), at: now, reason: "hibernated" });
    }
    if (
      deallocated &&
      provisioningState !== undefined &&
      busyProvisioningStates.has(provisioningState) &&
      !(wasDeallocated && before.provisioningState === provisioningState)
    ) {
      events.push({ type: "provisioning-busy", ...ref(vm), at: now, state: provisioningState });
    }
  }
  if (powerState !== before.powerState) {
    const was = before.powerState;
    if (powerState === "deallocated") {
      record = { ...before, evictedSince: before.evictedSince ?? now, lastEvictionSeenAt: now };
      // A fact for the log only: whether Azure evicted it is the cause gate's decision (causeGate.ts),
      // so an owner's stop never reaches anyone as "evicted".
      events.push({ type: "vm-deallocated", ...ref(vm), at: now, ...(was !== undefined ? { was } : {}) });
    } else if (powerState === "running") {
      const recovering = before.evictedSince !== undefined || before.backoffUntil !== undefined;
      events.push(
        recovering
          ? { type: "vm-running", ...ref(vm), at: now, was }
          : { type: "power-state-changed", ...ref(vm), at: now, state: powerState, was },
      );
      // lastRanAt: a cause older than this is about an earlier deallocation (cause.ts).
      record = {
        ...before,
        evictedSince: undefined,
        startAttempts: 0,
        backoffUntil: undefined,
        capacityFailingSince: undefined,
        lastRanAt: now,
        leftAloneLogged: undefined,
      };
    } else {
      events.push({ type: "power-state-changed", ...ref(vm), at: now, state: powerState, was });
    }
    record = { ...record, powerState };
  }
  if (extras) {
    record = {
      ...record,
      provisioningState: extras.provisioningState?.toLowerCase(),
      hibernated: extras.hibernated === true || undefined,
    };
  }
  events.push({
    type: "vm-observed",
    ...ref(vm),
    at: now,
    up: powerState === "running",
    downSince: powerState === "running" ? undefined : record.evictedSince,
    ...(vm.vmSize ? { vmSize: vm.vmSize } : {}),
    ...(vm.location ? { location: vm.location } : {}),
    ...(vm.osType ? { osType: vm.osType } : {}),
  });
  return { record, events };
}

/** A start request is about to be sent. */
export function startIssued(previous: VmRecord | undefined, vm: VmName, now: number): Transition {
  const before = previous ?? newRecord(vm);
  return {
    record: { ...before, lastStartAt: now, lastResult: { outcome: "issued", at: now } },
    events: [{ type: "start-issued", ...ref(vm), at: now, attempt: before.startAttempts + 1 }],
  };
}

export interface StartEndContext {
  readonly requestedAt: number;
  readonly now: number;
  /** When a failed start is tried again (schedule.ts). */
  readonly retry: RetryPolicy;
  readonly rng: () => number;
}

/** A start ended with `outcome`: the record after it, the events, and what else the loop must do. */
export function startEnded(
  before: VmRecord,
  vm: Pick<ObservedVm, "resourceGroup" | "name" | "maxPrice">,
  outcome: StartEnd,
  { requestedAt, now, retry, rng }: StartEndContext,
): Transition & { effect?: StartEffect } {
  const id = `${vm.resourceGroup}/${vm.name}`;
  const code = "code" in outcome ? outcome.code : undefined;
  let record: VmRecord = { ...before, lastResult: { outcome: outcome.kind, code, at: now } };
  const events: RestarterEvent[] = [];
  let effect: StartEffect | undefined;
  const ended = (result: "succeeded" | "failed" | "throttled" | "interrupted") =>
    events.push({ type: "start-attempt-ended", ...ref(vm), at: now, result, code });
  switch (outcome.kind) {
    case "started":
      record = {
        ...record,
        startAttempts: 0,
        backoffUntil: undefined,
        evictedSince: undefined,
        capacityFailingSince: undefined,
        lastStartedAt: now,
        // From when we asked: Azure may evict the VM while its start runs (the start still ends
        // Succeeded), and that eviction, recorded after our request, is about this run, not an old one.
        lastRanAt: requestedAt,
        leftAloneLogged: undefined,
        powerState: "running",
      };
      events.push({
        type: "vm-restarted",
        ...ref(vm),
        at: now,
        downtimeSeconds: seconds(now - (before.evictedSince ?? requestedAt)),
        attempts: before.startAttempts + 1,
        startSeconds: seconds(now - requestedAt),
      });
      ended("succeeded");
      break;
    case "token-unavailable":
      // Not the VM's fault: no backoff; the next cycle tries again (the loop reported the token failure).
      break;
    case "interrupted":
      events.push({ type: "start-interrupted", ...ref(vm), at: now });
      ended("interrupted");
      break;
    case "throttled":
      effect = { kind: "throttle", retryAfterMs: outcome.retryAfterMs, code: outcome.code };
      ended("throttled");
      break;
    case "gone":
      effect = { kind: "forget", why: `start answered ${outcome.code}: the VM no longer exists` };
      ended("failed");
      break;
    case "conflict": {
      if (outcome.code === "OperationPreempted") {
        // Someone acted on the VM during our start (its owner deallocating it): their word wins, the
        // start is not tried again against them (issue 10; cause.ts).
        record = { ...record, cause: { kind: "owner", at: now, source: "start-preempted" } };
        events.push({
          type: "start-conflict",
          ...ref(vm),
          at: now,
          code: outcome.code,
          message: `someone acted on the VM during our start; treating it as its owner's stop, not retrying: ${outcome.message}`,
        });
        ended("failed");
        break;
      }
      // A first conflict is retried next cycle; one that persists (the VM's state keeps refusing a
      // start) is backed off like a failure, not retried every cycle.
      const attempts = before.startAttempts + 1;
      record = {
        ...record,
        startAttempts: attempts,
        ...(attempts >= 2
          ? {
              backoffUntil: nextAttemptAt(
                { cause: "failed", attempts: attempts - 1, requestedAt, endedAt: now },
                rng,
                retry,
              ),
            }
          : {}),
      };
      events.push({
        type: "start-conflict",
        ...ref(vm),
        at: now,
        code: outcome.code,
        message: outcome.message,
      });
      ended("failed");
      break;
    }
    case "timeout":
      events.push({ type: "start-timeout", ...ref(vm), at: now, message: outcome.message });
      ended("interrupted");
      break;
    case "forbidden": {
      // A 403 while following a start ARM had accepted: the VM is starting, only its outcome is hidden.
      const error = permissionError(
        outcome,
        outcome.permission === requiredPermission.followStart
          ? `needed to follow the start of ${id} to its outcome (ARM accepted the start: the VM is starting)`
          : `needed to start ${id}`,
      );
      effect = { kind: "fatal", error };
      events.push({
        type: "permission-missing",
        ...ref(vm),
        at: now,
        action: outcome.permission,
        message: error.message,
      });
      ended("failed");
      break;
    }
    case "unauthorized":
      effect = {
        kind: "fatal",
        error: new AuthError(
          `Azure Resource Manager refused the token (${outcome.code}): ${outcome.message}`,
          "audience",
        ),
      };
      events.push({
        type: "token-refused",
        ...ref(vm),
        at: now,
        code: outcome.code,
        message: outcome.message,
      });
      ended("failed");
      break;
    default: {
      if (!isBackoffOutcome(outcome)) break;
      const attempts = before.startAttempts + 1;
      const cause = outcome.kind as RetryCause;
      const backoffUntil = nextAttemptAt({ cause, attempts, requestedAt, endedAt: now }, rng, retry);
      const delay = backoffUntil - now;
      record = {
        ...record,
        startAttempts: attempts,
        backoffUntil,
        // How long its size has had no capacity: fallback sizes (fallback.ts) count from the first such start.
        ...(cause === "capacity" ? { capacityFailingSince: before.capacityFailingSince ?? requestedAt } : {}),
      };
      events.push({
        type: "start-failed",
        ...ref(vm),
        at: now,
        outcome: cause,
        code: outcome.code,
        // A quota does not clear by itself: the message says what to raise.
        message: cause === "quota" ? quotaAdvice(outcome.code, outcome.message) : outcome.message,
        attempts,
        backoffUntil,
        backoffSeconds: seconds(delay),
        maxPrice: outcome.kind === "price" ? (vm.maxPrice ?? -1) : undefined,
      });
      ended("failed");
    }
  }
  return { record, events, effect };
}

/**
 * A read during discovery (the list, or an instance view) failed with an Azure error: what it means
 * for the loop. A missing permission or a refused token is fatal; throttling pauses every request;
 * the rest is reported and tried again next cycle.
 */
export function readFailed(
  { outcome, error }: { readonly outcome: AzureOutcome; readonly error: unknown },
  where: { readonly resourceGroup: string; readonly vm?: string },
  now: number,
): { events: RestarterEvent[]; effect?: Exclude<StartEffect, { kind: "forget" }> } {
  const code = "code" in outcome ? outcome.code : outcome.kind;
  switch (outcome.kind) {
    case "throttled":
      return { events: [], effect: { kind: "throttle", retryAfterMs: outcome.retryAfterMs, code } };
    case "forbidden":
      return {
        events: [],
        effect: {
          kind: "fatal",
          error: permissionError(outcome, `on resource group ${where.resourceGroup}`, error),
        },
      };
    case "unauthorized":
      return {
        events: [],
        effect: {
          kind: "fatal",
          error: new AuthError(
            `Azure Resource Manager refused the token (${outcome.code}): check cloud.audience and cloud.armEndpoint in the config (${outcome.message})`,
            "audience",
            { cause: error },
          ),
        },
      };
    case "gone":
      return {
        events: [{ type: "resource-group-missing", ...where, at: now, code, message: outcome.message }],
      };
    default:
      return { events: [{ type: "read-failed", ...where, at: now, code, message: messageChain(error) }] };
  }
}
