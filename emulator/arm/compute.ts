// Microsoft.Compute/virtualMachines: list (paged), get (+ $expand=instanceView), instanceView, and the
// power operations as long-running operations, shaped like the 2026-04-01 API (the version
// @azure/arm-compute 25 sends; examples in azure-rest-api-specs .../Compute/stable/2026-04-01/examples).
// https://learn.microsoft.com/rest/api/compute/virtual-machines
// LRO protocol: https://github.com/Azure/azure-resource-manager-rpc/blob/master/v1.0/async-api-reference.md
import { setTimeout as delay } from "node:timers/promises";
import { consumeFault, findStartFault } from "../faults";
import { HttpError, jsonBody, type RequestContext, sendJson } from "../http";
import { isAllowed } from "../rbac";
import type { Operation, VirtualMachine, World } from "../state";
import { hasTempDisk } from "../vmSizes";
import { computeVersions } from "./apiVersions";
import { networkId, resourceGroupId, vmId } from "./ids";
import { type ArmEnv, type ArmRoute, authorizationFailed } from "./router";

const RG = "subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}";
const OPERATION_READ = "Microsoft.Compute/locations/operations/read";
const VM = `${RG}/providers/Microsoft.Compute/virtualMachines/{vmName}`;

export function computeRoutes(): ArmRoute[] {
  return [
    {
      method: "GET",
      pattern: `${RG}/providers/Microsoft.Compute/virtualMachines`,
      computePolicy: "highCostGet",
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/read",
      handle: (ctx, params, env) => {
        requireResourceGroup(env.world, params.resourceGroup as string, params.subscriptionId);
        sendPage(ctx, env, env.world.listVms(params.resourceGroup, params.subscriptionId));
      },
    },
    {
      // Subscription-wide list: ARM filters it to what the caller may read (az vm list without -g).
      method: "GET",
      pattern: "subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines",
      computePolicy: "highCostGet",
      apiVersions: computeVersions("virtualMachines"),
      handle: (ctx, _params, env) => {
        const readable = env.world.listVms().filter((vm) => canRead(env, vmId(env.world, vm)));
        sendPage(ctx, env, readable);
      },
    },
    {
      method: "GET",
      pattern: VM,
      computePolicy: "lowCostGet",
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/read",
      handle: (ctx, params, env) => {
        const vm = requireVm(env.world, params);
        const expand = (ctx.query.get("$expand") ?? "").toLowerCase();
        sendJson(ctx, 200, vmJson(env.world, vm, expand === "instanceview"));
      },
    },
    // A resize: VirtualMachines_Update (PATCH, the SDK's beginUpdate) or CreateOrUpdate (PUT) of an existing VM
    // with another properties.hardwareProfile.vmSize; ARM authorizes both as virtualMachines/write.
    updateRoute("PATCH"),
    updateRoute("PUT"),
    {
      // VirtualMachines_ListAvailableSizes: `{"value": [VirtualMachineSize…]}`, no nextLink (2026-04-01 example
      // VirtualMachine_ListAvailableVmSizes.json). A deallocated VM may be resized to any size the region
      // offers; an allocated one only within its hardware cluster, which the emulator models as its own size.
      method: "GET",
      pattern: `${VM}/vmSizes`,
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/vmSizes/read",
      handle: (ctx, params, env) => {
        const vm = requireVm(env.world, params);
        const offered = env.world.offeredVmSizes();
        const value =
          vm.powerState === "deallocated"
            ? offered
            : offered.filter((entry) => entry.name.toLowerCase() === vm.vmSize.toLowerCase());
        sendJson(ctx, 200, { value: value.map((entry) => ({ ...entry })) });
      },
    },
    {
      // Synchronous here (Azure answers 202 and deletes in the background); there so that a test can
      // show RBAC denying it to a principal that lacks the action.
      method: "DELETE",
      pattern: VM,
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/delete",
      handle: (ctx, params, env) => {
        const vm = requireVm(env.world, params);
        env.world.vms.delete(env.world.vmKey(vm));
        sendJson(ctx, 200, undefined);
      },
    },
    {
      method: "GET",
      pattern: `${VM}/instanceView`,
      computePolicy: "lowCostGet",
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/instanceView/read",
      handle: (ctx, params, env) => sendJson(ctx, 200, instanceViewJson(requireVm(env.world, params))),
    },
    powerRoute("start", "Microsoft.Compute/virtualMachines/start/action"),
    powerRoute("deallocate", "Microsoft.Compute/virtualMachines/deallocate/action"),
    powerRoute("powerOff", "Microsoft.Compute/virtualMachines/powerOff/action"),
    {
      method: "POST",
      pattern: `${VM}/simulateEviction`,
      computePolicy: "putVm",
      apiVersions: computeVersions("virtualMachines"),
      action: "Microsoft.Compute/virtualMachines/simulateEviction/action",
      handle: (ctx, params, env) => {
        const vm = requireVm(env.world, params);
        if (vm.priority === "Regular") {
          throw new HttpError(
            409,
            "OperationNotAllowed",
            `Operation 'simulateEviction' is not allowed on VM '${vm.name}' since it is not an Azure Spot VM.`,
          );
        }
        if (vm.powerState !== "running" && vm.powerState !== "starting") {
          throw new HttpError(
            409,
            "OperationNotAllowed",
            `Operation 'simulateEviction' is not allowed on VM '${vm.name}' since the VM is ${vm.powerState}.`,
          );
        }
        env.world.scheduleEviction(vm);
        sendJson(ctx, 204, undefined);
      },
    },
    {
      // The Azure-AsyncOperation (status body) and Location (`monitor=true`: 202 until done) URLs.
      // ARM authorizes them as Microsoft.Compute/locations/operations/read ("Get Operation" in the Compute
      // provider's operation list; taskcluster/taskcluster#8594 found a custom role needs it to poll), checked
      // at the resource group of the resource the operation acts on: "To track the status of an asynchronous
      // operation, you need sufficient permission at the level of the resource group"
      // (learn.microsoft.com/azure/azure-resource-manager/management/async-operations, "Permission for
      // tracking async status"). So a role with start/action but not this action starts the VM and then
      // gets 403 AuthorizationFailed on the first poll.
      method: "GET",
      pattern:
        "subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/operations/{operationId}",
      // Each poll is a "Get Operation" (GetOperation3Min/30Min, rateLimit.ts).
      computePolicy: "getOperation",
      apiVersions: computeVersions("locations/operations"),
      handle: (ctx, params, env) => {
        const operation = env.world.operation(params.operationId as string);
        const checkedAt = operation
          ? resourceGroupId(env.world, operation.resourceGroup, operation.subscriptionId)
          : `/subscriptions/${env.world.subscriptionId}`;
        const allowed = isAllowed(
          env.caller.objectId,
          OPERATION_READ,
          checkedAt,
          env.world.roleAssignments.values(),
          env.world.findRoleDefinition,
        );
        if (!allowed) throw authorizationFailed(env.caller, OPERATION_READ, ctx.path);
        if (!operation) {
          throw new HttpError(404, "NotFound", `The operation '${params.operationId}' could not be found.`);
        }
        const done = operation.endsAt <= Date.now();
        const retry = { "Retry-After": env.world.timing.retryAfterSeconds };
        if (ctx.query.get("monitor") === "true") {
          if (!done)
            sendJson(ctx, 202, undefined, {
              ...retry,
              Location: operationUrls(ctx, env, operation).location,
            });
          else if (operation.error) sendJson(ctx, 409, { error: operation.error });
          else sendJson(ctx, 200, undefined);
          return;
        }
        sendJson(ctx, 200, operationStatusJson(operation, done), done ? {} : retry);
      },
    },
  ];
}

