// Runtime configuration: defaults <- config file <- environment <- flags, validated once after
// merging. Every error names where the bad value came from (file, variable or flag), the field,
// and what was expected.

import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { fleetStartsPerMinute, minStartSpacingMs } from "../core/azureBudgets";
import { ConfigError } from "../core/errors";
import { parseResourceGroupId, resourceGroupKey, resourceGroupOfEntry } from "../core/resourceIds";
import {
  controlCharactersIn,
  escapeControlCharacters,
  jsonErrorPosition,
  printablePath,
  redactUrl,
} from "../core/text";
import { fieldMeta, innerSchema, overridableFields } from "./configFields";
import { type ConfigField, configSchema, type RuntimeConfig } from "./configSchema";

// The schema and its derived types live in configSchema.ts; the type most modules need is re-exported.
export type { RuntimeConfig, RuntimeConfigFile } from "./configSchema";

export const defaultConfigPath = "/etc/spot-restarter/config.json";

/** Overrides from the environment and flags, as strings the way they arrive. */
export type ConfigOverrides = Partial<Record<ConfigField, string>>;

export function overridesFromEnv(env: NodeJS.ProcessEnv): ConfigOverrides {
  const out: ConfigOverrides = {};
  for (const { field, env: name } of overridableFields) {
    const value = env[name];
    if (value !== undefined && value !== "") out[field] = value;
  }
  return out;
}

/** The `parseArgs` options of the overridable fields' flags. */
export function configFlagOptions(): Record<string, { type: "string" }> {
  return Object.fromEntries(overridableFields.map(({ flag }) => [flag, { type: "string" as const }]));
}

/** The overrides among parsed command-line values (`parseArgs`'s `values`). */
export function overridesFromFlags(values: Readonly<Record<string, unknown>>): ConfigOverrides {
  const out: ConfigOverrides = {};
  for (const { field, flag } of overridableFields) {
    const value = values[flag];
    if (typeof value === "string") out[field] = value;
  }
  return out;
}

/** Makes every `path` field (nested ones too) absolute, relative to `base`. */
function resolvePaths<T>(shape: Readonly<Record<string, z.ZodType>>, value: T, base: string): T {
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, schema] of Object.entries(shape)) {
    const current = out[name];
    if (current === undefined) continue;
    const inner = innerSchema(schema);
    if (fieldMeta(schema)?.path && typeof current === "string") out[name] = resolve(base, current);
    else if (inner instanceof z.ZodObject) out[name] = resolvePaths(inner.shape, current, base);
  }
  return out as T;
}

export interface LoadedConfig {
  readonly config: RuntimeConfig;
  readonly path: string;
  /** Problems worth a warning that do not stop the runtime (unknown fields, a very short interval). */
  readonly warnings: string[];
}

export async function loadConfig(
  path: string,
  env: ConfigOverrides = {},
  flags: ConfigOverrides = {},
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : code;
    throw new ConfigError(`config file ${path} ${why} (pass --config FILE)`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Not V8's message: it quotes the text around the error, raw (control characters, or a key
    // if --config points at the PEM by mistake). BUG-7 in test/RELIABILITY.md.
    const encoding = text.includes("\u0000") ? " (it is not UTF-8 text: saved as UTF-16?)" : "";
    throw new ConfigError(
      `config file ${path} is not valid JSON${jsonErrorPosition(error, text)}${encoding}`,
    );
  }
  return parseConfig(parsed, path, env, flags);
}

