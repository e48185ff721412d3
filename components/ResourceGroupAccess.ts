import { createHash } from "node:crypto";
import * as authorization from "@pulumi/azure-native/authorization";
import * as pulumi from "@pulumi/pulumi";
import * as time from "@pulumiverse/time";
import type { RoleMode } from "../config";
import { LEAST_PRIVILEGE_ACTIONS, leastPrivilegeActions } from "../runtime/src/azure/roleActions";

// The runtime's one list of the actions it needs (each with the feature that uses it).
export { LEAST_PRIVILEGE_ACTIONS };

export interface ResourceGroupAccessArgs {
  readonly subscriptionId: pulumi.Input<string>;
  readonly resourceGroupName: pulumi.Input<string>;
  /** The service principal's object id (never the application's object id or its client id). */
  readonly principalId: pulumi.Input<string>;
  /**
   * Plain, not an Input: it decides which resources exist, and a program must know that before it runs
   * (an Output could only be branched on inside an apply, where creating resources breaks previews).
   */
  readonly roleMode: RoleMode;
  /**
   * Plain: true when some VM has fallback sizes (config `fallbackSizes`). Only then does the least-privilege
   * role gain the `fallback-size` actions (resizing writes the VM: runtime/src/azure/roleActions.ts).
   */
  readonly fallbackSizes?: boolean;
  /**
   * Plain: true when `spot-restarter:allowSimulateEviction` is set. Only then does the least-privilege role gain
   * `simulateEviction/action`; without it the identity cannot evict a Spot VM (runtime/src/azure/roleActions.ts).
   */
  readonly allowSimulateEviction?: boolean;
  /** Base of the custom role's name (least-privilege mode); `customRoleName` makes it unique per tenant. */
  readonly customRoleName?: pulumi.Input<string>;
  /**
   * Plain list: further resource groups (issue 28: a listed VM lives there) that get the same role
   * assignment. The first group (`subscriptionId`/`resourceGroupName`) keeps its resources' names, so a
   * stack that adds groups replaces nothing it had.
   */
  readonly otherScopes?: readonly OtherScope[];
}

/** A further group of ResourceGroupAccessArgs.otherScopes. */
export interface OtherScope {
  /** Names its assignment (`<name>-assignment-<key>`): stable, and unique among the scopes. */
  readonly key: string;
  readonly subscriptionId: pulumi.Input<string>;
  readonly resourceGroupName: string;
  /** The explicit azure-native provider of another subscription (absent: the stack's own). */
  readonly provider?: pulumi.ProviderResource;
}

/** Built-in Contributor. https://learn.microsoft.com/azure/role-based-access-control/built-in-roles */
export const CONTRIBUTOR_ROLE_GUID = "b24988ac-6180-42a0-ab88-20f7382dd24c";

