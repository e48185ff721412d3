// The emulated world: principals, roles, resource groups, VMs and their long-running operations.
// Time-driven changes (a start finishing, a scheduled eviction) are applied lazily by `settle()`
// whenever state is read, so there are no timers to leak and every answer is consistent with the clock.

import { createHash, randomUUID, X509Certificate } from "node:crypto";
import { Market } from "./market";
import { RateLimiter } from "./rateLimit";
import {
  BUILT_IN_ROLES,
  normalizeScope,
  type RoleAssignment,
  type RoleDefinition,
  roleDefinitionGuid,
} from "./rbac";
import type {
  FaultRule,
  PowerState,
  ResolvedSeed,
  SeedPrincipal,
  SeedRoleAssignment,
  SeedRoleDefinition,
  SeedVirtualMachine,
} from "./seed";
import { roleAssignmentSchema, roleDefinitionSchema, virtualMachineSchema } from "./seed";
import { VM_SIZE_CATALOGUE, type VmSize } from "./vmSizes";

export interface RegisteredCertificate {
  certificate: X509Certificate;
  /** base64url SHA-1 thumbprint without padding (the `x5t` header). */
  x5t: string;
  /** base64url SHA-256 thumbprint without padding (the `x5t#S256` header). */
  x5tS256: string;
  /** Upper-case hex SHA-1, as Entra prints it in AADSTS700027 messages. */
  hexThumbprint: string;
  /** Before this time (ms) Entra ID does not accept it yet (timing.signInReplicationSeconds). */
  usableFrom?: number;
}

export interface Principal {
  clientId: string;
  objectId: string;
  displayName: string;
  certificates: RegisteredCertificate[];
  createdAt: number;
  /** Before this time (ms) Entra ID does not know it yet (timing.signInReplicationSeconds). */
  signInFrom: number;
}

export interface ProvisioningError {
  code: string;
  message: string;
}

/** One power event of a VM, at the time it took effect (ISO 8601). */
export interface VmHistoryEntry {
  at: string;
  event:
    | "evicted"
    | "deallocated-by-owner"
    | "start-accepted"
    | "start-succeeded"
    | "start-failed"
    | "start-preempted"
    | "resized";
  /** For a failed start, its error code. */
  code?: string;
  /** For `resized`: the new size (`from`: the old one). */
  vmSize?: string;
  from?: string;
}

export interface VirtualMachine {
  /** The VM's subscription (the seed's, or another of the tenant). */
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  vmSize: string;
  zone: string | null;
  priority: "Regular" | "Spot" | "SpotPlus" | "Low";
  evictionPolicy: "Deallocate" | "Delete" | null;
  maxPrice: number | null;
  osType: "Linux" | "Windows";
  tags: Record<string, string>;
  publicIp: boolean;
  vmId: string;
  timeCreated: string;
  powerState: PowerState;
  provisioningState: "Succeeded" | "Updating" | "Deleting" | "Creating" | "Failed";
  provisioningError?: ProvisioningError;
  /** Deallocated by a hibernation (instance view `HibernationState/Hibernated`). */
  hibernated: boolean;
  /** A power transition in flight, finished by settle() at `at`. */
  transition?: {
    to: PowerState;
    at: number;
    operationId: string;
    failWith?: ProvisioningError;
    revertTo: PowerState;
  };
  /** A simulated eviction scheduled for this time. */
  evictAt?: number;
  startRequests: number;
  evictions: number;
  lastEvictedAt?: string;
  /** What happened to the VM, in order: the soak and tests count from it, not from the runtime's logs. */
  history: VmHistoryEntry[];
  /** Each power state and when it began (ms), oldest first: Resource Graph shows one that lags (graphPowerState). */
  powerLog: Array<{ at: number; state: PowerState }>;
  lastStatusChange: string;
}

