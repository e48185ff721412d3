// What happened, as data. Every state change the runtime decides is one `RestarterEvent`, created
// where the change is decided and emitted once on an `EventBus`; the log, notifications and
// metrics are sinks that subscribe to it (after aws-node-termination-handler's pkg/webhook: one
// call site, one validated config, never sends sprinkled through the logic).

/**
 * The events a notification channel can subscribe to (runtime config `notifications[].events`).
 * These names are a contract (docs/architecture.md, "Notification event names"): never rename one.
 */
export const notificationEventNames = [
  "vm-evicted",
  "vm-restarted",
  "vm-restart-failing",
  "vm-fallback-size",
  "vm-left-alone",
  "auth-failing",
  "permission-missing",
  "certificate-expiring",
  "resource-group-missing",
  // Opt-in only: a channel gets it when its `events` lists it (notify/index.ts).
  "weekly-report",
] as const;
export type NotificationEventName = (typeof notificationEventNames)[number];

/** The VM an event concerns. */
export interface VmRef {
  readonly resourceGroup: string;
  readonly vm: string;
}

/** Why a deallocated VM is left alone. */
export type LeftAloneReason = "owner-deallocated" | "hibernated" | "paused" | "conflict";

export type RestarterEvent =
  /**
   * The cause gate (causeGate.ts) decided to start a deallocated tagged Spot VM; once per deallocation.
   * Never emitted for a VM its owner deallocated (that is `vm-left-alone`).
   */
  | (VmRef & {
      readonly type: "vm-evicted";
      readonly at: number;
      /**
       * `evicted`: Azure says so (Resource Health); `unknown`: nothing explained the deallocation within
       * unknownCauseAfterSeconds, so it is started as if evicted; `deallocated`: `restartWhen: "deallocated"`
       * starts every deallocation, whatever its cause.
       */
      readonly cause: "evicted" | "unknown" | "deallocated";
      /** When Azure says the eviction happened (ms since epoch), if known. */
      readonly occurredAt?: number;
      /** Where the cause came from (`resource-health`, …), if known. */
      readonly source?: string;
      /** For `unknown`: how long it waited for a signal. */
      readonly waitedSeconds?: number;
      /** For `evicted`: from the deallocation first seen until Azure said so (seconds), when learnt by asking. */
      readonly knownAfterSeconds?: number;
    })
  /** A VM this runtime started is running again. */
  | (VmRef & {
      readonly type: "vm-restarted";
      readonly at: number;
      /** From the first sighting deallocated to running again. */
      readonly downtimeSeconds: number;
      readonly attempts: number;
      readonly vmSize?: string;
      /** From the start request to running (the last attempt only). */
      readonly startSeconds?: number;
    })
  /** Starts keep failing; emitted once per escalation step (e.g. 15 min, 1 h, 6 h), not per attempt. */
  | (VmRef & {
      readonly type: "vm-restart-failing";
      readonly at: number;
      readonly code: string;
      readonly reason: string;
      readonly downSeconds: number;
      readonly attempts: number;
      readonly nextAttemptAt?: number;
    })
  /** A VM without capacity in its size was resized to a fallback size before starting. */
  | (VmRef & {
      readonly type: "vm-fallback-size";
      readonly at: number;
      readonly fromSize: string;
      readonly toSize: string;
      /** Its own size, the one it goes back to at its next eviction. */
      readonly originalSize?: string;
      /** How long starts had failed for capacity before the resize. */
      readonly capacityFailingSeconds?: number;
    })
  /** A deallocated, tagged VM that the runtime will not start, and why; emitted once per deallocation. */
  | (VmRef & {
      readonly type: "vm-left-alone";
      readonly at: number;
      readonly reason: LeftAloneReason;
      /** Who deallocated it (the Activity Log's caller), when known. */
      readonly by?: string;
      readonly occurredAt?: number;
      /** Where the owner's deallocation was read (`resource-health`, `activity-log`, `start-preempted`). */
      readonly source?: string;
      /** For an owner's stop: from the deallocation first seen until Azure said so (seconds), when learnt by asking. */
      readonly knownAfterSeconds?: number;
      /** For `paused`: when the pause ends (ms since epoch); absent = until resumed. */
      readonly until?: number;
    })
  | {
      readonly type: "auth-failing";
      readonly at: number;
      readonly code?: string;
      readonly message: string;
      /** The token endpoint's HTTP status, when it answered. */
      readonly status?: number;
      /** Entra ID unavailable (5xx, 429, unreachable) rather than refusing us. */
      readonly transient?: boolean;
      /**
       * The command ends with this error, which its one top-level handler prints (cli.ts): emitted for the
       * notifications only, so the log does not say it a second time.
       */
      readonly ending?: boolean;
    }
  | (Partial<VmRef> & {
      readonly type: "permission-missing";
      readonly at: number;
      /** The missing action, by its full name (`Microsoft.Compute/virtualMachines/start/action`). */
      readonly action: string;
      readonly scope?: string;
      /** Set when only an eviction-cause signal is unreadable: not fatal, the gate degrades (causeGate.ts). */
      readonly signal?: string;
      readonly message: string;
    })
  /** `run` waited for a permission (permission-missing) and a cycle went through without a refusal. */
  | {
      readonly type: "permission-restored";
      readonly at: number;
      /** The actions that were missing. */
      readonly actions: readonly string[];
      readonly waitedSeconds: number;
    }
  | {
      readonly type: "certificate-expiring";
      readonly at: number;
      readonly expiresAt: number;
      readonly daysLeft: number;
    }
  // Events below are for metrics and the log only; no notification channel subscribes to them.
  /** Every start attempt's end (metrics count `restarts_total{result}` from it). */
  | (VmRef & {
      readonly type: "start-attempt-ended";
      readonly at: number;
      readonly result: "succeeded" | "failed" | "throttled" | "interrupted";
      readonly code?: string;
    })
  /** What discovery saw of a tagged VM this cycle (metrics: vm_up, vm_down_seconds). */
  | (VmRef & {
      readonly type: "vm-observed";
      readonly at: number;
      readonly up: boolean;
      /** Since when it has been down (ms since epoch), when down. */
      readonly downSince?: number;
      /** Its size, region and OS as listed (the metrics' market figures are looked up by them). */
      readonly vmSize?: string;
      readonly location?: string;
      readonly osType?: string;
    })
  | {
      readonly type: "cycle-finished";
      readonly at: number;
      readonly durationSeconds: number;
      /** VMs listed, starts issued, starts still being followed, ARM requests sent so far. */
      readonly vms?: number;
      readonly starts?: number;
      readonly inFlight?: number;
      readonly armRequests?: number;
    }
  // The loop's own bookkeeping, for the log (named as its log lines are).
  /** A tagged Spot VM first seen deallocated; why is asked next (causeGate.ts), so not "evicted" yet. */
  | (VmRef & { readonly type: "vm-deallocated"; readonly at: number; readonly was?: string })
  /** Deallocated, and nothing says why yet: the gate asks again each cycle, starts it at `until` at the latest. */
  | (VmRef & { readonly type: "cause-pending"; readonly at: number; readonly until: number })
  /**
   * Azure said why (an eviction or the owner's stop), `knownAfterSeconds` after the runtime first saw the VM
   * deallocated: the delay of the signal as this installation meets it (docs/signal-delays.md).
   */
  | (VmRef & {
      readonly type: "cause-known";
      readonly at: number;
      readonly kind: "evicted" | "owner";
      readonly source: string;
      readonly knownAfterSeconds: number;
    })
  /** An eviction-cause signal failed (throttled, down); reported once per kind of failure. */
  | {
      readonly type: "cause-signal-failed";
      readonly at: number;
      readonly signal: string;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly type: "cause-signal-back";
      readonly at: number;
      readonly signal: string;
      readonly label: string;
    }
  | { readonly type: "pauses-unreadable"; readonly at: number; readonly message: string }
  | (VmRef & { readonly type: "start-issued"; readonly at: number; readonly attempt: number })
  | (VmRef & { readonly type: "start-accepted"; readonly at: number })
  | (VmRef & { readonly type: "would-start"; readonly at: number })
  /** A VM that was evicted or in backoff is running, not by a start of ours. */
  | (VmRef & { readonly type: "vm-running"; readonly at: number; readonly was?: string })
  | (VmRef & {
      readonly type: "power-state-changed";
      readonly at: number;
      readonly state?: string;
      readonly was?: string;
    })
  | (VmRef & { readonly type: "vm-forgotten"; readonly at: number; readonly why: string })
  /** A VM resized to a fallback size during an earlier deallocation is back at its own size before its start. */
  | (VmRef & {
      readonly type: "vm-size-restored";
      readonly at: number;
      readonly fromSize: string;
      readonly toSize: string;
    })
  /**
   * Fallback sizes: a resize (to a fallback, or back) was not made; the VM is started at its current size.
   * `reason`: no configured size is offered or allowed from this one, or Azure refused the resize.
   */
  | (VmRef & {
      readonly type: "vm-resize-skipped";
      readonly at: number;
      readonly fromSize: string;
      readonly toSize?: string;
      readonly reason: string;
      readonly code?: string;
    })
  /** A deallocated VM in a control-plane operation (`ProvisioningState/<state>`): not started until it ends. */
  | (VmRef & { readonly type: "provisioning-busy"; readonly at: number; readonly state: string })
  /** A start failed in a way that puts the VM into backoff. */
  | (VmRef & {
      readonly type: "start-failed";
      readonly at: number;
      readonly outcome: "capacity" | "price" | "quota" | "failed";
      readonly code: string;
      readonly message: string;
      readonly attempts: number;
      readonly backoffUntil: number;
      readonly backoffSeconds: number;
      /** For `price`: the VM's max price (-1 = up to the on-demand price). */
      readonly maxPrice?: number;
    })
  | (VmRef & { readonly type: "start-interrupted"; readonly at: number })
  | (VmRef & {
      readonly type: "start-conflict";
      readonly at: number;
      readonly code: string;
      readonly message: string;
    })
  | (VmRef & { readonly type: "start-timeout"; readonly at: number; readonly message: string })
  /** ARM refused our token (401): fatal. */
  | (Partial<VmRef> & {
      readonly type: "token-refused";
      readonly at: number;
      readonly code: string;
      readonly message: string;
    })
  | { readonly type: "token-available"; readonly at: number }
  | {
      readonly type: "throttled";
      readonly at: number;
      readonly code: string;
      readonly retryAfterSeconds: number;
      readonly until: number;
    }
  | { readonly type: "cycle-skipped"; readonly at: number; readonly until: number }
  /** Resource Graph discovery (issue 28) could not be used this cycle: the groups were listed instead. */
  | { readonly type: "discovery-fallback"; readonly at: number; readonly reason: string }
  /** The periodic list sweep and Resource Graph disagree about these VMs (`<group>/<vm>: …`). */
  | { readonly type: "discovery-disagreement"; readonly at: number; readonly differences: string }
  | { readonly type: "cycle-failed"; readonly at: number; readonly message: string }
  /**
   * A configured resource group ARM says does not exist (404 `ResourceGroupNotFound`): `run` says so once
   * per episode (log and notification) and `resource-group-found` when it lists again; once/status exit 4.
   */
  /**
   * `run`'s weekly digest (`report --since 7d`), for the channels whose `events` list `weekly-report`; the
   * repeat gate (notify/gate.ts) lets one through a week, whatever restarts `run` has.
   */
  | {
      readonly type: "weekly-report";
      readonly at: number;
      readonly since: number;
      readonly evictions: number;
      readonly ownerStops: number;
      readonly downtimeSeconds: number;
      /** The report's table, as `report` prints it. */
      readonly table: string;
    }
  | {
      readonly type: "resource-group-missing";
      readonly at: number;
      readonly resourceGroup: string;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly type: "resource-group-found";
      readonly at: number;
      readonly resourceGroup: string;
      readonly missingSeconds: number;
    }
  /** A read during discovery failed (not throttling, not a missing permission); next cycle tries again. */
  | (Partial<VmRef> & {
      readonly type: "read-failed";
      readonly at: number;
      readonly resourceGroup: string;
      readonly code: string;
      readonly message: string;
    })
  | { readonly type: "state-new" | "state-saved"; readonly at: number; readonly path: string }
  | { readonly type: "state-rebuilt"; readonly at: number; readonly path: string; readonly detail: string }
  | {
      readonly type: "state-save-failed";
      readonly at: number;
      readonly path: string;
      readonly code?: string;
      readonly message: string;
    };

export type RestarterEventType = RestarterEvent["type"];
export type EventOf<T extends RestarterEventType> = Extract<RestarterEvent, { type: T }>;

export function isNotificationEvent(
  event: RestarterEvent,
): event is Extract<RestarterEvent, { type: NotificationEventName }> {
  return (notificationEventNames as readonly string[]).includes(event.type);
}

/** A sink: the log, a notification channel, the metrics registry. Must not throw or block. */
export type EventSink = (event: RestarterEvent) => void;