function updateRoute(method: "PATCH" | "PUT"): ArmRoute {
  return {
    method,
    pattern: VM,
    apiVersions: computeVersions("virtualMachines"),
    action: "Microsoft.Compute/virtualMachines/write",
    handle: (ctx, params, env) => {
      const vm = requireVm(env.world, params);
      const body = jsonBody<{ properties?: { hardwareProfile?: { vmSize?: unknown } }; tags?: unknown }>(ctx);
      const wanted = body.properties?.hardwareProfile?.vmSize;
      if (wanted !== undefined) {
        if (typeof wanted !== "string") {
          throw new HttpError(
            400,
            "InvalidParameter",
            "The value of parameter vmSize is invalid.",
            {},
            undefined,
            "vmSize",
          );
        }
        if (wanted.toLowerCase() !== vm.vmSize.toLowerCase()) resizeVm(env.world, vm, wanted);
      }
      // The emulator changes only the size (and, with PUT or PATCH, tags when given): anything else in the body
      // is accepted and ignored, as the runtime never sends it.
      if (body.tags !== undefined && typeof body.tags === "object" && body.tags !== null) {
        vm.tags = Object.fromEntries(Object.entries(body.tags).map(([k, v]) => [k, String(v)]));
      }
      // 200 with the VM and a terminal provisioningState: the SDK's poller is done without polling.
      sendJson(ctx, 200, vmJson(env.world, vm, false));
    },
  };
}

