import * as authorization from "@pulumi/azure-native/authorization";
import * as pulumi from "@pulumi/pulumi";
import type { NotificationChannel, RoleMode, SpotRestarterConfig } from "../config";
import type { StackOutputName } from "../runtime/src/core/stackOutputNames";
import { ResourceGroupAccess } from "./ResourceGroupAccess";
import { RestartPrincipal } from "./RestartPrincipal";
import { RESTART_TAG, RestartTag } from "./RestartTag";

export interface SpotRestarterArgs {
  readonly resourceGroupName: pulumi.Input<string>;
  /** Plain: one RestartTag per entry, so the list must be known before the program runs. */
  readonly restartableVms: readonly string[];
  /** Plain: it decides which resources exist (see ResourceGroupAccessArgs.roleMode). */
  readonly roleMode: RoleMode;
  readonly certificateValidityDays: pulumi.Input<number>;
  readonly certificateRenewalDays: pulumi.Input<number>;
  readonly principalName: pulumi.Input<string>;
  /** Plain: VM name -> fallback sizes; non-empty grants the role the resize actions (ResourceGroupAccessArgs). */
  readonly fallbackSizes?: Readonly<Record<string, readonly string[]>>;
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

/** The RestartTag component's name for a VM: case-insensitive like the VM name itself. */
export function restartTagResourceName(componentName: string, vmName: string): string {
  return `${componentName}-tag-${vmName.toLowerCase()}`;
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

    const access = new ResourceGroupAccess(
      `${name}-access`,
      {
        subscriptionId: arm.subscriptionId,
        resourceGroupName: args.resourceGroupName,
        principalId: principal.servicePrincipalObjectId,
        roleMode: args.roleMode,
        fallbackSizes: Object.keys(args.fallbackSizes ?? {}).length > 0,
        customRoleName: pulumi.interpolate`${args.principalName} (restart Spot VMs in ${args.resourceGroupName})`,
      },
      { parent: this },
    );

    // One RestartTag per VM, named from the lower-cased VM name: Azure VM names are case-insensitive, so
    // changing an entry's case (Build-Box -> build-box) must keep the same resource. A new name would make
    // Pulumi create the new tag (PATCH Merge, a no-op on the same VM) and then delete the old one (PATCH
    // Delete of our tag), leaving the VM untagged. The alias keeps stacks deployed before this naming (when
    // the resource name kept the entry's case) from going through that same create-then-delete.
    // (Two entries that differ only in case are refused by config.ts validateRestartableVms.)
    const tags = args.restartableVms.map(
      (vmName) =>
        new RestartTag(
          restartTagResourceName(name, vmName),
          { resourceGroupName: args.resourceGroupName, vmName },
          {
            parent: this,
            aliases: vmName === vmName.toLowerCase() ? [] : [{ name: `${name}-tag-${vmName}` }],
          },
        ),
    );

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
    this.restartTag = pulumi.output({ name: RESTART_TAG.name, value: RESTART_TAG.value });
    this.restartableVms = pulumi.all(tags.map((tag) => tag.vmName));
    this.certificatePem = principal.certificatePem;
    this.certificateExpiresOn = principal.certificateExpiresOn;

    this.registerOutputs({
      tenantId: this.tenantId,
      subscriptionId: this.subscriptionId,
      clientId: this.clientId,
      servicePrincipalObjectId: this.servicePrincipalObjectId,
      resourceGroupName: this.resourceGroupName,
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
    },
    options.opts,
  );
  return {
    component,
    tenantId: component.tenantId,
    subscriptionId: component.subscriptionId,
    clientId: component.clientId,
    resourceGroupName: component.resourceGroupName,
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
