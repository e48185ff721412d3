// The one list of Azure role actions spot-restarter's service principal needs, each with the feature that
// uses it. The Pulumi program's least-privilege role (components/ResourceGroupAccess.ts), `doctor`'s
// permission check, the emulator's test roles and the README's list all import this; a test
// (test/program/contracts.test.ts) checks they agree. A feature that calls a new ARM operation adds its
// action here, under its own feature, and nowhere else.
//
// No imports: the Pulumi program, the emulator and the bundled runtime all load this file.

/** A runtime feature that needs rights in Azure; `doctor` checks the actions of each enabled one. */
export type RoleFeature = "restart" | "doctor" | "eviction-cause" | "simulate-eviction" | "fallback-size";

export interface RoleAction {
  /** The full action name, as a role definition and ARM's 403 `AuthorizationFailed` spell it. */
  readonly action: string;
  readonly feature: RoleFeature;
  /** What the runtime does with it (shown by `doctor` next to a missing action). */
  readonly usedFor: string;
  /** Microsoft's page that names the action, and its words for it (a test checks every entry has one). */
  readonly source: string;
}

const COMPUTE_PERMISSIONS =
  "learn.microsoft.com/azure/role-based-access-control/permissions/compute#microsoftcompute";
const GOVERNANCE_PERMISSIONS =
  "learn.microsoft.com/azure/role-based-access-control/permissions/management-and-governance";

export const ROLE_FEATURES: Readonly<Record<RoleFeature, string>> = {
  restart: "find evicted, tagged Spot VMs and start them again (once, run, status)",
  doctor: "doctor: compare the principal's effective permissions with what the enabled features need",
  "eviction-cause":
    "tell an eviction from an owner's stop (restartWhen evicted); without these the runtime warns once and starts unexplained deallocations after unknownCauseAfterSeconds",
  "simulate-eviction":
    "simulate-eviction (opt-in, spot-restarter:allowSimulateEviction): ask Azure to evict a Spot VM to test the whole chain",
  "fallback-size":
    "fallbackSizes (opt-in): resize a deallocated VM whose size has no Spot capacity to a configured fallback size, and back",
};

/**
 * Features only some configs enable: their actions are granted only then. The Pulumi program's role gains
 * `fallback-size` only when `spot-restarter:fallbackSizes` is set (without it no VM is ever resized, and the
 * role cannot write a VM), and `simulate-eviction` only when `spot-restarter:allowSimulateEviction` is true
 * (without it the runtime's identity cannot evict any Spot VM in the group).
 */
export const OPT_IN_FEATURES: readonly RoleFeature[] = ["simulate-eviction", "fallback-size"];

/** What turns on each opt-in feature in the Pulumi program (said by `simulate-eviction` and `doctor` when refused). */
export const OPT_IN_HOW: Readonly<Partial<Record<RoleFeature, string>>> = {
  "simulate-eviction": "pulumi config set spot-restarter:allowSimulateEviction true && pulumi up",
  "fallback-size": "pulumi config set --path 'spot-restarter:fallbackSizes.<vm-name>[0]' <size> && pulumi up",
};