/** Each annotation's reason and summary (descriptions: resource-health-vm-annotation). */
const ANNOTATION_TEXT: Record<Annotation["annotationName"], { reason: string; summary: string }> = {
  VirtualMachinePreempted: {
    reason: "Preempted",
    summary:
      "This virtual machine has been preempted. This eviction was triggered by Azure Spot capacity or price changes.",
  },
  VirtualMachineDeallocationInitiated: {
    reason: "Stopping and deallocating",
    summary:
      "This virtual machine is stopping and deallocating as requested by an authorized user or process.",
  },
  VirtualMachineSizeChanged: {
    reason: "Resizing",
    summary: "The Virtual Machine is being resized as requested by an authorized user or process.",
  },
};

/**
 * A Resource Health VM annotation, as Resource Graph's `healthresources` table holds it (type
 * `microsoft.resourcehealth/resourceannotations`). Names, contexts and categories from
 * https://learn.microsoft.com/azure/service-health/resource-health-vm-annotation
 */
export interface Annotation {
  /** The VM's subscription (absent in annotations made before it was recorded: the seed's). */
  subscriptionId?: string;
  resourceGroup: string;
  vmName: string;
  annotationName:
    | "VirtualMachinePreempted"
    | "VirtualMachineDeallocationInitiated"
    | "VirtualMachineSizeChanged";
  context: "Platform Initiated" | "Customer Initiated";
  category: "Unplanned" | "Not Applicable";
  reason: string;
  summary: string;
  impactType: "Informational";
  occurredTime: string;
  /** Not visible (Resource Graph, Activity Log) before this time (ms since epoch). */
  visibleAt: number;
}

/** An Activity Log entry (Administrative category) for a VM operation someone asked ARM for. */
export interface ActivityEvent {
  resourceGroup: string;
  vmName: string;
  operationName: string;
  /** The caller as the Activity Log names it: a user's UPN, or a service principal's application id. */
  caller: string;
  /** The caller's object id (the token's `oid`), when known. */
  callerObjectId?: string;
  status: "Started" | "Accepted" | "Succeeded";
  eventTimestamp: string;
  correlationId: string;
  eventDataId: string;
  visibleAt: number;
}

/** Who asked for a power operation (an ARM caller, or the owner acting through the control API). */
export interface Actor {
  caller: string;
  objectId?: string;
}

export interface Operation {
  id: string;
  location: string;
  /** The resource group of the VM it acts on: ARM authorizes polling its status there. */
  resourceGroup: string;
  /** That group's subscription. */
  subscriptionId: string;
  kind: "start" | "deallocate" | "powerOff";
  startTime: string;
  endsAt: number;
  error?: ProvisioningError;
}

export interface ResourceGroup {
  name: string;
  location: string;
  tags: Record<string, string>;
}

export interface ActiveFault {
  rule: FaultRule;
  remaining: number | undefined;
  /** When a `forSeconds` rule lapses (ms since epoch). */
  until?: number;
}

export const CAPACITY_MESSAGES: Record<string, string> = {
  AllocationFailed:
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
  ZonalAllocationFailed:
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
  OverconstrainedAllocationRequest:
    "Allocation failed. VM(s) with the following constraints cannot be allocated, because the condition is too restrictive. Please remove some constraints and try again.",
  OverconstrainedZonalAllocationRequest:
    "Allocation failed. VM(s) with the following constraints cannot be allocated, because the condition is too restrictive. Please remove some constraints and try again.",
  SkuNotAvailable:
    "The requested VM size for resource is currently not available in location. Please try another size or deploy to a different location or different zone. See https://aka.ms/azureskunotavailable for details.",
  SpotPriceGreaterThanProvidedMaxPrice:
    "Unable to perform operation as the current Spot price is higher than the max price you have provided for the VM. Please see https://aka.ms/AzureSpot/pricing for more details.",
};

const key = (...parts: string[]) => parts.map((part) => part.toLowerCase()).join("/");

