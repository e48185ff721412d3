// What install writes, as plain data: paths, modes and file contents. Pure functions, so the
// tests and --dry-run see exactly what a real install would write.
import { envVariableFor } from "../config/configFields";
import { configSchema, type RuntimeConfigFile } from "../config/configSchema";
import { parseResourceGroupId, parseVmId, resourceGroupId } from "../core/resourceIds";
import { FALLBACK_AFTER_SECONDS } from "../core/settings";
import type { CloudEndpoints, StackOutputs } from "./stackOutputs";

/** Absolute paths on the target host; the installer prefixes them with --root. */
export const PATHS = {
  libDir: "/usr/local/lib/spot-restarter",
  bundle: "/usr/local/lib/spot-restarter/spot-restarter.cjs",
  command: "/usr/local/bin/spot-restarter",
  configDir: "/etc/spot-restarter",
  config: "/etc/spot-restarter/config.json",
  certificate: "/etc/spot-restarter/sp.pem",
  extraCaCerts: "/etc/spot-restarter/extra-ca.pem",
  stateDir: "/var/lib/spot-restarter",
  /** Where systemd keeps a DynamicUser= service's StateDirectory (/var/lib/<name> is a symlink to it). */
  privateStateDir: "/var/lib/private/spot-restarter",
  unit: "/etc/systemd/system/spot-restarter.service",
  cron: "/etc/cron.d/spot-restarter",
  /**
   * The cron job's copies of the config, key and CA bundle, in a root-owned 0750 directory of the service
   * group: the config root's (0640, group-readable), the key the service user's own (0400).
   */
  cronDir: "/etc/spot-restarter-cron",
  cronConfig: "/etc/spot-restarter-cron/config.json",
  cronCertificate: "/etc/spot-restarter-cron/sp.pem",
  cronExtraCaCerts: "/etc/spot-restarter-cron/extra-ca.pem",
} as const;

export const SERVICE_NAME = "spot-restarter.service";

/** The cron copy of the key: owner-read only, so the runtime's key-file rule (no group/other bit) holds. */
export const CRON_KEY_MODE = 0o400;

/**
 * config.json names the key relative to itself. The runtime resolves a relative certificatePath
 * against the config file's directory, so one file works wherever it is read from:
 * /etc/spot-restarter (cron, `status`, `simulate-eviction`), the service's credentials directory
 * (LoadCredential= puts config.json and sp.pem side by side in %d), or a --root tree (verification).
 */
export const CONFIG_CERTIFICATE_PATH = "sp.pem";

/** The runtime's environment override for the state directory (used to verify under --root). */
export const STATE_DIR_ENV = envVariableFor("stateDir");

export type Scheduler = "systemd" | "cron";

/**
 * The system user the cron job runs as (issue 17, item 8): created by install, it owns the state
 * directory and reads its own copy of the config and key; root runs nothing network-facing.
 */
export const SERVICE_USER = "spot-restarter";

/** Who an entry belongs to besides root: the service user ("owner") or only its group ("group"). */
export type ServiceAccess = "owner" | "group";

export interface PlannedDirectory {
  kind: "directory";
  path: string;
  mode: number;
  service?: ServiceAccess;
}

export interface PlannedFile {
  kind: "file";
  path: string;
  mode: number;
  service?: ServiceAccess;
  content: Buffer;
  /** Secret files are created with their final mode and never printed. */
  secret: boolean;
  description: string;
}

export type PlannedEntry = PlannedDirectory | PlannedFile;

/**
 * The runtime config's `resourceGroups` from the stack's one list of scopes (the `resourceGroups` output, issue
 * 28): a group in the stack's subscription by its name (as before), one in another subscription by its id. A
 * stack deployed before that output has resourceGroupName alone.
 */
export function runtimeResourceGroups(outputs: StackOutputs): string[] {
  if (!outputs.resourceGroups) return [outputs.resourceGroupName];
  return outputs.resourceGroups.map((id) => {
    const group = parseResourceGroupId(id);
    if (!group) return id; // parseStackOutputs checked each id
    return group.subscriptionId === outputs.subscriptionId.toLowerCase() ? group.resourceGroup : id;
  });
}

