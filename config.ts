// The one place that reads `pulumi config` for this project. Everything below `readConfig` is a
// pure function over plain strings, so every rule and every message is tested without Pulumi mocks
// (test/program/config.test.ts asserts the exact wording).
import * as pulumi from "@pulumi/pulumi";
import { type NotificationEventName, notificationEventNames } from "./runtime/src/core/events";
import {
  parseVmId,
  type ResourceGroupRef,
  resourceGroupKey,
  type VmRef,
} from "./runtime/src/core/resourceIds";
import {
  type ChannelType,
  channelTypes,
  FALLBACK_AFTER_SECONDS,
  FALLBACK_AFTER_SECONDS_RANGE,
  VM_SIZE_PATTERN,
} from "./runtime/src/core/settings";

export const CONFIG_NAMESPACE = "spot-restarter";

export const ROLE_MODES = ["contributor", "least-privilege"] as const;
export type RoleMode = (typeof ROLE_MODES)[number];

/** Validated configuration: what `buildSpotRestarter` (components/SpotRestarter.ts) takes. */
export interface SpotRestarterConfig {
  readonly resourceGroupName: string;
  readonly restartableVms: readonly string[];
  readonly roleMode: RoleMode;
  readonly certificateValidityDays: number;
  readonly certificateRenewalDays: number;
  readonly principalName: string;
  /** Secret (each URL carries a token): index.ts exports it only through pulumi.secret. */
  readonly notifications: readonly NotificationChannel[];
  /**
   * Opt-in: VM name (as in restartableVms) -> sizes to resize it to when its own size has no Spot capacity.
   * Empty = no VM is ever resized, and the least-privilege role gets no write action.
   */
  readonly fallbackSizes: Readonly<Record<string, readonly string[]>>;
  /**
   * Seconds a VM's starts must have failed for lack of capacity before it is resized to a fallback size. Always
   * set (default FALLBACK_AFTER_SECONDS) and always exported; it means something only with `fallbackSizes`.
   */
  readonly fallbackAfterSeconds: number;
  /**
   * Opt-in: only when true does the least-privilege role hold `simulateEviction/action` (the runtime's
   * identity could otherwise evict any Spot VM in the group). Contributor can always evict.
   */
  readonly allowSimulateEviction: boolean;
}

/** A notification channel, the runtime config's `notifications[]` object (docs/architecture.md). */
export interface NotificationChannel {
  readonly type: ChannelType;
  readonly url: string;
  readonly events?: readonly NotificationEventName[];
}

/** Config values as Pulumi hands them over: strings (arrays arrive as JSON text), or undefined when unset. */
export interface RawConfig {
  readonly resourceGroupName?: string;
  readonly restartableVms?: string;
  readonly roleMode?: string;
  readonly certificateValidityDays?: string;
  readonly certificateRenewalDays?: string;
  readonly principalName?: string;
  readonly notifications?: string;
  readonly fallbackSizes?: string;
  readonly fallbackAfterSeconds?: string;
  readonly allowSimulateEviction?: string;
}

export const DEFAULTS = {
  restartableVms: [] as readonly string[],
  roleMode: "contributor" as RoleMode,
  certificateValidityDays: 365,
  certificateRenewalDays: 30,
  fallbackAfterSeconds: FALLBACK_AFTER_SECONDS,
  allowSimulateEviction: false,
} as const;

// Ten years: long enough for any sensible choice, short enough to catch a typo (36500).
export const MAX_CERTIFICATE_VALIDITY_DAYS = 3650;

const key = (name: string) => `${CONFIG_NAMESPACE}:${name}`;

/**
 * Resource group names: 1-90 characters; letters (Unicode), digits, underscores, parentheses, hyphens and
 * periods; not ending in a period.
 * https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftresources
 */
export function validateResourceGroupName(value: string | undefined): string {
  if (value === undefined || value.trim() === "") {
    throw new Error(
      `${key("resourceGroupName")} is required: the resource group that holds your Spot VMs. ` +
        "Fix: pulumi config set resourceGroupName <group>",
    );
  }
  if (value.length > 90 || !/^[\p{L}\p{N}_().-]+$/u.test(value) || value.endsWith(".")) {
    throw new Error(
      `${key("resourceGroupName")} "${value}" is not a valid resource group name: use 1-90 letters, digits, ` +
        "'_', '(', ')', '-' or '.', not ending in '.'. Fix: pulumi config set resourceGroupName <group>",
    );
  }
  return value;
}

