// The builders the commands that talk to Azure share (azureCommands.ts): each builds one dependency from
// the config, so a command's wiring reads as a short list of them. Only construction here; what a command
// does with the pieces lives in its own function.
import type { TokenCredential } from "@azure/core-auth";
import {
  certificateExpiry,
  createCredential,
  type LoadedCertificate,
  loadCertificate,
  verifyAuthentication,
} from "../azure/auth";
import { createArmVmApi, createRequestCounter, type RequestCounter, type VmApi } from "../azure/azure";
import { BudgetTracker } from "../azure/budgets";
import { createArmSpotMarketSource } from "../azure/spotMarket";
import { createArmVmGraph } from "../azure/vmGraph";
import { CauseGate } from "../cause/causeGate";
import { createArmCauseSource } from "../cause/causeSource";
import type { RuntimeConfig } from "../config/config";
import { AuthError, messageChain, PermissionError } from "../core/errors";
import { subscriptionsOfEntries } from "../core/resourceIds";
import { discoveryModeFor } from "../loop/discovery";
import { Restarter, type RestarterSettings } from "../loop/restarter";
import { retryPolicyFromConfig } from "../loop/schedule";
import { createEventBus, type EventBus } from "../signals/events";
import { type HistoryRecorder, openHistoryRecorder } from "../signals/historySink";
import type { Logger } from "../signals/log";
import { logSink } from "../signals/logSink";
import type { Sinks } from "../signals/sinks";
import { type HeldLock, isUnwritableError, isWritable, tryAcquireLock } from "../state/lock";
import { readPauses } from "../state/pause";
import { createFileStateStore } from "../state/state";

export type AzureCommand = "once" | "run" | "status" | "simulate-eviction";

/** Every state change is an event; the log is its first sink (notifications and metrics subscribe too). */
export function createEvents(log: Logger): EventBus {
  const events = createEventBus((error) =>
    log.error("sink-failed", {}, `an event sink failed; it keeps receiving events: ${messageChain(error)}`),
  );
  events.subscribe(logSink(log));
  return events;
}

/** The service principal's certificate and credential, and its object id once Entra ID answered. */
export interface Identity {
  readonly certificate: LoadedCertificate;
  readonly credential: TokenCredential;
  readonly principalObjectId: string | undefined;
}

/** Loads the certificate and gets a first token; `run` carries on through an outage (see below). */
export async function authenticate(
  command: AzureCommand,
  config: RuntimeConfig,
  events: EventBus,
  log: Logger,
  signal: AbortSignal,
  sinks: Sinks | undefined,
): Promise<Identity> {
  const certificate = await loadCertificate(config.certificatePath, new Date());
  sinks?.setCertificateExpiry(certificate.notAfter);
  warnIfExpiringSoon(certificate, events);
  const credential = createCredential(config, certificate);
  try {
    const principalObjectId = await verifyAuthentication(credential, config, signal);
    return { certificate, credential, principalObjectId };
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
          ending: true,
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
    return { certificate, credential, principalObjectId: undefined };
  }
}

/** The ARM clients' shared parts: the request counter, the budget tracker and the pipeline policies. */
export interface Arm {
  readonly api: VmApi;
  readonly counter: RequestCounter;
  readonly budget: BudgetTracker;
  readonly policies: NonNullable<Parameters<typeof createArmVmApi>[2]>["policies"];
}

export function connectArm(
  config: RuntimeConfig,
  credential: TokenCredential,
  sinks: Sinks | undefined,
): Arm {
  const counter = createRequestCounter();
  // Every ARM answer's remaining-budget headers (budgets.ts): the loop slows down on them,
  // `status` and the metrics show the lowest.
  const budget = new BudgetTracker();
  sinks?.watchBudgets(budget);
  const policies = [budget.policy, ...(sinks?.armPolicies ?? [])];
  // Eviction-rate band and Spot price per VM for the metrics (when there are metrics): one Resource Graph query
  // an hour at most, the reading cached in the state directory.
  sinks?.watchSpotMarket((onError) =>
    createArmSpotMarketSource(config, credential, { counter, policies, onError }),
  );
  return { api: createArmVmApi(config, credential, { counter, policies }), counter, budget, policies };
}

export function restarterSettings(config: RuntimeConfig): RestarterSettings {
  return {
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
    // `auto` resolved here: Resource Graph past one subscription or three groups (issue 28).
    discovery: discoveryModeFor(
      config.discovery,
      config.resourceGroups,
      subscriptionsOfEntries(config.resourceGroups, config.subscriptionId).length,
    ),
  };
}

/** The Restarter with its cause gate and state store (the loop of `once` and `run`). */
export function createRestarter(
  config: RuntimeConfig,
  identity: Identity,
  arm: Arm,
  events: EventBus,
): Restarter {
  const { principalObjectId } = identity;
  // Why is a deallocated VM deallocated? Asked only with restartWhen "evicted"; pauses hold in both modes.
  const causeGate = new CauseGate({
    ...(config.restartWhen === "evicted"
      ? {
          source: createArmCauseSource(config, identity.credential, {
            counter: arm.counter,
            policies: arm.policies,
          }),
          resourceGraphQuota: () => arm.budget.resourceGraphQuota(),
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
  const settings = restarterSettings(config);
  return new Restarter({
    api: arm.api,
    store: createFileStateStore(config.stateDir),
    events,
    settings,
    counter: arm.counter,
    causeGate,
    budget: arm.budget,
    ...(settings.discovery === "resource-graph"
      ? {
          graph: createArmVmGraph(config, identity.credential, {
            counter: arm.counter,
            policies: arm.policies,
          }),
        }
      : {}),
    ...(principalObjectId ? { principalObjectId } : {}),
  });
}

/**
 * The lock `once` and `run` hold in the state directory: undefined when another process holds it; `lost`
 * aborts when it is lost while held. An unwritable state directory gives no lock but is no reason to stop.
 */
export async function acquireStateLock(
  config: RuntimeConfig,
  log: Logger,
): Promise<{ lock: HeldLock | undefined; lost: AbortSignal }> {
  const lost = new AbortController();
  try {
    const lock = await tryAcquireLock(config.stateDir, {
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
        log.error("lock-lost", { stateDir: config.stateDir }, `lost the lock: ${error.message}; stopping`);
        lost.abort(error);
      },
    });
    return { lock, lost: lost.signal };
  } catch (error) {
    if (!isUnwritableError(error)) throw error;
    // Better to restart VMs without a lock or memory than not at all (Azure refuses a second start
    // of a VM that is already starting with a 409, which the loop treats as "retry next cycle").
    log.error(
      "state-unwritable",
      { stateDir: config.stateDir, code: error.code },
      `cannot write the state directory (${error.code}): running without the lock and unable to persist state; fix ${config.stateDir}`,
    );
    return { lock: { release: async () => {} }, lost: lost.signal };
  }
}

/** The eviction history, for the lock holder only (its pruning rewrites the file). */
export async function openHistory(
  config: RuntimeConfig,
  log: Logger,
  events: EventBus,
  sinks: Sinks,
): Promise<HistoryRecorder> {
  const history = await openHistoryRecorder({
    stateDir: config.stateDir,
    historyDays: config.historyDays,
    log,
  });
  events.subscribe(history.sink);
  sinks.watchHistory(history);
  return history;
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

export function warnIfExpiringSoon(certificate: LoadedCertificate, events: EventBus): void {
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
