// Microsoft.Resources basics: subscriptions, tenants and resource groups (az login lists
// subscriptions; Pulumi and az read resource groups).
import { HttpError, type RequestContext, sendJson } from "../http";
import { isAllowed, scopeContains } from "../rbac";
import type { World } from "../state";
import { resourceGroupId } from "./ids";
import type { ArmEnv, ArmRoute } from "./router";

export function resourceRoutes(): ArmRoute[] {
  return [
    {
      method: "GET",
      pattern: "subscriptions",
      handle: (ctx, _params, env) => {
        const value = hasAnyAccess(env) ? [subscriptionJson(env.world)] : [];
        sendJson(ctx, 200, { value, count: { type: "Total", value: value.length } });
      },
    },
    {
      method: "GET",
      pattern: "subscriptions/{subscriptionId}",
      handle: (ctx, _params, env) => {
        if (!hasAnyAccess(env)) {
          throw new HttpError(
            404,
            "SubscriptionNotFound",
            `The subscription '${env.world.subscriptionId}' could not be found.`,
          );
        }
        sendJson(ctx, 200, subscriptionJson(env.world));
      },
    },
    {
      method: "GET",
      pattern: "tenants",
      handle: (ctx, _params, env) =>
        sendJson(ctx, 200, {
          value: [
            {
              id: `/tenants/${env.world.tenantId}`,
              tenantId: env.world.tenantId,
              countryCode: "US",
              displayName: "Emulated tenant",
              domains: ["emulator.onmicrosoft.com"],
              tenantCategory: "Home",
              defaultDomain: "emulator.onmicrosoft.com",
              tenantType: "AAD",
            },
          ],
        }),
    },
    {
      // ARM filters this list to the groups the caller may read.
      method: "GET",
      pattern: "subscriptions/{subscriptionId}/resourceGroups",
      handle: (ctx, _params, env) => {
        const value = [...env.world.resourceGroups.values()]
          .filter((group) =>
            isAllowed(
              env.caller.objectId,
              "Microsoft.Resources/subscriptions/resourceGroups/read",
              resourceGroupId(env.world, group.name),
              env.world.roleAssignments.values(),
              env.world.findRoleDefinition,
            ),
          )
          .map((group) => groupJson(env.world, group.name));
        sendJson(ctx, 200, { value });
      },
    },
    {
      method: "GET",
      pattern: "subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}",
      action: "Microsoft.Resources/subscriptions/resourceGroups/read",
      handle: (ctx: RequestContext, params, env) => {
        if (!env.world.resourceGroup(params.resourceGroup as string)) {
          throw new HttpError(
            404,
            "ResourceGroupNotFound",
            `Resource group '${params.resourceGroup}' could not be found.`,
          );
        }
        sendJson(ctx, 200, groupJson(env.world, params.resourceGroup as string));
      },
    },
  ];
}

/** Azure lists a subscription for anyone holding a role anywhere in it (a resource group is enough). */
function hasAnyAccess(env: ArmEnv): boolean {
  return [...env.world.roleAssignments.values()].some(
    (assignment) =>
      assignment.principalId.toLowerCase() === env.caller.objectId.toLowerCase() &&
      (scopeContains(env.world.subscriptionScope, assignment.scope) ||
        scopeContains(assignment.scope, env.world.subscriptionScope)),
  );
}

function subscriptionJson(world: World): Record<string, unknown> {
  return {
    id: world.subscriptionScope,
    authorizationSource: "RoleBased",
    managedByTenants: [],
    subscriptionId: world.subscriptionId,
    tenantId: world.tenantId,
    displayName: world.subscriptionName,
    state: "Enabled",
    subscriptionPolicies: {
      locationPlacementId: "Public_2014-09-01",
      quotaId: "PayAsYouGo_2014-09-01",
      spendingLimit: "Off",
    },
  };
}

function groupJson(world: World, name: string): Record<string, unknown> {
  const group = world.resourceGroup(name);
  return {
    id: resourceGroupId(world, group?.name ?? name),
    name: group?.name ?? name,
    type: "Microsoft.Resources/resourceGroups",
    location: group?.location ?? "eastus",
    tags: { ...(group?.tags ?? {}) },
    properties: { provisioningState: "Succeeded" },
  };
}
