// Runtime configuration: defaults <- config file <- environment <- flags, validated once after
// merging. Every error names where the bad value came from (file, variable or flag), the field,
// and what was expected.
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { UNKNOWN_CAUSE_AFTER_SECONDS } from "./cause";
import { cloudEndpointsProblem } from "./clouds";
import { ConfigError } from "./errors";
import { type NotificationEventName, notificationEventNames } from "./events";
import { type ChannelType, channelTypes } from "./notify/channels";
import { redactUrl } from "./notify/redact";
import { escapeControlCharacters, tagSchema } from "./text";

export const defaultConfigPath = "/etc/spot-restarter/config.json";

const guid = (what: string) =>
  z.guid({ error: `expected ${what} (a GUID like 00000000-0000-0000-0000-000000000000)` });
const httpsUrl = (what: string) =>
  z
    .url({ protocol: /^https$/, error: `expected ${what} (an https:// URL)` })
    .transform((url) => url.replace(/\/+$/, ""));
const int = (min: number, max: number, what: string) =>
  z
    .number({ error: `expected ${what}: an integer from ${min} to ${max}` })
    .int({ error: `expected ${what}: an integer from ${min} to ${max}` })
    .min(min, { error: `expected ${what}: an integer from ${min} to ${max}` })
    .max(max, { error: `expected ${what}: an integer from ${min} to ${max}` });
const seconds = (min: number, max: number, what: string) =>
  z
    .number({ error: `expected ${what}: a number of seconds from ${min} to ${max}` })
    .min(min, { error: `expected ${what}: a number of seconds from ${min} to ${max}` })
    .max(max, { error: `expected ${what}: a number of seconds from ${min} to ${max}` });
const nonEmpty = (what: string) =>
  z
    .string({ error: `expected ${what} (a non-empty string)` })
    .min(1, { error: `expected ${what} (a non-empty string)` });

// Azure resource group names: 1-90 characters, letters, digits, `-_.()`, not ending in a period.
// The installer checks the stack outputs against the same pattern, so it never writes a config this refuses.
export const resourceGroupNamePattern = /^[-\w.()]{0,89}[-\w()]$/u;
const resourceGroupName = z
  .string({ error: "expected a resource group name (a string)" })
  .regex(resourceGroupNamePattern, {
    error: "expected a resource group name: 1-90 letters, digits, - _ . ( ), not ending in '.'",
  });

// A notification URL carries its secret (a token, an ntfy topic): http:// is accepted too (a receiver
// on the LAN), and no error message ever quotes it (see parseConfig).
export const notificationChannelSchema = z.object(
  {
    type: z.enum(channelTypes, { error: `expected the channel type: ${channelTypes.join(", ")}` }),
    url: z.url({ protocol: /^https?$/, error: "expected the channel's URL (https:// or http://)" }),
    events: z
      .array(
        z.enum(notificationEventNames, {
          error: `expected an event name: ${notificationEventNames.join(", ")}`,
        }),
        {
          error: `expected a list of event names (${notificationEventNames.join(", ")})`,
        },
      )
      .min(1, { error: "expected at least one event name (leave events out for all of them)" })
      .optional(),
  },
  { error: 'expected an object like {"type": "ntfy", "url": "https://ntfy.sh/<topic>"}' },
);

/** `host:port` for the metrics listener; port 1024 or above: the service has no capabilities. */
export const metricsListenPattern = /^(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})$/;
const metricsListen = z
  .string({ error: 'expected "host:port", e.g. "127.0.0.1:9464"' })
  .regex(metricsListenPattern, { error: 'expected "host:port", e.g. "127.0.0.1:9464" or "[::1]:9464"' })
  .refine(
    (value) => {
      const port = Number(metricsListenPattern.exec(value)?.[1]);
      return port >= 1024 && port <= 65_535;
    },
    {
      error:
        "expected a port from 1024 to 65535 (the service runs without CAP_NET_BIND_SERVICE; 9464 is the usual one)",
    },
  );

