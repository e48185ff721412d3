// Microsoft.Authorization role assignments and role definitions at any scope (GET, list, PUT, DELETE),
// enough for Pulumi's azure-native RoleAssignment/RoleDefinition and `az role assignment`.
// https://learn.microsoft.com/rest/api/authorization/role-assignments
import { HttpError, jsonBody, type RequestContext, sendJson } from "../http";
import {
  normalizeScope,
  type RoleAssignment,
  type RoleDefinition,
  roleDefinitionGuid,
  scopeContains,
} from "../rbac";
import type { World } from "../state";
import type { ArmRoute } from "./router";

const ASSIGNMENTS = "{*scope}/providers/Microsoft.Authorization/roleAssignments";
const DEFINITIONS = "{*scope}/providers/Microsoft.Authorization/roleDefinitions";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function authorizationRoutes(): ArmRoute[] {
  const scopeOf = (params: Record<string, string>) => params.scope as string;
  return [
    {
      // "Gets all permissions the caller has for a resource group" (Permissions_ListForResourceGroup,
      // azure-rest-api-specs authorization/…/stable/2022-04-01/authorization-RoleDefinitionsCalls.json):
      // one {actions, notActions, dataActions, notDataActions} per role assignment of the caller that
      // applies at the group (assigned there or above). ARM authorizes it, before it looks at the group, as
      // Microsoft.Authorization/permissions/read, "Lists all the permissions the caller has at a given scope."
      // (azure-docs articles/role-based-access-control/permissions/management-and-governance.md#microsoftauthorization).
      method: "GET",
      pattern:
        "subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.Authorization/permissions",
      action: "Microsoft.Authorization/permissions/read",
      handle: (ctx, params, env) => {
        const group = env.world.resourceGroup(params.resourceGroup as string);
        if (!group) {
          throw new HttpError(
            404,
            "ResourceGroupNotFound",
            `Resource group '${params.resourceGroup}' could not be found.`,
          );
        }
        const scope = `/subscriptions/${env.world.subscriptionId}/resourceGroups/${group.name}`;
        const value = [...env.world.roleAssignments.values()]
          .filter(
            (assignment) =>
              assignment.principalId.toLowerCase() === env.caller.objectId.toLowerCase() &&
              scopeContains(assignment.scope, scope) &&
              (assignment.effectiveFrom ?? 0) <= Date.now(),
          )
          .flatMap((assignment) => {
            const definition = env.world.findRoleDefinition(roleDefinitionGuid(assignment.roleDefinitionId));
            return definition
              ? [
                  {
                    actions: definition.actions,
                    notActions: definition.notActions,
                    dataActions: [],
                    notDataActions: [],
                  },
                ]
              : [];
          });
        sendJson(ctx, 200, { value });
      },
    },
    {
      method: "GET",
      pattern: ASSIGNMENTS,
      action: "Microsoft.Authorization/roleAssignments/read",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const scope = params.scope as string;
        const filter = ctx.query.get("$filter") ?? "";
        const atScope = /atScope\(\)/i.test(filter);
        const principal = /(?:principalId\s+eq|assignedTo\()\s*'([^']+)'/i.exec(filter)?.[1]?.toLowerCase();
        const value = [...env.world.roleAssignments.values()]
          .filter((assignment) =>
            atScope
              ? scopeContains(assignment.scope, scope)
              : scopeContains(assignment.scope, scope) || scopeContains(scope, assignment.scope),
          )
          .filter(
            (assignment) => principal === undefined || assignment.principalId.toLowerCase() === principal,
          )
          .map((assignment) => assignmentJson(env.world, assignment));
        sendJson(ctx, 200, { value });
      },
    },
    {
      method: "GET",
      pattern: `${ASSIGNMENTS}/{name}`,
      action: "Microsoft.Authorization/roleAssignments/read",
      scope: scopeOf,
      handle: (ctx, params, env) =>
        sendJson(ctx, 200, assignmentJson(env.world, requireAssignment(env.world, params))),
    },
    {
      method: "PUT",
      pattern: `${ASSIGNMENTS}/{name}`,
      action: "Microsoft.Authorization/roleAssignments/write",
      scope: scopeOf,
      handle: (ctx, params, env) => putAssignment(ctx, params, env.world),
    },
    {
      method: "DELETE",
      pattern: `${ASSIGNMENTS}/{name}`,
      action: "Microsoft.Authorization/roleAssignments/delete",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const existing = env.world.roleAssignments.get((params.name as string).toLowerCase());
        if (!existing || normalizeScope(existing.scope) !== normalizeScope(params.scope as string)) {
          sendJson(ctx, 204, undefined);
          return;
        }
        env.world.roleAssignments.delete(existing.name);
        sendJson(ctx, 200, assignmentJson(env.world, existing));
      },
    },
    {
      method: "GET",
      pattern: DEFINITIONS,
      action: "Microsoft.Authorization/roleDefinitions/read",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const filter = ctx.query.get("$filter") ?? "";
        const roleName = /roleName\s+eq\s+'([^']+)'/i.exec(filter)?.[1];
        const type = /type\s+eq\s+'([^']+)'/i.exec(filter)?.[1];
        const value = [...env.world.roleDefinitions.values()]
          .filter(
            (definition) =>
              roleName === undefined || definition.roleName.toLowerCase() === roleName.toLowerCase(),
          )
          .filter((definition) => type === undefined || definition.type.toLowerCase() === type.toLowerCase())
          .filter(
            (definition) =>
              definition.type === "BuiltInRole" ||
              definition.assignableScopes.some(
                (assignable) =>
                  scopeContains(assignable, params.scope as string) ||
                  scopeContains(params.scope as string, assignable),
              ),
          )
          .map((definition) => definitionJson(env.world, params.scope as string, definition));
        sendJson(ctx, 200, { value });
      },
    },
    {
      method: "GET",
      pattern: `${DEFINITIONS}/{name}`,
      action: "Microsoft.Authorization/roleDefinitions/read",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const definition = env.world.findRoleDefinition(params.name as string);
        if (!definition) throw roleDefinitionNotFound(params.name as string);
        sendJson(ctx, 200, definitionJson(env.world, params.scope as string, definition));
      },
    },
    {
      method: "PUT",
      pattern: `${DEFINITIONS}/{name}`,
      action: "Microsoft.Authorization/roleDefinitions/write",
      scope: scopeOf,
      handle: (ctx, params, env) => putDefinition(ctx, params, env.world),
    },
    {
      method: "DELETE",
      pattern: `${DEFINITIONS}/{name}`,
      action: "Microsoft.Authorization/roleDefinitions/delete",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const name = (params.name as string).toLowerCase();
        const definition = env.world.findRoleDefinition(name);
        if (!definition) {
          sendJson(ctx, 204, undefined);
          return;
        }
        if (definition.type === "BuiltInRole") {
          throw new HttpError(400, "CannotDeleteBuiltInRole", "Built-in role definitions cannot be deleted.");
        }
        const inUse = [...env.world.roleAssignments.values()].some(
          (assignment) => roleDefinitionGuid(assignment.roleDefinitionId) === name,
        );
        if (inUse) {
          throw new HttpError(
            400,
            "RoleDefinitionHasAssignments",
            "There are existing role assignments referencing role (code: RoleDefinitionHasAssignments).",
          );
        }
        env.world.roleDefinitions.delete(name);
        sendJson(ctx, 200, definitionJson(env.world, params.scope as string, definition));
      },
    },
  ];
}

