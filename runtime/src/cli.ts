// spot-restarter's command line. Only wiring: parse arguments (cliArgs.ts), load config, dispatch to
// the command (the ones that talk to Azure: azureCommands.ts); one handler at the bottom turns errors
// into a message and an exit code.
import { createCredential, loadCertificate } from "./azure/auth";
import { createArmVmApi } from "./azure/azure";
import { createArmSpotMarketSource } from "./azure/spotMarket";
import { createArmCauseSource } from "./cause/causeSource";
import { runAzureCommand } from "./cli/azureCommands";
import { installOptionsFrom, parseCommandLine, str, uninstallOptionsFrom } from "./cli/cliArgs";
import { probeEndpoint, runDoctor } from "./cli/doctor";
import { runPauseCommand } from "./cli/pauseCommand";
import { buildReport, DEFAULT_REPORT_WINDOW, formatReportTable } from "./cli/report";
import {
  defaultConfigPath,
  describeConfig,
  type LoadedConfig,
  loadConfig,
  overridesFromEnv,
  overridesFromFlags,
} from "./config/config";
import { ConfigError, exitCodes, messageChain, RuntimeError, UsageError } from "./core/errors";
import { nodeTooOld } from "./core/nodeVersion";
import { doctorPassed, formatDoctorReport } from "./install/doctorReport";
import { install, uninstall } from "./install/index";
import { reportSkippedLines } from "./signals/historySink";
import { createLogger, type LogFormat, type LogLevel } from "./signals/log";
import { sendTestNotifications } from "./signals/notify/index";
import { readHistory } from "./state/history";
import { foldHistory } from "./state/historyFold";
import { parseDuration } from "./state/pause";
import { createFileStateStore } from "./state/state";

export async function main(argv: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<number> {
  const parsed = parseCommandLine(argv, env);
  if ("print" in parsed) {
    process.stdout.write(parsed.print);
    return parsed.code;
  }
  const { command, values } = parsed;
  // Every command refuses an old Node.js the same way (install checks the Node.js the service will use).
  const tooOld = command === "install" ? undefined : nodeTooOld(process.versions.node);
  if (tooOld) throw new RuntimeError(tooOld, exitCodes.failure);
  if (command === "install") return install(installOptionsFrom(values));
  if (command === "uninstall") return uninstall(uninstallOptionsFrom(values));

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
    // No lock (a file of its own in the state directory, read by the loop each cycle); Azure only to
    // check the name, and the state file's VMs when Azure does not answer.
    return runPauseCommand(
      command,
      values,
      config,
      log,
      {
        api: async () => {
          try {
            const certificate = await loadCertificate(config.certificatePath, new Date());
            return createArmVmApi(config, createCredential(config, certificate));
          } catch (error) {
            return { unavailable: messageChain(error) };
          }
        },
        loadState: async () => (await createFileStateStore(config.stateDir).load()).state,
        now: Date.now,
      },
      signal,
    );
  }

  if (command === "report") {
    // The eviction history alone: no Azure, no lock (the loop may be appending meanwhile).
    const sinceText = str(values.since) ?? DEFAULT_REPORT_WINDOW;
    const windowMs = parseDuration(sinceText);
    if (windowMs === undefined) {
      throw new UsageError(
        `report: --since expects a duration like 30d, 7d, 12h or 1d12h, got ${JSON.stringify(sinceText.slice(0, 40))}`,
      );
    }
    const history = await readHistory(config.stateDir);
    if (history.problem) log.warn("history-unreadable", { stateDir: config.stateDir }, history.problem);
    reportSkippedLines(history.skipped, log);
    const until = Date.now();
    const report = buildReport(foldHistory(history.records, until), until - windowMs, until);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReportTable(report));
    return exitCodes.ok;
  }

  if (command === "doctor") {
    // Checks instead of failing at the first problem: every check runs (or says why it was skipped).
    const checks = await runDoctor(config, signal, {
      now: () => new Date(),
      probe: probeEndpoint,
      vmApi: (credential) => createArmVmApi(config, credential),
      causeSource: (credential) => createArmCauseSource(config, credential),
      market: (credential) => createArmSpotMarketSource(config, credential),
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

  return runAzureCommand(command, values, config, log, signal);
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
