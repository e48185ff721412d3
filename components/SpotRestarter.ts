import * as authorization from "@pulumi/azure-native/authorization";
import { Provider } from "@pulumi/azure-native/provider";
import * as pulumi from "@pulumi/pulumi";
import {
  type NotificationChannel,
  type RestartableVm,
  type RoleMode,
  restartableVmsOf,
  restartScopes,
  type SpotRestarterConfig,
} from "../config";
import { type ResourceGroupRef, resourceGroupId } from "../runtime/src/core/resourceIds";
import type { StackOutputName } from "../runtime/src/core/stackOutputNames";
import { type OtherScope, ResourceGroupAccess } from "./ResourceGroupAccess";
import { RestartPrincipal } from "./RestartPrincipal";
import { RESTART_TAG, RestartTag } from "./RestartTag";

export interface SpotRestarterArgs {
  /** Plain: where a plain VM name lives, and the first scope (its resources keep their names). */
  readonly resourceGroupName: string;
  /**
   * Plain: one RestartTag per entry, so the list must be known before the program runs. Entries as
   * config.ts validateRestartableVms checked them: `name`, `group/name` or a full VM id.
   */
  readonly restartableVms: readonly string[];
  /** Plain: it decides which resources exist (see ResourceGroupAccessArgs.roleMode). */
  readonly roleMode: RoleMode;
  readonly certificateValidityDays: pulumi.Input<number>;
  readonly certificateRenewalDays: pulumi.Input<number>;
  readonly principalName: pulumi.Input<string>;
  /** Plain: VM name -> fallback sizes; non-empty grants the role the resize actions (ResourceGroupAccessArgs). */
  readonly fallbackSizes?: Readonly<Record<string, readonly string[]>>;
  /** Plain: true grants the least-privilege role `simulateEviction/action` (ResourceGroupAccessArgs). */
  readonly allowSimulateEviction?: boolean;
}

/** Shown in `installCommand` where the user's host goes; README "What each output is for" explains it. */
export const INSTALL_HOST_PLACEHOLDER = "HOST";

/**
 * The ready-to-paste pipe from this stack's outputs to the host installer (docs/architecture.md data flow). The host is
 * not something Pulumi knows, so it is a placeholder to replace. It runs the single executable copied to
 * the host's home directory first (`scp dist/spot-restarter-linux-<arch> HOST:spot-restarter`, README "On
 * the host"), which needs no Node.js there; the bundle (`sudo node spot-restarter.cjs install …`) and the
 * Debian package (`sudo spot-restarter install …`) take the same pipe.
 */
export function buildInstallCommand(stack: string, host: string = INSTALL_HOST_PLACEHOLDER): string {
  return (
    `pulumi stack output --stack ${stack} --json --show-secrets | ` +
    `ssh ${host} sudo ./spot-restarter install --stack-outputs -`
  );
}

/**
 * The RestartTag component's name for a VM: case-insensitive like the VM name itself. A VM in the stack's own
 * group keeps the name it always had (`<component>-tag-<vm>`); one elsewhere is named by its group (and
 * subscription) too. '/' cannot occur in a VM or group name, so no two VMs share a name.
 */
export function restartTagResourceName(
  componentName: string,
  vmName: string,
  where: ResourceGroupRef & { ownResourceGroup?: string } = { resourceGroup: "" },
): string {
  const own =
    where.subscriptionId === undefined &&
    (where.resourceGroup === "" ||
      where.resourceGroup.toLowerCase() === (where.ownResourceGroup ?? where.resourceGroup).toLowerCase());
  const prefix = own
    ? ""
    : `${where.subscriptionId === undefined ? "" : `${where.subscriptionId}/`}${where.resourceGroup.toLowerCase()}/`;
  return `${componentName}-tag-${prefix}${vmName.toLowerCase()}`;
}

/** The key naming a further scope's resources (`<access>-assignment-<key>`): `group` or `subscription/group`. */
export function scopeKey(scope: ResourceGroupRef): string {
  return `${scope.subscriptionId === undefined ? "" : `${scope.subscriptionId}/`}${scope.resourceGroup.toLowerCase()}`;
}