export const ROLE_ACTIONS = [
  {
    action: "Microsoft.Compute/virtualMachines/read",
    feature: "restart",
    usedFor: "list the resource group's VMs",
    source: `${COMPUTE_PERMISSIONS}: "Get the properties of a virtual machine"`,
  },
  {
    action: "Microsoft.Compute/virtualMachines/instanceView/read",
    feature: "restart",
    usedFor: "read a tagged Spot VM's power state",
    source: `${COMPUTE_PERMISSIONS}: "Gets the detailed runtime status of the virtual machine and its resources"`,
  },
  {
    action: "Microsoft.Compute/virtualMachines/start/action",
    feature: "restart",
    usedFor: "start a deallocated VM",
    source: `${COMPUTE_PERMISSIONS}: "Starts the virtual machine"`,
  },
  {
    // A start is a long-running operation: its Azure-AsyncOperation / Location URLs are
    // /subscriptions/{s}/providers/Microsoft.Compute/locations/{location}/operations/{id}, which ARM
    // authorizes as this action (the Compute provider's operation list names it "Get Operation"), so a
    // custom role without it can start a VM but never learn how the start ended.
    action: "Microsoft.Compute/locations/operations/read",
    feature: "restart",
    usedFor: "follow a start's operation to its outcome",
    source: `${COMPUTE_PERMISSIONS}: "Gets the status of an asynchronous operation"`,
  },
  {
    // doctor's Permissions API call (GET {group}/providers/Microsoft.Authorization/permissions,
    // Permissions_ListForResourceGroup) is ARM's Microsoft.Authorization/permissions/read: "Lists all the
    // permissions the caller has at a given scope." (azure-docs
    // articles/role-based-access-control/permissions/management-and-governance.md#microsoftauthorization;
    // Reader's `*/read` includes it).
    action: "Microsoft.Authorization/permissions/read",
    feature: "doctor",
    usedFor: "read this principal's own effective permissions at the group",
    source: `${GOVERNANCE_PERMISSIONS}#microsoftauthorization: "Lists all the permissions the caller has at a given scope."`,
  },
  {
    // Resource Graph answers every caller but returns only the rows it may read ("at least read access to
    // the resources you want to query", learn.microsoft.com/azure/governance/resource-graph/overview,
    // "Permissions in Azure Resource Graph"). A VM's `healthresources` rows are Resource Health records
    // (types microsoft.resourcehealth/availabilitystatuses and …/resourceannotations), read with Resource
    // Health's read action: Microsoft.ResourceHealth/availabilityStatuses/read, "Gets the availability
    // statuses for all resources in the specified scope" (azure-docs
    // articles/role-based-access-control/permissions/management-and-governance.md#microsoftresourcehealth;
    // Reader's `*/read` includes it). The provider lists no separate action for annotations.
    action: "Microsoft.ResourceHealth/availabilityStatuses/read",
    feature: "eviction-cause",
    usedFor:
      "read the VMs' Resource Health annotations (VirtualMachinePreempted, VirtualMachineDeallocationInitiated) through Resource Graph",
    source: `${GOVERNANCE_PERMISSIONS}#microsoftresourcehealth: "Gets the availability statuses for all resources in the specified scope"`,
  },
  {
    // The Activity Log's list operation (Azure resource provider operations, Microsoft.Insights:
    // "Read management event type values"), granted at the resource group it is filtered to.
    action: "Microsoft.Insights/eventtypes/values/read",
    feature: "eviction-cause",
    usedFor: "read who deallocated a VM from the Activity Log when Resource Health is silent or late",
    source:
      'learn.microsoft.com/azure/azure-monitor/roles-permissions-security: "List Activity Log events (management events) in a subscription"',
  },
  {
    // VirtualMachines_SimulateEviction (POST …/virtualMachines/{vm}/simulateEviction): "Simulates the eviction
    // of spot Virtual Machine" (azure-docs
    // articles/role-based-access-control/permissions/compute.md#microsoftcompute). Opt-in: it lets the
    // identity evict any Spot VM in the group.
    action: "Microsoft.Compute/virtualMachines/simulateEviction/action",
    feature: "simulate-eviction",
    usedFor: "ask Azure to evict a Spot VM (testing the chain end to end)",
    source: `${COMPUTE_PERMISSIONS}: "Simulates the eviction of spot Virtual Machine"`,
  },
  {
    // VirtualMachines_ListAvailableSizes (GET …/virtualMachines/{vm}/vmSizes). Azure's built-in roles name it
    // "Lists available sizes the virtual machine can be updated to" (e.g. the NotActions of a built-in role in
    // learn.microsoft.com/azure/role-based-access-control/built-in-roles).
    action: "Microsoft.Compute/virtualMachines/vmSizes/read",
    feature: "fallback-size",
    usedFor: "list the sizes a deallocated VM can be resized to, with their temp disks",
    source: `${COMPUTE_PERMISSIONS}: "Lists available sizes the virtual machine can be updated to"`,
  },
  {
    // A resize is a PATCH (or PUT) of the VM's hardwareProfile.vmSize: ARM authorizes it as the VM's write
    // action ("Create or update a virtual machine"), which also allows any other change to the VM. That is
    // why it is opt-in.
    action: "Microsoft.Compute/virtualMachines/write",
    feature: "fallback-size",
    usedFor: "resize a deallocated VM to a fallback size, and back to its own size at its next eviction",
    source: `${COMPUTE_PERMISSIONS}: "Creates a new virtual machine or updates an existing virtual machine"`,
  },
] as const satisfies readonly RoleAction[];

/** Every action the least-privilege role grants without opt-in features, in the order above. */
export const LEAST_PRIVILEGE_ACTIONS: readonly string[] = ROLE_ACTIONS.filter(
  (entry) => !OPT_IN_FEATURES.includes(entry.feature),
).map((entry) => entry.action);

/** Which opt-in features a config enables (each false when left out). */
export interface OptInChoices {
  readonly fallbackSizes?: boolean;
  readonly simulateEviction?: boolean;
}

/** The least-privilege role's actions for a config: the base ones, plus each opt-in feature's when enabled. */
export function leastPrivilegeActions(options: OptInChoices): string[] {
  const enabled: Partial<Record<RoleFeature, boolean | undefined>> = {
    "fallback-size": options.fallbackSizes,
    "simulate-eviction": options.simulateEviction,
  };
  return ROLE_ACTIONS.filter(
    (entry) => !OPT_IN_FEATURES.includes(entry.feature) || enabled[entry.feature] === true,
  ).map((entry) => entry.action);
}

/** The actions the given features need, without duplicates, in list order. */
export function actionsFor(features: Iterable<RoleFeature>): RoleAction[] {
  const wanted = new Set(features);
  const seen = new Set<string>();
  return ROLE_ACTIONS.filter((entry) => {
    if (!wanted.has(entry.feature) || seen.has(entry.action)) return false;
    seen.add(entry.action);
    return true;
  });
}
