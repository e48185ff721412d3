// Microsoft.Network network interfaces and public IPs, a NIC per VM and a public IP unless the seed says
// `publicIp: false` (`{vm}-nic`, `{vm}-ip`):
// just enough for `az vm list -d`, which reads them to print IP addresses.
import { createHash } from "node:crypto";
import { HttpError, sendJson } from "../http";
import type { VirtualMachine, World } from "../state";
import { networkId, resourceGroupId, vmId } from "./ids";
import type { ArmRoute } from "./router";

const RG = "subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}";

export function networkRoutes(): ArmRoute[] {
  return [
    {
      method: "GET",
      pattern: `${RG}/providers/Microsoft.Network/networkInterfaces/{name}`,
      action: "Microsoft.Network/networkInterfaces/read",
      handle: (ctx, params, env) => {
        const vm = vmBehind(env.world, params, "-nic", "networkInterfaces");
        const octet = (createHash("sha1").update(vm.vmId).digest()[0] ?? 0) % 250;
        sendJson(ctx, 200, {
          name: params.name,
          id: networkId(env.world, vm, "networkInterfaces"),
          type: "Microsoft.Network/networkInterfaces",
          location: vm.location,
          properties: {
            provisioningState: "Succeeded",
            ipConfigurations: [
              {
                name: "ipconfig1",
                id: `${networkId(env.world, vm, "networkInterfaces")}/ipConfigurations/ipconfig1`,
                properties: {
                  provisioningState: "Succeeded",
                  privateIPAddress: `10.0.0.${octet + 4}`,
                  privateIPAllocationMethod: "Dynamic",
                  ...(vm.publicIp
                    ? { publicIPAddress: { id: networkId(env.world, vm, "publicIPAddresses") } }
                    : {}),
                  subnet: {
                    id: `${resourceGroupId(env.world, vm.resourceGroup)}/providers/Microsoft.Network/virtualNetworks/${vm.resourceGroup}-vnet/subnets/default`,
                  },
                  primary: true,
                  privateIPAddressVersion: "IPv4",
                },
              },
            ],
            macAddress: "00-0D-3A-00-00-01",
            primary: true,
            enableAcceleratedNetworking: false,
            enableIPForwarding: false,
            virtualMachine: { id: vmId(env.world, vm) },
          },
        });
      },
    },
    {
      method: "GET",
      pattern: `${RG}/providers/Microsoft.Network/publicIPAddresses/{name}`,
      action: "Microsoft.Network/publicIPAddresses/read",
      handle: (ctx, params, env) => {
        const vm = vmBehind(env.world, params, "-ip", "publicIPAddresses");
        const bytes = createHash("sha1").update(vm.vmId).digest();
        sendJson(ctx, 200, {
          name: params.name,
          id: networkId(env.world, vm, "publicIPAddresses"),
          type: "Microsoft.Network/publicIPAddresses",
          location: vm.location,
          sku: { name: "Standard", tier: "Regional" },
          properties: {
            provisioningState: "Succeeded",
            // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a real host.
            ipAddress: `192.0.2.${((bytes[1] ?? 0) % 250) + 1}`,
            publicIPAddressVersion: "IPv4",
            publicIPAllocationMethod: "Static",
            idleTimeoutInMinutes: 4,
            ipConfiguration: {
              id: `${networkId(env.world, vm, "networkInterfaces")}/ipConfigurations/ipconfig1`,
            },
          },
        });
      },
    },
  ];
}

function vmBehind(
  world: World,
  params: Record<string, string>,
  suffix: string,
  type: "networkInterfaces" | "publicIPAddresses",
): VirtualMachine {
  const name = params.name as string;
  const resourceGroup = params.resourceGroup as string;
  const vm = name.toLowerCase().endsWith(suffix)
    ? world.vm(resourceGroup, name.slice(0, -suffix.length))
    : undefined;
  if (!vm || (type === "publicIPAddresses" && !vm.publicIp)) {
    throw new HttpError(
      404,
      "ResourceNotFound",
      `The Resource 'Microsoft.Network/${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  return vm;
}