/** Validates a parsed config file merged with overrides. Exported for tests and the installer. */
export function parseConfig(
  fileValue: unknown,
  path: string,
  env: ConfigOverrides = {},
  flags: ConfigOverrides = {},
): LoadedConfig {
  if (typeof fileValue !== "object" || fileValue === null || Array.isArray(fileValue)) {
    throw new ConfigError(`config file ${path}: expected a JSON object at the top level`);
  }
  const merged: Record<string, unknown> = { ...(fileValue as Record<string, unknown>) };
  const origin: Record<string, string> = {};
  for (const [layer, values] of [
    ["environment", env],
    ["flag", flags],
  ] as const) {
    for (const { field, env: variable, flag, numeric } of overridableFields) {
      const raw = values[field];
      if (raw === undefined) continue;
      merged[field] = numeric && raw.trim() !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
      origin[field] = layer === "environment" ? `environment variable ${variable}` : `flag --${flag}`;
    }
  }

  // Keys as well as values (issue 25, item 4): a `fallbackSizes` key with an ESC sequence was accepted
  // and echoed by every command. Control characters in values are refused by the fields' own schemas
  // where they are printed (the tag); a key has no schema of its own to refuse it.
  const keys = controlCharactersIn(fileValue).filter((found) => found.in === "key");
  if (keys.length > 0) {
    throw new ConfigError(
      keys
        .map(
          (found) =>
            `config file ${path}: field "${found.where}": a key contains a control character; expected printable text`,
        )
        .join("\n"),
    );
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const field = printablePath(issue.path as (string | number)[]);
      const top = String(issue.path[0] ?? "");
      const where = origin[top] ?? `config file ${path}`;
      const value = valueAt(merged, issue.path);
      // Never quote a notification channel: its URL is a secret.
      const got =
        value === undefined
          ? "it is missing"
          : top === "notifications" && (issue.path.includes("url") || typeof value === "object")
            ? `got ${describeRedacted(value)}`
            : `got ${escapeControlCharacters(JSON.stringify(value)?.slice(0, 80) ?? String(value))}`;
      const expectation = issue.message.startsWith("Invalid input") ? issue.message : issue.message;
      return `${where}: field "${field || "(top level)"}": ${expectation}; ${got}`;
    });
    throw new ConfigError(lines.join("\n"));
  }

  const duplicate = duplicateResourceGroups(result.data.resourceGroups, result.data.subscriptionId);
  if (duplicate) {
    const [first, second] = duplicate;
    const groups = result.data.resourceGroups;
    throw new ConfigError(
      `${origin.resourceGroups ?? `config file ${path}`}: field "resourceGroups": resourceGroups[${first}] (${JSON.stringify(groups[first])}) and resourceGroups[${second}] (${JSON.stringify(groups[second])}) name the same resource group (Azure's resource group names are case-insensitive); remove one`,
    );
  }

  const known = new Set(Object.keys(configSchema.shape));
  const warnings = Object.keys(merged)
    .filter((key) => !known.has(key) && key !== "$schema")
    .map((key) => `config file ${path}: ignoring unknown field "${key}" (a typo?)`);
  const value = result.data;
  // An id of a group in the config's own subscription is that group's name: one spelling per group, so state,
  // logs and fallbackSizes keys name it as before (issue 28; ids are for other subscriptions of the tenant).
  value.resourceGroups = value.resourceGroups.map((entry) => {
    const group = parseResourceGroupId(entry);
    return group && group.subscriptionId === value.subscriptionId.toLowerCase() ? group.resourceGroup : entry;
  });
  if (value.intervalSeconds < 10) {
    warnings.push(
      `intervalSeconds is ${value.intervalSeconds}: below 10 s every cycle spends ARM read budget; use it for tests only`,
    );
  }
  if (value.retry.capacitySeconds < minStartSpacingMs / 1000) {
    warnings.push(
      `retry.capacitySeconds is ${value.retry.capacitySeconds}: below ${minStartSpacingMs / 1000} s starts outrun Compute's per-VM Start refill (4 per minute) and drain its bucket; use it for tests only`,
    );
  }
  if (value.retry.fleetStartsPerMinute > fleetStartsPerMinute) {
    warnings.push(
      `retry.fleetStartsPerMinute is ${value.retry.fleetStartsPerMinute}: above ${fleetStartsPerMinute} starts exceed a quarter of Compute's subscription Start budget; use it for time-scaled tests only`,
    );
  }
  const groups = new Set(value.resourceGroups.map((group) => group.toLowerCase()));
  for (const key of Object.keys(value.fallbackSizes)) {
    const group = key.slice(0, key.lastIndexOf("/"));
    if (!groups.has(group.toLowerCase())) {
      warnings.push(
        `config file ${path}: fallbackSizes "${key}": resource group ${group} is not in resourceGroups, so that VM is never started or resized`,
      );
    }
  }
  // A relative certificate or state path is relative to the config file, not to the cwd of cron.
  const config: RuntimeConfig = resolvePaths(configSchema.shape, value, dirname(resolve(path)));
  return { config, path, warnings };
}

/**
 * A `resourceGroups` entry as Azure identifies the group: its subscription and its name, lower-cased
 * (ARM's names are case-insensitive). A name is in the config's `subscriptionId`; a resource-group id
 * `/subscriptions/<id>/resourceGroups/<name>` names its own.
 */
export function resourceGroupIdentity(entry: string, subscriptionId: string): string {
  return resourceGroupKey(resourceGroupOfEntry(entry, subscriptionId));
}

/** The indexes of the first two entries naming the same group, or undefined when all differ. */
export function duplicateResourceGroups(
  entries: readonly string[],
  subscriptionId: string,
): [number, number] | undefined {
  const seen = new Map<string, number>();
  for (const [index, entry] of entries.entries()) {
    const identity = resourceGroupIdentity(entry, subscriptionId);
    const earlier = seen.get(identity);
    if (earlier !== undefined) return [earlier, index];
    seen.set(identity, index);
  }
  return undefined;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** The effective configuration for printing: the certificate only by its path, notification URLs redacted. */
export function describeConfig(config: RuntimeConfig): Record<string, unknown> {
  return {
    ...config,
    notifications: config.notifications.map((channel) => ({ ...channel, url: redactUrl(channel.url) })),
  };
}

/** A value from the notifications list, for an error message, with no URL in it. */
function describeRedacted(value: unknown): string {
  if (typeof value === "string")
    return /^[a-z][\w+.-]*:/i.test(value)
      ? `a URL (${redactUrl(value)})`
      : `a string of ${value.length} characters`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? String(value);
  return `an object with ${
    Object.keys(value)
      .map((k) => JSON.stringify(k))
      .join(", ") || "no fields"
  }`;
}