function putAssignment(ctx: RequestContext, params: Record<string, string>, world: World): void {
  const name = (params.name as string).toLowerCase();
  const scope = params.scope as string;
  if (!GUID.test(name)) {
    throw new HttpError(
      400,
      "InvalidRoleAssignmentId",
      `The role assignment ID '${params.name}' is not valid. The role assignment ID must be a GUID.`,
    );
  }
  const body = jsonBody<{ properties?: Record<string, unknown> }>(ctx);
  const properties = body.properties ?? {};
  const roleDefinitionId = properties.roleDefinitionId;
  const principalId = properties.principalId;
  if (typeof roleDefinitionId !== "string" || typeof principalId !== "string") {
    throw new HttpError(
      400,
      "InvalidRequestContent",
      "The request must contain properties.roleDefinitionId and properties.principalId.",
    );
  }
  const found = world.findRoleDefinition(roleDefinitionGuid(roleDefinitionId));
  // A custom role created moments ago is not known everywhere yet: the same answer as no role at all.
  const definition = found && (found.assignableFrom ?? 0) <= Date.now() ? found : undefined;
  if (!definition) {
    throw new HttpError(
      400,
      "RoleDefinitionDoesNotExist",
      `The specified role definition with ID '${roleDefinitionGuid(roleDefinitionId)}' does not exist.`,
    );
  }
  if (
    definition.type === "CustomRole" &&
    !definition.assignableScopes.some((assignable) => scopeContains(assignable, scope))
  ) {
    throw new HttpError(
      403,
      "InvalidCreateRoleAssignmentRequest",
      `The role '${definition.roleName}' is not available to be assigned at the scope '${scope}'.`,
    );
  }
  const principalType = typeof properties.principalType === "string" ? properties.principalType : undefined;
  const principal = world.principalByObjectId(principalId);
  // Entra replicates a new service principal with a delay; without principalType ARM looks it up and
  // may not find it yet. https://learn.microsoft.com/azure/role-based-access-control/role-assignments-template#new-service-principal
  const replicating =
    principal !== undefined &&
    principalType === undefined &&
    Date.now() - principal.createdAt < world.timing.principalReplicationSeconds * 1000;
  // With principalType set ARM skips the directory lookup altogether, so it also accepts an object id that
  // is not a service principal at all (an application's object id, a typo): the assignment is created and
  // grants nobody anything. That is the mistake the end-to-end test plants, so the emulator must allow it.
  if ((!principal && principalType === undefined) || replicating) {
    throw new HttpError(
      400,
      "PrincipalNotFound",
      `Principal ${principalId.replace(/-/g, "")} does not exist in the directory ${world.tenantId}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype`,
    );
  }
  const existing = world.roleAssignments.get(name);
  if (existing) {
    const same =
      normalizeScope(existing.scope) === normalizeScope(scope) &&
      existing.principalId.toLowerCase() === principalId.toLowerCase() &&
      roleDefinitionGuid(existing.roleDefinitionId) === definition.name;
    if (!same) {
      throw new HttpError(
        400,
        "RoleAssignmentUpdateNotPermitted",
        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
      );
    }
    sendJson(ctx, 200, assignmentJson(world, existing));
    return;
  }
  const duplicate = [...world.roleAssignments.values()].find(
    (assignment) =>
      normalizeScope(assignment.scope) === normalizeScope(scope) &&
      assignment.principalId.toLowerCase() === principalId.toLowerCase() &&
      roleDefinitionGuid(assignment.roleDefinitionId) === definition.name,
  );
  if (duplicate) {
    throw new HttpError(
      409,
      "RoleAssignmentExists",
      `The role assignment already exists. The ID of the existing role assignment is ${duplicate.name}.`,
    );
  }
  const assignment = world.putRoleAssignment({
    name,
    scope,
    principalId,
    principalType: principalType ?? "ServicePrincipal",
    roleDefinitionId,
  });
  if (typeof properties.description === "string") assignment.description = properties.description;
  sendJson(ctx, 201, assignmentJson(world, assignment));
}