/**
 * Resizes a VM the way Compute allows it, refusing with the codes and messages Azure sends:
 * - a size the region does not offer: 400 InvalidParameter, target vmSize, "The requested VM size … is not
 *   available in the current region. The sizes available in the current region are: …" (as reported in
 *   microsoft/onefuzz#1126 and PaloAltoNetworks/azure-applicationgateway#1);
 * - an allocated VM (running, starting, stopped, …) to a size outside its hardware cluster: 409
 *   OperationNotAllowed, target vmSize, "Unable to resize the VM '…' because the requested size … is not
 *   available in the current hardware cluster. The available sizes are: … Read more on VM resizing strategy at
 *   https://aka.ms/azure-resizevm." (microsoft/service-fabric-issues#472). The emulator's cluster offers only
 *   the VM's own size, so an allocated VM is never resized: deallocate it first, as that message advises;
 * - between a size with a local temp disk and one without: 409 OperationNotAllowed "Unable to resize the VM '…'
 *   since changing from resource disk to non-resource disk VM size and vice-versa is not allowed. Please refer
 *   to https://aka.ms/AAah4sj for more details." (Azure/SAP-on-Azure-Scripts-and-Utilities#130; the rule:
 *   learn.microsoft.com/azure/virtual-machines/sizes/resize-vm, "Limitations").
 */
function resizeVm(world: World, vm: VirtualMachine, wanted: string): void {
  const offered = world.offeredVmSizes();
  const target = offered.find((entry) => entry.name.toLowerCase() === wanted.toLowerCase());
  if (!target) {
    throw new HttpError(
      400,
      "InvalidParameter",
      `The requested VM size ${wanted} is not available in the current region. The sizes available in the current region are: ${offered.map((entry) => entry.name).join(",")}.\r\nFind out more on the available VM sizes in each region at https://aka.ms/azure-regions.`,
      {},
      undefined,
      "vmSize",
    );
  }
  if (vm.powerState !== "deallocated") {
    throw new HttpError(
      409,
      "OperationNotAllowed",
      `Unable to resize the VM '${vm.name}' because the requested size ${target.name} is not available in the current hardware cluster. The available sizes are: ${vm.vmSize}. Read more on VM resizing strategy at https://aka.ms/azure-resizevm.`,
      {},
      undefined,
      "vmSize",
    );
  }
  // "Azure Spot is not supported for this VM size {0}." (azure-compute-docs articles/virtual-machines/
  // error-codes-spot.md); Compute answers Spot refusals with 409 Conflict (Azure/azure-powershell#12007).
  if (
    (vm.priority === "Spot" || vm.priority === "SpotPlus") &&
    world.spotUnsupportedSizes.some((name) => name.toLowerCase() === target.name.toLowerCase())
  ) {
    throw new HttpError(
      409,
      "AzureSpotIsNotSupportedForThisVMSize",
      `Azure Spot is not supported for this VM size ${target.name}.`,
    );
  }
  const current = offered.find((entry) => entry.name.toLowerCase() === vm.vmSize.toLowerCase());
  if (current && hasTempDisk(current) !== hasTempDisk(target)) {
    throw new HttpError(
      409,
      "OperationNotAllowed",
      `Unable to resize the VM '${vm.name}' since changing from resource disk to non-resource disk VM size and vice-versa is not allowed. Please refer to https://aka.ms/AAah4sj for more details.`,
    );
  }
  world.resize(vm, target.name);
}