export class World {
  readonly tenantId: string;
  readonly subscriptionId: string;
  readonly subscriptionName: string;
  readonly timing: ResolvedSeed["timing"];
  readonly listPageSize: number;
  readonly startResponse: ResolvedSeed["startResponse"];
  readonly concurrentStart: ResolvedSeed["concurrentStart"];
  /** Sizes a Spot VM cannot be resized to (seed `spotUnsupportedSizes`). */
  readonly spotUnsupportedSizes: readonly string[];
  private readonly offeredSizes: readonly VmSize[];
  /** Counts every ARM request against Azure's budgets for the remaining-budget headers. */
  readonly rateLimiter: RateLimiter;
  readonly principals = new Map<string, Principal>();
  readonly roleDefinitions = new Map<string, RoleDefinition>();
  readonly roleAssignments = new Map<string, RoleAssignment>();
  readonly resourceGroups = new Map<string, ResourceGroup>();
  readonly vms = new Map<string, VirtualMachine>();
  readonly operations = new Map<string, Operation>();
  faults: ActiveFault[] = [];
  readonly annotations: Annotation[] = [];
  readonly activityLog: ActivityEvent[] = [];
  /** Tags of scopes other than VMs and resource groups (the subscription). */
  readonly otherTags = new Map<string, Record<string, string>>();
  /** Eviction rates, Spot prices, placement scores and retail prices (market.ts). */
  readonly market: Market;

  constructor(
    seed: ResolvedSeed,
    private readonly now: () => number = Date.now,
  ) {
    this.tenantId = seed.tenantId;
    this.subscriptionId = seed.subscriptionId;
    this.subscriptionName = seed.subscriptionName;
    this.timing = seed.timing;
    this.listPageSize = seed.listPageSize;
    this.startResponse = seed.startResponse;
    this.concurrentStart = seed.concurrentStart;
    this.spotUnsupportedSizes = seed.spotUnsupportedSizes;
    this.offeredSizes =
      seed.offeredVmSizes === undefined
        ? VM_SIZE_CATALOGUE
        : VM_SIZE_CATALOGUE.filter((entry) =>
            seed.offeredVmSizes?.some((name) => name.toLowerCase() === entry.name.toLowerCase()),
          );
    this.rateLimiter = new RateLimiter(seed.rateLimits, now);
    this.market = new Market(seed, () => this.locations());
    for (const role of BUILT_IN_ROLES) this.roleDefinitions.set(role.name, role);
    // What the seed holds has long replicated; only what is added at run time waits (timing.*Replication*).
    this.seeding = true;
    for (const principal of seed.principals) this.addPrincipal(principal);
    for (const definition of seed.roleDefinitions) this.putRoleDefinition(definition);
    for (const assignment of seed.roleAssignments) this.putRoleAssignment(assignment);
    this.seeding = false;
    for (const group of seed.resourceGroups) this.resourceGroups.set(key(group.name), { ...group });
    for (const vm of seed.virtualMachines) this.putVirtualMachine(vm);
    this.addFaults(seed.faults);
  }

  get subscriptionScope(): string {
    return `/subscriptions/${this.subscriptionId}`;
  }

  // ---- principals -------------------------------------------------------------------------------

  private seeding = false;

  /** When something added now starts to work: at once while seeding, else after `seconds`. */
  private replicatedAt(seconds: number): number {
    return this.seeding ? 0 : this.now() + seconds * 1000;
  }

  /** Adds a principal, or adds certificates to an existing one (a key rollover keeps both). */
  addPrincipal(input: SeedPrincipal): Principal {
    const pems = (
      Array.isArray(input.certificatePem) ? input.certificatePem : [input.certificatePem]
    ).flatMap(splitCertificates);
    if (pems.length === 0)
      throw new Error(`principal ${input.clientId}: certificatePem holds no certificate`);
    const existing = this.principals.get(input.clientId.toLowerCase());
    const principal: Principal = existing ?? {
      clientId: input.clientId,
      objectId: input.objectId,
      displayName: input.displayName ?? `sp-${input.clientId.slice(0, 8)}`,
      certificates: [],
      createdAt: this.now(),
      signInFrom: this.replicatedAt(this.timing.signInReplicationSeconds),
    };
    for (const pem of pems) {
      const registered = registerCertificate(pem);
      if (!principal.certificates.some((known) => known.x5tS256 === registered.x5tS256)) {
        registered.usableFrom = this.replicatedAt(this.timing.signInReplicationSeconds);
        principal.certificates.push(registered);
      }
    }
    this.principals.set(input.clientId.toLowerCase(), principal);
    return principal;
  }

