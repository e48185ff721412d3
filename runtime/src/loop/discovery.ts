// Discovery: what the tagged Spot VMs of a resource group look like now, with the fewest ARM reads
// Compute's throttling allows (docs/architecture.md, "Azure facts"): one list per group (a "High Cost Get"),
// then an instance view per tagged Spot `Deallocate` candidate only (a per-VM "Low Cost Get"),
// never one per VM in the group. Shared by the loop (restarter.ts) and `status` (commands.ts);
// it reads and classifies, and decides and remembers nothing: callers interpret the result.
import { isCredentialError } from "../azure/authFailure";
import type { ListedVm, VmApi } from "../azure/azure";
import { describeAzureError } from "../azure/azure";
import type { VmGraph } from "../azure/vmGraph";
import { type RestartTag, vmKey } from "../core/vm";
import { type ArmOperation, type AzureOutcome, classifyStartOutcome, isRestartCandidate } from "./decisions";

/** Why a read failed: the credential got no token, or ARM answered an error (classified once). */
export type ReadFailure =
  | { readonly kind: "token"; readonly error: unknown }
  | { readonly kind: "azure"; readonly outcome: AzureOutcome; readonly error: unknown };

/** One listed VM and, for a candidate, its power state or why it could not be read. */
export interface DiscoveredVm {
  readonly vm: ListedVm;
  /** Tagged Spot `Deallocate`: the only VMs whose instance view is read. */
  readonly candidate: boolean;
  /**
   * `read`: from the instance view (`powerState` undefined when it has no PowerState status);
   * `remembered`: not read, the caller supplied it (a start in flight); `failed`: see `failure`;
   * `not-read`: not a candidate.
   */
  readonly source: "read" | "remembered" | "failed" | "not-read";
  readonly powerState: string | undefined;
  /** From the instance view, when read (`ProvisioningState/<state>`, lower-cased). */
  readonly provisioningState?: string;
  /** The instance view says `HibernationState/Hibernated`. */
  readonly hibernated?: boolean;
  readonly failure?: ReadFailure;
}

export interface GroupDiscovery {
  readonly resourceGroup: string;
  /** Set when the list itself failed; `vms` is then empty. */
  readonly listFailure?: ReadFailure;
  /** Every VM the list returned, in its order. */
  readonly vms: readonly DiscoveredVm[];
}

export interface DiscoveryOptions {
  /**
   * For a candidate whose instance view must not be read now (a start in flight: its outcome will
   * tell), the power state to use instead; undefined = read it. Called before any read is awaited.
   */
  readonly remembered?: (vm: ListedVm) => { powerState: string | undefined } | undefined;
}

/** Classifies what an ARM read threw. */
export function classifyReadFailure(error: unknown, operation: ArmOperation): ReadFailure {
  if (isCredentialError(error)) return { kind: "token", error };
  return { kind: "azure", outcome: classifyStartOutcome(describeAzureError(error), operation), error };
}

/** A candidate's instance view: its power state, or why it could not be read. Only an abort rejects. */
async function readCandidate(api: VmApi, vm: ListedVm, signal: AbortSignal): Promise<DiscoveredVm> {
  try {
    const { powerState, provisioningState, hibernated } = await api.readInstanceState(
      vm.resourceGroup,
      vm.name,
      signal,
    );
    return {
      vm,
      candidate: true,
      source: "read",
      powerState,
      ...(provisioningState !== undefined ? { provisioningState } : {}),
      ...(hibernated ? { hibernated } : {}),
    };
  } catch (error) {
    if (signal.aborted) throw error;
    return {
      vm,
      candidate: true,
      source: "failed",
      powerState: undefined,
      failure: classifyReadFailure(error, "instanceView"),
    };
  }
}

/**
 * Lists one resource group and reads the instance view of its candidates, concurrently. Read
 * failures are returned, not thrown; only an abort of `signal` rejects.
 */
export async function discoverGroup(
  api: VmApi,
  resourceGroup: string,
  tag: RestartTag,
  signal: AbortSignal,
  options: DiscoveryOptions = {},
): Promise<GroupDiscovery> {
  let listed: ListedVm[];
  try {
    listed = await api.listVms(resourceGroup, signal);
  } catch (error) {
    if (signal.aborted) throw error;
    return { resourceGroup, listFailure: classifyReadFailure(error, "list"), vms: [] };
  }
  const vms = await Promise.all(
    listed.map(async (vm): Promise<DiscoveredVm> => {
      if (!isRestartCandidate(vm, tag)) {
        return { vm, candidate: false, source: "not-read", powerState: undefined };
      }
      const remembered = options.remembered?.(vm);
      if (remembered) {
        return { vm, candidate: true, source: "remembered", powerState: remembered.powerState };
      }
      return readCandidate(api, vm, signal);
    }),
  );
  return { resourceGroup, vms };
}

