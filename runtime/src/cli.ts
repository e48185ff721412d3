// spot-restarter's command line. Only wiring: parse arguments, load config, build dependencies,
// run a command; one handler at the bottom turns errors into a message and an exit code.
import { parseArgs } from "node:util";
import {
  certificateExpiry,
  createCredential,
  type LoadedCertificate,
  loadCertificate,
  verifyAuthentication,
} from "./auth";
import { createArmVmApi, createRequestCounter } from "./azure";
import { BudgetTracker } from "./budgets";
import { CauseGate } from "./causeGate";
import { createArmCauseSource } from "./causeSource";
import { collectStatus, formatStatusTable, lockedSummary, runOnce, simulateEviction } from "./commands";
import {
  configFlagOptions,
  defaultConfigPath,
  describeConfig,
  type LoadedConfig,
  loadConfig,
  overridesFromEnv,
  overridesFromFlags,
} from "./config";
import { overridableFields, resourceGroupNamePattern } from "./configSchema";
import { doctorPassed, formatDoctorReport, probeEndpoint, runDoctor } from "./doctor";
import {
  AuthError,
  ConfigError,
  exitCodes,
  LockHeldError,
  messageChain,
  PermissionError,
  RuntimeError,
  UsageError,
} from "./errors";
import { createEventBus, type EventBus } from "./events";
import { configFlagLines, helpFor, npmDashDashHint } from "./help";
import { install, uninstall } from "./install/index";
import { type HeldLock, isUnwritableError, isWritable, tryAcquireLock } from "./lock";
import { createLogger, type LogFormat, type LogLevel } from "./log";
import { logSink } from "./logSink";
import { nodeTooOld } from "./nodeVersion";
import { sendTestNotifications } from "./notify/index";
import { addPause, parseDuration, readPauses, removePause } from "./pause";
import { Restarter, type RestarterSettings } from "./restarter";
import { retryPolicyFromConfig } from "./schedule";
import { createSinks } from "./sinks";
import { createFileStateStore } from "./state";

const version = "0.1.0";