export const configSchema = z
  .object({
    tenantId: nonEmpty("the Entra ID tenant id").regex(/^[\w.-]+$/, {
      error: "expected the Entra ID tenant id (a GUID or a domain name)",
    }),
    clientId: guid("the application (client) id of the service principal"),
    subscriptionId: guid("the subscription id"),
    certificatePath: nonEmpty("the path of the PEM holding certificate and private key"),
    resourceGroups: z
      .array(resourceGroupName, {
        error: 'expected a list of resource group names, e.g. ["personal-network"]',
      })
      .min(1, { error: "expected at least one resource group name" }),
    tag: tagSchema.default({ name: "AttemptRestartAfterEviction", value: "true" }),
    intervalSeconds: int(1, 86_400, "seconds between cycles").default(30),
    stateDir: nonEmpty("the state directory").default("/var/lib/spot-restarter"),
    cloud: z
      .object(
        {
          authorityHost: httpsUrl("the Entra ID authority host").default("https://login.microsoftonline.com"),
          armEndpoint: httpsUrl("the Azure Resource Manager endpoint").default(
            "https://management.azure.com",
          ),
          audience: httpsUrl("the token audience").optional(),
        },
        { error: 'expected an object like {"authorityHost": "https://…", "armEndpoint": "https://…"}' },
      )
      .superRefine((cloud, context) => {
        const problem = cloudEndpointsProblem(cloud);
        if (problem) context.addIssue({ code: "custom", message: problem, path: ["armEndpoint"] });
      })
      .default({
        authorityHost: "https://login.microsoftonline.com",
        armEndpoint: "https://management.azure.com",
      }),
    maxConcurrentStarts: int(1, 100, "start requests in flight at once").default(10),
    backoff: z
      .object(
        {
          initialSeconds: seconds(0.1, 3_600, "the first backoff after a failed start").default(60),
          maxSeconds: seconds(0.1, 86_400, "the longest backoff").default(1_800),
        },
        { error: 'expected an object like {"initialSeconds": 60, "maxSeconds": 1800}' },
      )
      .default({ initialSeconds: 60, maxSeconds: 1_800 })
      .refine((b) => b.maxSeconds >= b.initialSeconds, {
        error: "expected backoff.maxSeconds to be at least backoff.initialSeconds",
      }),
    startTimeoutSeconds: int(1, 7_200, "how long one start is followed").default(900),
    armMaxRetries: int(0, 10, "retries of one ARM request by the Azure SDK").default(3),
    armRequestTimeoutSeconds: int(1, 600, "seconds one ARM request may take").default(30),
    logFormat: z.enum(["text", "json"], { error: 'expected "text" or "json"' }).default("text"),
    logLevel: z
      .enum(["debug", "info", "warn", "error"], { error: 'expected "debug", "info", "warn" or "error"' })
      .default("info"),
    restartWhen: z
      .enum(["evicted", "deallocated"], {
        error:
          '"evicted" (start what Azure evicted, never what its owner stopped) or "deallocated" (start any deallocation)',
      })
      .default("evicted"),
    unknownCauseAfterSeconds: int(
      0,
      86_400,
      "seconds to wait for Azure to say why a VM is deallocated",
    ).default(UNKNOWN_CAUSE_AFTER_SECONDS),
    notifications: z
      .array(notificationChannelSchema, {
        error: 'expected a list of channels like [{"type": "slack", "url": "https://hooks.slack.com/…"}]',
      })
      .default([]),
    metrics: z
      .object(
        {
          listen: metricsListen.optional(),
          textfile: nonEmpty("the path of the node_exporter textfile (…/spot-restarter.prom)")
            .regex(/\.prom$/, { error: "expected a path ending in .prom (node_exporter reads only those)" })
            .optional(),
        },
        {
          error:
            'expected an object like {"listen": "127.0.0.1:9464"} or {"textfile": "…/spot-restarter.prom"}',
        },
      )
      .strict()
      .refine((m) => m.listen !== undefined || m.textfile !== undefined, {
        error: 'expected "listen", "textfile" or both',
      })
      .optional(),
  })
  .loose();

/** The validated, merged configuration (the schema's output with defaults and resolved paths). */
export interface RuntimeConfig {
  readonly tenantId: string;
  readonly clientId: string;
  readonly subscriptionId: string;
  /** Absolute (a relative path in the file is relative to the config file). */
  readonly certificatePath: string;
  readonly resourceGroups: readonly string[];
  readonly tag: { readonly name: string; readonly value: string };
  readonly intervalSeconds: number;
  /** `evicted`: start only what Azure evicted (or nothing explains, after unknownCauseAfterSeconds). */
  readonly restartWhen: "evicted" | "deallocated";
  readonly unknownCauseAfterSeconds: number;
  readonly stateDir: string;
  readonly cloud: { readonly authorityHost: string; readonly armEndpoint: string; readonly audience: string };
  readonly maxConcurrentStarts: number;
  readonly backoff: { readonly initialSeconds: number; readonly maxSeconds: number };
  readonly startTimeoutSeconds: number;
  readonly armMaxRetries: number;
  readonly armRequestTimeoutSeconds: number;
  readonly logFormat: "text" | "json";
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** Secret: each URL carries a token. Never printed (describeConfig redacts them). */
  readonly notifications: ReadonlyArray<{
    readonly type: ChannelType;
    readonly url: string;
    readonly events?: readonly NotificationEventName[];
  }>;
  /** `textfile` absolute (relative to the config file). */
  readonly metrics?: { readonly listen?: string; readonly textfile?: string };
}