function powerRoute(kind: Operation["kind"], action: string): ArmRoute {
  return {
    method: "POST",
    pattern: `${VM}/${kind}`,
    computePolicy: "putVm",
    apiVersions: computeVersions("virtualMachines"),
    action,
    handle: async (ctx, params, env) => {
      const vm = requireVm(env.world, params);
      let failWith: string | undefined;
      if (kind === "start") {
        // A start while another start of the VM is in flight (two hosts, issue 28), with seed
        // `concurrentStart: "conflict"`: 409 Conflict, Compute's answer to concurrent requests on one VM
        // (Azure/azure-cli#15765 shows it, with PutVM rate-limit headers).
        if (vm.powerState === "starting" && env.world.concurrentStart === "conflict") {
          throw new HttpError(
            409,
            "Conflict",
            "The request failed due to conflict with a concurrent request. To resolve it, please refer to https://aka.ms/activitylog to get more details on the conflicting requests.",
          );
        }
        if (vm.powerState === "deallocating" || vm.powerState === "stopping") {
          throw new HttpError(
            409,
            "OperationNotAllowed",
            `Operation 'start' is not allowed on VM '${vm.name}' since the VM is ${vm.powerState}. Retry after the current operation completes.`,
          );
        }
        const fault = findStartFault(env.world.faults, {
          method: ctx.method,
          path: ctx.path,
          vm: vm.name,
          vmSize: vm.vmSize,
        });
        if (fault) {
          failWith = fault.rule.startFailsWith;
          env.world.faults = consumeFault(env.world.faults, fault);
        }
      } else if (kind === "powerOff" && vm.powerState === "deallocated") {
        throw new HttpError(
          409,
          "OperationNotAllowed",
          `Operation 'powerOff' is not allowed on VM '${vm.name}' since the VM is deallocated.`,
        );
      }
      // The Activity Log names a service principal caller by its application id.
      const operation = env.world.beginPowerOperation(vm, kind, failWith, {
        caller: env.caller.clientId,
        objectId: env.caller.objectId,
      });
      const urls = operationUrls(ctx, env, operation);
      const answer = kind === "start" && failWith === undefined ? env.world.startResponse : "async";
      if (answer === "sync") {
        await delay(Math.max(0, operation.endsAt - Date.now()));
        sendJson(ctx, 200, undefined);
        return;
      }
      sendJson(ctx, 202, undefined, {
        ...(answer === "async" ? { "Azure-AsyncOperation": urls.asyncOperation } : {}),
        Location: urls.location,
        "Retry-After": env.world.timing.retryAfterSeconds,
      });
    },
  };
}

function operationUrls(ctx: RequestContext, env: ArmEnv, operation: Operation) {
  const base = `${ctx.origin}/subscriptions/${operation.subscriptionId}/providers/Microsoft.Compute/locations/${operation.location}/operations/${operation.id}`;
  const version = encodeURIComponent(env.apiVersion);
  return {
    asyncOperation: `${base}?p=${operation.kind}&api-version=${version}`,
    location: `${base}?p=${operation.kind}&monitor=true&api-version=${version}`,
  };
}

