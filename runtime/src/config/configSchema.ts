// The runtime config's schema: every field of the config file, its type, default, description, and
// the environment variable and flag that override it. The one source: `RuntimeConfig` (output) and
// `RuntimeConfigFile` (input, what the installer writes) are derived from it, and so are the env and
// flag table and the reference (configFields.ts). Loading and merging are config.ts's.

import { z } from "zod";
import { cloudEndpointsProblem } from "../core/clouds";
import { notificationEventNames } from "../core/events";
import { parseResourceGroupId } from "../core/resourceIds";
import {
  channelTypes,
  FALLBACK_AFTER_SECONDS,
  FALLBACK_AFTER_SECONDS_RANGE,
  UNKNOWN_CAUSE_AFTER_SECONDS,
  VM_SIZE_PATTERN,
} from "../core/settings";
import { tagSchema } from "../core/text";
import { HISTORY_DAYS } from "../state/historyRecords";

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

// A `resourceGroups` entry (issue 28): a name in the config's subscription, or a resource-group id, which may
// name another subscription of the tenant (the stack output `resourceGroups` holds ids).
const resourceGroupEntry = z.string({ error: "expected a resource group name or id (a string)" }).refine(
  (entry) => {
    if (!entry.startsWith("/")) return resourceGroupNamePattern.test(entry);
    const group = parseResourceGroupId(entry);
    return group !== undefined && resourceGroupNamePattern.test(group.resourceGroup);
  },
  {
    error:
      "expected a resource group name (1-90 letters, digits, - _ . ( ), not ending in '.') or id /subscriptions/<subscription-id>/resourceGroups/<name>",
  },
);

// A notification URL carries its secret (a token, an ntfy topic): http:// is accepted too (a receiver
// on the LAN), and no error message ever quotes it (see parseConfig in config.ts).
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

/**
 * What a field's `.meta()` carries: its description (the reference table, `describeConfigFields`) and,
 * for the few that the environment and the command line may override, the variable and the flag.
 */
export interface ConfigFieldMeta {
  readonly description: string;
  /** Environment variable overriding the file (`SPOT_RESTARTER_…`). */
  readonly env?: string;
  /** Command-line flag overriding the environment, without its dashes (`state-dir`). */
  readonly flag?: string;
  /** The flag's value in `--help` (`DIR`, `N`). */
  readonly arg?: string;
  /** A path: a relative one is relative to the config file, not to the working directory of cron. */
  readonly path?: true;
  /** The default when the schema computes it (a transform) rather than declaring it. */
  readonly defaultValue?: unknown;
}

const meta = (m: ConfigFieldMeta) => m as ConfigFieldMeta & Record<string, unknown>;

/**
 * The runtime config: the file's fields, their types, defaults, descriptions, and the environment
 * variables and flags that override them. The one source: `RuntimeConfig` is derived from it, env and
 * flag handling and the reference table are generated from it. Adding a field is one entry here.
 */
