// The event bus and the sentence each event reads as. The events themselves (what happened, as data:
// `RestarterEvent`) are defined in core/events.ts, below every room that emits or receives them.

import type { EventSink, RestarterEvent } from "../core/events";

export interface EventBus {
  emit(event: RestarterEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(sink: EventSink): () => void;
}

/**
 * Delivers each event to every sink, synchronously and in order. A sink that throws is reported
 * through `onSinkError` once per sink and never reaches the emitter: a sink never fails the loop.
 */
export function createEventBus(onSinkError: (error: unknown) => void = () => {}): EventBus {
  const sinks = new Set<EventSink>();
  const reported = new WeakSet<EventSink>();
  return {
    emit(event) {
      for (const sink of sinks) {
        try {
          sink(event);
        } catch (error) {
          if (!reported.has(sink)) {
            reported.add(sink);
            onSinkError(error);
          }
        }
      }
    },
    subscribe(sink) {
      sinks.add(sink);
      return () => sinks.delete(sink);
    },
  };
}

function minutes(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** One human sentence per event: the log line's message and the notification's text. */
export function describeEvent(event: RestarterEvent): string {
  switch (event.type) {
    case "vm-evicted":
      switch (event.cause) {
        case "evicted":
          return `Azure evicted Spot VM ${event.vm}${event.occurredAt ? ` at ${iso(event.occurredAt)}` : ""}; starting it`;
        case "unknown":
          return `Spot VM ${event.vm} has been deallocated ${minutes(event.waitedSeconds ?? 0)} and Azure does not say why (no Resource Health annotation, no Activity Log entry, or no permission to read them); starting it as if evicted`;
        case "deallocated":
          return `Spot VM ${event.vm} is deallocated; starting it (restartWhen: deallocated starts every deallocation)`;
      }
      break;
    case "vm-deallocated":
      return `Spot VM ${event.vm} is deallocated; asking Azure why before starting it (an owner's stop is left alone)`;
    case "cause-pending":
      return `deallocated and Azure does not say why yet; waiting for Resource Health or the Activity Log, starting it at ${iso(event.until)} at the latest`;
    case "cause-known":
      return `Azure says why ${event.vm} is deallocated (${event.kind === "evicted" ? "evicted" : "its owner's stop"}, from ${event.source}), ${event.knownAfterSeconds} s after it was first seen deallocated`;
    case "cause-signal-failed":
      return event.message;
    case "cause-signal-back":
      return `${event.label} answers again`;
    case "pauses-unreadable":
      return `cannot read the pauses file: ${event.message}`;
    case "vm-restarted":
      return `Spot VM ${event.vm} is running again after ${minutes(event.downtimeSeconds)} down (${event.attempts} start attempt${event.attempts === 1 ? "" : "s"})`;
    case "vm-restart-failing":
      return `Spot VM ${event.vm} has been down ${minutes(event.downSeconds)}; start still failing: ${event.reason} (${event.code}, ${event.attempts} attempts)`;
    case "vm-fallback-size":
      return `Spot VM ${event.vm} has no capacity as ${event.fromSize}; resized to ${event.toSize} and starting it`;
    case "vm-left-alone":
      switch (event.reason) {
        case "owner-deallocated":
          return `Spot VM ${event.vm} was deallocated by its owner${event.by ? ` (${event.by})` : ""}${event.occurredAt ? ` at ${iso(event.occurredAt)}` : ""}; not restarting`;
        case "hibernated":
          return `Spot VM ${event.vm} was hibernated; not restarting`;
        case "paused":
          return `Spot VM ${event.vm} is paused${event.until ? ` until ${iso(event.until)}` : ""}; not restarting`;
        case "conflict":
          return `Spot VM ${event.vm} is in a state that refuses a start; leaving it for now`;
      }
      break;
    case "auth-failing":
      return `cannot authenticate to Entra ID: ${event.message}`;
    case "permission-missing":
      return event.message;
    case "permission-restored":
      return `the service principal's permissions work again (${event.actions.join(", ")}) after ${minutes(event.waitedSeconds)} of waiting; carrying on`;
    case "certificate-expiring":
      return `the service principal's certificate expires at ${iso(event.expiresAt)} (in ${event.daysLeft} day${event.daysLeft === 1 ? "" : "s"}): run pulumi up, then the install command again`;
    case "start-attempt-ended":
      return `start of ${event.vm} ended: ${event.result}${event.code ? ` (${event.code})` : ""}`;
    case "vm-observed":
      return `${event.vm} is ${event.up ? "up" : "down"}`;
    case "cycle-finished":
      return `cycle finished in ${event.durationSeconds.toFixed(3)} s`;
    case "start-issued":
      return "starting evicted Spot VM";
    case "start-accepted":
      return "ARM accepted the start";
    case "would-start":
      return "dry run: would start this deallocated VM";
    case "vm-running":
      return "VM is running again";
    case "power-state-changed":
      return event.state === "running"
        ? "VM is running"
        : `VM is ${event.state ?? "in an unknown power state"}; not a restart candidate`;
    case "vm-forgotten":
      return `forgetting VM: ${event.why}`;
    case "vm-size-restored":
      return `Spot VM ${event.vm} is back at its own size ${event.toSize} (it ran as ${event.fromSize}); starting it`;
    case "vm-resize-skipped":
      return `not resizing Spot VM ${event.vm}${event.toSize ? ` to ${event.toSize}` : ""}: ${event.reason}; starting it as ${event.fromSize}`;
    case "provisioning-busy":
      return `an operation is running on it (ProvisioningState/${event.state}); not starting it until that ends`;
    case "start-failed": {
      const why =
        event.outcome === "price"
          ? `the Spot price is above the VM's max price (${event.maxPrice === undefined || event.maxPrice === -1 ? "-1 = on-demand price" : `${event.maxPrice} USD/h`})`
          : event.outcome === "capacity"
            ? "Azure has no Spot capacity for this size now"
            : event.outcome === "quota"
              ? event.message
              : `unexpected failure: ${event.message}`;
      return `${why}; next attempt after ${iso(event.backoffUntil)}`;
    }
    case "start-interrupted":
      return "stopped following the start (shutting down); next run looks again";
    case "start-conflict":
      return `another operation is in progress; retrying next cycle: ${event.message}`;
    case "start-timeout":
      return `${event.message}; the next cycle reads its power state again`;
    case "token-refused":
      return event.message;
    case "token-available":
      return "Entra ID issues tokens again";
    case "throttled":
      return "ARM throttled us; no requests until Retry-After has passed";
    case "cycle-skipped":
      return "ARM throttled us; waiting out Retry-After";
    case "discovery-fallback":
      return `Resource Graph discovery not used this cycle (${event.reason}); listing each resource group instead`;
    case "discovery-disagreement":
      return `the list sweep and Resource Graph disagree (the list's view is used): ${event.differences}`;
    case "cycle-failed":
      return `cycle failed, trying again next interval: ${event.message}`;
    case "read-failed":
      return `reading from ARM failed; trying again next cycle: ${event.message}`;
    case "weekly-report":
      return `the last 7 days: ${event.evictions} eviction${event.evictions === 1 ? "" : "s"}, ${minutes(event.downtimeSeconds)} down after evictions, ${event.ownerStops} owner stop${event.ownerStops === 1 ? "" : "s"}\n${event.table}`;
    case "resource-group-missing":
      return resourceGroupMissingMessage(event.resourceGroup, event.code);
    case "resource-group-found":
      return `resource group ${event.resourceGroup} lists again after ${minutes(event.missingSeconds)} missing; its tagged Spot VMs are watched again`;
    case "state-new":
      return "no state file yet; starting fresh";
    case "state-rebuilt":
      return `${event.detail}; starting from empty state, rebuilt from the next observation`;
    case "state-saved":
      return "the state file can be written again";
    case "state-save-failed":
      return `cannot persist state (${event.message}); restarting VMs goes on, from memory`;
  }
  return "event";
}

/**
 * A listed resource group that ARM does not know (404 `ResourceGroupNotFound`), in words and with the fix:
 * the SDK's own message for it is only "Pagination failed with unexpected statusCode 404".
 */
export function resourceGroupMissingMessage(resourceGroup: string, code: string): string {
  return `resource group ${resourceGroup} not found (${code}): check resourceGroups and subscriptionId in the config`;
}