export function resourceGroupScope(subscriptionId: string, resourceGroupName: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroupName}`;
}

/** Role definition ids are GUIDs referenced at subscription level, wherever the definition was created. */
export function subscriptionRoleDefinitionId(subscriptionId: string, roleGuid: string): string {
  return `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleGuid}`;
}

/**
 * A name-based (RFC 4122 version 5 layout) GUID: the custom role gets the same id on every run for the
 * same scope and name, so we can reference it without waiting for a generated one, and a second stack
 * targeting another group gets another role.
 */
export function stableRoleGuid(...parts: string[]): string {
  const bytes = createHash("sha1").update(parts.join("\n")).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x50;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The custom role's display name. Role names are unique per tenant (ARM answers 409
 * RoleDefinitionWithSameNameExists, "A custom role with the same name already exists in this directory."),
 * so the name carries the start of the role's GUID, which is derived from the scope (subscription and group)
 * and the base name: two stacks with the same principal name and group in two subscriptions of one tenant get
 * two names, and anything that replaces the role (a new GUID or scope, the only inputs that force replacement)
 * gives the new role a new name, so create-before-delete never meets the old role's name.
 */
export function customRoleName(baseName: string, roleGuid: string): string {
  return `${baseName} [${roleGuid.slice(0, 8)}]`;
}

/**
 * How long a new custom role definition is given to replicate before it is assigned. ARM is eventually
 * consistent here: an assignment that names a role definition created moments ago can fail with 400
 * RoleDefinitionDoesNotExist ("The specified role definition with ID '…' does not exist.";
 * hashicorp/terraform-provider-azurerm#10442, #10479, pulumi/pulumi-azure#840), and azure-native retries
 * only 408/429/5xx and 409 AnotherOperationInProgress (provider/pkg/azure/client_azcore.go), not that.
 * Microsoft's own enterprise-scale Terraform module waits 60 s after each role definition for the same
 * reason (Azure/terraform-azurerm-caf-enterprise-scale, `create_duration_delay.azurerm_role_definition`).
 */
export const CUSTOM_ROLE_REPLICATION_DELAY = "60s";

/**
 * What the restart principal may do, and where: one role assignment on exactly the resource group,
 * either built-in Contributor or a custom role with only the runtime's actions (runtime/src/azure/roleActions.ts),
 * assignable only there.
 */
export class ResourceGroupAccess extends pulumi.ComponentResource {
  /** `/subscriptions/{sub}/resourceGroups/{rg}`. */
  public readonly scope: pulumi.Output<string>;
  /** Subscription-level id of the assigned role definition. */
  public readonly roleDefinitionId: pulumi.Output<string>;
  public readonly roleAssignmentId: pulumi.Output<string>;
  /** Every group's id, `scope` first: the assignments' scopes (and the custom role's assignableScopes). */
  public readonly scopes: pulumi.Output<string[]>;
  /** Resolves once every group's assignment exists. */
  public readonly roleAssignmentIds: pulumi.Output<string[]>;

  constructor(name: string, args: ResourceGroupAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("spot-restarter:access:ResourceGroupAccess", name, {}, opts);

    this.scope = pulumi
      .all([args.subscriptionId, args.resourceGroupName])
      .apply(([subscriptionId, resourceGroupName]) => resourceGroupScope(subscriptionId, resourceGroupName));
    const others = (args.otherScopes ?? []).map((other) => ({
      ...other,
      scope: pulumi
        .output(other.subscriptionId)
        .apply((subscriptionId) => resourceGroupScope(subscriptionId, other.resourceGroupName)),
    }));
    this.scopes = pulumi.all([this.scope, ...others.map((other) => other.scope)]);

    let dependsOn: pulumi.Resource[] = [];
    // The assignment's role definition id: for a new custom role, it comes out of the replication wait,
    // so the assignment cannot be sent before the wait ended (a data dependency, not only an ordering).
    let assignedRoleDefinitionId: pulumi.Output<string>;
    // The same role, referenced from another group's subscription (as `az role assignment create` builds the
    // id: the assignment scope's subscription; a custom role is one tenant-wide object, whatever subscription
    // prefixes its id).
    let roleDefinitionIdIn: (subscriptionId: pulumi.Input<string>) => pulumi.Output<string>;
    if (args.roleMode === "contributor") {
      this.roleDefinitionId = pulumi
        .output(args.subscriptionId)
        .apply((subscriptionId) => subscriptionRoleDefinitionId(subscriptionId, CONTRIBUTOR_ROLE_GUID));
      // A built-in role exists everywhere already: nothing to wait for.
      assignedRoleDefinitionId = this.roleDefinitionId;
      roleDefinitionIdIn = (subscriptionId) =>
        pulumi.output(subscriptionId).apply((id) => subscriptionRoleDefinitionId(id, CONTRIBUTOR_ROLE_GUID));
    } else {
      const baseName = args.customRoleName ?? name;
      const roleGuid = pulumi
        .all([this.scope, baseName])
        .apply(([scope, roleName]) => stableRoleGuid(scope, roleName));
      // Created at the (first) resource group, assignable only at the groups: the role cannot be used anywhere
      // else, and defining it needs no rights beyond them. The GUID comes from the first group alone, so adding
      // groups updates the role's assignableScopes in place instead of replacing it.
      const role = new authorization.RoleDefinition(
        `${name}-role`,
        {
          scope: this.scope,
          roleDefinitionId: roleGuid,
          roleName: pulumi.all([baseName, roleGuid]).apply(([base, guid]) => customRoleName(base, guid)),
          roleType: "CustomRole",
          description: "spot-restarter: find evicted Spot VMs in this resource group and start them again.",
          permissions: [
            {
              actions: leastPrivilegeActions({
                fallbackSizes: args.fallbackSizes === true,
                simulateEviction: args.allowSimulateEviction === true,
              }),
              notActions: [],
            },
          ],
          assignableScopes: this.scopes,
        },
        { parent: this },
      );
      this.roleDefinitionId = pulumi
        .all([args.subscriptionId, roleGuid])
        .apply(([subscriptionId, guid]) => subscriptionRoleDefinitionId(subscriptionId, guid));
      // Waits once after the role is created, and again whenever it is replaced (its id is a trigger);
      // an update of its actions keeps the role, so nothing waits then. With further groups, their list is a
      // trigger too: a group added to assignableScopes is an update that has to replicate before an assignment
      // there can name the role. (A single-group stack keeps exactly its old triggers: nothing is replaced.)
      const replicated = new time.Sleep(
        `${name}-role-replication`,
        {
          createDuration: CUSTOM_ROLE_REPLICATION_DELAY,
          triggers: {
            roleDefinitionId: this.roleDefinitionId,
            roleDefinitionResourceId: role.id,
            ...(others.length > 0
              ? { assignableScopes: this.scopes.apply((scopes) => scopes.join(",")) }
              : {}),
          },
        },
        { parent: this, dependsOn: [role] },
      );
      dependsOn = [replicated];
      assignedRoleDefinitionId = pulumi
        .all([replicated.triggers, this.roleDefinitionId])
        .apply(([triggers, fallback]) => triggers?.roleDefinitionId ?? fallback);
      // Through the wait as well (its triggers), so no group's assignment is sent before the role replicated.
      roleDefinitionIdIn = (subscriptionId) =>
        pulumi
          .all([subscriptionId, replicated.triggers, roleGuid])
          .apply(([id, , guid]) => subscriptionRoleDefinitionId(id, guid));
    }

    // principalType skips ARM's directory lookup of a service principal that may not have replicated yet.
    // https://learn.microsoft.com/azure/role-based-access-control/role-assignments-template#new-service-principal
    const assignment = new authorization.RoleAssignment(
      `${name}-assignment`,
      {
        scope: this.scope,
        principalId: args.principalId,
        principalType: "ServicePrincipal",
        roleDefinitionId: assignedRoleDefinitionId,
        description: "spot-restarter: restart evicted Spot VMs in this resource group.",
      },
      { parent: this, dependsOn },
    );
    this.roleAssignmentId = assignment.id;
    const otherAssignments = others.map(
      (other) =>
        new authorization.RoleAssignment(
          `${name}-assignment-${other.key}`,
          {
            scope: other.scope,
            principalId: args.principalId,
            principalType: "ServicePrincipal",
            roleDefinitionId: roleDefinitionIdIn(other.subscriptionId),
            description: "spot-restarter: restart evicted Spot VMs in this resource group.",
          },
          { parent: this, dependsOn, ...(other.provider ? { provider: other.provider } : {}) },
        ),
    );
    this.roleAssignmentIds = pulumi.all([assignment.id, ...otherAssignments.map((other) => other.id)]);

    this.registerOutputs({
      scope: this.scope,
      scopes: this.scopes,
      roleAssignmentIds: this.roleAssignmentIds,
      roleDefinitionId: this.roleDefinitionId,
      roleAssignmentId: this.roleAssignmentId,
    });
  }
}
