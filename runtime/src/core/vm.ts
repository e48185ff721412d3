// The domain's data about one VM: what discovery observes, what the state file remembers, and how a VM is
// keyed. Plain types every room shares (the loop decides on them, the state store persists them, the cause
// gate and the Azure client read and produce them), so they sit below all of them.

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
  /** Its region (`location`), for the market data of its size there (azure/spotMarket.ts). */
  readonly location?: string;
  /** `storageProfile.osDisk.osType`: `Linux` or `Windows` (Spot and retail prices differ by it). */
  readonly osType?: string;
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
    /** From first seen deallocated to Azure saying why (ms), when learnt by asking (causeGate.ts). */
    knownAfterMs?: number;
  };
  /** Last provisioning state observed (instance view, lower-cased), if any. */
  provisioningState?: string;
  /** Last seen hibernated (`HibernationState/Hibernated`). */
  hibernated?: boolean;
  /** `evictedSince` of the deallocation already announced as `vm-evicted` (announced once per deallocation). */
  evictionAnnouncedFor?: number;
  /** Since when starts have failed for lack of capacity, without a success in between (loop/fallback.ts). */
  capacityFailingSince?: number;
  /** A resize to a fallback size, remembered until the VM is back at its own size (loop/fallback.ts). */
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

/** Azure resource names are case-insensitive; so is our key. */
export function vmKey(resourceGroup: string, name: string): string {
  return `${resourceGroup}/${name}`.toLowerCase();
}

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

/** One entry of VirtualMachines_ListAvailableSizes' `value` (VirtualMachineSize, 2026-04-01). */
export interface AvailableSize {
  readonly name?: string;
  /** 0 for a size without a local temp (resource) disk. */
  readonly resourceDiskSizeInMB?: number;
}

/**
 * What the state file remembers about a resize, so a crash at any point loses nothing: `originalSize` is
 * written before the first PATCH away from it, `phase` says whether the PATCH to `size` is known to have
 * completed. Cleared once the VM is back at its original size.
 */
export interface SizeRecord {
  /** The VM's own size, the one it had before we first resized it. */
  readonly originalSize: string;
  /** The size we resized (or were resizing) it to. */
  readonly size: string;
  /** `resizing`: a PATCH to `size` was sent and its answer not yet recorded; `resized`: Azure confirmed it. */
  readonly phase: "resizing" | "resized";
  readonly at: number;
  /** The deallocation (the record's `evictedSince`) during which we resized it: a later one restores first. */
  readonly outage?: number;
}
