// Settings' facts that the runtime config schema, the Pulumi program (config.ts at the repository root)
// and the installer must agree on: defaults, accepted ranges and names. Kept here, below everything that
// reads them, so the config never reaches up into the loop or the signals for its defaults.
// No imports: the Pulumi program reads this file too.

/**
 * Azure VM size names as ARM spells them in `hardwareProfile.vmSize` and `listAvailableSizes`: `Standard_` or
 * `Basic_`, the family, vCPUs and features, then an optional version (Standard_D2as_v5, Standard_E4-2ds_v5 with
 * constrained vCPUs, Standard_B2s, Standard_M416ms_v2).
 * https://learn.microsoft.com/azure/virtual-machines/vm-naming-conventions
 */
export const VM_SIZE_PATTERN =
  /^(?:Standard|Basic)_[A-Za-z][A-Za-z0-9]*(?:-[0-9]+[A-Za-z0-9]*)?(?:_[A-Za-z0-9]+)*$/;

/**
 * Default seconds of capacity failures before a VM is resized to a fallback size. The one source of it: the
 * runtime schema (configSchema.ts), the Pulumi program (config.ts) and the installer (install/layout.ts) import it;
 * Pulumi.yaml's declared default must equal it (test/program/project-files.test.ts).
 */
export const FALLBACK_AFTER_SECONDS = 600;

/** The range `fallbackAfterSeconds` accepts, in the runtime config and in `pulumi config` alike: 0 to a day. */
export const FALLBACK_AFTER_SECONDS_RANGE = { min: 0, max: 86_400 } as const;

/**
 * Default wait for a signal before a deallocated VM nothing explains is started anyway (with a
 * warning): 10 minutes. Neither signal has a documented latency bound: Resource Graph updates its
 * health records from change notifications (seconds to minutes in practice), and the Activity Log
 * shows an operation within minutes. 10 minutes lets an owner's stop be recognised in nearly every
 * case, while a VM whose signals are lost (or whose role cannot read them) is back within a quarter of
 * an hour instead of staying down silently. An eviction is normally explained long before that: the
 * wait only delays VMs that nothing explains.
 */
export const UNKNOWN_CAUSE_AFTER_SECONDS = 600;

/**
 * Every notification channel type (runtime config `notifications[].type`). signals/notify/channels.ts
 * maps each to its format with `satisfies Record<ChannelType, …>`, so a type without a format, or a format
 * without a type, does not compile.
 */
export const channelTypes = ["webhook", "ntfy", "slack", "discord", "teams"] as const;
export type ChannelType = (typeof channelTypes)[number];
