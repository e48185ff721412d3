// The commands that talk to Azure with the service principal: once, run, status, simulate-eviction.
// Built here: the event bus and its sinks, the certificate and credential, the ARM client, the state
// store, the cause gate and the Restarter, and the lock that once and run hold. cli.ts dispatches to it.
import {
  certificateExpiry,
  createCredential,
  type LoadedCertificate,
  loadCertificate,
  verifyAuthentication,
} from "../azure/auth";
import { createArmVmApi, createRequestCounter } from "../azure/azure";
import { BudgetTracker } from "../azure/budgets";
import { CauseGate } from "../cause/causeGate";
import { createArmCauseSource } from "../cause/causeSource";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupNamePattern } from "../config/configSchema";
import {
  AuthError,
  exitCodes,
  LockHeldError,
  messageChain,
  PermissionError,
  ResourceGroupError,
  RuntimeError,
  UsageError,
} from "../core/errors";
import { Restarter, type RestarterSettings } from "../loop/restarter";
import { retryPolicyFromConfig } from "../loop/schedule";
import { createEventBus, type EventBus, resourceGroupMissingMessage } from "../signals/events";
import { openHistoryRecorder } from "../signals/historySink";
import type { Logger } from "../signals/log";
import { logSink } from "../signals/logSink";
import { createSinks } from "../signals/sinks";
import { type HeldLock, isUnwritableError, isWritable, tryAcquireLock } from "../state/lock";
import { readPauses } from "../state/pause";
import { createFileStateStore } from "../state/state";
import type { Values } from "./cliArgs";
import { str } from "./cliArgs";
import { collectStatus, formatStatusTable, lockedSummary, runOnce, simulateEviction } from "./commands";

export type AzureCommand = "once" | "run" | "status" | "simulate-eviction";

/** Runs one of the commands that talk to Azure; returns the exit code (errors are thrown, see cli.ts). */
export async function runAzureCommand(
  command: AzureCommand,
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
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
        fleetStartsPerMinute: config.retry.fleetStartsPerMinute,
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
        // The report is printed (the other groups' VMs too), but a missing group is a failure, as in doctor.
        if (report.missingResourceGroups.length > 0) {
          throw new ResourceGroupError(
            report.missingResourceGroups.map((g) => resourceGroupMissingMessage(g.resourceGroup, g.code)),
          );
        }
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
          ? {
              source: createArmCauseSource(config, credential, {
                counter,
                policies: [budget.policy, ...(sinks?.armPolicies ?? [])],
              }),
              resourceGraphQuota: () => budget.resourceGraphQuota(),
            }
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
      const restarter = new Restarter({
        api,
        store,
        events,
        settings,
        counter,
        causeGate,
        budget,
        ...(principalObjectId ? { principalObjectId } : {}),
      });
      if (command === "once" && values["dry-run"]) {
        // A dry run decides from the state file but writes nothing, so it needs no lock.
        await restarter.init();
        const { summary } = await runOnce({ restarter, counter, budget, tag: config.tag }, signal, {
          dryRun: true,
        });
        if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        throwIfGroupsMissing(restarter);
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
      // The eviction history: written by the lock holder only (its pruning rewrites the file).
      const history = await openHistoryRecorder({
        stateDir: config.stateDir,
        historyDays: config.historyDays,
        log,
      });
      events.subscribe(history.sink);
      sinks?.watchHistory(history);
      try {
        await restarter.init();
        if (command === "once") {
          const { summary, fatal } = await runOnce({ restarter, counter, tag: config.tag }, stop, {
            dryRun: false,
          });
          if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
          if (fatal) throw fatal;
          throwIfGroupsMissing(restarter);
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
        await history.settled();
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

/** `once` ran its cycle (the other groups' VMs were started), but a missing group is a failure: exit 4. */
function throwIfGroupsMissing(restarter: Restarter): void {
  const missing = restarter.missingResourceGroups;
  if (missing.length === 0) return;
  throw new ResourceGroupError(
    missing.map((group) => resourceGroupMissingMessage(group.resourceGroup, group.code)),
  );
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