/**
 * A full VM id is for a VM in another subscription (it gets its own provider). One in the stack's own
 * subscription is refused: written as `group/name` it is the same VM under another resource name, and the
 * two spellings could not be told apart before the subscription is known.
 */
export function assertOtherSubscription(vm: RestartableVm, index: number, ownSubscriptionId: string): void {
  if (vm.subscriptionId !== undefined && vm.subscriptionId === ownSubscriptionId.toLowerCase()) {
    throw new Error(
      `spot-restarter:restartableVms[${index}] "${vm.entry}" is a full VM id in the stack's own subscription ` +
        `${ownSubscriptionId}: write it as ${vm.resourceGroup}/${vm.name} (a full id is for a VM in another subscription). ` +
        `Fix: pulumi config set --path 'restartableVms[${index}]' ${vm.resourceGroup}/${vm.name}`,
    );
  }
}

/** azuread and azure-native must be logged in to the same tenant, or the role would name a stranger. */
export function assertSameTenant(entraTenantId: string, armTenantId: string): string {
  if (entraTenantId.toLowerCase() !== armTenantId.toLowerCase()) {
    throw new Error(
      `The azuread provider is signed in to tenant ${entraTenantId} but azure-native to tenant ${armTenantId}: ` +
        "the service principal would be created in one and granted access in the other. " +
        "Fix: sign both in to the subscription's tenant (az login --tenant <id>, or set azuread:tenantId " +
        "and azure-native:tenantId to the same value).",
    );
  }
  return entraTenantId;
}

/**
 * The whole product on the Azure side: the restart principal, its access to one resource group, and the
 * restart tag on each configured VM. Its outputs are the stack outputs of docs/architecture.md.
 */
export class SpotRestarter extends pulumi.ComponentResource {
  public readonly tenantId: pulumi.Output<string>;
  public readonly subscriptionId: pulumi.Output<string>;
  public readonly clientId: pulumi.Output<string>;
  public readonly servicePrincipalObjectId: pulumi.Output<string>;
  public readonly resourceGroupName: pulumi.Output<string>;
  /** Every group the principal may act in, as `/subscriptions/<id>/resourceGroups/<name>`: the first is resourceGroupName's. */
  public readonly resourceGroups: pulumi.Output<string[]>;
  public readonly restartTag: pulumi.Output<{ name: string; value: string }>;
  public readonly restartableVms: pulumi.Output<string[]>;
  public readonly certificatePem: pulumi.Output<string>;
  public readonly certificateExpiresOn: pulumi.Output<string>;