  removePrincipal(clientId: string): boolean {
    return this.principals.delete(clientId.toLowerCase());
  }

  principalByObjectId(objectId: string): Principal | undefined {
    for (const principal of this.principals.values()) {
      if (principal.objectId.toLowerCase() === objectId.toLowerCase()) return principal;
    }
    return undefined;
  }

  // ---- roles ------------------------------------------------------------------------------------

  putRoleDefinition(input: SeedRoleDefinition): RoleDefinition {
    const parsed = roleDefinitionSchema.parse(input);
    const name = roleDefinitionGuid(parsed.id);
    const previous = this.roleDefinitions.get(name);
    const time = new Date(this.now()).toISOString();
    const definition: RoleDefinition = {
      name,
      roleName: parsed.roleName ?? previous?.roleName ?? `custom-${name.slice(0, 8)}`,
      description: parsed.description ?? previous?.description ?? "",
      type: "CustomRole",
      actions: parsed.actions,
      notActions: parsed.notActions,
      assignableScopes:
        parsed.assignableScopes.length > 0 ? parsed.assignableScopes : [this.subscriptionScope],
      createdOn: previous?.createdOn ?? time,
      updatedOn: time,
      // Only a new role waits; an update keeps the role (and its replication) it had.
      assignableFrom: previous
        ? previous.assignableFrom
        : this.replicatedAt(this.timing.roleDefinitionReplicationSeconds),
    };
    this.roleDefinitions.set(name, definition);
    return definition;
  }

  findRoleDefinition = (guid: string): RoleDefinition | undefined =>
    this.roleDefinitions.get(guid.toLowerCase());

  putRoleAssignment(input: SeedRoleAssignment): RoleAssignment {
    const parsed = roleAssignmentSchema.parse(input);
    const name = (parsed.name ?? randomUUID()).toLowerCase();
    const previous = this.roleAssignments.get(name);
    const time = new Date(this.now()).toISOString();
    const assignment: RoleAssignment = {
      name,
      scope: parsed.scope,
      principalId: parsed.principalId,
      principalType: parsed.principalType,
      roleDefinitionId: parsed.roleDefinitionId,
      createdOn: previous?.createdOn ?? time,
      updatedOn: time,
      effectiveFrom:
        previous?.effectiveFrom ?? this.replicatedAt(this.timing.roleAssignmentReplicationSeconds),
    };
    this.roleAssignments.set(name, assignment);
    return assignment;
  }

  // ---- resource groups and VMs ------------------------------------------------------------------

  /**
   * Keys of another subscription's groups and VMs carry it in front; the seed's own keep the plain keys
   * (several subscriptions of one tenant, issue 28).
   */
  private scoped(subscriptionId: string | undefined, ...parts: string[]): string {
    return subscriptionId === undefined || subscriptionId.toLowerCase() === this.subscriptionId.toLowerCase()
      ? key(...parts)
      : key(subscriptionId, ...parts);
  }

  /** The seed's subscription, or another that holds a VM. */
  knowsSubscription(subscriptionId: string): boolean {
    const wanted = subscriptionId.toLowerCase();
    return (
      wanted === this.subscriptionId.toLowerCase() ||
      [...this.vms.values()].some((vm) => vm.subscriptionId.toLowerCase() === wanted)
    );
  }

  resourceGroup(name: string, subscriptionId?: string): ResourceGroup | undefined {
    return this.resourceGroups.get(this.scoped(subscriptionId, name));
  }