/**
 * VM resource names. Azure: 1-64 characters for a Linux VM (the Windows 15-character limit is for the
 * computer name, not the resource name); no spaces, control characters or \ / " ' [ ] : | < > + = ; , ? * @ &;
 * can't start with '_'; can't end with '.' or '-'.
 * https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftcompute
 * We accept the portable subset (as PSRule's Azure.VM.Name does): letters, digits, '-', '_' and '.',
 * starting with a letter or digit, not ending with '.' or '-'.
 */
const VM_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/;
/** The resource group rule of validateResourceGroupName, for a group inside an entry. */
const RESOURCE_GROUP_NAME = /^[\p{L}\p{N}_().-]{1,90}$/u;
const isResourceGroupName = (group: string) => RESOURCE_GROUP_NAME.test(group) && !group.endsWith(".");

const ENTRY_FORMS =
  "a VM name (in resourceGroupName), <resource-group>/<vm-name>, or a full VM id " +
  "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>)";

export function validateVmName(value: unknown, index: number): string {
  const where = `${key("restartableVms")}[${index}]`;
  if (typeof value !== "string") {
    throw new Error(
      `${where} must be a VM name (a string), got ${JSON.stringify(value)}. ` +
        `Fix: pulumi config set --path 'restartableVms[${index}]' <vm-name>`,
    );
  }
  if (!VM_NAME.test(value)) {
    throw new Error(
      `${where} "${value}" is not a valid Azure VM name: use 1-64 letters, digits, '-', '_' or '.', ` +
        "starting with a letter or digit and not ending with '.' or '-'. " +
        `Fix: pulumi config set --path 'restartableVms[${index}]' <vm-name>`,
    );
  }
  return value;
}

/**
 * One `restartableVms` entry (issue 28): `name` (a VM in `resourceGroupName`), `group/name`, or a full VM id.
 * `subscriptionId` is set only for a full id (lower-cased); `group/name` whose group is `resourceGroupName`
 * (any case) is the plain name, so both spellings are one VM and keep one resource.
 */
export interface RestartableVm extends VmRef {
  /** The entry as written in config. */
  readonly entry: string;
}

/** Parses entry `index` of restartableVms; throws naming the entry and the fix. */
export function parseRestartableVm(value: unknown, index: number, resourceGroupName: string): RestartableVm {
  const where = `${key("restartableVms")}[${index}]`;
  const fix = `Fix: pulumi config set --path 'restartableVms[${index}]'`;
  if (typeof value === "string" && value.startsWith("/")) {
    const id = parseVmId(value);
    if (!id) {
      throw new Error(
        `${where} "${value}" is not a VM resource id: expected ` +
          "/subscriptions/<subscription-id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name> " +
          `(as \`az vm show -g <group> -n <name> --query id -o tsv\` prints it). ${fix} <vm-id>`,
      );
    }
    if (!isResourceGroupName(id.resourceGroup) || !VM_NAME.test(id.name)) {
      throw new Error(
        `${where} "${value}" names an invalid resource group or VM name (${ENTRY_FORMS}). ${fix} <vm-id>`,
      );
    }
    return { entry: value, ...id };
  }
  if (typeof value === "string" && value.includes("/")) {
    const parts = value.split("/");
    const [group, name] = parts;
    if (parts.length !== 2 || !isResourceGroupName(group) || !VM_NAME.test(name)) {
      throw new Error(
        `${where} "${value}" is not <resource-group>/<vm-name>: expected ${ENTRY_FORMS}. ${fix} build-rg/build-box-spot`,
      );
    }
    return group.toLowerCase() === resourceGroupName.toLowerCase()
      ? { entry: value, resourceGroup: resourceGroupName, name }
      : { entry: value, resourceGroup: group, name };
  }
  return { entry: validateVmName(value, index), resourceGroup: resourceGroupName, name: value as string };
}