/** Overrides from the environment and flags, as strings the way they arrive. */
export interface ConfigOverrides {
  stateDir?: string;
  intervalSeconds?: string;
  logLevel?: string;
  logFormat?: string;
  maxConcurrentStarts?: string;
}

const envNames: Record<keyof ConfigOverrides, string> = {
  stateDir: "SPOT_RESTARTER_STATE_DIR",
  intervalSeconds: "SPOT_RESTARTER_INTERVAL_SECONDS",
  logLevel: "SPOT_RESTARTER_LOG_LEVEL",
  logFormat: "SPOT_RESTARTER_LOG_FORMAT",
  maxConcurrentStarts: "SPOT_RESTARTER_MAX_CONCURRENT_STARTS",
};

const flagNames: Record<keyof ConfigOverrides, string> = {
  stateDir: "--state-dir",
  intervalSeconds: "--interval-seconds",
  logLevel: "--log-level",
  logFormat: "--log-format",
  maxConcurrentStarts: "--max-concurrent-starts",
};

const numericOverrides = new Set<keyof ConfigOverrides>(["intervalSeconds", "maxConcurrentStarts"]);

export function overridesFromEnv(env: NodeJS.ProcessEnv): ConfigOverrides {
  const out: ConfigOverrides = {};
  for (const [key, name] of Object.entries(envNames) as [keyof ConfigOverrides, string][]) {
    const value = env[name];
    if (value !== undefined && value !== "") out[key] = value;
  }
  return out;
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

/** Line and column of a JSON syntax error, without the snippet V8 quotes (it may be key material). */
export function jsonErrorPosition(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : "";
  const lineColumn = /line (\d+) column (\d+)/.exec(message);
  if (lineColumn) return ` at line ${lineColumn[1]}, column ${lineColumn[2]}`;
  const position = /position (\d+)/.exec(message);
  if (position) {
    const before = text.slice(0, Number(position[1])).split("\n");
    return ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
  }
  return /end of JSON input/i.test(message) ? " (it ends too early)" : "";
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
  for (const [layer, values, names] of [
    ["environment", env, envNames],
    ["flag", flags, flagNames],
  ] as const) {
    for (const [key, raw] of Object.entries(values) as [keyof ConfigOverrides, string | undefined][]) {
      if (raw === undefined) continue;
      merged[key] =
        numericOverrides.has(key) && raw.trim() !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
      origin[key] = layer === "environment" ? `environment variable ${names[key]}` : `flag ${names[key]}`;
    }
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const field = issue.path.join(".");
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

  const known = new Set(Object.keys(configSchema.shape));
  const warnings = Object.keys(merged)
    .filter((key) => !known.has(key) && key !== "$schema")
    .map((key) => `config file ${path}: ignoring unknown field "${key}" (a typo?)`);
  const value = result.data;
  if (value.intervalSeconds < 10) {
    warnings.push(
      `intervalSeconds is ${value.intervalSeconds}: below 10 s every cycle spends ARM read budget; use it for tests only`,
    );
  }
  const config: RuntimeConfig = {
    tenantId: value.tenantId,
    clientId: value.clientId,
    subscriptionId: value.subscriptionId,
    resourceGroups: value.resourceGroups,
    tag: value.tag,
    intervalSeconds: value.intervalSeconds,
    restartWhen: value.restartWhen,
    unknownCauseAfterSeconds: value.unknownCauseAfterSeconds,
    maxConcurrentStarts: value.maxConcurrentStarts,
    backoff: value.backoff,
    startTimeoutSeconds: value.startTimeoutSeconds,
    armMaxRetries: value.armMaxRetries,
    armRequestTimeoutSeconds: value.armRequestTimeoutSeconds,
    logFormat: value.logFormat,
    logLevel: value.logLevel,
    notifications: value.notifications,
    ...(value.metrics
      ? {
          metrics: {
            ...(value.metrics.listen ? { listen: value.metrics.listen } : {}),
            ...(value.metrics.textfile
              ? { textfile: resolve(dirname(resolve(path)), value.metrics.textfile) }
              : {}),
          },
        }
      : {}),
    // A relative certificate or state path is relative to the config file, not to the cwd of cron.
    certificatePath: resolve(dirname(resolve(path)), value.certificatePath),
    stateDir: resolve(dirname(resolve(path)), value.stateDir),
    cloud: {
      authorityHost: value.cloud.authorityHost,
      armEndpoint: value.cloud.armEndpoint,
      // The SDK does not derive the token audience from the endpoint (docs/architecture.md).
      audience: value.cloud.audience ?? "https://management.azure.com",
    },
  };
  return { config, path, warnings };
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