  constructor(name: string, args: SpotRestarterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("spot-restarter:index:SpotRestarter", name, {}, opts);

    const arm = authorization.getClientConfigOutput({ parent: this });

    const principal = new RestartPrincipal(
      `${name}-principal`,
      {
        displayName: args.principalName,
        certificateValidityDays: args.certificateValidityDays,
        certificateRenewalDays: args.certificateRenewalDays,
      },
      { parent: this },
    );

    // A fault here (a full id in the own subscription) stops every resource of that subscription: the explicit
    // provider's subscription id is where it is checked, so it fails `pulumi preview` before anything is made.
    const vms = restartableVmsOf(args);
    const scopes = restartScopes(args);
    const providers = new Map<string, Provider>();
    for (const [index, vm] of vms.entries()) {
      const subscriptionId = vm.subscriptionId;
      if (subscriptionId === undefined || providers.has(subscriptionId)) continue;
      // Another subscription of the tenant gets its own explicit provider: getVirtualMachine reads the VM in
      // the provider's subscription. It signs in like the default provider would from the environment (az
      // login, ARM_* variables), in the default provider's tenant.
      providers.set(
        subscriptionId,
        new Provider(
          `${name}-provider-${subscriptionId}`,
          {
            subscriptionId: arm.subscriptionId.apply((own) => {
              try {
                assertOtherSubscription(vm, index, own);
              } catch (cause) {
                throw Object.assign(new pulumi.ResourceError((cause as Error).message, this, true), {
                  cause,
                });
              }
              return subscriptionId;
            }),
            tenantId: arm.tenantId,
          },
          { parent: this },
        ),
      );
    }
    const providerFor = (where: ResourceGroupRef) =>
      where.subscriptionId === undefined ? undefined : providers.get(where.subscriptionId);

    const otherScopes: OtherScope[] = scopes.slice(1).map((scope) => ({
      key: scopeKey(scope),
      subscriptionId: scope.subscriptionId ?? arm.subscriptionId,
      resourceGroupName: scope.resourceGroup,
      provider: providerFor(scope),
    }));
    const access = new ResourceGroupAccess(
      `${name}-access`,
      {
        subscriptionId: arm.subscriptionId,
        resourceGroupName: args.resourceGroupName,
        principalId: principal.servicePrincipalObjectId,
        roleMode: args.roleMode,
        fallbackSizes: Object.keys(args.fallbackSizes ?? {}).length > 0,
        allowSimulateEviction: args.allowSimulateEviction === true,
        customRoleName: pulumi.interpolate`${args.principalName} (restart Spot VMs in ${args.resourceGroupName})`,
        otherScopes,
      },
      { parent: this },
    );

    // One RestartTag per VM, named from the lower-cased VM name: Azure VM names are case-insensitive, so
    // changing an entry's case (Build-Box -> build-box) must keep the same resource. A new name would make
    // Pulumi create the new tag (PATCH Merge, a no-op on the same VM) and then delete the old one (PATCH
    // Delete of our tag), leaving the VM untagged. The alias keeps stacks deployed before this naming (when
    // the resource name kept the entry's case) from going through that same create-then-delete.
    // (Two entries that name one VM are refused by config.ts validateRestartableVms.) A VM in the stack's own
    // group keeps this name however its entry is written (`vm` or `<group>/vm`).
    const tags = vms.map((vm) => {
      const own = vm.subscriptionId === undefined && vm.resourceGroup === args.resourceGroupName;
      const provider = providerFor(vm);
      return new RestartTag(
        restartTagResourceName(name, vm.name, { ...vm, ownResourceGroup: args.resourceGroupName }),
        { resourceGroupName: vm.resourceGroup, vmName: vm.name },
        {
          parent: this,
          aliases: own && vm.name !== vm.name.toLowerCase() ? [{ name: `${name}-tag-${vm.name}` }] : [],
          ...(provider ? { provider } : {}),
        },
      );
    });

    this.tenantId = pulumi.all([principal.tenantId, arm.tenantId]).apply(([entraTenantId, armTenantId]) => {
      try {
        return assertSameTenant(entraTenantId, armTenantId);
      } catch (cause) {
        throw Object.assign(new pulumi.ResourceError((cause as Error).message, this, true), { cause });
      }
    });
    this.subscriptionId = arm.subscriptionId;
    this.clientId = principal.clientId;
    this.servicePrincipalObjectId = principal.servicePrincipalObjectId;
    // Resolves after the role assignment exists: whoever reads it next (the host installer) can log in.
    this.resourceGroupName = pulumi
      .all([args.resourceGroupName, access.roleAssignmentId])
      .apply(([resourceGroupName]) => resourceGroupName);
    // The scopes' ids, once every group's assignment exists (like resourceGroupName above).
    this.resourceGroups = pulumi
      .all([arm.subscriptionId, access.roleAssignmentIds])
      .apply(([own]) =>
        scopes.map((scope) => resourceGroupId(scope.subscriptionId ?? own, scope.resourceGroup)),
      );
    this.restartTag = pulumi.output({ name: RESTART_TAG.name, value: RESTART_TAG.value });
    // The entries as written (`name`, `group/name` or a full id), once each VM carries the tag.
    this.restartableVms = pulumi.all(tags.map((tag, index) => tag.vmId.apply(() => vms[index].entry)));
    this.certificatePem = principal.certificatePem;
    this.certificateExpiresOn = principal.certificateExpiresOn;

    this.registerOutputs({
      tenantId: this.tenantId,
      subscriptionId: this.subscriptionId,
      clientId: this.clientId,
      servicePrincipalObjectId: this.servicePrincipalObjectId,
      resourceGroupName: this.resourceGroupName,
      resourceGroups: this.resourceGroups,
      restartTag: this.restartTag,
      restartableVms: this.restartableVms,
      certificatePem: this.certificatePem,
      certificateExpiresOn: this.certificateExpiresOn,
    });
  }
}