/** What makes two entries one VM: its group (in its subscription) and name, compared as ARM does. */
export function restartableVmKey(vm: VmRef): string {
  return `${resourceGroupKey(vm)}/${vm.name.toLowerCase()}`;
}

/**
 * The list of VMs to tag: a JSON array of distinct valid entries (Azure compares names case-insensitively).
 * `resourceGroupName` (the stack's group) is where a plain name lives; it defaults to "" only for callers
 * checking the list alone.
 */
export function validateRestartableVms(raw: string | undefined, resourceGroupName = ""): string[] {
  if (raw === undefined || raw.trim() === "") return [...DEFAULTS.restartableVms];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw new Error(
      `${key("restartableVms")} must be a list of VM names, got ${JSON.stringify(raw)}. ` +
        "Fix: pulumi config rm restartableVms && pulumi config set --path 'restartableVms[0]' <vm-name>",
      { cause },
    );
  }
  if (!Array.isArray(parsed)) {
    throw new Error(
      `${key("restartableVms")} must be a list of VM names, got ${JSON.stringify(parsed)}. ` +
        "Fix: pulumi config rm restartableVms && pulumi config set --path 'restartableVms[0]' <vm-name>",
    );
  }
  const vms = parsed.map((value, index) => parseRestartableVm(value, index, resourceGroupName));
  const seen = new Map<string, number>();
  vms.forEach((vm, index) => {
    const first = seen.get(restartableVmKey(vm));
    if (first !== undefined) {
      throw new Error(
        `${key("restartableVms")} lists "${vm.entry}" twice (entries ${first} and ${index} name the same VM; ` +
          `Azure VM and resource group names are case-insensitive). Fix: pulumi config rm --path 'restartableVms[${index}]'`,
      );
    }
    seen.set(restartableVmKey(vm), index);
  });
  return vms.map((vm) => vm.entry);
}

/** The parsed entries of an already validated list. */
export function restartableVmsOf(config: Pick<SpotRestarterConfig, "resourceGroupName" | "restartableVms">) {
  return config.restartableVms.map((entry, index) =>
    parseRestartableVm(entry, index, config.resourceGroupName),
  );
}

/**
 * The scopes the principal's role is assigned on (issue 28): `resourceGroupName` first (its assignment keeps
 * its resource, also with no VM there), then each other group holding a listed VM, once each, in list order.
 * The one list that feeds the role assignments, the custom role's assignableScopes, and the `resourceGroups`
 * stack output (which becomes the runtime config's `resourceGroups`).
 */
export function restartScopes(
  config: Pick<SpotRestarterConfig, "resourceGroupName" | "restartableVms">,
): ResourceGroupRef[] {
  const scopes: ResourceGroupRef[] = [{ resourceGroup: config.resourceGroupName }];
  const seen = new Set([resourceGroupKey(scopes[0])]);
  for (const vm of restartableVmsOf(config)) {
    const scope: ResourceGroupRef =
      vm.subscriptionId === undefined
        ? { resourceGroup: vm.resourceGroup }
        : { subscriptionId: vm.subscriptionId, resourceGroup: vm.resourceGroup };
    if (seen.has(resourceGroupKey(scope))) continue;
    seen.add(resourceGroupKey(scope));
    scopes.push(scope);
  }
  return scopes;
}

export function validateRoleMode(raw: string | undefined): RoleMode {
  if (raw === undefined || raw.trim() === "") return DEFAULTS.roleMode;
  if ((ROLE_MODES as readonly string[]).includes(raw)) return raw as RoleMode;
  throw new Error(
    `${key("roleMode")} "${raw}" is not a role mode: use "contributor" or "least-privilege". ` +
      "Fix: pulumi config set roleMode least-privilege",
  );
}

/** A whole number of `unit` within [min, max]; `fallback` when unset. */
function validateWholeNumber(
  name: string,
  unit: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(
      `${key(name)} must be a whole number of ${unit} from ${min} to ${max}, got ${JSON.stringify(raw)}. ` +
        `Fix: pulumi config set ${name} ${fallback}`,
    );
  }
  return value;
}

/** A whole number of days within [min, max]; `fallback` when unset. */
export function validateDays(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  return validateWholeNumber(name, "days", raw, fallback, min, max);
}

