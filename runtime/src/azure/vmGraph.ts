// Discovery on Resource Graph (issue 28): one query answers, for every configured group in every
// subscription at once, each VM's priority, eviction policy, tags and power state, where a list per group
// and an instance view per candidate would cost 1 + N ARM reads per group per cycle.
// - The power state is `properties.extended.instanceView.powerState.code` (e.g. `PowerState/deallocated`):
//   "Resource Graph … VM power state" in learn.microsoft.com/azure/governance/resource-graph/samples/samples-by-category
//   ("List virtual machines by their power state":
//   `extend ['properties.extended.instanceView.powerState.code']`), and
//   learn.microsoft.com/azure/virtual-machines/states-billing (PowerState/<state> codes).
// - Resource Graph is not the VM: it is "updated within seconds of most changes" from change notifications
//   (learn.microsoft.com/azure/governance/resource-graph/overview, "How Resource Graph is kept current"),
//   so a VM it reports deallocated is confirmed with its instance view before any start (loop/discovery.ts).
// - Paging through the one shared function (./resourceGraph.ts `queryAllPages`).
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import type { TokenCredential } from "@azure/core-auth";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupOfEntry } from "../core/resourceIds";
import { armClientOptions, type ListedVm, type RequestCounter } from "./azure";
import { queryAllPages, type ResourceGraphQueryClient, type ResourceGraphRow } from "./resourceGraph";

/**
 * One VM as Resource Graph shows it, as the list would (`resourceGroup` is the configured entry it belongs to),
 * with `powerState` lower-cased without `PowerState/` (`deallocated`, `running`…), undefined when the row has none.
 */
export type GraphVm = ListedVm & { readonly powerState?: string };

export interface VmGraphAnswer {
  readonly vms: GraphVm[];
  /** Requests sent (pages). */
  readonly requests: number;
  /** Azure cut the rows short (cannot happen for this query: it has no take/limit and typed columns). */
  readonly truncated: boolean;
}

export interface VmGraph {
  /** Every VM of the configured groups (`resourceGroups` entries), one query and its pages. */
  listVms(resourceGroups: readonly string[], signal: AbortSignal): Promise<VmGraphAnswer>;
}

/** The query: the VMs of these groups (names; the subscriptions are the request's scope), typed columns. */
export function vmGraphQuery(groupNames: readonly string[]): string {
  const literals = [...new Set(groupNames.map((name) => name.toLowerCase()))]
    .map((name) => `'${name.replace(/'/g, "")}'`)
    .join(", ");
  return [
    "resources",
    "| where type =~ 'microsoft.compute/virtualmachines'",
    `| where resourceGroup in~ (${literals})`,
    "| project id, name, subscriptionId, resourceGroup, tags, priority = tostring(properties.priority), " +
      "evictionPolicy = tostring(properties.evictionPolicy), maxPrice = tostring(properties.billingProfile.maxPrice), " +
      "vmSize = tostring(properties.hardwareProfile.vmSize), " +
      "powerState = tostring(properties.extended.instanceView.powerState.code)",
  ].join("\n");
}

/**
 * Rows to VMs of the configured entries: a row whose subscription and group is no entry's (a group of the
 * same name in another subscription) is left out.
 */
export function graphVmsFromRows(
  rows: readonly ResourceGraphRow[],
  resourceGroups: readonly string[],
  ownSubscriptionId: string,
): GraphVm[] {
  const entries = new Map(
    resourceGroups.map((entry) => {
      const { subscriptionId, resourceGroup } = resourceGroupOfEntry(entry, ownSubscriptionId);
      return [`${subscriptionId}/${resourceGroup.toLowerCase()}`, entry] as const;
    }),
  );
  const out: GraphVm[] = [];
  for (const row of rows) {
    const text = (key: string) =>
      typeof row[key] === "string" && row[key] !== "" ? (row[key] as string) : undefined;
    const name = text("name");
    const entry = entries.get(
      `${(text("subscriptionId") ?? "").toLowerCase()}/${(text("resourceGroup") ?? "").toLowerCase()}`,
    );
    if (!name || entry === undefined) continue;
    const maxPrice = text("maxPrice") === undefined ? undefined : Number(text("maxPrice"));
    const power = /^PowerState\/(.+)$/i.exec(text("powerState") ?? "")?.[1]?.toLowerCase();
    const tags = row.tags && typeof row.tags === "object" ? (row.tags as Record<string, string>) : {};
    out.push({
      resourceGroup: entry,
      name,
      priority: text("priority"),
      evictionPolicy: text("evictionPolicy"),
      maxPrice: maxPrice !== undefined && Number.isFinite(maxPrice) ? maxPrice : undefined,
      tags,
      ...(text("vmSize") ? { vmSize: text("vmSize") } : {}),
      ...(power ? { powerState: power } : {}),
    });
  }
  return out;
}

/** Reads the VMs through a Resource Graph client (the SDK's, or any with its `resources`). */
export function vmGraphOver(client: ResourceGraphQueryClient, ownSubscriptionId: string): VmGraph {
  return {
    async listVms(resourceGroups, signal) {
      const groups = resourceGroups.map((entry) => resourceGroupOfEntry(entry, ownSubscriptionId));
      const { rows, requests, truncated } = await queryAllPages(
        client,
        {
          query: vmGraphQuery(groups.map((group) => group.resourceGroup)),
          subscriptions: [...new Set(groups.map((group) => group.subscriptionId))],
        },
        signal,
      );
      return { vms: graphVmsFromRows(rows, resourceGroups, ownSubscriptionId), requests, truncated };
    },
  };
}

export function createArmVmGraph(
  config: RuntimeConfig,
  credential: TokenCredential,
  options: { counter?: RequestCounter; policies?: readonly PipelinePolicy[] } = {},
): VmGraph {
  const client = new ResourceGraphClient(credential, armClientOptions(config, options));
  return vmGraphOver(client, config.subscriptionId);
}