export const configSchema = z.object({
  tenantId: nonEmpty("the Entra ID tenant id")
    .regex(/^[\w.-]+$/, { error: "expected the Entra ID tenant id (a GUID or a domain name)" })
    .meta(meta({ description: "Entra ID tenant of the service principal (a GUID or a domain name)" })),
  clientId: guid("the application (client) id of the service principal").meta(
    meta({ description: "application (client) id of the service principal" }),
  ),
  subscriptionId: guid("the subscription id").meta(
    meta({ description: "subscription holding the resource groups" }),
  ),
  certificatePath: nonEmpty("the path of the PEM holding certificate and private key").meta(
    meta({ description: "PEM holding the certificate and its private key (mode 0600)", path: true }),
  ),
  resourceGroups: z
    .array(resourceGroupEntry, {
      error: 'expected a list of resource group names, e.g. ["personal-network"]',
    })
    .min(1, { error: "expected at least one resource group name" })
    .meta(
      meta({
        description:
          "resource groups whose tagged Spot VMs are restarted: a name (in subscriptionId) or an id /subscriptions/<id>/resourceGroups/<name> (another subscription of the tenant)",
      }),
    ),
  tag: tagSchema
    .default({ name: "AttemptRestartAfterEviction", value: "true" })
    .meta(meta({ description: "the tag marking a VM for restart" })),
  intervalSeconds: int(1, 86_400, "seconds between cycles")
    .default(30)
    .meta(
      meta({
        description: "seconds between cycles of `run` (1..86400)",
        env: "SPOT_RESTARTER_INTERVAL_SECONDS",
        flag: "interval-seconds",
        arg: "N",
      }),
    ),
  stateDir: nonEmpty("the state directory")
    .default("/var/lib/spot-restarter")
    .meta(
      meta({
        description: "directory of the state file and the lock",
        env: "SPOT_RESTARTER_STATE_DIR",
        flag: "state-dir",
        arg: "DIR",
        path: true,
      }),
    ),
  historyDays: int(1, 3650, "days of eviction history to keep")
    .default(HISTORY_DAYS)
    .meta(
      meta({
        description:
          "days of eviction history (stateDir/history.jsonl) kept for `report` and the status page; older records are pruned",
      }),
    ),
  cloud: z
    .object(
      {
        authorityHost: httpsUrl("the Entra ID authority host")
          .default("https://login.microsoftonline.com")
          .meta(meta({ description: "Entra ID authority host" })),
        armEndpoint: httpsUrl("the Azure Resource Manager endpoint")
          .default("https://management.azure.com")
          .meta(meta({ description: "Azure Resource Manager endpoint" })),
        audience: httpsUrl("the token audience")
          .optional()
          .meta(
            meta({
              description: "audience of the ARM token (the SDK does not derive it from armEndpoint)",
              defaultValue: "https://management.azure.com",
            }),
          ),
      },
      { error: 'expected an object like {"authorityHost": "https://…", "armEndpoint": "https://…"}' },
    )
    // A Microsoft authority's token goes only to that cloud's Resource Manager, whatever the audience;
    // an explicit audience counts only for a Microsoft cloud with no published one (core/clouds.ts).
    .superRefine((cloud, context) => {
      const problem = cloudEndpointsProblem(cloud);
      if (problem) context.addIssue({ code: "custom", message: problem, path: ["armEndpoint"] });
    })
    // The SDK does not derive the token audience from the endpoint (docs/architecture.md).
    .transform((cloud) => ({ ...cloud, audience: cloud.audience ?? "https://management.azure.com" }))
    .prefault({})
    .meta(
      meta({ description: "endpoints: public cloud by default; sovereign clouds and the emulator set them" }),
    ),
  maxConcurrentStarts: int(1, 100, "start requests in flight at once")
    .default(10)
    .meta(
      meta({
        description: "start requests awaiting ARM's answer at once",
        env: "SPOT_RESTARTER_MAX_CONCURRENT_STARTS",
        flag: "max-concurrent-starts",
        arg: "N",
      }),
    ),
  backoff: z
    .object(
      {
        initialSeconds: seconds(0.1, 3_600, "the first backoff after a failed start")
          .default(60)
          .meta(meta({ description: "first wait after a failed start (doubles per failure, less jitter)" })),
        maxSeconds: seconds(0.1, 86_400, "the longest backoff")
          .default(1_800)
          .meta(meta({ description: "longest wait between start attempts" })),
      },
      { error: 'expected an object like {"initialSeconds": 60, "maxSeconds": 1800}' },
    )
    .default({ initialSeconds: 60, maxSeconds: 1_800 })
    .refine((b) => b.maxSeconds >= b.initialSeconds, {
      error: "expected backoff.maxSeconds to be at least backoff.initialSeconds",
    })
    .meta(meta({ description: "per-VM backoff after an unexpected start failure" })),
  // When failed starts are tried again; runtime/src/loop/schedule.ts derives the defaults from Azure's budgets.
  retry: z
    .object(
      {
        capacitySeconds: seconds(
          0.1,
          3_600,
          "seconds between start attempts of a VM Azure has no capacity for (20 by default; 15 is one per refill of Compute's per-VM Start budget)",
        )
          .default(20)
          .meta(
            meta({
              description:
                "no capacity: seconds from one start request to the next while Azure's budgets are plentiful (below 15 exceeds Compute's per-VM Start refill of 4 a minute: tests only)",
            }),
          ),
        capacityMaxSeconds: seconds(
          0.1,
          3_600,
          "the longest capacity retry interval as budgets run low (60 by default)",
        )
          .default(60)
          .meta(
            meta({
              description:
                "no capacity: the interval stretches up to this as the subscription's Start budget falls below half or the fleet reaches fleetStartsPerMinute",
            }),
          ),
        fleetStartsPerMinute: int(1, 100_000, "start requests per minute across all VMs")
          .default(125)
          .meta(
            meta({
              description:
                "start requests per minute across all VMs (125 by default: a quarter of Compute's subscription Start budget; above it for time-scaled tests and the benchmark only)",
            }),
          ),
        price: z
          .object({
            initialSeconds: seconds(0.1, 3_600, "the first backoff after a price refusal")
              .default(120)
              .meta(meta({ description: "first wait after a price refusal (doubles per refusal)" })),
            maxSeconds: seconds(0.1, 3_600, "the longest backoff after price refusals")
              .default(600)
              .meta(meta({ description: "longest wait after price refusals" })),
          })
          .default({ initialSeconds: 120, maxSeconds: 600 })
          .meta(meta({ description: "Spot price above maxPrice: backoff doubling (minutes, not hours)" })),
        quota: z
          .object({
            initialSeconds: seconds(0.1, 86_400, "the first backoff after a quota refusal")
              .default(900)
              .meta(meta({ description: "first wait after a quota refusal (doubles per refusal)" })),
            maxSeconds: seconds(0.1, 86_400, "the longest backoff after quota refusals")
              .default(7_200)
              .meta(meta({ description: "longest wait after quota refusals" })),
          })
          .default({ initialSeconds: 900, maxSeconds: 7_200 })
          .meta(meta({ description: "quota or policy refused the start: long backoff doubling" })),
      },
      { error: 'expected an object like {"capacitySeconds": 20}' },
    )
    .default({
      capacitySeconds: 20,
      capacityMaxSeconds: 60,
      fleetStartsPerMinute: 125,
      price: { initialSeconds: 120, maxSeconds: 600 },
      quota: { initialSeconds: 900, maxSeconds: 7_200 },
    })
    .meta(meta({ description: "when failed starts are tried again (runtime/src/loop/schedule.ts)" })),
  startTimeoutSeconds: int(1, 7_200, "how long one start is followed")
    .default(900)
    .meta(meta({ description: "how long one start is followed to its outcome" })),
  armMaxRetries: int(0, 10, "retries of one ARM request by the Azure SDK")
    .default(3)
    .meta(meta({ description: "retries of one ARM request by the Azure SDK (429, 5xx)" })),
  armRequestTimeoutSeconds: int(1, 600, "seconds one ARM request may take")
    .default(30)
    .meta(meta({ description: "seconds one ARM request (each attempt) may take" })),
  logFormat: z
    .enum(["text", "json"], { error: 'expected "text" or "json"' })
    .default("text")
    .meta(
      meta({
        description: "log lines on stderr: text or JSON lines",
        env: "SPOT_RESTARTER_LOG_FORMAT",
        flag: "log-format",
        arg: "text|json",
      }),
    ),
  logLevel: z
    .enum(["debug", "info", "warn", "error"], { error: 'expected "debug", "info", "warn" or "error"' })
    .default("info")
    .meta(
      meta({
        description: "lowest level logged: debug, info, warn or error",
        env: "SPOT_RESTARTER_LOG_LEVEL",
        flag: "log-level",
        arg: "LEVEL",
      }),
    ),
  discovery: z
    .enum(["auto", "list", "resource-graph"], {
      error:
        '"auto", "list" (one list per resource group) or "resource-graph" (one Resource Graph query per cycle)',
    })
    .default("auto")
    .meta(
      meta({
        description:
          "how tagged VMs are found each cycle: `list` (a list per group, an instance view per candidate), `resource-graph` (one Resource Graph query for all groups, an instance view only to confirm a deallocated VM, a list sweep every 10 cycles), `auto` (Resource Graph past one subscription or three groups)",
      }),
    ),
  restartWhen: z
    .enum(["evicted", "deallocated"], {
      error:
        '"evicted" (start what Azure evicted, never what its owner stopped) or "deallocated" (start any deallocation)',
    })
    .default("evicted")
    .meta(
      meta({
        description:
          "`evicted`: start only what Azure evicted (or nothing explains, after unknownCauseAfterSeconds); `deallocated`: any deallocation",
      }),
    ),
  unknownCauseAfterSeconds: int(0, 86_400, "seconds to wait for Azure to say why a VM is deallocated")
    .default(UNKNOWN_CAUSE_AFTER_SECONDS)
    .meta(
      meta({ description: "how long to wait for Azure to say why a VM is deallocated before starting it" }),
    ),
  fallbackSizes: z
    .record(
      // The group as its resourceGroups entry is written: a name, or the id of another subscription's group.
      z
        .string()
        .regex(
          /^(?:\/subscriptions\/[0-9a-fA-F-]{36}\/resourceGroups\/)?[-\w.()]{0,89}[-\w()]\/[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/u,
          {
            error:
              'expected "<resourceGroup>/<vm>" as the key, e.g. "personal-network/build-box-spot" (the group as resourceGroups names it)',
          },
        ),
      z
        .array(
          z.string({ error: "expected a VM size (a string)" }).regex(VM_SIZE_PATTERN, {
            error: 'expected an Azure VM size name like "Standard_D2as_v5"',
          }),
          { error: 'expected a list of VM sizes like ["Standard_D2as_v5", "Standard_D2s_v5"]' },
        )
        .min(1, { error: "expected at least one VM size (leave the VM out for none)" }),
      { error: 'expected an object like {"personal-network/build-box-spot": ["Standard_D2as_v5"]}' },
    )
    .default({})
    .meta(
      meta({
        description:
          "opt-in: `<resourceGroup>/<vm>` -> VM sizes to resize a deallocated VM to, in order, when its own size has no Spot capacity (needs Microsoft.Compute/virtualMachines/write); it goes back to its own size at its next eviction",
      }),
    ),
  fallbackAfterSeconds: int(
    FALLBACK_AFTER_SECONDS_RANGE.min,
    FALLBACK_AFTER_SECONDS_RANGE.max,
    "seconds of failed starts for capacity before a fallback size",
  )
    .default(FALLBACK_AFTER_SECONDS)
    .meta(
      meta({
        description:
          "how long starts must have failed for lack of capacity before the VM is resized to its next fallback size (install writes it, with fallbackSizes, from spot-restarter:fallbackAfterSeconds)",
      }),
    ),
  notifications: z
    .array(notificationChannelSchema, {
      error: 'expected a list of channels like [{"type": "slack", "url": "https://hooks.slack.com/…"}]',
    })
    .default([])
    .meta(meta({ description: "notification channels (secret: each URL carries a token; never printed)" })),
  metrics: z
    .object(
      {
        listen: metricsListen.optional().meta(
          meta({
            description:
              "host:port of the Prometheus endpoint (port 1024 or above); `run` also serves the status page at / and /status.json there",
          }),
        ),
        textfile: nonEmpty("the path of the node_exporter textfile (…/spot-restarter.prom)")
          .regex(/\.prom$/, { error: "expected a path ending in .prom (node_exporter reads only those)" })
          .optional()
          .meta(meta({ description: "node_exporter textfile written after each cycle", path: true })),
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
    .optional()
    .meta(meta({ description: "Prometheus metrics: an HTTP endpoint and/or a node_exporter textfile" })),
});

/** A config file as written (what the installer renders): the schema's input. */
export type RuntimeConfigFile = z.input<typeof configSchema>;

/** The validated, merged configuration: the schema's output, with paths made absolute. */
export type RuntimeConfig = Readonly<z.output<typeof configSchema>>;

export type ConfigField = keyof RuntimeConfig;
