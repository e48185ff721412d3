import * as compute from "@pulumi/azure-native/compute";
import * as resources from "@pulumi/azure-native/resources";
import * as pulumi from "@pulumi/pulumi";
import { describeSpotIneligibility, spotIneligibility } from "../runtime/src/core/spotEligibility";

/** The tag the runtime looks for (docs/architecture.md). Changing it strands every host already installed. */
export const RESTART_TAG = { name: "AttemptRestartAfterEviction", value: "true" } as const;

export interface RestartTagArgs {
  readonly resourceGroupName: pulumi.Input<string>;
  readonly vmName: pulumi.Input<string>;
}

/** The fields of `compute.getVirtualMachine`'s result this component relies on. */
export interface VirtualMachineFacts {
  readonly id: string;
  readonly name?: string;
  readonly priority?: string;
  readonly evictionPolicy?: string;
}

const removeHint = (vmName: string) =>
  `Fix it in Azure, or stop tagging it: remove "${vmName}" from spot-restarter:restartableVms ` +
  "(pulumi config rm --path 'restartableVms[N]', N its position from 0)";

const describe = (cause: unknown) =>
  (cause instanceof Error ? cause.message : String(cause)).replace(/\.$/, "");

/**
 * Only a Spot (or SpotPlus) VM with eviction policy Deallocate (Azure's default when absent) survives an
 * eviction as something that can be started again; a Delete VM is gone, and a regular VM is never evicted.
 * The rule is the runtime's own (runtime/src/core/spotEligibility.ts), so `pulumi up`, `doctor` and the
 * loop accept the same VMs.
 */
export function assertRestartableSpotVm(
  vm: VirtualMachineFacts,
  resourceGroupName: string,
  vmName: string,
): void {
  const where = `VM "${vmName}" in resource group "${resourceGroupName}"`;
  const reason = spotIneligibility(vm);
  if (reason === "not-spot") {
    throw new Error(
      `${where} is not a Spot VM (priority: ${vm.priority ?? "Regular"}); only evicted Spot VMs need restarting. ` +
        removeHint(vmName),
    );
  }
  if (reason === "eviction-policy-delete") {
    throw new Error(
      `${where} has eviction policy Delete: Azure deletes it on eviction, so there is nothing to restart. ` +
        `Recreate it with --eviction-policy Deallocate. ${removeHint(vmName)}`,
    );
  }
  if (reason) throw new Error(`${where} has ${describeSpotIneligibility(vm, reason)}. ${removeHint(vmName)}`);
}

/**
 * Marks one Spot VM for restart: checks the VM, then adds AttemptRestartAfterEviction=true to its tags.
 *
 * `resources.TagAtScope` since pulumi-azure-native PR #4690 (merged 2026-05-02, so in 3.28.0 which this
 * project pins) creates and updates with `PATCH .../tags/default` operation `Merge`, and deletes with
 * operation `Delete` of only the tags it declared (provider/pkg/resources/customresources/custom_tagscope.go).
 * So the VM's other tags are never replaced, and `pulumi destroy` or dropping the VM from config removes
 * exactly our tag. Older releases PUT the whole tag set and failed on a VM that already had tags.
 */
export class RestartTag extends pulumi.ComponentResource {
  /** The VM's ARM id, which is also the tag resource's scope. */
  public readonly vmId: pulumi.Output<string>;
  public readonly vmName: pulumi.Output<string>;

  constructor(name: string, args: RestartTagArgs, opts?: pulumi.ComponentResourceOptions) {
    super("spot-restarter:tags:RestartTag", name, {}, opts);

    // An invoke runs during preview too, so a wrong name or a non-Spot VM stops `pulumi preview` (and the
    // preview `pulumi up` starts with) before anything is created. The Promise form is used inside an apply
    // because an Output offers no way to turn the provider's 404 into a message that says what to do.
    // ResourceError with hideStack: the engine reports the message against this component, without a trace.
    const fail = (message: string, cause: unknown) =>
      Object.assign(new pulumi.ResourceError(message, this, true), { cause });
    const vm = pulumi
      .all([args.resourceGroupName, args.vmName])
      .apply(async ([resourceGroupName, vmName]) => {
        let found: VirtualMachineFacts;
        try {
          found = await compute.getVirtualMachine({ resourceGroupName, vmName }, { parent: this });
        } catch (cause) {
          throw fail(
            `VM "${vmName}" was not found in resource group "${resourceGroupName}" (or this identity cannot read ` +
              `it): ${describe(cause)}. Check the name with ` +
              `\`az vm list -g ${resourceGroupName} -o table\`. ${removeHint(vmName)}`,
            cause,
          );
        }
        try {
          assertRestartableSpotVm(found, resourceGroupName, vmName);
        } catch (cause) {
          throw fail(describe(cause), cause);
        }
        return found;
      });

    // The child's name follows the component's; where the component was renamed (an alias by name), so is
    // the child, or Pulumi would replace it (create, then delete = remove our tag).
    const childAliases = (opts?.aliases ?? []).flatMap((alias) =>
      typeof alias === "object" && "name" in alias && typeof alias.name === "string"
        ? [{ name: `${alias.name}-tags` }]
        : [],
    );
    const tags = new resources.TagAtScope(
      `${name}-tags`,
      {
        scope: vm.id,
        properties: { tags: { [RESTART_TAG.name]: RESTART_TAG.value } },
      },
      { parent: this, aliases: childAliases },
    );

    // Resolves once the tag exists (TagAtScope has no `scope` output to read back).
    this.vmId = pulumi.all([vm.id, tags.id]).apply(([vmId]) => vmId);
    this.vmName = pulumi.output(args.vmName);

    this.registerOutputs({ vmId: this.vmId, vmName: this.vmName });
  }
}