const usage = `spot-restarter ${version}: starts evicted Azure Spot VMs again.

Usage: spot-restarter <command> [options]

Commands:
  once               one cycle (for cron); waits for the starts it issued
  run                the loop (for systemd); SIGTERM/SIGINT end it cleanly
  status             each tagged VM: power state, last eviction seen, last start, backoff
  simulate-eviction  ask Azure to evict a Spot VM (tests the whole chain)
  pause              leave a VM alone (no start) for a while or until resume; works while run runs
  resume             end a VM's pause
  notify-test        send one test message to each notification channel of the config
  doctor             check clock, endpoints and CA, certificate, token, resource groups, permissions and
                     tagged VMs against Azure; each check pass/fail with its fix (exit 1 if one fails)
  install            install on this host from \`pulumi stack output --json --show-secrets\`
  uninstall          remove what install wrote

Common options (once, run, status, simulate-eviction, notify-test, doctor):
  --config FILE            config file (default ${defaultConfigPath}; env SPOT_RESTARTER_CONFIG)
${configFlagLines()}
  --print-config           log the effective configuration (no secrets) before running
once:               [--dry-run] decide and report, start nothing   [--json] print a summary object on stdout
status:             [--json]
doctor:             [--json]
simulate-eviction:  --vm NAME [--resource-group NAME]
pause:              --vm NAME [--for DURATION (e.g. 2h, 30m, 1d; default: until resume)] [--resource-group NAME]
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

const commandOptions = {
  once: { ...commonOptions, "dry-run": { type: "boolean" }, json: { type: "boolean" } },
  run: commonOptions,
  status: { ...commonOptions, json: { type: "boolean" } },
  "simulate-eviction": { ...commonOptions, vm: { type: "string" }, "resource-group": { type: "string" } },
  "notify-test": commonOptions,
  pause: {
    ...commonOptions,
    vm: { type: "string" },
    for: { type: "string" },
    "resource-group": { type: "string" },
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

type Command = keyof typeof commandOptions;
type Values = Record<string, string | boolean | undefined>;

export async function main(argv: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    // `help once` is `once --help`.
    process.stdout.write((command === "help" && rest[0] !== undefined && helpFor(rest[0])) || usage);
    return command === undefined ? exitCodes.usage : exitCodes.ok;
  }
  if (command === "--version" || command === "-v") {
    process.stdout.write(`${version}\n`);
    return exitCodes.ok;
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
    process.stdout.write(helpFor(command) ?? usage);
    return exitCodes.ok;
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
  // Every command refuses an old Node.js the same way (install checks the Node.js the service will use).
  const tooOld = command === "install" ? undefined : nodeTooOld(process.versions.node);
  if (tooOld) throw new RuntimeError(tooOld, exitCodes.failure);

  if (command === "install") {
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
    return install({
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
    });
  }
  if (command === "uninstall") {
    return uninstall({
      root: str(values.root) ?? "/",
      dryRun: values["dry-run"] === true,
      keepState: values["keep-state"] === true,
    });
  }

  // once, run, status, simulate-eviction: they all talk to Azure with the config.
  const envOverrides = overridesFromEnv(env);
  const log = createLogger({
    level: (str(values["log-level"]) ?? envOverrides.logLevel ?? "info") as LogLevel,
    format: (str(values["log-format"]) ?? envOverrides.logFormat ?? "text") as LogFormat,
  });
  const configPath = str(values.config) ?? env.SPOT_RESTARTER_CONFIG ?? defaultConfigPath;
  const loaded: LoadedConfig = await loadConfig(configPath, envOverrides, overridesFromFlags(values));
  const { config } = loaded;
  log.setOptions({ level: config.logLevel, format: config.logFormat });
  for (const warning of loaded.warnings) log.warn("config-warning", { path: configPath }, warning);
  if (values["print-config"]) {
    log.info("config", { path: configPath }, JSON.stringify(describeConfig(config)));
  }

  if (command === "pause" || command === "resume") {
    // Needs no Azure and no lock: a file of its own in the state directory, read by the loop each cycle.
    const vm = str(values.vm);
    if (!vm || !/^[\w.-]{1,64}$/.test(vm)) {
      throw new UsageError(`${command}: --vm NAME is required (1-64 letters, digits, _ . -)`);
    }
    const resourceGroup = str(values["resource-group"]);
    if (resourceGroup !== undefined && !resourceGroupNamePattern.test(resourceGroup)) {
      throw new UsageError(`${command}: --resource-group expects a resource group name`);
    }
    if (command === "resume") {
      const removed = await removePause(config.stateDir, vm, resourceGroup);
      log.info(
        removed ? "resumed" : "not-paused",
        { vm },
        removed ? "pause ended: the loop may start this VM again" : "this VM was not paused",
      );
      return exitCodes.ok;
    }
    const forText = str(values.for);
    const forMs = forText === undefined ? undefined : parseDuration(forText);
    if (forText !== undefined && forMs === undefined) {
      throw new UsageError(
        `pause: --for expects a duration like 2h, 30m, 1d or 1h30m, got ${JSON.stringify(forText)}`,
      );
    }
    const now = Date.now();
    await addPause(
      config.stateDir,
      {
        name: vm,
        ...(resourceGroup ? { resourceGroup } : {}),
        ...(forMs ? { until: now + forMs } : {}),
        at: now,
      },
      now,
    );
    log.info(
      "paused",
      { vm, until: forMs ? new Date(now + forMs).toISOString() : "resume" },
      forMs ? "the loop leaves this VM alone until then" : "the loop leaves this VM alone until `resume`",
    );
    return exitCodes.ok;
  }

  if (command === "doctor") {
    // Checks instead of failing at the first problem: every check runs (or says why it was skipped).
    const checks = await runDoctor(config, signal, {
      now: () => new Date(),
      probe: probeEndpoint,
      vmApi: (credential) => createArmVmApi(config, credential),
    });
    const passed = doctorPassed(checks);
    process.stdout.write(
      values.json ? `${JSON.stringify({ passed, checks }, null, 2)}\n` : formatDoctorReport(checks),
    );
    return passed ? exitCodes.ok : exitCodes.failure;
  }

  if (command === "notify-test") {
    // Needs no certificate and no Azure: only the channels. Exit 1 when one of them failed.
    if (config.notifications.length === 0) {
      throw new ConfigError(`config file ${configPath} has no "notifications" channel to test`);
    }
    const results = await sendTestNotifications(
      config.notifications,
      { subscriptionId: config.subscriptionId, resourceGroups: config.resourceGroups },
      signal,
    );
    for (const result of results) {
      process.stdout.write(`${result.ok ? "ok    " : "FAILED"} ${result.channel}: ${result.detail}\n`);
    }
    return results.every((result) => result.ok) ? exitCodes.ok : exitCodes.failure;
  }

  // Every state change is an event; the log is its first sink (notifications and metrics subscribe too).
  const events = createEventBus((error) =>
    log.error("sink-failed", {}, `an event sink failed; it keeps receiving events: ${messageChain(error)}`),
  );
  events.subscribe(logSink(log));
  // Notifications and metrics only for the commands that watch VMs (not status, simulate-eviction).
  const sinks =
    command === "once" || command === "run"
      ? createSinks(config, events, log, { command, dryRun: values["dry-run"] === true })
      : undefined;
  try {
    const certificate = await loadCertificate(config.certificatePath, new Date());
    sinks?.setCertificateExpiry(certificate.notAfter);
    warnIfExpiringSoon(certificate, events);
    const credential = createCredential(config, certificate);
    let principalObjectId: string | undefined;
    try {
      principalObjectId = await verifyAuthentication(credential, config, signal);
    } catch (error) {
      // `run` outlives an Entra ID outage or a network that is not up yet at boot: it logs and
      // carries on, and its cycles get a token once Entra ID answers. Everything else stops here.
      // So does a service principal or certificate `pulumi up` created moments ago: Entra ID answers
      // AADSTS700016 / AADSTS700027 until it has replicated (seconds to minutes). Exiting would only make
      // systemd restart it in a loop; each cycle tries again and the log says what it waits for.
      const replicating = error instanceof AuthError && /\(AADSTS(700016|700027)\)/.test(error.message);
      if (!(command === "run" && error instanceof AuthError && (error.transient || replicating))) {
        // Decided here for the start-up token: the log renders it (token-unavailable) and, under cron,
        // a notification says so (the repeat gate keeps that to one an hour). `run` carrying on is
        // reported by its cycles' token health instead.
        if ((command === "once" || command === "run") && error instanceof AuthError) {
          events.emit({
            type: "auth-failing",
            at: Date.now(),
            transient: error.transient,
            message: error.message,
          });
        }
        throw error;
      }
      log.warn(
        "token-unavailable",
        { transient: true },
        replicating
          ? `${error.message}; a service principal or certificate created moments ago takes minutes to reach Entra ID: starting anyway and retrying every cycle (if this lasts beyond ~15 minutes, check clientId and the certificate)`
          : `${error.message}; starting anyway and retrying every cycle`,
      );
    }
    try {
      const counter = createRequestCounter();
      // Every ARM answer's remaining-budget headers (budgets.ts): the loop slows down on them,
      // `status` and the metrics show the lowest.
      const budget = new BudgetTracker();
      sinks?.watchBudgets(budget);
      const api = createArmVmApi(config, credential, {
        counter,
        policies: [budget.policy, ...(sinks?.armPolicies ?? [])],
      });
      const store = createFileStateStore(config.stateDir);
      const settings: RestarterSettings = {
        resourceGroups: config.resourceGroups,
        tag: config.tag,
        maxConcurrentStarts: config.maxConcurrentStarts,
        backoff: { initialMs: config.backoff.initialSeconds * 1000, maxMs: config.backoff.maxSeconds * 1000 },
        retry: retryPolicyFromConfig(config),
        startTimeoutMs: config.startTimeoutSeconds * 1000,
        intervalMs: config.intervalSeconds * 1000,
        fallbackSizes: config.fallbackSizes,
        fallbackAfterMs: config.fallbackAfterSeconds * 1000,
      };

      if (command === "status") {
        const report = await collectStatus(
          api,
          store,
          settings,
          signal,
          Date.now(),
          await readPauses(config.stateDir).catch(() => []),
          budget,
        );
        process.stdout.write(
          values.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatusTable(report),
        );
        return exitCodes.ok;
      }
      if (command === "simulate-eviction") {
        const vm = str(values.vm);
        if (!vm) throw new UsageError("simulate-eviction: --vm NAME is required");
        // Azure VM names are 1-64 letters, digits, `_`, `.`, `-`: anything else cannot name a VM, and a
        // huge value would only be echoed back in the "not found" message (BUG-8 in test/RELIABILITY.md).
        if (!/^[\w.-]{1,64}$/.test(vm)) {
          throw new UsageError(
            `simulate-eviction: --vm expects a VM name (1-64 letters, digits, _ . -), got ${vm.length > 64 ? `${vm.length} characters` : JSON.stringify(vm)}`,
          );
        }
        const resourceGroup = str(values["resource-group"]);
        if (resourceGroup !== undefined && !resourceGroupNamePattern.test(resourceGroup)) {
          throw new UsageError(
            `simulate-eviction: --resource-group expects a resource group name (1-90 letters, digits, - _ . ( )), got ${resourceGroup.length > 90 ? `${resourceGroup.length} characters` : JSON.stringify(resourceGroup)}`,
          );
        }
        await simulateEviction(api, settings, vm, log, signal, resourceGroup);
        return exitCodes.ok;
      }

      // Why is a deallocated VM deallocated? Asked only with restartWhen "evicted"; pauses hold in both modes.
      const causeGate = new CauseGate({
        ...(config.restartWhen === "evicted"
          ? { source: createArmCauseSource(config, credential, { counter }) }
          : {}),
        readPauses: () => readPauses(config.stateDir),
        settings: {
          restartWhen: config.restartWhen,
          unknownCauseAfterMs: config.unknownCauseAfterSeconds * 1000,
          subscriptionId: config.subscriptionId,
          self: { clientId: config.clientId, ...(principalObjectId ? { objectId: principalObjectId } : {}) },
        },
        now: Date.now,
      });
      const restarter = new Restarter({ api, store, events, settings, counter, causeGate, budget });
      if (command === "once" && values["dry-run"]) {
        // A dry run decides from the state file but writes nothing, so it needs no lock.
        await restarter.init();
        const { summary } = await runOnce({ restarter, counter, budget, tag: config.tag }, signal, {
          dryRun: true,
        });
        if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        return exitCodes.ok;
      }

      const lost = new AbortController();
      let lock: HeldLock | undefined;
      try {
        lock = await tryAcquireLock(config.stateDir, {
          onCompromised: (error) => {
            if (!isWritable(config.stateDir)) {
              // A read-only or full state directory stops the lock's refresh; restarting VMs matters more.
              log.error(
                "lock-unwritable",
                { stateDir: config.stateDir },
                `cannot refresh the lock (the state directory is not writable: ${error.message}); carrying on without it`,
              );
              return;
            }
            log.error(
              "lock-lost",
              { stateDir: config.stateDir },
              `lost the lock: ${error.message}; stopping`,
            );
            lost.abort(error);
          },
        });
      } catch (error) {
        if (!isUnwritableError(error)) throw error;
        // Better to restart VMs without a lock or memory than not at all (Azure refuses a second start
        // of a VM that is already starting with a 409, which the loop treats as "retry next cycle").
        log.error(
          "state-unwritable",
          { stateDir: config.stateDir, code: error.code },
          `cannot write the state directory (${error.code}): running without the lock and unable to persist state; fix ${config.stateDir}`,
        );
        lock = { release: async () => {} };
      }
      if (!lock) {
        const message = `another spot-restarter holds the lock in ${config.stateDir}; not running this ${command}`;
        if (command === "run") throw new LockHeldError(message);
        log.info("lock-held", { stateDir: config.stateDir }, `${message} (that is fine under cron)`);
        if (values.json)
          process.stdout.write(`${JSON.stringify(lockedSummary(false, Date.now()), null, 2)}\n`);
        return exitCodes.ok;
      }
      const stop = AbortSignal.any([signal, lost.signal]);
      try {
        await restarter.init();
        if (command === "once") {
          const { summary, fatal } = await runOnce({ restarter, counter, tag: config.tag }, stop, {
            dryRun: false,
          });
          if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
          if (fatal) throw fatal;
          return exitCodes.ok;
        }
        await sinks?.start();
        log.info(
          "run-started",
          {
            resourceGroups: config.resourceGroups.join(","),
            intervalSeconds: config.intervalSeconds,
            pid: process.pid,
          },
          "watching for evicted Spot VMs",
        );
        let lastCertificateCheck = Date.now();
        await restarter.runLoop(stop, () => {
          // Certificate expiry: warned on start (above), then once a day; an expired one ends the loop.
          if (Date.now() - lastCertificateCheck < 86_400_000) return;
          lastCertificateCheck = Date.now();
          const expiry = certificateExpiry(certificate, new Date());
          if (expiry.expired) {
            throw new AuthError(
              `certificate in ${certificate.path} expired on ${certificate.notAfter.toISOString()}: run \`pulumi up\` and reinstall`,
              "certificate",
            );
          }
          warnIfExpiringSoon(certificate, events);
        });
        if (lost.signal.aborted)
          throw new RuntimeError("stopped: the lock in the state directory was lost", 1);
        log.info(
          "run-stopped",
          { pid: process.pid },
          restarter.stateSaved
            ? "stopped on signal; state saved"
            : "stopped on signal; state could NOT be saved",
        );
        return exitCodes.ok;
      } finally {
        await lock.release();
      }
    } catch (error) {
      throw withCallerHint(error, principalObjectId);
    }
  } finally {
    // Bounded: the textfile, then at most flushTimeoutMs for queued notifications.
    await sinks?.finish();
  }
}