function putDefinition(ctx: RequestContext, params: Record<string, string>, world: World): void {
  const name = (params.name as string).toLowerCase();
  if (!GUID.test(name)) {
    throw new HttpError(
      400,
      "InvalidRoleDefinitionId",
      `The role definition ID '${params.name}' is not valid. It must be a GUID.`,
    );
  }
  const existing = world.findRoleDefinition(name);
  if (existing?.type === "BuiltInRole") {
    throw new HttpError(400, "CannotModifyBuiltInRole", "Built-in role definitions cannot be modified.");
  }
  const body = jsonBody<{ properties?: Record<string, unknown> }>(ctx);
  const properties = body.properties ?? {};
  const permissions = Array.isArray(properties.permissions)
    ? (properties.permissions as Array<Record<string, unknown>>)
    : [];
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  const roleName = typeof properties.roleName === "string" ? properties.roleName : undefined;
  if (!roleName)
    throw new HttpError(400, "InvalidRequestContent", "The request must contain properties.roleName.");
  const clash = [...world.roleDefinitions.values()].find(
    (definition) => definition.name !== name && definition.roleName.toLowerCase() === roleName.toLowerCase(),
  );
  if (clash) {
    throw new HttpError(
      409,
      "RoleDefinitionWithSameNameExists",
      `A custom role with the same name '${roleName}' already exists in this directory.`,
    );
  }
  const assignableScopes = strings(properties.assignableScopes);
  const definition = world.putRoleDefinition({
    id: name,
    roleName,
    description: typeof properties.description === "string" ? properties.description : "",
    actions: permissions.flatMap((permission) => strings(permission.actions)),
    notActions: permissions.flatMap((permission) => strings(permission.notActions)),
    assignableScopes: assignableScopes.length > 0 ? assignableScopes : [params.scope as string],
  });
  sendJson(ctx, existing ? 200 : 201, definitionJson(world, params.scope as string, definition));
}

