// The commands that talk to Azure with the service principal: status, simulate-eviction, once and run.
// Each has its own short wiring over the shared builders (wiring.ts: events, identity, ARM clients, the
// Restarter, the lock); what a command does sits in commands.ts. cli.ts dispatches here.
import { certificateExpiry } from "../azure/auth";
import { createArmSpotMarketSource } from "../azure/spotMarket";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupNamePattern } from "../config/configSchema";
import {
  AuthError,
  exitCodes,
  LockHeldError,
  messageChain,
  ResourceGroupError,
  RuntimeError,
  UsageError,
} from "../core/errors";
import type { Restarter } from "../loop/restarter";
import { type EventBus, resourceGroupMissingMessage } from "../signals/events";
import type { HistoryRecorder } from "../signals/historySink";
import type { Logger } from "../signals/log";
import type { StatusPages } from "../signals/metrics/index";
import { createSinks, type Sinks } from "../signals/sinks";
import { renderStatusPage } from "../signals/statusPage";
import { heartbeatRecorder, heartbeatReport, readHeartbeat } from "../state/heartbeat";
import { describeLockHolder, readLockOwner } from "../state/lock";
import { readPauses } from "../state/pause";
import { createFileStateStore, createMemoryStateStore } from "../state/state";
import type { Values } from "./cliArgs";
import { str, version } from "./cliArgs";
import { collectStatus, lockedSummary, runOnce, simulateEviction } from "./commands";
import { buildReport, formatReportTable } from "./report";
import { formatStatusTable } from "./statusTable";
import {
  type Arm,
  type AzureCommand,
  acquireStateLock,
  authenticate,
  connectArm,
  createEvents,
  createRestarter,
  type Identity,
  openHistory,
  restarterSettings,
  warnIfExpiringSoon,
  withCallerHint,
} from "./wiring";

/** Runs one of the commands that talk to Azure; returns the exit code (errors are thrown, see cli.ts). */
export function runAzureCommand(
  command: AzureCommand,
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  switch (command) {
    case "status":
      return status(values, config, log, signal);
    case "simulate-eviction":
      return simulateEvictionCommand(values, config, log, signal);
    case "once":
      return once(values, config, log, signal);
    case "run":
      return run(config, log, signal);
  }
}

/** Errors after authentication name the principal's object id when a permission is missing. */
async function withHint(identity: Identity, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    throw withCallerHint(error, identity.principalObjectId);
  }
}

/**
 * Notifications and metrics watch only the commands that watch VMs (once, run): created before the
 * first token (an auth failure is notified), finished however the command ends.
 */
async function withSinks(
  command: "once" | "run",
  config: RuntimeConfig,
  events: EventBus,
  log: Logger,
  dryRun: boolean,
  body: (sinks: Sinks) => Promise<number>,
): Promise<number> {
  const sinks = createSinks(config, events, log, { command, dryRun });
  try {
    return await body(sinks);
  } finally {
    // Bounded: the textfile, then at most flushTimeoutMs for queued notifications.
    await sinks.finish();
  }
}

async function status(
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  const identity = await authenticate("status", config, createEvents(log), log, signal, undefined);
  return withHint(identity, async () => {
    const { api, budget } = connectArm(config, identity.credential, undefined);
    const report = await collectStatus(
      api,
      createFileStateStore(config.stateDir),
      restarterSettings(config),
      signal,
      Date.now(),
      await readPauses(config.stateDir).catch(() => []),
      budget,
      heartbeatReport(await readHeartbeat(config.stateDir), Date.now(), config.intervalSeconds),
      {
        // Eviction-rate band and Spot price per VM (Resource Graph SpotResources, cached an hour in the state
        // directory); a failure leaves them out and says so on stderr.
        market: createArmSpotMarketSource(config, identity.credential, {
          policies: [budget.policy],
          onError: (error) =>
            log.warn(
              "spot-market-unavailable",
              {},
              `eviction rates and Spot prices left out: ${messageChain(error)}`,
            ),
        }),
      },
    );
    process.stdout.write(
      values.json
        ? `${JSON.stringify(report, null, 2)}\n`
        : formatStatusTable(report, { wide: values.wide === true }),
    );
    // The report is printed (the other groups' VMs too), but a missing group is a failure, as in doctor.
    if (report.missingResourceGroups.length > 0) {
      throw new ResourceGroupError(
        report.missingResourceGroups.map((g) => resourceGroupMissingMessage(g.resourceGroup, g.code)),
      );
    }
    return exitCodes.ok;
  });
}