/**
 * Discovers every group concurrently (one list each). Each VM appears once, keyed by `vmKey` (its
 * lower-cased resource id within the subscription): Azure's names are case-insensitive, so groups that
 * differ only in case are listed once and a VM a second group also lists is dropped from it, and no VM
 * can be decided (and started) twice in a cycle, whatever the config says (issue 23, item 3).
 */
export async function discoverGroups(
  api: VmApi,
  resourceGroups: readonly string[],
  tag: RestartTag,
  signal: AbortSignal,
  options: DiscoveryOptions = {},
): Promise<GroupDiscovery[]> {
  const groups = [...new Map(resourceGroups.map((rg) => [rg.toLowerCase(), rg])).values()];
  const discovered = await Promise.all(groups.map((rg) => discoverGroup(api, rg, tag, signal, options)));
  const seen = new Set<string>();
  return discovered.map((group) => ({
    ...group,
    vms: group.vms.filter((found) => {
      const key = vmKey(found.vm.resourceGroup, found.vm.name);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }),
  }));
}

/**
 * Discovery on Resource Graph (issue 28, azure/vmGraph.ts): one query for every group, then an instance
 * view only for a candidate the graph reports deallocated (or without a power state), to confirm it before
 * any start: Resource Graph may lag the VM by seconds ("updated within seconds of most changes",
 * learn.microsoft.com/azure/governance/resource-graph/overview#how-resource-graph-is-kept-current). Any other
 * power state the graph reports is taken as read; a lagging "running" is corrected by a later cycle.
 * Returns the same shape as the list path, one entry per configured group (in config order); a group no
 * row names has no VMs. Rejects when the query fails (the caller falls back to lists).
 */
export async function discoverByGraph(
  api: VmApi,
  graph: VmGraph,
  resourceGroups: readonly string[],
  tag: RestartTag,
  signal: AbortSignal,
  options: DiscoveryOptions = {},
): Promise<{ groups: GroupDiscovery[]; confirmed: number; requests: number }> {
  const answer = await graph.listVms(resourceGroups, signal);
  let confirmed = 0;
  const discovered = await Promise.all(
    answer.vms.map(async (row): Promise<DiscoveredVm> => {
      const { powerState: graphState, ...vm } = row;
      if (!isRestartCandidate(vm, tag))
        return { vm, candidate: false, source: "not-read", powerState: undefined };
      const remembered = options.remembered?.(vm);
      if (remembered) return { vm, candidate: true, source: "remembered", powerState: remembered.powerState };
      if (graphState !== undefined && graphState !== "deallocated") {
        return { vm, candidate: true, source: "read", powerState: graphState };
      }
      confirmed++;
      return readCandidate(api, vm, signal);
    }),
  );
  const groups = resourceGroups.map((resourceGroup) => ({
    resourceGroup,
    vms: discovered.filter((d) => d.vm.resourceGroup === resourceGroup),
  }));
  return { groups, confirmed, requests: answer.requests };
}

/**
 * Where the list sweep and the graph disagree (issue 28): tagged candidates one saw and the other did not,
 * and ones whose power states differ. Plain strings `<group>/<vm>: …`, for one log line.
 */
export function discoveryDisagreements(
  listed: readonly GroupDiscovery[],
  graphed: readonly GroupDiscovery[],
): string[] {
  const candidates = (groups: readonly GroupDiscovery[]) =>
    new Map(
      groups
        .flatMap((group) => group.vms)
        .filter((d) => d.candidate)
        .map((d) => [`${d.vm.resourceGroup}/${d.vm.name}`.toLowerCase(), d] as const),
    );
  const fromList = candidates(listed);
  const fromGraph = candidates(graphed);
  const out: string[] = [];
  for (const [key, d] of fromList) {
    const other = fromGraph.get(key);
    if (!other) out.push(`${d.vm.resourceGroup}/${d.vm.name}: listed, missing from Resource Graph`);
    else if (d.source === "read" && other.source === "read" && d.powerState !== other.powerState) {
      out.push(
        `${d.vm.resourceGroup}/${d.vm.name}: ${d.powerState ?? "no power state"} (instance view), ${other.powerState ?? "none"} (Resource Graph)`,
      );
    }
  }
  for (const [key, d] of fromGraph) {
    if (!fromList.has(key)) out.push(`${d.vm.resourceGroup}/${d.vm.name}: in Resource Graph, not listed`);
  }
  return out;
}

/** Which discovery a config asks for: `auto` is Resource Graph past one subscription or three groups (issue 28). */
export function discoveryModeFor(
  discovery: "auto" | "list" | "resource-graph",
  resourceGroups: readonly string[],
  subscriptions: number,
): "list" | "resource-graph" {
  if (discovery !== "auto") return discovery;
  return subscriptions > 1 || resourceGroups.length > 3 ? "resource-graph" : "list";
}