function requireAssignment(world: World, params: Record<string, string>): RoleAssignment {
  const existing = world.roleAssignments.get((params.name as string).toLowerCase());
  if (!existing || normalizeScope(existing.scope) !== normalizeScope(params.scope as string)) {
    throw new HttpError(404, "RoleAssignmentNotFound", `The role assignment '${params.name}' is not found.`);
  }
  return existing;
}

function roleDefinitionNotFound(name: string): HttpError {
  return new HttpError(
    404,
    "RoleDefinitionDoesNotExist",
    `The specified role definition with ID '${name}' does not exist.`,
  );
}

function scopeId(scope: string): string {
  return normalizeScope(scope) === "/" ? "" : scope.replace(/\/+$/, "");
}

export function assignmentJson(world: World, assignment: RoleAssignment): Record<string, unknown> {
  const definition = world.findRoleDefinition(roleDefinitionGuid(assignment.roleDefinitionId));
  return {
    properties: {
      roleDefinitionId: `/subscriptions/${world.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${definition?.name ?? roleDefinitionGuid(assignment.roleDefinitionId)}`,
      principalId: assignment.principalId,
      principalType: assignment.principalType,
      scope: assignment.scope,
      condition: null,
      conditionVersion: null,
      createdOn: assignment.createdOn,
      updatedOn: assignment.updatedOn,
      createdBy: null,
      updatedBy: null,
      delegatedManagedIdentityResourceId: null,
      description: assignment.description ?? null,
    },
    id: `${scopeId(assignment.scope)}/providers/Microsoft.Authorization/roleAssignments/${assignment.name}`,
    type: "Microsoft.Authorization/roleAssignments",
    name: assignment.name,
  };
}

export function definitionJson(
  world: World,
  scope: string,
  definition: RoleDefinition,
): Record<string, unknown> {
  const base = definition.type === "BuiltInRole" ? `/subscriptions/${world.subscriptionId}` : scopeId(scope);
  return {
    id: `${base}/providers/Microsoft.Authorization/roleDefinitions/${definition.name}`,
    type: "Microsoft.Authorization/roleDefinitions",
    name: definition.name,
    properties: {
      roleName: definition.roleName,
      type: definition.type,
      description: definition.description,
      assignableScopes: definition.assignableScopes,
      permissions: [
        {
          actions: definition.actions,
          notActions: definition.notActions,
          dataActions: [],
          notDataActions: [],
        },
      ],
      createdOn: definition.createdOn,
      updatedOn: definition.updatedOn,
      createdBy: null,
      updatedBy: null,
    },
  };
}
