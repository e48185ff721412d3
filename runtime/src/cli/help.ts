// `spot-restarter <command> --help`: each command's own flags, defaults and an example; and the hint for
// the classic slip of `npm run spot-restarter once --config F` (npm keeps flags before a `--` for itself).

import { defaultConfigPath as configPath } from "../config/config";
import { overridableFields } from "../config/configFields";

/** The flags overriding config fields, one line each, from the config schema (description, default). */
export function configFlagLines(include: (flag: string) => boolean = () => true): string {
  return overridableFields
    .filter((f) => include(f.flag))
    .map(
      (f) =>
        `  ${`--${f.flag} ${f.arg}`.padEnd(24)} ${f.description}${f.default === undefined ? "" : ` (default ${f.default})`}`,
    )
    .join("\n");
}

/** Flags that only shape the loop's cycles: shown for once and run, whose cycles they shape. */
const loopFlags = new Set(["interval-seconds", "max-concurrent-starts"]);

const commonFor = (
  loop: boolean,
) => `Options from the config (a flag overrides the config file and the environment):
  --config FILE            config file (default ${configPath}; env SPOT_RESTARTER_CONFIG)
${configFlagLines((flag) => loop || !loopFlags.has(flag))}
  --print-config           log the effective configuration (no secrets) before running
  -h, --help               this help`;

/** For once and run. */
const common = commonFor(true);
/** For the commands that read the config but run no cycle (status, report, doctor, pause, …). */
const commonNoLoop = commonFor(false);