/**
 * `fallbackAfterSeconds`: the runtime config's field of the same name, with its range and default
 * (runtime/src/core/settings.ts), so the installer can write it unchanged.
 */
export function validateFallbackAfterSeconds(raw: string | undefined): number {
  return validateWholeNumber(
    "fallbackAfterSeconds",
    "seconds",
    raw,
    DEFAULTS.fallbackAfterSeconds,
    FALLBACK_AFTER_SECONDS_RANGE.min,
    FALLBACK_AFTER_SECONDS_RANGE.max,
  );
}

/** A boolean key: Pulumi hands over "true" or "false" (a declared `type: boolean`); unset = `fallback`. */
export function validateBoolean(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw.trim() === "") return fallback;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new Error(
    `${key(name)} must be true or false, got ${JSON.stringify(raw)}. Fix: pulumi config set ${name} ${String(fallback)}`,
  );
}

/** `pulumi up` re-issues the certificate `renewal` days before expiry, so that must come after issue. */
export function validateCertificateLifetime(validityDays: number, renewalDays: number): void {
  if (validityDays <= renewalDays) {
    throw new Error(
      `${key("certificateValidityDays")} (${validityDays}) must be greater than ` +
        `${key("certificateRenewalDays")} (${renewalDays}), or every \`pulumi up\` would re-issue the ` +
        "certificate. Fix: pulumi config set certificateValidityDays 365 && pulumi config set certificateRenewalDays 30",
    );
  }
}

export function defaultPrincipalName(stack: string): string {
  return `spot-restarter-${stack}`;
}

/**
 * The Entra application's display name: any non-blank text without control characters. Unset or "" (the
 * default Pulumi.yaml declares, so that the CLI does not refuse a stack that never sets it) means derive it
 * from the stack name.
 */
export function validatePrincipalName(raw: string | undefined, stack: string): string {
  if (raw === undefined || raw === "") return defaultPrincipalName(stack);
  if (raw.trim() === "" || /\p{Cc}/u.test(raw)) {
    throw new Error(
      `${key("principalName")} must be a non-blank display name without control characters, ` +
        `got ${JSON.stringify(raw)}. Fix: pulumi config rm principalName (default "${defaultPrincipalName(stack)}")`,
    );
  }
  return raw;
}

/**
 * `notifications`: a JSON list of {type, url, events?}. Messages name the entry and the field, never the
 * URL (a secret: `pulumi config set --secret --path 'notifications[0].url' <url>`).
 */
export function validateNotifications(raw: string | undefined): NotificationChannel[] {
  if (raw === undefined || raw.trim() === "") return [];
  const fix = (index: number, field: string, value: string) =>
    `Fix: pulumi config set${field === "url" ? " --secret" : ""} --path 'notifications[${index}].${field}' ${value}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw new Error(
      `${key("notifications")} must be a list of channels (value not shown: it holds secrets). ${fix(0, "type", "ntfy")}`,
      { cause },
    );
  }
  if (!Array.isArray(parsed)) {
    throw new Error(
      `${key("notifications")} must be a list of channels, got ${typeof parsed === "object" ? "an object" : `a ${typeof parsed}`}. ${fix(0, "type", "ntfy")}`,
    );
  }
  return parsed.map((entry: unknown, index) => {
    const where = `${key("notifications")}[${index}]`;
    const channel = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
    if (!(channelTypes as readonly unknown[]).includes(channel.type)) {
      throw new Error(
        `${where}.type must be one of ${channelTypes.join(", ")}, got ${JSON.stringify(channel.type) ?? "nothing"}. ${fix(index, "type", "ntfy")}`,
      );
    }
    let url: URL | undefined;
    try {
      url = typeof channel.url === "string" ? new URL(channel.url) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
      throw new Error(
        `${where}.url must be an https:// (or http://) URL (value not shown: it is a secret). ${fix(index, "url", "<url>")}`,
      );
    }
    const events = channel.events;
    if (
      events !== undefined &&
      (!Array.isArray(events) ||
        events.length === 0 ||
        !events.every((e) => (notificationEventNames as readonly unknown[]).includes(e)))
    ) {
      throw new Error(
        `${where}.events must be a non-empty list of ${notificationEventNames.join(", ")} (or left out for all). ${fix(index, "events[0]", "vm-evicted")}`,
      );
    }
    return {
      type: channel.type as ChannelType,
      url: channel.url as string,
      ...(events !== undefined ? { events: events as NotificationEventName[] } : {}),
    };
  });
}

