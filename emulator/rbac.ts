// Azure RBAC, the subset the emulator needs: built-in and custom role definitions, assignments at
// a scope, and the "is this action allowed at this scope" check ARM makes before every request.
// https://learn.microsoft.com/azure/role-based-access-control/role-definitions#actions-format

export interface RoleDefinition {
  /** The guid (the last segment of every form of its id). */
  name: string;
  roleName: string;
  description: string;
  type: "BuiltInRole" | "CustomRole";
  actions: string[];
  notActions: string[];
  assignableScopes: string[];
  createdOn: string;
  updatedOn: string;
  /** Before this time (ms) an assignment naming it is refused (timing.roleDefinitionReplicationSeconds). */
  assignableFrom?: number;
}

export interface RoleAssignment {
  name: string;
  scope: string;
  principalId: string;
  principalType: string;
  /** As given; only its last segment (the definition guid) is used to find the definition. */
  roleDefinitionId: string;
  description?: string | null;
  createdOn: string;
  updatedOn: string;
  /** Before this time (ms) ARM does not apply it yet (timing.roleAssignmentReplicationSeconds). */
  effectiveFrom?: number;
}

const builtInTime = "2015-02-02T21:55:09.8806423Z";

/**
 * The built-in roles the project and its tests use, with their real ids and permissions
 * (learn.microsoft.com/azure/role-based-access-control/built-in-roles: each role's JSON).
 */
export const BUILT_IN_ROLES: RoleDefinition[] = [
  {
    name: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    roleName: "Owner",
    description:
      "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
    type: "BuiltInRole",
    actions: ["*"],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    name: "b24988ac-6180-42a0-ab88-20f7382dd24c",
    roleName: "Contributor",
    description:
      "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
    type: "BuiltInRole",
    actions: ["*"],
    notActions: [
      "Microsoft.Authorization/*/Delete",
      "Microsoft.Authorization/*/Write",
      "Microsoft.Authorization/elevateAccess/Action",
      "Microsoft.Blueprint/blueprintAssignments/write",
      "Microsoft.Blueprint/blueprintAssignments/delete",
      "Microsoft.Compute/galleries/share/action",
      "Microsoft.Purview/consents/write",
      "Microsoft.Purview/consents/delete",
      "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
      "Microsoft.Subscription/cancel/action",
      "Microsoft.Subscription/enable/action",
    ],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    name: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    roleName: "Reader",
    description: "View all resources, but does not allow you to make any changes.",
    type: "BuiltInRole",
    actions: ["*/read"],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    name: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    roleName: "User Access Administrator",
    description: "Lets you manage user access to Azure resources.",
    type: "BuiltInRole",
    actions: ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    // Tags on any resource, and reading groups and resources; not Compute reads.
    name: "4a9ae827-6dc8-4573-8ac7-8239d42aa03f",
    roleName: "Tag Contributor",
    description: "Lets you manage tags on entities, without providing access to the entities themselves.",
    type: "BuiltInRole",
    actions: [
      "Microsoft.Authorization/*/read",
      "Microsoft.Resources/subscriptions/resourceGroups/read",
      "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
      "Microsoft.Resources/subscriptions/resources/read",
      "Microsoft.Resources/deployments/*",
      "Microsoft.Insights/alertRules/*",
      "Microsoft.Support/*",
      "Microsoft.Resources/tags/*",
    ],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    // Role assignments only: no role definitions, no tags.
    name: "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    roleName: "Role Based Access Control Administrator",
    description:
      "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you to manage access using other ways, such as Azure Policy.",
    type: "BuiltInRole",
    actions: [
      "Microsoft.Authorization/roleAssignments/write",
      "Microsoft.Authorization/roleAssignments/delete",
      "*/read",
      "Microsoft.Support/*",
    ],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
  {
    name: "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    roleName: "Virtual Machine Contributor",
    description: "Create and manage virtual machines, manage disks, install and run software.",
    type: "BuiltInRole",
    actions: [
      "Microsoft.Authorization/*/read",
      "Microsoft.Compute/*",
      "Microsoft.Network/networkInterfaces/*",
      "Microsoft.Network/publicIPAddresses/read",
      "Microsoft.Resources/subscriptions/resourceGroups/read",
    ],
    notActions: [],
    assignableScopes: ["/"],
    createdOn: builtInTime,
    updatedOn: builtInTime,
  },
];

/** The guid at the end of any role definition id form (`/subscriptions/…/roleDefinitions/<guid>`, `/providers/…`, bare). */
export function roleDefinitionGuid(id: string): string {
  const parts = id.split("/").filter(Boolean);
  return (parts[parts.length - 1] ?? "").toLowerCase();
}

/** Azure permission pattern match: case-insensitive, `*` matches any run of characters (including `/`). */
export function actionMatches(pattern: string, action: string): boolean {
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`, "i").test(action);
}

export function roleAllows(role: Pick<RoleDefinition, "actions" | "notActions">, action: string): boolean {
  return (
    role.actions.some((pattern) => actionMatches(pattern, action)) &&
    !role.notActions.some((pattern) => actionMatches(pattern, action))
  );
}

/** Normalises a scope for comparison: lower case, no trailing slash, "/" for the root. */
export function normalizeScope(scope: string): string {
  const trimmed = `/${scope.split("/").filter(Boolean).join("/")}`.toLowerCase();
  return trimmed;
}

/** True when `outer` is `inner` or one of its ancestors (whole path segments only). */
export function scopeContains(outer: string, inner: string): boolean {
  const a = normalizeScope(outer);
  const b = normalizeScope(inner);
  return a === "/" || a === b || b.startsWith(`${a}/`);
}

export function isAllowed(
  principalId: string,
  action: string,
  scope: string,
  assignments: Iterable<RoleAssignment>,
  findDefinition: (guid: string) => RoleDefinition | undefined,
): boolean {
  for (const assignment of assignments) {
    if (assignment.principalId.toLowerCase() !== principalId.toLowerCase()) continue;
    if (!scopeContains(assignment.scope, scope)) continue;
    if (assignment.effectiveFrom !== undefined && assignment.effectiveFrom > Date.now()) continue;
    const definition = findDefinition(roleDefinitionGuid(assignment.roleDefinitionId));
    if (definition && roleAllows(definition, action)) return true;
  }
  return false;
}