  /** The regions this world has resources in (ARM lists a provider's locations in some errors). */
  locations(): string[] {
    const all = [...this.resourceGroups.values()].map((g) => g.location.toLowerCase());
    return [...new Set(all.length > 0 ? all : ["eastus"])].sort();
  }

  putVirtualMachine(input: SeedVirtualMachine): VirtualMachine {
    const vm = virtualMachineSchema.parse(input);
    const subscriptionId = vm.subscriptionId ?? this.subscriptionId;
    if (!this.resourceGroups.has(this.scoped(subscriptionId, vm.resourceGroup))) {
      this.resourceGroups.set(this.scoped(subscriptionId, vm.resourceGroup), {
        name: vm.resourceGroup,
        location: vm.location,
        tags: {},
      });
    }
    const isSpot = vm.priority !== "Regular";
    // Absent = Azure's default `Deallocate`; an explicit null = a Spot VM answered without the field.
    const evictionPolicy = vm.evictionPolicy === undefined ? "Deallocate" : vm.evictionPolicy;
    const time = new Date(this.now()).toISOString();
    const machine: VirtualMachine = {
      subscriptionId,
      resourceGroup: this.resourceGroup(vm.resourceGroup, subscriptionId)?.name ?? vm.resourceGroup,
      name: vm.name,
      location: vm.location,
      vmSize: vm.vmSize,
      zone: vm.zone,
      priority: vm.priority,
      evictionPolicy: isSpot ? evictionPolicy : null,
      maxPrice: isSpot ? (vm.maxPrice ?? -1) : null,
      osType: vm.osType,
      tags: { ...vm.tags },
      publicIp: vm.publicIp,
      vmId: randomUUID(),
      timeCreated: time,
      powerState: vm.powerState,
      provisioningState: vm.provisioningState,
      hibernated: vm.powerState === "deallocated" && vm.hibernated,
      startRequests: 0,
      evictions: 0,
      history: [],
      powerLog: [{ at: Number.NEGATIVE_INFINITY, state: vm.powerState }],
      lastStatusChange: time,
    };
    this.vms.set(this.scoped(subscriptionId, vm.resourceGroup, vm.name), machine);
    if (vm.powerState === "deallocated" && !machine.hibernated) {
      // Seeded deallocated: what Azure says about it is already visible.
      if (vm.deallocatedBy === "eviction") this.annotate(machine, "VirtualMachinePreempted", 0);
      if (vm.deallocatedBy === "owner") {
        this.annotate(machine, "VirtualMachineDeallocationInitiated", 0);
        this.recordActivity(machine, { caller: "owner@contoso.com" }, 0);
      }
    }
    return machine;
  }

  vm(resourceGroup: string, name: string, subscriptionId?: string): VirtualMachine | undefined {
    this.settle();
    return this.vms.get(this.scoped(subscriptionId, resourceGroup, name));
  }

  /** The VM's key in `vms` (its subscription in front when it is not the seed's). */
  vmKey(vm: Pick<VirtualMachine, "subscriptionId" | "resourceGroup" | "name">): string {
    return this.scoped(vm.subscriptionId, vm.resourceGroup, vm.name);
  }

  /** A VM by group and name in any subscription (the control API's paths name no subscription). */
  vmAnywhere(resourceGroup: string, name: string): VirtualMachine | undefined {
    return (
      this.vm(resourceGroup, name) ??
      this.listVms().find(
        (vm) =>
          vm.resourceGroup.toLowerCase() === resourceGroup.toLowerCase() &&
          vm.name.toLowerCase() === name.toLowerCase(),
      )
    );
  }

  listVms(resourceGroup?: string, subscriptionId?: string): VirtualMachine[] {
    this.settle();
    const subscription = (subscriptionId ?? this.subscriptionId).toLowerCase();
    return [...this.vms.values()].filter(
      (vm) =>
        resourceGroup === undefined ||
        (vm.resourceGroup.toLowerCase() === resourceGroup.toLowerCase() &&
          vm.subscriptionId.toLowerCase() === subscription),
    );
  }

