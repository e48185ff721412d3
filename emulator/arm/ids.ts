// Resource ids, as ARM spells them in responses.
import type { VirtualMachine, World } from "../state";

export function resourceGroupId(world: World, resourceGroup: string, subscriptionId?: string): string {
  return `/subscriptions/${subscriptionId ?? world.subscriptionId}/resourceGroups/${resourceGroup}`;
}

export function vmId(
  world: World,
  vm: Pick<VirtualMachine, "resourceGroup" | "name"> & { subscriptionId?: string },
): string {
  return `${resourceGroupId(world, vm.resourceGroup, vm.subscriptionId)}/providers/Microsoft.Compute/virtualMachines/${vm.name}`;
}

export function nicName(vm: Pick<VirtualMachine, "name">): string {
  return `${vm.name}-nic`;
}

export function publicIpName(vm: Pick<VirtualMachine, "name">): string {
  return `${vm.name}-ip`;
}

export function networkId(
  world: World,
  vm: VirtualMachine,
  type: "networkInterfaces" | "publicIPAddresses",
): string {
  const name = type === "networkInterfaces" ? nicName(vm) : publicIpName(vm);
  return `${resourceGroupId(world, vm.resourceGroup)}/providers/Microsoft.Network/${type}/${name}`;
}
