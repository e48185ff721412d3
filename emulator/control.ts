// The control API (`/_emulator/…`): no auth, loopback only. Tests and the benchmark use it to read
// VM state, evict, inject faults, read the request log, and register principals and roles at runtime.

import { assignmentJson } from "./arm/authorization";
import { HttpError, jsonBody, matchSegments, type RequestContext, sendJson } from "./http";
import {
  faultRuleSchema,
  POWER_STATES,
  principalSchema,
  roleAssignmentSchema,
  roleDefinitionSchema,
  virtualMachineSchema,
} from "./seed";
import type { VirtualMachine, World } from "./state";

export interface RequestLogEntry {
  method: string;
  path: string;
  /** The query string without the leading `?` ("" when none). */
  query: string;
  /** HTTP status answered; 0 when the connection was dropped by a fault. */
  status: number;
  /** The caller's client id (ARM: from the access token; token endpoint: the `client_id` sent). */
  clientId?: string;
  time: string;
}

export class RequestLog {
  private entries: RequestLogEntry[] = [];
  constructor(private readonly limit = 100_000) {}
  add(entry: RequestLogEntry): void {
    this.entries.push(entry);
    if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit);
  }
  all(): RequestLogEntry[] {
    return [...this.entries];
  }
  clear(): void {
    this.entries = [];
  }
}

export function controlVmJson(vm: VirtualMachine): Record<string, unknown> {
  return {
    subscriptionId: vm.subscriptionId,
    resourceGroup: vm.resourceGroup,
    name: vm.name,
    powerState: vm.powerState,
    provisioningState: vm.provisioningState,
    startRequests: vm.startRequests,
    evictions: vm.evictions,
    lastEvictedAt: vm.lastEvictedAt ?? null,
    history: vm.history.map((entry) => ({ ...entry })),
    evictionScheduledAt: vm.evictAt ? new Date(vm.evictAt).toISOString() : null,
    tags: { ...vm.tags },
    priority: vm.priority,
    vmSize: vm.vmSize,
    hibernated: vm.hibernated,
    evictionPolicy: vm.evictionPolicy,
    maxPrice: vm.maxPrice,
    location: vm.location,
    zone: vm.zone,
  };
}

type ControlRoute = [
  method: string,
  pattern: string,
  handle: (ctx: RequestContext, params: Record<string, string>) => unknown,
];

export function handleControl(
  ctx: RequestContext,
  world: World,
  log: RequestLog,
  info: Record<string, unknown>,
): void {
  const routes: ControlRoute[] = [
    ["GET", "info", () => info],
    ["GET", "vms", () => world.listVms().map(controlVmJson)],
    [
      "PUT",
      "vms/{rg}/{name}",
      (_ctx, params) =>
        controlVmJson(
          world.putVirtualMachine(
            virtualMachineSchema.parse({
              ...(bodyOf(ctx) as object),
              resourceGroup: params.rg,
              name: params.name,
            }),
          ),
        ),
    ],
    [
      "PATCH",
      "vms/{rg}/{name}",
      (_ctx, params) => controlVmJson(patchVm(world, requireVm(world, params), bodyOf(ctx))),
    ],
    [
      "DELETE",
      "vms/{rg}/{name}",
      (_ctx, params) => {
        const vm = requireVm(world, params);
        world.vms.delete(world.vmKey(vm));
      },
    ],
    ["POST", "vms/{rg}/{name}/evict", (_ctx, params) => world.evict(requireVm(world, params))],
    [
      // The owner deallocates it (the portal's Stop, `az vm deallocate`, auto-shutdown). Optional
      // body `{"caller": "…"}`: who the Activity Log names (default owner@contoso.com).
      "POST",
      "vms/{rg}/{name}/deallocate",
      (_ctx, params) => {
        const body = ctx.body.length > 0 ? (bodyOf(ctx) as { caller?: unknown }) : {};
        const caller = typeof body.caller === "string" ? body.caller : "owner@contoso.com";
        world.ownerDeallocate(requireVm(world, params), { caller });
      },
    ],
    [
      "GET",
      "annotations",
      () =>
        world.annotations.map(({ visibleAt, ...annotation }) => ({
          ...annotation,
          visibleAt: new Date(visibleAt).toISOString(),
        })),
    ],
    ["GET", "faults", () => world.faults.map((fault) => ({ ...fault.rule, remaining: fault.remaining }))],
    [
      "POST",
      "faults",
      () => {
        const body = bodyOf(ctx);
        world.addFaults((Array.isArray(body) ? body : [body]).map((rule) => faultRuleSchema.parse(rule)));
      },
    ],
    ["DELETE", "faults", () => world.clearFaults()],
    ["GET", "requests", () => log.all()],
    ["DELETE", "requests", () => log.clear()],
    [
      "GET",
      "principals",
      () =>
        [...world.principals.values()].map((principal) => ({
          clientId: principal.clientId,
          objectId: principal.objectId,
          displayName: principal.displayName,
          certificateThumbprints: principal.certificates.map((certificate) => certificate.hexThumbprint),
        })),
    ],
    [
      "POST",
      "principals",
      () => {
        const principal = world.addPrincipal(principalSchema.parse(bodyOf(ctx)));
        return { clientId: principal.clientId, objectId: principal.objectId };
      },
    ],
    [
      "DELETE",
      "principals/{clientId}",
      (_ctx, params) => void world.removePrincipal(params.clientId as string),
    ],
    ["POST", "roleDefinitions", () => void world.putRoleDefinition(roleDefinitionSchema.parse(bodyOf(ctx)))],
    [
      "POST",
      "roleAssignments",
      () => assignmentJson(world, world.putRoleAssignment(roleAssignmentSchema.parse(bodyOf(ctx)))),
    ],
  ];
  const segments = ctx.segments.slice(1);
  for (const [method, pattern, handle] of routes) {
    const params = ctx.method === method ? matchSegments(segments, pattern) : undefined;
    if (!params) continue;
    const result = handle(ctx, params);
    sendJson(ctx, result === undefined ? 204 : 200, result);
    return;
  }
  throw new HttpError(404, "NotFound", `The control API has no ${ctx.method} /${segments.join("/")}.`);
}

function patchVm(world: World, vm: VirtualMachine, patch: unknown): VirtualMachine {
  const body = patch as { powerState?: unknown; tags?: unknown };
  if (body.powerState !== undefined) {
    if (!POWER_STATES.includes(body.powerState as never)) {
      throw new HttpError(400, "InvalidPowerState", `powerState must be one of ${POWER_STATES.join(", ")}`);
    }
    world.setPowerState(vm, body.powerState as VirtualMachine["powerState"]);
    vm.transition = undefined;
    vm.provisioningState = "Succeeded";
    vm.provisioningError = undefined;
  }
  if (body.tags !== undefined) vm.tags = { ...(body.tags as Record<string, string>) };
  return vm;
}

function bodyOf(ctx: RequestContext): unknown {
  return jsonBody<unknown>(ctx);
}

function requireVm(world: World, params: Record<string, string>): VirtualMachine {
  const vm = world.vmAnywhere(params.rg as string, params.name as string);
  if (!vm) throw new HttpError(404, "ResourceNotFound", `No VM ${params.rg}/${params.name}.`);
  return vm;
}