  /**
   * Begins a power operation. `failWith` makes it end Failed with that code (a capacity fault).
   * A VM already in the target state gets an operation that succeeds at once, as in Azure.
   */
  beginPowerOperation(
    vm: VirtualMachine,
    kind: Operation["kind"],
    failWith?: string,
    actor?: Actor,
  ): Operation {
    this.settle();
    const now = this.now();
    if (kind !== "start") this.preemptStart(vm);
    if (kind === "deallocate" && vm.powerState !== "deallocated") {
      this.annotate(vm, "VirtualMachineDeallocationInitiated");
      if (actor) this.recordActivity(vm, actor);
    }
    if (kind === "start") vm.hibernated = false;
    const target: PowerState =
      kind === "start" ? "running" : kind === "deallocate" ? "deallocated" : "stopped";
    const inFlight: PowerState =
      kind === "start" ? "starting" : kind === "deallocate" ? "deallocating" : "stopping";
    const seconds = kind === "start" ? this.timing.startSeconds : this.timing.deallocateSeconds;
    if (kind === "start") {
      vm.startRequests += 1;
      this.record(vm, "start-accepted", now);
    }
    const operation: Operation = {
      id: randomUUID(),
      location: vm.location,
      resourceGroup: vm.resourceGroup,
      subscriptionId: vm.subscriptionId,
      kind,
      startTime: new Date(now).toISOString(),
      endsAt: now,
    };
    if (failWith !== undefined) {
      operation.error = {
        code: failWith,
        message: CAPACITY_MESSAGES[failWith] ?? `The operation failed with ${failWith} (emulated fault).`,
      };
    }
    if (vm.powerState === target && operation.error === undefined) {
      if (kind === "start") this.record(vm, "start-succeeded", now);
      this.operations.set(operation.id, operation);
      return operation;
    }
    operation.endsAt = now + seconds * 1000;
    const revertTo = vm.powerState;
    vm.transition = {
      to: target,
      at: operation.endsAt,
      operationId: operation.id,
      revertTo,
      failWith: operation.error,
    };
    // A capacity failure never gets as far as powering on: the VM keeps its power state while Azure
    // tries to allocate, with the provisioning state "Updating".
    if (operation.error === undefined) this.setPowerState(vm, inFlight);
    vm.provisioningState = "Updating";
    vm.provisioningError = undefined;
    this.operations.set(operation.id, operation);
    this.settle();
    return operation;
  }

  operation(id: string): Operation | undefined {
    this.settle();
    return this.operations.get(id.toLowerCase()) ?? this.operations.get(id);
  }

  scheduleEviction(vm: VirtualMachine): void {
    vm.evictAt = this.now() + this.timing.evictionDelaySeconds * 1000;
    this.settle();
  }

  /**
   * The owner deallocates the VM at once (the portal's Stop, `az vm deallocate`, auto-shutdown): a
   * start in flight ends `OperationPreempted`; Resource Health and the Activity Log record it.
   */
  ownerDeallocate(vm: VirtualMachine, actor: Actor): void {
    this.settle();
    this.preemptStart(vm);
    vm.evictAt = undefined;
    vm.transition = undefined;
    vm.provisioningState = "Succeeded";
    vm.provisioningError = undefined;
    if (vm.powerState !== "deallocated") {
      this.annotate(vm, "VirtualMachineDeallocationInitiated");
      this.recordActivity(vm, actor);
      this.record(vm, "deallocated-by-owner", this.now());
    }
    this.setPowerState(vm, "deallocated");
  }

  /**
   * A later operation on a VM whose start is still running preempts the start: it ends Failed with
   * `OperationPreempted` (https://learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/error-messages).
   */
  private preemptStart(vm: VirtualMachine): void {
    const transition = vm.transition;
    if (transition?.to !== "running") return;
    const operation = this.operations.get(transition.operationId);
    if (operation) {
      operation.endsAt = this.now();
      operation.error = {
        code: "OperationPreempted",
        message: "Operation execution has been preempted by a more recent operation.",
      };
    }
    this.record(vm, "start-preempted", this.now());
    vm.transition = undefined;
  }