async function simulateEvictionCommand(
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  const identity = await authenticate("simulate-eviction", config, createEvents(log), log, signal, undefined);
  return withHint(identity, async () => {
    const { api } = connectArm(config, identity.credential, undefined);
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
    await simulateEviction(api, restarterSettings(config), vm, log, signal, resourceGroup);
    return exitCodes.ok;
  });
}

async function once(
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  const events = createEvents(log);
  const dryRun = values["dry-run"] === true;
  return withSinks("once", config, events, log, dryRun, async (sinks) => {
    const identity = await authenticate("once", config, events, log, signal, sinks);
    return withHint(identity, async () => {
      const arm = connectArm(config, identity.credential, sinks);
      const restarter = createRestarter(config, identity, arm, events);
      const { counter, budget } = arm;
      if (dryRun) {
        // A dry run decides from the state file but writes nothing, so it needs no lock.
        await restarter.init();
        const { summary } = await runOnce({ restarter, counter, budget, tag: config.tag }, signal, {
          dryRun: true,
        });
        if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        throwIfGroupsMissing(restarter);
        return exitCodes.ok;
      }
      const { lock, lost } = await acquireStateLock(config, log);
      if (!lock) {
        log.info(
          "lock-held",
          { stateDir: config.stateDir },
          `${await lockHolder(config)}; not running this once (that is fine under cron)`,
        );
        if (values.json)
          process.stdout.write(`${JSON.stringify(lockedSummary(false, Date.now()), null, 2)}\n`);
        return exitCodes.ok;
      }
      const history = await openHistory(config, log, events, sinks);
      const heartbeat = startHeartbeat("once", config, events);
      try {
        await restarter.init();
        const { summary, fatal } = await runOnce(
          { restarter, counter, tag: config.tag },
          AbortSignal.any([signal, lost]),
          { dryRun: false },
        );
        if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        if (fatal) throw fatal;
        throwIfGroupsMissing(restarter);
        return exitCodes.ok;
      } finally {
        await history.settled();
        await heartbeat.settled();
        await lock.release();
      }
    });
  });
}