/**
 * A missing permission also names the object id Azure checked: the classic mistake is a role assigned to
 * the application's object id instead of the service principal's, which ARM accepts (with principalType
 * set it looks nothing up) and which only this id tells apart. It comes from our own token's `oid` claim,
 * because the SDK's paging error drops ARM's message (which names it too).
 */
export function withCallerHint(error: unknown, principalObjectId: string | undefined): unknown {
  if (!(error instanceof PermissionError) || !principalObjectId) return error;
  return new PermissionError(
    `${error.message}; the role assignment must name this service principal's object id ${principalObjectId} (not the application's object id)`,
    error.permission,
    { cause: error.cause },
  );
}

function warnIfExpiringSoon(certificate: LoadedCertificate, events: EventBus): void {
  const now = new Date();
  const expiry = certificateExpiry(certificate, now);
  if (expiry.expiresSoon) {
    events.emit({
      type: "certificate-expiring",
      at: now.getTime(),
      expiresAt: certificate.notAfter.getTime(),
      daysLeft: expiry.daysLeft,
    });
  }
}

function str(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The one top-level handler: a message (with its causes) on stderr and an exit code. */
export function reportError(error: unknown): number {
  const code = error instanceof RuntimeError ? error.exitCode : exitCodes.failure;
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    // Our own errors already say what to do; an unexpected one shows where it came from.
    current =
      current instanceof RuntimeError ? undefined : current instanceof Error ? current.cause : undefined;
  }
  process.stderr.write(`spot-restarter: ${parts.join("\n  caused by: ")}\n`);
  if (
    code === exitCodes.failure &&
    error instanceof Error &&
    error.stack &&
    process.env.SPOT_RESTARTER_DEBUG
  ) {
    process.stderr.write(`${error.stack}\n`);
  }
  return code;
}

// The entry point of the bundle (and of `node --import tsx runtime/src/cli.ts`); tests import main().
if (require.main === module) {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      process.stderr.write(`spot-restarter: second ${name}, exiting now\n`);
      process.exit(130);
    }
    controller.abort(new Error(`received ${name}`));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // If the event loop ever empties while main() is still pending, Node would exit 0 without a word:
  // that is a bug of ours, and it must not read as success to cron or systemd.
  let settled = false;
  process.on("beforeExit", () => {
    if (settled) return;
    settled = true;
    process.stderr.write("spot-restarter: internal error: exited with the command unfinished\n");
    process.exitCode = exitCodes.failure;
  });
  main(process.argv.slice(2), process.env, controller.signal)
    .finally(() => {
      settled = true;
    })
    .catch((error: unknown) => {
      if (controller.signal.aborted && !(error instanceof RuntimeError)) return exitCodes.ok;
      return reportError(error);
    })
    .then((code) => {
      process.exitCode = code;
    });
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
