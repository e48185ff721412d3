// Azure resource ids of resource groups and VMs: parsed and built in one place, for the Pulumi program
// (config.ts: restartableVms entries, the `resourceGroups` stack output) and the runtime (config
// `resourceGroups` entries). No imports: the Pulumi program and the bundled runtime both load this file.
//
// ARM compares ids case-insensitively (subscription ids, the `resourceGroups` and `providers` segments, and
// resource group and VM names): https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
// ("Resource and resource group names are case-insensitive unless specifically noted").

/** A resource group: `subscriptionId` absent = the configuration's own subscription. */
export interface ResourceGroupRef {
  readonly subscriptionId?: string;
  readonly resourceGroup: string;
}

/** A VM: `subscriptionId` absent = the configuration's own subscription. */
export interface VmRef extends ResourceGroupRef {
  readonly name: string;
}

const GUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
const SEGMENT = "[^/]+";

const RESOURCE_GROUP_ID = new RegExp(`^/subscriptions/(${GUID})/resourceGroups/(${SEGMENT})/?$`, "i");
const VM_ID = new RegExp(
  `^/subscriptions/(${GUID})/resourceGroups/(${SEGMENT})/providers/Microsoft\\.Compute/virtualMachines/(${SEGMENT})/?$`,
  "i",
);

/** `/subscriptions/<id>/resourceGroups/<name>` → its parts (the subscription id lower-cased), else undefined. */
export function parseResourceGroupId(text: string): Required<ResourceGroupRef> | undefined {
  const match = RESOURCE_GROUP_ID.exec(text);
  return match ? { subscriptionId: match[1].toLowerCase(), resourceGroup: match[2] } : undefined;
}

/** A full VM id → its parts (the subscription id lower-cased), else undefined. */
export function parseVmId(text: string): Required<VmRef> | undefined {
  const match = VM_ID.exec(text);
  return match
    ? { subscriptionId: match[1].toLowerCase(), resourceGroup: match[2], name: match[3] }
    : undefined;
}

export function resourceGroupId(subscriptionId: string, resourceGroup: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}`;
}

/** Compares like ARM: one key per group whatever the case (`subscriptionId` absent = `ownSubscriptionId`). */
export function resourceGroupKey(ref: ResourceGroupRef, ownSubscriptionId = ""): string {
  return `${(ref.subscriptionId ?? ownSubscriptionId).toLowerCase()}/${ref.resourceGroup.toLowerCase()}`;
}

/**
 * A runtime config `resourceGroups` entry (a name in the config's subscription, or a resource-group id)
 * as subscription and name.
 */
export function resourceGroupOfEntry(entry: string, ownSubscriptionId: string): Required<ResourceGroupRef> {
  return (
    parseResourceGroupId(entry) ?? { subscriptionId: ownSubscriptionId.toLowerCase(), resourceGroup: entry }
  );
}

/** The id of a `resourceGroups` entry. */
export function resourceGroupIdOfEntry(entry: string, ownSubscriptionId: string): string {
  const group = resourceGroupOfEntry(entry, ownSubscriptionId);
  return parseResourceGroupId(entry) ? entry : resourceGroupId(ownSubscriptionId, group.resourceGroup);
}

/** Every subscription the entries name, the config's own first, each once (lower-cased). */
export function subscriptionsOfEntries(entries: readonly string[], ownSubscriptionId: string): string[] {
  const subscriptions = new Set([ownSubscriptionId.toLowerCase()]);
  for (const entry of entries)
    subscriptions.add(resourceGroupOfEntry(entry, ownSubscriptionId).subscriptionId);
  return [...subscriptions];
}