async function run(config: RuntimeConfig, log: Logger, signal: AbortSignal): Promise<number> {
  const events = createEvents(log);
  return withSinks("run", config, events, log, false, async (sinks) => {
    const identity = await authenticate("run", config, events, log, signal, sinks);
    return withHint(identity, async () => {
      const arm = connectArm(config, identity.credential, sinks);
      const restarter = createRestarter(config, identity, arm, events);
      const { lock, lost } = await acquireStateLock(config, log);
      if (!lock) throw new LockHeldError(`${await lockHolder(config)}; not running this run`);
      const history = await openHistory(config, log, events, sinks);
      const heartbeat = startHeartbeat("run", config, events);
      try {
        await restarter.init();
        await sinks.start(statusPages(config, arm, restarter, history, events, signal));
        log.info(
          "run-started",
          {
            resourceGroups: config.resourceGroups.join(","),
            intervalSeconds: config.intervalSeconds,
            pid: process.pid,
          },
          "watching for evicted Spot VMs",
        );
        const { certificate } = identity;
        let lastCertificateCheck = Date.now();
        const weeklyReport = weeklyReporter(config, history, events);
        await restarter.runLoop(AbortSignal.any([signal, lost]), () => {
          weeklyReport();
          // Certificate expiry: warned on start (authenticate), then once a day; an expired one ends the loop.
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
        if (lost.aborted) throw new RuntimeError("stopped: the lock in the state directory was lost", 1);
        log.info(
          "run-stopped",
          { pid: process.pid },
          restarter.stateSaved
            ? "stopped on signal; state saved"
            : "stopped on signal; state could NOT be saved",
        );
        return exitCodes.ok;
      } finally {
        await history.settled();
        await heartbeat.settled();
        await lock.release();
      }
    });
  });
}

/** Who holds the lock (its pid and for how long, when it recorded them): issue 23, item 4. */
async function lockHolder(config: RuntimeConfig): Promise<string> {
  return describeLockHolder(config.stateDir, await readLockOwner(config.stateDir), Date.now());
}

/** Liveness: each cycle's end is recorded in the state directory, for `status` (issue 23, item 4). */
function startHeartbeat(mode: "once" | "run", config: RuntimeConfig, events: EventBus) {
  const heartbeat = heartbeatRecorder(config.stateDir, {
    mode,
    pid: process.pid,
    runtimeVersion: version,
    intervalSeconds: config.intervalSeconds,
  });
  events.subscribe(heartbeat.sink);
  return heartbeat;
}

/** `once` ran its cycle (the other groups' VMs were started), but a missing group is a failure: exit 4. */
function throwIfGroupsMissing(restarter: Restarter): void {
  const missing = restarter.missingResourceGroups;
  if (missing.length === 0) return;
  throw new ResourceGroupError(
    missing.map((group) => resourceGroupMissingMessage(group.resourceGroup, group.code)),
  );
}

/**
 * The status page and /status.json on the metrics listener (`run` with metrics.listen): built from what the
 * loop saw last and the eviction history, never an ARM read per visit.
 */
function statusPages(
  config: RuntimeConfig,
  arm: Arm,
  restarter: Restarter,
  history: HistoryRecorder,
  events: EventBus,
  signal: AbortSignal,
): StatusPages {
  let lastCycleAt: number | undefined;
  events.subscribe((event) => {
    if (event.type === "cycle-finished") lastCycleAt = event.at;
  });
  const statusAt = async (now: number) =>
    collectStatus(
      arm.api,
      createMemoryStateStore(restarter.currentState),
      restarterSettings(config),
      signal,
      now,
      await readPauses(config.stateDir).catch(() => []),
      arm.budget,
      heartbeatReport(await readHeartbeat(config.stateDir), now, config.intervalSeconds),
      { discovered: restarter.lastDiscovery ?? [] },
    );
  return {
    statusJson: () => statusAt(Date.now()),
    async html() {
      const now = Date.now();
      const report = await statusAt(now);
      return renderStatusPage({
        generatedAt: now,
        vms: report.vms,
        timelines: history.folder.timelines(now),
        ...(lastCycleAt !== undefined ? { lastCycleAt } : {}),
        errors: report.errors,
      });
    },
  };
}

/**
 * The weekly digest (`weekly-report`) for the channels that ask for it: offered at the first cycle and once
 * a day after; the repeat gate lets one through a week (notify/gate.ts), across restarts of `run`.
 */
function weeklyReporter(config: RuntimeConfig, history: HistoryRecorder, events: EventBus): () => void {
  const wanted = config.notifications.some((channel) => channel.events?.includes("weekly-report"));
  let offeredAt: number | undefined;
  return () => {
    const now = Date.now();
    if (!wanted || (offeredAt !== undefined && now - offeredAt < 86_400_000)) return;
    offeredAt = now;
    const since = now - 7 * 86_400_000;
    const report = buildReport(history.folder.timelines(now), since, now);
    events.emit({
      type: "weekly-report",
      at: now,
      since,
      evictions: report.totals.evictions,
      ownerStops: report.totals.ownerStops,
      downtimeSeconds: report.totals.downtimeSeconds,
      table: formatReportTable(report),
    });
  };
}