function operationStatusJson(operation: Operation, done: boolean): Record<string, unknown> {
  if (!done) return { startTime: operation.startTime, status: "InProgress", name: operation.id };
  const endTime = new Date(operation.endsAt).toISOString();
  if (operation.error) {
    return {
      startTime: operation.startTime,
      endTime,
      status: "Failed",
      error: operation.error,
      name: operation.id,
    };
  }
  return { startTime: operation.startTime, endTime, status: "Succeeded", name: operation.id };
}

function sendPage(ctx: RequestContext, env: ArmEnv, vms: VirtualMachine[]): void {
  const pageSize = env.world.listPageSize;
  const skip = Number.parseInt(ctx.query.get("$skiptoken") ?? "0", 10) || 0;
  const page = vms.slice(skip, skip + pageSize);
  const body: Record<string, unknown> = { value: page.map((vm) => vmJson(env.world, vm, false)) };
  if (skip + pageSize < vms.length) {
    body.nextLink = `${ctx.origin}${ctx.path}?api-version=${encodeURIComponent(env.apiVersion)}&$skiptoken=${skip + pageSize}`;
  }
  sendJson(ctx, 200, body);
}

function canRead(env: ArmEnv, scope: string): boolean {
  const { world, caller } = env;
  return isAllowed(
    caller.objectId,
    "Microsoft.Compute/virtualMachines/read",
    scope,
    world.roleAssignments.values(),
    world.findRoleDefinition,
  );
}

export function requireResourceGroup(world: World, name: string, subscriptionId?: string): void {
  if (!world.resourceGroup(name, subscriptionId)) {
    throw new HttpError(404, "ResourceGroupNotFound", `Resource group '${name}' could not be found.`);
  }
}