const commandHelp: Record<string, string> = {
  once: `spot-restarter once: one cycle (for cron). Lists each configured resource group once, reads the
power state of the tagged Spot VMs, starts the deallocated ones and waits for those starts (each up to
startTimeoutSeconds, default 900). Exit 0 when the cycle ran, also when another run holds the lock.

Usage: spot-restarter once [--config FILE] [--dry-run] [--json]
  --dry-run   decide and report, start nothing, write no state (needs no lock)
  --json      print a summary object on stdout (format: runtime/README.md)
${common}

Example:
  sudo spot-restarter once --dry-run --json
`,
  run: `spot-restarter run: the loop (for systemd). A cycle every intervalSeconds (default 30) ± 10 %;
SIGTERM or SIGINT end it within seconds with the state saved. Exit 5 if another instance holds the lock.

Usage: spot-restarter run [--config FILE] [--interval-seconds N]
${common}

Example:
  sudo spot-restarter run --config /etc/spot-restarter/config.json --log-format json
`,
  status: `spot-restarter status: each tagged Spot VM with its live power state, last eviction seen, last
start and its result, start attempts and backoff. The table fits 120 columns: times relative to now
("3 min ago", "in 2 min"), a deallocated VM's cause or pause beside its state, long cells cut with "…",
and a * on a VM in a fallback size. --wide adds the last cause (who, when), the pause's end and the VM's
own size beside a fallback size ("Standard_D2as_v5 (own: Standard_D2s_v5)"), with ISO times. Changes
nothing. Exit 4 when a configured resource group does not exist (the table is printed first).

Usage: spot-restarter status [--config FILE] [--wide] [--json]
  --wide      every column, with full ISO times (wider than 120 columns)
  --json      print the report as JSON on stdout instead of a table (every field, ISO times)
${commonNoLoop}

Example:
  sudo spot-restarter status
`,
  report: `spot-restarter report: what evictions cost each tagged Spot VM over a window, and in total:
evictions, owner stops, downtime (from each eviction until the VM ran again; owner stops are not
downtime), the longest outage, start requests, availability (running time over the window since the VM
was first seen) and time spent in a fallback size. Read from the eviction history in stateDir (kept
historyDays, default 90), which once and run write: needs no Azure and no lock.

Usage: spot-restarter report [--config FILE] [--since DURATION] [--json]
  --since D   the window: the last D (e.g. 7d, 12h, 1d12h; default 30d)
  --json      print { since, until, vms: [{ resourceGroup, name, evictions, ownerStops, downtimeSeconds,
              longestOutageSeconds, startRequests, availability, fallbackSeconds }], totals }
${commonNoLoop}

Example:
  sudo spot-restarter report --since 7d
`,
  "simulate-eviction": `spot-restarter simulate-eviction: asks Azure to evict a running Spot VM, to test the whole
chain (Azure deallocates it within about 30 s; then once/run start it again). A VM that is already
deallocated cannot be evicted: once/run will start it. The least-privilege role may evict only when the stack
opted in: pulumi config set spot-restarter:allowSimulateEviction true && pulumi up (Contributor always may).

Usage: spot-restarter simulate-eviction --vm NAME [--resource-group NAME] [--config FILE]
  --vm NAME               the Spot VM (required)
  --resource-group NAME   its group (default: the only configured group, else the one that has it)
${commonNoLoop}

Example:
  sudo spot-restarter simulate-eviction --vm ubuntu-backup-server-spot
`,
  "notify-test": `spot-restarter notify-test: sends one test message to each notification channel of the config.

Usage: spot-restarter notify-test [--config FILE]
${commonNoLoop}

Example:
  sudo spot-restarter notify-test
`,
  doctor: `spot-restarter doctor: checks, against Azure, everything a cycle needs: clock, endpoints and CA,
certificate, token, resource groups, the principal's effective permissions and the tagged VMs; then each
feature the config enables: the eviction-cause signals (Resource Graph annotations, the Activity Log),
fallback sizes, notification channels (their origin only) and metrics. Each check passes, warns or fails
with its fix, and a missing right says what degrades; exit 1 if one fails.

Usage: spot-restarter doctor [--config FILE] [--json]
  --json      print the checks as JSON on stdout
${commonNoLoop}

Example:
  sudo spot-restarter doctor
`,
  pause: `spot-restarter pause: the loop leaves one VM alone (no start, whatever its cause) until
resume, or for a while. Written to pauses.json in stateDir without the lock, so it works while run runs;
status shows it. The name is checked first against the tagged Spot VMs (the live list, or the state
file's VMs when Azure does not answer); a pause of the same VM replaces the earlier one.

Usage: spot-restarter pause --vm NAME [--for DURATION] [--resource-group NAME] [--force] [--config FILE]
  --vm NAME              the VM (required)
  --for D                for D (e.g. 2h, 30m, 1d, 1h30m); default: until resume
  --resource-group NAME  only the VM of that name in this group (default: in any configured group)
  --force                pause a name that is not a tagged Spot VM yet (a VM about to be tagged)
${commonNoLoop}

Example:
  sudo spot-restarter pause --vm build-box-spot --for 2h
`,
  resume: `spot-restarter resume: ends a VM's pause (pause); the loop may start it again from its next cycle.
Works while run runs; a VM that was not paused is said so (exit 0), a name no tagged Spot VM has is an error.

Usage: spot-restarter resume --vm NAME [--resource-group NAME] [--config FILE]
  --vm NAME              the VM (required)
  --resource-group NAME  only the VM of that name in this group
${commonNoLoop}

Example:
  sudo spot-restarter resume --vm build-box-spot
`,
  install: `spot-restarter install: installs spot-restarter on this host from the Pulumi stack outputs
(\`pulumi stack output --json --show-secrets\`), then verifies it: runs \`doctor\` as the scheduler will run
the job (the systemd unit's command with its credentials as an unprivileged user, or the cron line as its
user), which logs in, lists each resource group, reads the principal's permissions and checks the tagged
VMs. While only Entra ID or ARM replication of a new principal, certificate or role is pending it waits
(one line per attempt, at most --verify-wait-seconds); any other failure stops it (exit 1, files in place).

Usage: spot-restarter install --stack-outputs FILE|- [options]
  --stack-outputs FILE|-   the outputs JSON, or - for standard input (required)
  --root DIR               install under DIR instead of / (for a look, or an image; default /)
  --scheduler NAME         systemd (default: a service running \`run\`) or cron (\`once\` a minute)
  --dry-run                show every file (path and mode, never the key) and command; change nothing
  --no-verify              skip the verification (doctor, run as the scheduler will run the job: its
                           user, environment and files)
  --verify-wait-seconds N  how long the verification waits for replication (default 300)
  --authority-host URL     Entra ID authority of a sovereign cloud or the emulator (with --arm-endpoint;
                           default https://login.microsoftonline.com)
  --arm-endpoint URL       Resource Manager endpoint (with --authority-host; default https://management.azure.com)
  --audience URL           token audience (default https://management.azure.com); never lets a Microsoft
                           authority's token go to another Resource Manager, and is taken only from here,
                           not from the stack outputs
  --extra-ca-certs FILE    a private CA to trust (installed beside the config, used as NODE_EXTRA_CA_CERTS)
  -h, --help               this help

Example:
  pulumi stack output --json --show-secrets | ssh HOST sudo ./spot-restarter install --stack-outputs -
`,
  uninstall: `spot-restarter uninstall: stops and removes what install wrote, the key included.

Usage: spot-restarter uninstall [--root DIR] [--dry-run] [--keep-state]
  --root DIR       the root install used (default /)
  --dry-run        show what would be removed; remove nothing
  --keep-state     keep the state directory (/var/lib/spot-restarter)
  -h, --help       this help

Example:
  sudo spot-restarter uninstall --keep-state
`,
};

/** The help of one command, or undefined for a command without its own (the global usage applies). */
export function helpFor(command: string): string | undefined {
  return Object.hasOwn(commandHelp, command) ? commandHelp[command] : undefined;
}

/**
 * Run as `npm run spot-restarter once --config F` (no `--`), npm keeps `--config` for itself (as
 * npm_config_config) and passes F on as a stray argument. Names the flags npm took, and the fix.
 */
export function npmDashDashHint(
  env: NodeJS.ProcessEnv,
  script: string,
  command: string,
  optionNames: readonly string[],
): string | undefined {
  if (env.npm_lifecycle_event !== script) return undefined;
  const taken = optionNames.filter((name) => env[`npm_config_${name.replaceAll("-", "_")}`] !== undefined);
  if (taken.length === 0) return undefined;
  return `npm took ${taken.map((n) => `--${n}`).join(", ")} for itself: put \`--\` between the script and its arguments, e.g. \`npm run -s ${script} -- ${command} --${taken[0]} …\``;
}
