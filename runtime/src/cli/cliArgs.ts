// The command line's words: the commands, their options (from the config schema's env/flag table for the
// overridable fields), the usage text, and parsing argv into a command and its values. cli.ts dispatches.
import { parseArgs } from "node:util";
import { configFlagOptions, defaultConfigPath } from "../config/config";
import { overridableFields } from "../config/configFields";
import { exitCodes, UsageError } from "../core/errors";
import type { InstallOptions, UninstallOptions } from "../install/index";
import { configFlagLines, helpFor, npmDashDashHint } from "./help";

export const version = "0.1.0";

export const usage = `spot-restarter ${version}: starts evicted Azure Spot VMs again.

Usage: spot-restarter <command> [options]

Commands:
  once               one cycle (for cron); waits for the starts it issued
  run                the loop (for systemd); SIGTERM/SIGINT end it cleanly
  status             each tagged VM: power state, last eviction seen, last start, backoff
  report             what evictions cost per tagged VM over a window (default 30d), from the eviction history
  simulate-eviction  ask Azure to evict a Spot VM (tests the whole chain)
  pause              leave a VM alone (no start) for a while or until resume; works while run runs
  resume             end a VM's pause
  notify-test        send one test message to each notification channel of the config
  doctor             check clock, endpoints and CA, certificate, token, resource groups, permissions, tagged
                     VMs and each enabled feature (eviction-cause signals, fallback sizes, notifications,
                     metrics) against Azure; each check pass/warn/fail with its fix (exit 1 if one fails)
  install            install on this host from \`pulumi stack output --json --show-secrets\`
  uninstall          remove what install wrote

Common options (once, run, status, report, simulate-eviction, notify-test, doctor):
  --config FILE            config file (default ${defaultConfigPath}; env SPOT_RESTARTER_CONFIG)
${configFlagLines()}
  --print-config           log the effective configuration (no secrets) before running
once:               [--dry-run] decide and report, start nothing   [--json] print a summary object on stdout
status:             [--wide] [--json]
report:             [--since DURATION (e.g. 7d, 12h; default 30d)] [--json]
doctor:             [--json]
simulate-eviction:  --vm NAME [--resource-group NAME]
pause:              --vm NAME [--for DURATION (e.g. 2h, 30m, 1d; default: until resume)] [--resource-group NAME]
                    [--force (a VM not seen yet: the name is not checked against the tagged Spot VMs)]
resume:             --vm NAME [--resource-group NAME]
install:            --stack-outputs FILE|- [--root DIR] [--scheduler systemd|cron] [--dry-run] [--no-verify]
                    [--verify-wait-seconds N (default 300: replication of a new principal/role)]
                    [--authority-host URL --arm-endpoint URL [--audience URL]] [--extra-ca-certs FILE]
uninstall:          [--root DIR] [--dry-run] [--keep-state]

  -h, --help      this help (\`<command> --help\`: that command's)        -v, --version   the version

Exit codes: 0 done (also: \`once\` while another run holds the lock), 1 unexpected failure,
2 bad arguments or config, 3 authentication failed, 4 permission missing, 5 \`run\` found the lock held.
Environment (below flags, above the file): SPOT_RESTARTER_CONFIG, ${overridableFields.map((f) => f.env).join(", ")};
NODE_EXTRA_CA_CERTS for a private CA (sovereign clouds, the emulator).
`;