/**
 * The runtime's `fallbackSizes` key (`<resourceGroups entry>/<vm>`) of a restartableVms entry: a VM of another
 * subscription (a full id) is keyed by its group's id, as that group's entry is written.
 */
export function fallbackSizesKey(
  outputs: Pick<StackOutputs, "resourceGroupName" | "subscriptionId">,
  entry: string,
): string {
  const id = parseVmId(entry);
  if (id) {
    const own = id.subscriptionId === outputs.subscriptionId.toLowerCase();
    return `${own ? id.resourceGroup : resourceGroupId(id.subscriptionId, id.resourceGroup)}/${id.name}`;
  }
  return entry.includes("/") ? entry : `${outputs.resourceGroupName}/${entry}`;
}

/**
 * The runtime config file (docs/architecture.md "Runtime config file"), typed as the schema's input
 * (`RuntimeConfigFile`): the installer cannot write a field the runtime does not know (and would ignore).
 */
export function renderRuntimeConfig(outputs: StackOutputs, cloud: CloudEndpoints | undefined): string {
  const config: RuntimeConfigFile = {
    tenantId: outputs.tenantId,
    clientId: outputs.clientId,
    subscriptionId: outputs.subscriptionId,
    certificatePath: CONFIG_CERTIFICATE_PATH,
    resourceGroups: runtimeResourceGroups(outputs),
    tag: { name: outputs.restartTag.name, value: outputs.restartTag.value },
    // Written out (the runtime's default, from its schema) so that the admin sees the knob.
    intervalSeconds: configSchema.shape.intervalSeconds.parse(undefined),
    stateDir: PATHS.stateDir,
  };
  if (outputs.notifications && outputs.notifications.length > 0) config.notifications = outputs.notifications;
  // Opt-in: only a stack with fallbacks makes the runtime resize anything (and grants it the write action).
  // Without them fallbackAfterSeconds means nothing, so it is not written either (the stack always exports it).
  const fallbacks = Object.entries(outputs.fallbackSizes ?? {});
  if (fallbacks.length > 0) {
    config.fallbackSizes = Object.fromEntries(
      fallbacks.map(([vm, sizes]) => [fallbackSizesKey(outputs, vm), sizes]),
    );
    // From the stack (spot-restarter:fallbackAfterSeconds); a stack deployed before that key has none: the default.
    config.fallbackAfterSeconds = outputs.fallbackAfterSeconds ?? FALLBACK_AFTER_SECONDS;
  }
  if (cloud) {
    config.cloud = {
      authorityHost: cloud.authorityHost,
      armEndpoint: cloud.armEndpoint,
      ...(cloud.audience ? { audience: cloud.audience } : {}),
    };
  }
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** POSIX shell single-quoting. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * /usr/local/bin/spot-restarter. A wrapper rather than a symlink: it pins the Node.js that the
 * installer checked (>= 22), while the bundle's `#!/usr/bin/env node` would take whatever `node`
 * comes first on cron's or systemd's PATH.
 */
export function renderCommandWrapper(nodePath: string): string {
  return [
    "#!/bin/sh",
    "# Written by `spot-restarter install`; `spot-restarter uninstall` removes it.",
    "# Runs the installed bundle with the Node.js that installed it.",
    `exec ${shellQuote(nodePath)} ${PATHS.bundle} "$@"`,
    "",
  ].join("\n");
}

/**
 * The hardened service. It runs as a DynamicUser= with no capabilities; the config and the key stay
 * root-only in /etc/spot-restarter (0700) and reach the service through LoadCredential=, which copies
 * them into a private, read-only credentials directory (%d) for this service alone.
 * See systemd.exec(5) "Credentials" and https://systemd.io/CREDENTIALS/.
 */
export function renderSystemdUnit(options: { extraCaCerts: boolean; command?: string }): string {
  const command = options.command ?? PATHS.command;
  const lines = [
    "# Written by `spot-restarter install`; `spot-restarter uninstall` removes it.",
    "# Local changes belong in a drop-in (systemctl edit spot-restarter): install rewrites this file.",
    "[Unit]",
    "Description=spot-restarter: restarts evicted Azure Spot VMs",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${command} run --config %d/config.json`,
    `LoadCredential=config.json:${PATHS.config}`,
    // Relative to config.json, so the runtime reads %d/sp.pem.
    `LoadCredential=sp.pem:${PATHS.certificate}`,
  ];
  if (options.extraCaCerts) {
    lines.push(
      `LoadCredential=extra-ca.pem:${PATHS.extraCaCerts}`,
      "Environment=NODE_EXTRA_CA_CERTS=%d/extra-ca.pem",
    );
  }
  lines.push(
    // `run` ends cleanly on SIGTERM; anything else is a crash worth restarting, not too eagerly.
    "Restart=on-failure",
    "RestartSec=10s",
    "TimeoutStopSec=60s",
    "",
    "# Identity: a transient user with no capabilities.",
    "DynamicUser=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "NoNewPrivileges=yes",
    "UMask=0077",
    "",
    `# File system: read-only everywhere but the state directory (${PATHS.stateDir}, which`,
    "# StateDirectory= creates, owns and makes writable; with ProtectSystem=strict it is the only",
    "# writable path, so no ReadWritePaths= is needed).",
    "StateDirectory=spot-restarter",
    "StateDirectoryMode=0700",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectProc=invisible",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "",
    "# Kernel interfaces: HTTPS to Entra ID and Azure Resource Manager (and to notification channels);",
    "# with metrics.listen, one TCP listener on a port >= 1024 (the config refuses a lower one, so no",
    "# CAP_NET_BIND_SERVICE): AF_INET/AF_INET6 and @system-service's bind/listen cover it, nothing more.",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged",
    // Fail a filtered call with EPERM instead of killing Node: libuv probes io_uring and falls back.
    "SystemCallErrorNumber=EPERM",
    // No MemoryDenyWriteExecute=: V8's JIT needs writable+executable memory.
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  );
  return lines.join("\n");
}

/**
 * /etc/cron.d/spot-restarter: one cycle a minute as the service user (never root), with its own copy
 * of the config and key, output to syslog.
 */
export function renderCronFile(options: { extraCaCerts: boolean; command?: string }): string {
  const command = options.command ?? PATHS.command;
  const lines = [
    "# Written by `spot-restarter install --scheduler cron`; `spot-restarter uninstall` removes it.",
    "SHELL=/bin/sh",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ];
  if (options.extraCaCerts) lines.push(`NODE_EXTRA_CA_CERTS=${PATHS.cronExtraCaCerts}`);
  lines.push(
    `* * * * * ${SERVICE_USER} ${command} once --config ${PATHS.cronConfig} 2>&1 | logger -t spot-restarter`,
    "",
  );
  return lines.join("\n");
}

/**
 * The command itself: the bundle with a wrapper pinning the Node.js that installed it, a single
 * executable (Node.js inside) copied to /usr/local/bin, or the Debian package's executable, used in place.
 */
export type InstalledProgram =
  | { kind: "bundle"; bundle: Buffer; nodePath: string }
  | { kind: "executable"; executable: Buffer }
  | { kind: "packaged"; command: string };

/** The path the schedulers run (unit ExecStart=, cron line) and the verification runs. */
export function installedCommandPath(program: InstalledProgram): string {
  return program.kind === "packaged" ? program.command : PATHS.command;
}

function programEntries(program: InstalledProgram): PlannedEntry[] {
  if (program.kind === "packaged") return [];
  if (program.kind === "executable") {
    return [
      {
        kind: "file",
        path: PATHS.command,
        mode: 0o755,
        content: program.executable,
        secret: false,
        description: "command (single executable, Node.js inside)",
      },
    ];
  }
  return [
    { kind: "directory", path: PATHS.libDir, mode: 0o755 },
    {
      kind: "file",
      path: PATHS.bundle,
      mode: 0o755,
      content: program.bundle,
      secret: false,
      description: "runtime bundle",
    },
    {
      kind: "file",
      path: PATHS.command,
      mode: 0o755,
      content: Buffer.from(renderCommandWrapper(program.nodePath)),
      secret: false,
      description: "command",
    },
  ];
}

export interface InstallLayoutInput {
  outputs: StackOutputs;
  cloud: CloudEndpoints | undefined;
  scheduler: Scheduler;
  program: InstalledProgram;
  /** Contents of the extra CA bundle to carry over (NODE_EXTRA_CA_CERTS), if any. */
  extraCaCerts: Buffer | undefined;
}

/** Every directory and file install writes, parents first. */
export function planInstall(input: InstallLayoutInput): PlannedEntry[] {
  const hasExtraCa = input.extraCaCerts !== undefined;
  const hasNotifications = (input.outputs.notifications?.length ?? 0) > 0;
  const pem = input.outputs.certificatePem.endsWith("\n")
    ? input.outputs.certificatePem
    : `${input.outputs.certificatePem}\n`;
  const command = installedCommandPath(input.program);
  const entries: PlannedEntry[] = [
    ...programEntries(input.program),
    { kind: "directory", path: PATHS.configDir, mode: 0o700 },
    {
      kind: "file",
      path: PATHS.config,
      // With notification URLs (tokens) it is a secret: 0600 from creation, never printed. The service
      // reads it through LoadCredential= either way.
      ...(hasNotifications
        ? { mode: 0o600, secret: true, description: "runtime config (with notification URLs)" }
        : { mode: 0o644, secret: false, description: "runtime config" }),
      content: Buffer.from(renderRuntimeConfig(input.outputs, input.cloud)),
    },
    {
      kind: "file",
      path: PATHS.certificate,
      mode: 0o600,
      content: Buffer.from(pem),
      secret: true,
      description: "service principal certificate and private key",
    },
  ];
  if (input.extraCaCerts !== undefined) {
    entries.push({
      kind: "file",
      path: PATHS.extraCaCerts,
      mode: 0o644,
      content: input.extraCaCerts,
      secret: false,
      description: "extra CA certificates (NODE_EXTRA_CA_CERTS)",
    });
  }
  if (input.scheduler === "systemd") {
    entries.push({ kind: "directory", path: PATHS.stateDir, mode: 0o700 });
    entries.push({
      kind: "file",
      path: PATHS.unit,
      mode: 0o644,
      content: Buffer.from(renderSystemdUnit({ extraCaCerts: hasExtraCa, command })),
      secret: false,
      description: "systemd service",
    });
  } else {
    // The cron job's own copies, in a root-owned directory the service user can read but not change.
    const config = entries.find((e) => e.path === PATHS.config) as PlannedFile;
    entries.push(
      { kind: "directory", path: PATHS.stateDir, mode: 0o700, service: "owner" },
      { kind: "directory", path: PATHS.cronDir, mode: 0o750, service: "group" },
      {
        ...config,
        path: PATHS.cronConfig,
        mode: 0o640,
        service: "group",
        description: `${config.description} (cron copy)`,
      },
      {
        // The runtime refuses a key file with any group or other bit (azure/certificate.ts): the job's
        // own copy is the service user's, 0400, created so; the 0750 root-owned directory keeps the
        // user from replacing it or adding files beside it.
        kind: "file",
        path: PATHS.cronCertificate,
        mode: CRON_KEY_MODE,
        service: "owner",
        content: Buffer.from(pem),
        secret: true,
        description: "certificate and private key (cron copy)",
      },
    );
    if (input.extraCaCerts !== undefined) {
      entries.push({
        kind: "file",
        path: PATHS.cronExtraCaCerts,
        mode: 0o644,
        content: input.extraCaCerts,
        secret: false,
        description: "extra CA certificates (cron copy)",
      });
    }
    entries.push({
      kind: "file",
      path: PATHS.cron,
      mode: 0o644,
      content: Buffer.from(renderCronFile({ extraCaCerts: hasExtraCa, command })),
      secret: false,
      description: "cron job",
    });
  }
  return entries;
}