/** The stack outputs of docs/architecture.md, exactly these names. */
export interface SpotRestarterStackOutputs {
  readonly tenantId: pulumi.Output<string>;
  readonly subscriptionId: pulumi.Output<string>;
  readonly clientId: pulumi.Output<string>;
  readonly resourceGroupName: pulumi.Output<string>;
  /** The groups the principal may act in, as resource-group ids (issue 28); the runtime config's resourceGroups. */
  readonly resourceGroups: pulumi.Output<string[]>;
  readonly restartTag: pulumi.Output<{ name: string; value: string }>;
  readonly restartableVms: pulumi.Output<string[]>;
  readonly certificatePem: pulumi.Output<string>;
  readonly certificateExpiresOn: pulumi.Output<string>;
  readonly installCommand: pulumi.Output<string>;
  /** Secret: each channel URL carries a token. */
  readonly notifications: pulumi.Output<NotificationChannel[]>;
  /** VM name -> fallback sizes (`{}` when none): the installer writes them into the runtime config. */
  readonly fallbackSizes: pulumi.Output<Record<string, string[]>>;
  /**
   * Seconds of failed starts for capacity before a fallback size (`spot-restarter:fallbackAfterSeconds`).
   * Always exported, also without fallbacks (where the installer ignores it), like `fallbackSizes`' `{}`.
   */
  readonly fallbackAfterSeconds: pulumi.Output<number>;
}

// Compile-time: the outputs above are exactly the contract's names (runtime/src/core/stackOutputNames.ts),
// no more, no fewer; tsc fails here when one side gains or loses a name.
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const outputsMatchContract: SameKeys<keyof SpotRestarterStackOutputs, StackOutputName> = true;
void outputsMatchContract;

export interface BuildOptions {
  /** Component name; children are named from it. Default "spot-restarter". */
  readonly name?: string;
  /** Stack name written into installCommand. Default: the running stack. */
  readonly stack?: string;
  readonly opts?: pulumi.ComponentResourceOptions;
}

/**
 * Builds the whole stack from an already validated config (see config.ts `parseConfig`) and returns the
 * stack outputs. `index.ts` calls it with `readConfig()`; an end-to-end harness can call it under
 * `pulumi.runtime.setMocks` with its own config and a mock that creates the resources in the emulator.
 */
export function buildSpotRestarter(
  config: SpotRestarterConfig,
  options: BuildOptions = {},
): SpotRestarterStackOutputs & { component: SpotRestarter } {
  const component = new SpotRestarter(
    options.name ?? "spot-restarter",
    {
      resourceGroupName: config.resourceGroupName,
      restartableVms: config.restartableVms,
      roleMode: config.roleMode,
      certificateValidityDays: config.certificateValidityDays,
      certificateRenewalDays: config.certificateRenewalDays,
      principalName: config.principalName,
      fallbackSizes: config.fallbackSizes,
      allowSimulateEviction: config.allowSimulateEviction,
    },
    options.opts,
  );
  return {
    component,
    tenantId: component.tenantId,
    subscriptionId: component.subscriptionId,
    clientId: component.clientId,
    resourceGroupName: component.resourceGroupName,
    resourceGroups: component.resourceGroups,
    restartTag: component.restartTag,
    restartableVms: component.restartableVms,
    certificatePem: component.certificatePem,
    certificateExpiresOn: component.certificateExpiresOn,
    installCommand: pulumi.output(buildInstallCommand(options.stack ?? pulumi.getStack())),
    // Passed through, but only as a secret: state, `pulumi stack output` and the CLI's display hide it.
    notifications: pulumi.secret(config.notifications.map((channel) => ({ ...channel }))),
    fallbackSizes: pulumi.output(
      Object.fromEntries(Object.entries(config.fallbackSizes).map(([vm, sizes]) => [vm, [...sizes]])),
    ),
    fallbackAfterSeconds: pulumi.output(config.fallbackAfterSeconds),
  };
}