/**
 * `--path` for a key of `fallbackSizes`: bracket-quoted when the key holds a '.' or a '/' (a VM name with a
 * dot, a `group/name` entry or a full id; Pulumi's path syntax).
 */
function fallbackPath(vm: string, index: number): string {
  return /[./]/.test(vm) ? `fallbackSizes["${vm}"][${index}]` : `fallbackSizes.${vm}[${index}]`;
}

/**
 * `fallbackSizes`: a JSON object from VM name to a non-empty list of distinct VM sizes, tried in order when the
 * VM's own size has no Spot capacity. Every VM must be one of `restartableVms` (only those are restarted).
 */
export function validateFallbackSizes(
  raw: string | undefined,
  restartableVms: readonly string[],
): Record<string, string[]> {
  if (raw === undefined || raw.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw new Error(
      `${key("fallbackSizes")} must be an object from VM name to a list of VM sizes, got ${JSON.stringify(raw)}. ` +
        `Fix: pulumi config rm fallbackSizes && pulumi config set --path 'fallbackSizes.<vm-name>[0]' Standard_D2as_v5`,
      { cause },
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(
      `${key("fallbackSizes")} must be an object from VM name to a list of VM sizes, got ${JSON.stringify(parsed)}. ` +
        `Fix: pulumi config rm fallbackSizes && pulumi config set --path 'fallbackSizes.<vm-name>[0]' Standard_D2as_v5`,
    );
  }
  const known = new Map(restartableVms.map((vm) => [vm.toLowerCase(), vm]));
  const out: Record<string, string[]> = {};
  for (const [vm, sizes] of Object.entries(parsed as Record<string, unknown>)) {
    const where = `${key("fallbackSizes")}.${vm}`;
    const listed = known.get(vm.toLowerCase());
    if (listed === undefined) {
      throw new Error(
        `${where}: "${vm}" is not in ${key("restartableVms")}; only VMs the runtime restarts are resized. ` +
          `Fix: pulumi config set --path 'restartableVms[${restartableVms.length}]' ${vm}, ` +
          `or pulumi config rm --path '${fallbackPath(vm, 0).replace(/\[0\]$/, "")}'`,
      );
    }
    if (Object.hasOwn(out, listed)) {
      throw new Error(
        `${where}: "${vm}" is listed twice (Azure VM names are case-insensitive). ` +
          `Fix: pulumi config rm --path '${fallbackPath(vm, 0).replace(/\[0\]$/, "")}'`,
      );
    }
    if (!Array.isArray(sizes) || sizes.length === 0) {
      throw new Error(
        `${where} must be a non-empty list of VM sizes, got ${JSON.stringify(sizes)}. ` +
          `Fix: pulumi config set --path '${fallbackPath(vm, 0)}' Standard_D2as_v5`,
      );
    }
    const seen = new Set<string>();
    sizes.forEach((size: unknown, index) => {
      if (typeof size !== "string" || !VM_SIZE_PATTERN.test(size)) {
        throw new Error(
          `${where}[${index}] ${JSON.stringify(size)} is not an Azure VM size name: expected one like ` +
            `Standard_D2as_v5 (as \`az vm list-sizes\` prints it). Fix: pulumi config set --path '${fallbackPath(vm, index)}' Standard_D2as_v5`,
        );
      }
      if (seen.has(size.toLowerCase())) {
        throw new Error(
          `${where} lists ${size} twice. Fix: pulumi config rm --path '${fallbackPath(vm, index)}'`,
        );
      }
      seen.add(size.toLowerCase());
    });
    out[listed] = sizes as string[];
  }
  return out;
}

/** Validates every key; the first problem found is thrown, naming the key and the fix. */
export function parseConfig(raw: RawConfig, stack: string): SpotRestarterConfig {
  const resourceGroupName = validateResourceGroupName(raw.resourceGroupName);
  const restartableVms = validateRestartableVms(raw.restartableVms, resourceGroupName);
  const roleMode = validateRoleMode(raw.roleMode);
  const certificateValidityDays = validateDays(
    "certificateValidityDays",
    raw.certificateValidityDays,
    DEFAULTS.certificateValidityDays,
    2,
    MAX_CERTIFICATE_VALIDITY_DAYS,
  );
  const certificateRenewalDays = validateDays(
    "certificateRenewalDays",
    raw.certificateRenewalDays,
    DEFAULTS.certificateRenewalDays,
    1,
    MAX_CERTIFICATE_VALIDITY_DAYS - 1,
  );
  validateCertificateLifetime(certificateValidityDays, certificateRenewalDays);
  const principalName = validatePrincipalName(raw.principalName, stack);
  const notifications = validateNotifications(raw.notifications);
  const fallbackSizes = validateFallbackSizes(raw.fallbackSizes, restartableVms);
  const fallbackAfterSeconds = validateFallbackAfterSeconds(raw.fallbackAfterSeconds);
  const allowSimulateEviction = validateBoolean(
    "allowSimulateEviction",
    raw.allowSimulateEviction,
    DEFAULTS.allowSimulateEviction,
  );
  return {
    resourceGroupName,
    restartableVms,
    roleMode,
    certificateValidityDays,
    certificateRenewalDays,
    principalName,
    notifications,
    fallbackSizes,
    fallbackAfterSeconds,
    allowSimulateEviction,
  };
}

/** Reads `spot-restarter:*` from the current stack. The only caller of `pulumi.Config` in the project. */
export function readConfig(): SpotRestarterConfig {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  let parsed: SpotRestarterConfig;
  try {
    parsed = readRawConfig(config);
  } catch (cause) {
    // RunError: Pulumi prints just the message (key and fix), not a stack trace of this file.
    throw Object.assign(new pulumi.RunError((cause as Error).message), { cause });
  }
  for (const warning of configWarnings(parsed)) void pulumi.log.warn(warning);
  return parsed;
}

/**
 * Settings that are valid but do nothing, said once per `pulumi up`. `fallbackAfterSeconds` without any
 * `fallbackSizes`: the CLI always hands over Pulumi.yaml's default, so only a value other than it is one the
 * user set.
 */
export function configWarnings(config: SpotRestarterConfig): string[] {
  const warnings: string[] = [];
  if (
    Object.keys(config.fallbackSizes).length === 0 &&
    config.fallbackAfterSeconds !== DEFAULTS.fallbackAfterSeconds
  ) {
    warnings.push(
      `${key("fallbackAfterSeconds")} is ${config.fallbackAfterSeconds}, but no VM has ${key("fallbackSizes")}, so ` +
        "nothing is ever resized and it has no effect. Fix: pulumi config set --path " +
        "'fallbackSizes.<vm-name>[0]' Standard_D2as_v5, or pulumi config rm fallbackAfterSeconds",
    );
  }
  return warnings;
}

function readRawConfig(config: pulumi.Config): SpotRestarterConfig {
  return parseConfig(
    {
      resourceGroupName: config.get("resourceGroupName"),
      restartableVms: config.get("restartableVms"),
      roleMode: config.get("roleMode"),
      certificateValidityDays: config.get("certificateValidityDays"),
      certificateRenewalDays: config.get("certificateRenewalDays"),
      principalName: config.get("principalName"),
      // Read as text to validate it here; index.ts wraps the result in pulumi.secret.
      notifications: config.get("notifications"),
      // An object (VM name -> sizes), set with --path; arrives as JSON text like the lists.
      fallbackSizes: config.get("fallbackSizes"),
      // An integer; Pulumi.yaml declares it (default FALLBACK_AFTER_SECONDS), so the CLI hands over "600" when unset.
      fallbackAfterSeconds: config.get("fallbackAfterSeconds"),
      // A boolean; Pulumi.yaml declares it (default false), so the CLI hands over "false" when unset.
      allowSimulateEviction: config.get("allowSimulateEviction"),
    },
    pulumi.getStack(),
  );
}