const commonOptions = {
  config: { type: "string" },
  ...configFlagOptions(),
  "print-config": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export const commandOptions = {
  once: { ...commonOptions, "dry-run": { type: "boolean" }, json: { type: "boolean" } },
  run: commonOptions,
  status: { ...commonOptions, json: { type: "boolean" }, wide: { type: "boolean" } },
  report: { ...commonOptions, since: { type: "string" }, json: { type: "boolean" } },
  "simulate-eviction": { ...commonOptions, vm: { type: "string" }, "resource-group": { type: "string" } },
  "notify-test": commonOptions,
  pause: {
    ...commonOptions,
    vm: { type: "string" },
    for: { type: "string" },
    "resource-group": { type: "string" },
    force: { type: "boolean" },
  },
  resume: { ...commonOptions, vm: { type: "string" }, "resource-group": { type: "string" } },
  doctor: { ...commonOptions, json: { type: "boolean" } },
  install: {
    "stack-outputs": { type: "string" },
    root: { type: "string" },
    scheduler: { type: "string" },
    "dry-run": { type: "boolean" },
    "no-verify": { type: "boolean" },
    "verify-wait-seconds": { type: "string" },
    "authority-host": { type: "string" },
    "arm-endpoint": { type: "string" },
    audience: { type: "string" },
    "extra-ca-certs": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  uninstall: {
    root: { type: "string" },
    "dry-run": { type: "boolean" },
    "keep-state": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
} as const;

export type Command = keyof typeof commandOptions;
export type Values = Record<string, string | boolean | undefined>;

/** What the command line asks for: a command with its values, or only text to print (help, version). */
export type CommandLine =
  | { readonly command: Command; readonly values: Values }
  | { readonly print: string; readonly code: number };

/** Parses argv (after `node script`); a bad command line is a UsageError. */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): CommandLine {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    // `help once` is `once --help`.
    return {
      print: (command === "help" && rest[0] !== undefined && helpFor(rest[0])) || usage,
      code: command === undefined ? exitCodes.usage : exitCodes.ok,
    };
  }
  if (command === "--version" || command === "-v") {
    return { print: `${version}\n`, code: exitCodes.ok };
  }
  if (!(command in commandOptions)) {
    throw new UsageError(`unknown command "${command}" (try --help)`);
  }
  let values: Values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: commandOptions[command as Command],
      allowPositionals: false,
      strict: true,
    }) as { values: Values });
  } catch (error) {
    const hint = npmDashDashHint(
      env,
      "spot-restarter",
      command,
      Object.keys(commandOptions[command as Command]),
    );
    throw new UsageError(`${command}: ${(error as Error).message} (${hint ?? `try ${command} --help`})`, {
      cause: error,
    });
  }
  if (values.help) {
    return { print: helpFor(command) ?? usage, code: exitCodes.ok };
  }
  // `npm run spot-restarter once --dry-run` (no `--`) parses cleanly, but npm kept --dry-run: never run
  // a real cycle for a dry one.
  const npmTook = npmDashDashHint(
    env,
    "spot-restarter",
    command,
    Object.keys(commandOptions[command as Command]),
  );
  if (npmTook) throw new UsageError(`${command}: ${npmTook}`);
  return { command: command as Command, values };
}

/** `install`'s options from its flags. */
export function installOptionsFrom(values: Values): InstallOptions {
  const stackOutputs = str(values["stack-outputs"]);
  if (!stackOutputs)
    throw new UsageError("install: --stack-outputs FILE (or - for standard input) is required");
  const scheduler = str(values.scheduler) ?? "systemd";
  if (scheduler !== "systemd" && scheduler !== "cron") {
    throw new UsageError(`install: --scheduler must be systemd or cron, got "${scheduler}"`);
  }
  const authorityHost = str(values["authority-host"]);
  const armEndpoint = str(values["arm-endpoint"]);
  if ((authorityHost === undefined) !== (armEndpoint === undefined)) {
    throw new UsageError("install: give --authority-host and --arm-endpoint together");
  }
  return {
    stackOutputs,
    root: str(values.root) ?? "/",
    scheduler,
    dryRun: values["dry-run"] === true,
    verify: values["no-verify"] !== true,
    verifyWaitSeconds: parseVerifyWait(str(values["verify-wait-seconds"])),
    cloud:
      authorityHost && armEndpoint
        ? { authorityHost, armEndpoint, audience: str(values.audience) }
        : undefined,
    extraCaCerts: str(values["extra-ca-certs"]),
  };
}

/** `uninstall`'s options from its flags. */
export function uninstallOptionsFrom(values: Values): UninstallOptions {
  return {
    root: str(values.root) ?? "/",
    dryRun: values["dry-run"] === true,
    keepState: values["keep-state"] === true,
  };
}

export function str(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** --verify-wait-seconds: 0..3600 whole seconds. */
function parseVerifyWait(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) > 3600) {
    throw new UsageError(
      `install: --verify-wait-seconds expects 0 to 3600 seconds, got ${JSON.stringify(raw.slice(0, 20))}`,
    );
  }
  return Number(raw);
}