export function requireVm(world: World, params: Record<string, string>): VirtualMachine {
  const resourceGroup = params.resourceGroup as string;
  requireResourceGroup(world, resourceGroup, params.subscriptionId);
  const vm = world.vm(resourceGroup, params.vmName as string, params.subscriptionId);
  if (!vm) {
    throw new HttpError(
      404,
      "ResourceNotFound",
      `The Resource 'Microsoft.Compute/virtualMachines/${params.vmName}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  return vm;
}

export const displayPower: Record<string, string> = {
  running: "VM running",
  starting: "VM starting",
  stopping: "VM stopping",
  stopped: "VM stopped",
  deallocating: "VM deallocating",
  deallocated: "VM deallocated",
};

/** The instance view. Statuses come ProvisioningState first, PowerState second, as in Azure; clients must search, not index. */
export function instanceViewJson(vm: VirtualMachine): Record<string, unknown> {
  const provisioning =
    vm.provisioningState === "Failed" && vm.provisioningError
      ? {
          code: `ProvisioningState/failed/${vm.provisioningError.code}`,
          level: "Error",
          displayStatus: "Provisioning failed",
          message: vm.provisioningError.message,
          time: vm.lastStatusChange,
        }
      : vm.provisioningState === "Failed"
        ? // Seeded `Failed` without an operation behind it: Azure would append an error code
          // (`ProvisioningState/failed/<Code>`, as the branch above does); the seed has none to give.
          {
            code: "ProvisioningState/failed",
            level: "Error",
            displayStatus: "Provisioning failed",
            time: vm.lastStatusChange,
          }
        : vm.provisioningState !== "Succeeded"
          ? {
              code: `ProvisioningState/${vm.provisioningState.toLowerCase()}`,
              level: "Info",
              displayStatus: vm.provisioningState,
            }
          : {
              code: "ProvisioningState/succeeded",
              level: "Info",
              displayStatus: "Provisioning succeeded",
              time: vm.lastStatusChange,
            };
  const running = vm.powerState === "running";
  return {
    computerName: running ? vm.name : undefined,
    osName: running ? (vm.osType === "Linux" ? "ubuntu" : "Windows Server 2022 Datacenter") : undefined,
    osVersion: running ? (vm.osType === "Linux" ? "22.04" : "10.0.20348") : undefined,
    vmAgent: running
      ? {
          vmAgentVersion: "2.9.1.1",
          statuses: [
            {
              code: "ProvisioningState/succeeded",
              level: "Info",
              displayStatus: "Ready",
              message: "Guest Agent is running",
              time: vm.lastStatusChange,
            },
          ],
        }
      : undefined,
    hyperVGeneration: "V2",
    disks: [
      {
        name: `${vm.name}_OsDisk_1`,
        statuses: [
          {
            code: "ProvisioningState/succeeded",
            level: "Info",
            displayStatus: "Provisioning succeeded",
            time: vm.timeCreated,
          },
        ],
      },
    ],
    statuses: [
      provisioning,
      { code: `PowerState/${vm.powerState}`, level: "Info", displayStatus: displayPower[vm.powerState] },
      // A hibernated VM is deallocated with a third status (api-version 2023-03-01 and later):
      // https://learn.microsoft.com/azure/virtual-machines/hibernate-resume-troubleshooting
      ...(vm.hibernated
        ? [{ code: "HibernationState/Hibernated", level: "Info", displayStatus: "VM hibernated" }]
        : []),
    ],
  };
}

export function vmJson(world: World, vm: VirtualMachine, withInstanceView: boolean): Record<string, unknown> {
  const id = vmId(world, vm);
  const properties: Record<string, unknown> = {
    vmId: vm.vmId,
    hardwareProfile: { vmSize: vm.vmSize },
    storageProfile: {
      imageReference:
        vm.osType === "Linux"
          ? {
              publisher: "canonical",
              offer: "0001-com-ubuntu-server-jammy",
              sku: "22_04-lts-gen2",
              version: "latest",
            }
          : {
              publisher: "MicrosoftWindowsServer",
              offer: "WindowsServer",
              sku: "2022-datacenter-azure-edition",
              version: "latest",
            },
      osDisk: {
        osType: vm.osType,
        name: `${vm.name}_OsDisk_1`,
        createOption: "FromImage",
        caching: "ReadWrite",
        managedDisk: {
          storageAccountType: "Standard_LRS",
          id: `${resourceGroupId(world, vm.resourceGroup)}/providers/Microsoft.Compute/disks/${vm.name}_OsDisk_1`,
        },
        deleteOption: "Delete",
        diskSizeGB: 30,
      },
      dataDisks: [],
    },
    osProfile: {
      computerName: vm.name,
      adminUsername: "azureuser",
      ...(vm.osType === "Linux"
        ? { linuxConfiguration: { disablePasswordAuthentication: true, provisionVMAgent: true } }
        : { windowsConfiguration: { provisionVMAgent: true, enableAutomaticUpdates: true } }),
      secrets: [],
      allowExtensionOperations: true,
    },
    networkProfile: {
      networkInterfaces: [
        { id: networkId(world, vm, "networkInterfaces"), properties: { deleteOption: "Detach" } },
      ],
    },
    diagnosticsProfile: { bootDiagnostics: { enabled: true } },
    // Azure omits `priority` on a VM created without one (a Regular VM: 2026-04-01 example
    // VirtualMachine_Get.json has none), and `tags` when the VM has none.
    ...(vm.priority !== "Regular" ? { priority: vm.priority } : {}),
    ...(vm.evictionPolicy ? { evictionPolicy: vm.evictionPolicy } : {}),
    ...(vm.maxPrice !== null ? { billingProfile: { maxPrice: vm.maxPrice } } : {}),
    provisioningState: vm.provisioningState,
    timeCreated: vm.timeCreated,
  };
  if (withInstanceView) properties.instanceView = instanceViewJson(vm);
  return {
    name: vm.name,
    id,
    type: "Microsoft.Compute/virtualMachines",
    location: vm.location,
    ...(Object.keys(vm.tags).length > 0 ? { tags: { ...vm.tags } } : {}),
    ...(vm.zone ? { zones: [vm.zone] } : {}),
    properties,
  };
}