  /** Records a Resource Health annotation, visible after `timing.annotationDelaySeconds` unless told otherwise. */
  annotate(
    vm: VirtualMachine,
    annotationName: Annotation["annotationName"],
    delaySeconds = this.timing.annotationDelaySeconds,
  ): void {
    const now = this.now();
    const preempted = annotationName === "VirtualMachinePreempted";
    this.annotations.push({
      subscriptionId: vm.subscriptionId,
      resourceGroup: vm.resourceGroup,
      vmName: vm.name,
      annotationName,
      context: preempted ? "Platform Initiated" : "Customer Initiated",
      category: preempted ? "Unplanned" : "Not Applicable",
      ...ANNOTATION_TEXT[annotationName],
      impactType: "Informational",
      occurredTime: new Date(now).toISOString(),
      visibleAt: now + delaySeconds * 1000,
    });
  }

  /** Records `Microsoft.Compute/virtualMachines/deallocate/action` in the Activity Log. */
  recordActivity(
    vm: VirtualMachine,
    actor: Actor,
    delaySeconds = this.timing.activityLogDelaySeconds ?? this.timing.annotationDelaySeconds,
  ): void {
    const now = this.now();
    this.activityLog.push({
      resourceGroup: vm.resourceGroup,
      vmName: vm.name,
      operationName: "Microsoft.Compute/virtualMachines/deallocate/action",
      caller: actor.caller,
      ...(actor.objectId ? { callerObjectId: actor.objectId } : {}),
      status: "Succeeded",
      eventTimestamp: new Date(now).toISOString(),
      correlationId: randomUUID(),
      eventDataId: randomUUID(),
      visibleAt: now + delaySeconds * 1000,
    });
  }

  /** Evicts now, per the VM's eviction policy (Delete removes it). */
  evict(vm: VirtualMachine): void {
    vm.evictAt = undefined;
    vm.transition = undefined;
    if (vm.powerState !== "deallocated") this.annotate(vm, "VirtualMachinePreempted");
    vm.evictions += 1;
    this.record(vm, "evicted", this.now());
    vm.lastEvictedAt = new Date(this.now()).toISOString();
    if (vm.evictionPolicy === "Delete") {
      this.vms.delete(this.scoped(vm.subscriptionId, vm.resourceGroup, vm.name));
      return;
    }
    vm.provisioningState = "Succeeded";
    vm.provisioningError = undefined;
    this.setPowerState(vm, "deallocated");
  }

  /** Applies every time-driven change that is due. */
  settle(): void {
    const now = this.now();
    for (const vm of [...this.vms.values()]) {
      const transition = vm.transition;
      if (transition && transition.at <= now) {
        vm.transition = undefined;
        if (transition.to === "running") {
          this.record(
            vm,
            transition.failWith ? "start-failed" : "start-succeeded",
            transition.at,
            transition.failWith?.code,
          );
        }
        if (transition.failWith) {
          vm.provisioningState = "Failed";
          vm.provisioningError = transition.failWith;
          this.setPowerState(vm, transition.revertTo);
        } else {
          vm.provisioningState = "Succeeded";
          this.setPowerState(vm, transition.to);
        }
      }
      if (vm.evictAt !== undefined && vm.evictAt <= now) {
        if (vm.powerState === "running" || vm.powerState === "starting") this.evict(vm);
        else vm.evictAt = undefined;
      }
    }
  }

  /** Changes a deallocated VM's size (the caller checked the rules: compute.ts resizeVm). */
  resize(vm: VirtualMachine, vmSize: string): void {
    this.settle();
    const from = vm.vmSize;
    vm.vmSize = vmSize;
    vm.history.push({ at: new Date(this.now()).toISOString(), event: "resized", vmSize, from });
    // Resource Health annotates every resize "requested by an authorized user or process"
    // (VirtualMachineSizeChanged, Customer Initiated: resource-health-vm-annotation); Resource Graph then
    // shows it as the VM's latest annotation, on top of the one that said why it was deallocated.
    this.annotate(vm, "VirtualMachineSizeChanged");
  }

