// Which VMs spot-restarter may restart at all: the one rule the Pulumi program (components/RestartTag.ts,
// at `pulumi up`), `doctor` (cli/doctor.ts) and the loop (loop/decisions.ts) share. No imports: the
// Pulumi program and the bundled runtime both load this file.
//
// - Priority `Spot`, or `SpotPlus` (azure-rest-api-specs Compute 2026-04-01 example
//   `VirtualMachine_Create_WithSpotPlusPriority`, priority SpotPlus with evictionPolicy Deallocate;
//   @azure/arm-compute 25's VirtualMachinePriorityTypes). A Regular VM (or one without `priority`,
//   which Azure creates as Regular) is never evicted.
// - Eviction policy `Deallocate`: an evicted `Delete` VM is gone. A Spot VM answered without
//   `evictionPolicy` has the default, Deallocate: "When creating an Azure Spot Virtual Machine, you can
//   set the eviction policy to Deallocate (default) or Delete" (azure-compute-docs
//   articles/virtual-machines/spot-vms.md, "Eviction policy";
//   https://learn.microsoft.com/azure/virtual-machines/spot-vms#eviction-policy).
// Names compare case-insensitively, as ARM's enums do.

/** The priorities Azure evicts: `Spot` and `SpotPlus`. */
export const EVICTABLE_PRIORITIES = ["Spot", "SpotPlus"] as const;

/** The eviction policy Azure gives a Spot VM created without one. */
export const DEFAULT_EVICTION_POLICY = "Deallocate";

/** The two fields of a VM the rule reads, as ARM sends them (either may be absent). */
export interface SpotVmFacts {
  readonly priority?: string | null;
  readonly evictionPolicy?: string | null;
}

/** Why a VM can never be restarted after an eviction. */
export type SpotIneligibility =
  /** Not a Spot (or SpotPlus) VM: never evicted. */
  | "not-spot"
  /** Eviction policy Delete: Azure deletes it on eviction. */
  | "eviction-policy-delete"
  /** An eviction policy this rule does not know: not assumed to leave a VM to start. */
  | "eviction-policy-unknown";

/** The VM's eviction policy, Azure's default when absent. */
export function effectiveEvictionPolicy(vm: SpotVmFacts): string {
  return vm.evictionPolicy ? vm.evictionPolicy : DEFAULT_EVICTION_POLICY;
}

/** Undefined when an eviction leaves this VM deallocated and startable; otherwise why not. */
export function spotIneligibility(vm: SpotVmFacts): SpotIneligibility | undefined {
  const priority = (vm.priority ?? "").toLowerCase();
  if (!EVICTABLE_PRIORITIES.some((p) => p.toLowerCase() === priority)) return "not-spot";
  const policy = effectiveEvictionPolicy(vm).toLowerCase();
  if (policy === "delete") return "eviction-policy-delete";
  if (policy !== DEFAULT_EVICTION_POLICY.toLowerCase()) return "eviction-policy-unknown";
  return undefined;
}

/** The reason in words, for errors and reports: what Azure does with such a VM. */
export function describeSpotIneligibility(vm: SpotVmFacts, reason: SpotIneligibility): string {
  switch (reason) {
    case "not-spot":
      return `priority ${vm.priority || "Regular"}: only Spot and SpotPlus VMs are evicted, so there is nothing to restart`;
    case "eviction-policy-delete":
      return "eviction policy Delete: Azure deletes it on eviction, nothing is left to start";
    case "eviction-policy-unknown":
      return `eviction policy ${effectiveEvictionPolicy(vm)}: only Deallocate leaves an evicted VM to start`;
  }
}