  /** The sizes the emulated region offers (seed `offeredVmSizes`, default the whole catalogue). */
  offeredVmSizes(): readonly VmSize[] {
    return this.offeredSizes;
  }

  private record(vm: VirtualMachine, event: VmHistoryEntry["event"], at: number, code?: string): void {
    vm.history.push({ at: new Date(at).toISOString(), event, ...(code ? { code } : {}) });
  }

  setPowerState(vm: VirtualMachine, state: PowerState): void {
    if (vm.powerState !== state) {
      vm.lastStatusChange = new Date(this.now()).toISOString();
      vm.powerLog.push({ at: this.now(), state });
    }
    vm.powerState = state;
  }

  /** The power state Resource Graph shows now: the VM's as it was `timing.resourceGraphLagSeconds` ago. */
  graphPowerState(vm: VirtualMachine): PowerState {
    this.settle();
    const asOf = this.now() - this.timing.resourceGraphLagSeconds * 1000;
    let state = vm.powerLog[0]?.state ?? vm.powerState;
    for (const entry of vm.powerLog) if (entry.at <= asOf) state = entry.state;
    return state;
  }

  // ---- faults -----------------------------------------------------------------------------------

  addFaults(rules: FaultRule[]): void {
    const now = this.now();
    for (const rule of rules) {
      this.faults.push({
        rule,
        remaining: rule.times,
        ...(rule.forSeconds !== undefined ? { until: now + rule.forSeconds * 1000 } : {}),
      });
    }
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Tags of any scope the emulator knows, or undefined when the scope does not exist. */
  tagsAt(scope: string): Record<string, string> | undefined {
    const parts = normalizeScope(scope).split("/").filter(Boolean);
    // subscriptions/{s}[/resourceGroups/{rg}[/providers/Microsoft.Compute/virtualMachines/{vm}]]
    if (parts[0] !== "subscriptions" || parts[1] !== this.subscriptionId.toLowerCase()) return undefined;
    if (parts.length === 2) {
      const tags = this.otherTags.get(this.subscriptionScope.toLowerCase()) ?? {};
      this.otherTags.set(this.subscriptionScope.toLowerCase(), tags);
      return tags;
    }
    if (parts[2] !== "resourcegroups" || parts[3] === undefined) return undefined;
    const group = this.resourceGroup(parts[3]);
    if (!group) return undefined;
    if (parts.length === 4) return group.tags;
    if (
      parts.length === 8 &&
      parts[4] === "providers" &&
      parts[5] === "microsoft.compute" &&
      parts[6] === "virtualmachines"
    ) {
      return this.vm(parts[3], parts[7] ?? "")?.tags;
    }
    return undefined;
  }

  replaceTagsAt(scope: string, tags: Record<string, string>): boolean {
    const current = this.tagsAt(scope);
    if (!current) return false;
    for (const name of Object.keys(current)) delete current[name];
    Object.assign(current, tags);
    return true;
  }
}

export function splitCertificates(pemText: string): string[] {
  return pemText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export function registerCertificate(pem: string): RegisteredCertificate {
  const certificate = new X509Certificate(pem);
  const sha1 = createHash("sha1").update(certificate.raw).digest();
  const sha256 = createHash("sha256").update(certificate.raw).digest();
  return {
    certificate,
    x5t: sha1.toString("base64url"),
    x5tS256: sha256.toString("base64url"),
    hexThumbprint: sha1.toString("hex").toUpperCase(),
  };
}

/** A JOSE thumbprint header as sent (base64url or base64, with or without padding) → base64url without padding. */
export function normalizeThumbprint(value: string): string {
  return value.trim().replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}
