// The commands behind the CLI (`once`, `run`, `status`, `simulate-eviction`), over injected
// dependencies so tests can drive them in-process. cli.ts only parses arguments and wires these.

import type { ArmRequestCounts, RequestCounter, VmApi } from "../azure/azure";
import { describeAzureError } from "../azure/azure";
import type { BudgetReading, BudgetTracker } from "../azure/budgets";
import { OPT_IN_HOW } from "../azure/roleActions";
import { marketFigures, type SpotMarketSource } from "../azure/spotMarket";
import { PermissionError, permissionError, UsageError } from "../core/errors";
import { EVICTABLE_PRIORITIES } from "../core/spotEligibility";
import { type RestarterState, type RestartTag, vmKey } from "../core/vm";
import { classifyStartOutcome, isRestartCandidate } from "../loop/decisions";
import { discoverGroup, type GroupDiscovery } from "../loop/discovery";
import { describeSize } from "../loop/fallback";
import type { CycleReport, FatalError, Restarter, StartResult } from "../loop/restarter";
import { resourceGroupMissingMessage } from "../signals/events";
import type { Logger } from "../signals/log";
import type { HeartbeatReport } from "../state/heartbeat";
import { type Pause, pauseFor } from "../state/pause";
import type { StateStore } from "../state/state";

/** The object `once --json` prints (documented in runtime/README.md; demo and benchmark read it). */
export interface OnceSummary {
  readonly version: 1;
  readonly command: "once";
  readonly dryRun: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  /** Why the cycle did not run: another instance holds the lock, or ARM's Retry-After has not passed. */
  readonly skipped: "locked" | "throttled" | null;
  readonly throttledUntil: string | null;
  readonly resourceGroups: ReadonlyArray<{
    name: string;
    vmsListed: number;
    candidates: number;
    error: string | null;
  }>;
  readonly vms: readonly VmSummary[];
  readonly starts: {
    readonly issued: number;
    readonly succeeded: number;
    readonly failed: number;
    /** Stopped by a signal or by startTimeoutSeconds, or no token: outcome unknown. */
    readonly unfinished: number;
    /** Milliseconds between the first and the last start request of this cycle. */
    readonly requestSpreadMs: number | null;
  };
  /** HTTP requests sent to ARM by this process (SDK retries and LRO polls included). */
  readonly armRequests: ArmRequestCounts | null;
  /** The lowest remaining throttling budget Azure reported to this process (budgets.ts). */
  readonly lowestBudget: BudgetSummary | null;
  /** Set when a start ran into a fatal error (missing permission). */
  readonly error: string | null;
}

export interface VmSummary {
  readonly resourceGroup: string;
  readonly name: string;
  readonly priority: string | null;
  readonly evictionPolicy: string | null;
  readonly tagged: boolean;
  /** From the instance view; null when not read (not a candidate, start in flight, read failed). */
  readonly powerState: string | null;
  readonly decision: "start" | "skip";
  /** Why not started (`running`, `untagged`, `in-backoff`, …); null when started. */
  readonly reason: string | null;
  readonly backoffUntil: string | null;
  readonly start: {
    readonly outcome: string;
    readonly code: string | null;
    readonly message: string | null;
    readonly durationMs: number;
    readonly backoffUntil: string | null;
  } | null;
}

/** A remaining budget as Azure reported it: `policy` e.g. `Microsoft.Compute/HighCostGet3Min`. */
export interface BudgetSummary {
  readonly policy: string;
  readonly remaining: number;
  readonly full: number;
  readonly at: string;
}

const budgetSummary = (r: BudgetReading | undefined): BudgetSummary | null =>
  r ? { policy: r.policy, remaining: r.remaining, full: r.full, at: new Date(r.at).toISOString() } : null;

export interface OnceDeps {
  readonly restarter: Restarter;
  readonly counter?: RequestCounter;
  readonly budget?: BudgetTracker;
  readonly tag: RestartTag;
  readonly now?: () => number;
}

/** Starts whose outcome is unknown: we stopped following them, or had no token to. */
const unfinishedOutcomes: ReadonlySet<string> = new Set(["interrupted", "timeout", "token-unavailable"]);

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** One cycle, then waits for the starts it issued (each bounded by startTimeoutSeconds). */
export async function runOnce(
  deps: OnceDeps,
  signal: AbortSignal,
  options: { dryRun: boolean },
): Promise<{ summary: OnceSummary; fatal?: FatalError }> {
  const now = deps.now ?? Date.now;
  const started = now();
  const cycle = await deps.restarter.runCycle(signal, { dryRun: options.dryRun });
  const results = await Promise.all(cycle.starts);
  await deps.restarter.waitForStarts();
  const fatal = deps.restarter.fatalError;
  return { summary: buildSummary(cycle, results, deps, options.dryRun, started, now()), fatal };
}

export function buildSummary(
  cycle: CycleReport,
  results: readonly StartResult[],
  deps: Pick<OnceDeps, "counter" | "tag" | "restarter" | "budget">,
  dryRun: boolean,
  startedAt: number,
  finishedAt: number,
): OnceSummary {
  const state = deps.restarter.currentState;
  const byKey = new Map(results.map((r) => [vmKey(r.resourceGroup, r.name), r]));
  const vms = cycle.decisions.map((decision): VmSummary => {
    const { vm } = decision;
    const key = vmKey(vm.resourceGroup, vm.name);
    const result = byKey.get(key);
    return {
      resourceGroup: vm.resourceGroup,
      name: vm.name,
      priority: vm.priority ?? null,
      evictionPolicy: vm.evictionPolicy ?? null,
      tagged: isRestartCandidate({ priority: "Spot", evictionPolicy: "Deallocate", tags: vm.tags }, deps.tag),
      powerState: vm.powerState ?? null,
      decision: decision.action,
      reason: decision.action === "skip" ? decision.reason : null,
      backoffUntil: iso(state.vms[key]?.backoffUntil),
      start: result
        ? {
            outcome: result.outcome,
            code: result.code ?? null,
            message: result.message ?? null,
            durationMs: result.endedAt - result.requestedAt,
            backoffUntil: iso(result.backoffUntil),
          }
        : null,
    };
  });
  const requested = results.map((r) => r.requestedAt);
  const fatal = deps.restarter.fatalError;
  return {
    version: 1,
    command: "once",
    dryRun,
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    durationMs: finishedAt - startedAt,
    skipped: cycle.skipped ?? null,
    throttledUntil: iso(state.throttledUntil),
    resourceGroups: cycle.resourceGroups.map((g) => ({ ...g, error: g.error ?? null })),
    vms,
    starts: {
      issued: results.length,
      succeeded: results.filter((r) => r.outcome === "started").length,
      failed: results.filter((r) => !unfinishedOutcomes.has(r.outcome) && r.outcome !== "started").length,
      unfinished: results.filter((r) => unfinishedOutcomes.has(r.outcome)).length,
      requestSpreadMs: requested.length ? Math.max(...requested) - Math.min(...requested) : null,
    },
    armRequests: deps.counter?.snapshot() ?? null,
    lowestBudget: budgetSummary(deps.budget?.lowest()),
    error: fatal ? fatal.message : null,
  };
}

/** The summary `once --json` prints when another instance holds the lock. */
export function lockedSummary(dryRun: boolean, at: number): OnceSummary {
  const time = new Date(at).toISOString();
  return {
    version: 1,
    command: "once",
    dryRun,
    startedAt: time,
    finishedAt: time,
    durationMs: 0,
    skipped: "locked",
    throttledUntil: null,
    resourceGroups: [],
    vms: [],
    starts: { issued: 0, succeeded: 0, failed: 0, unfinished: 0, requestSpreadMs: null },
    armRequests: null,
    lowestBudget: null,
    error: null,
  };
}

export interface StatusRow {
  readonly resourceGroup: string;
  readonly name: string;
  readonly powerState: string | null;
  readonly evictedSince: string | null;
  readonly lastEvictionSeenAt: string | null;
  readonly lastStartAt: string | null;
  readonly lastStartedAt: string | null;
  readonly lastResult: string | null;
  readonly startAttempts: number;
  readonly backoffUntil: string | null;
  /**
   * Why it was last deallocated, when known: `evicted` (Azure), `owner` (its owner: Resource Health,
   * the Activity Log, or our start preempted), with when, who and where it was read.
   */
  readonly lastCause: {
    readonly kind: "evicted" | "owner";
    readonly at: string;
    readonly by: string | null;
    readonly source: string;
    /** Seconds from the deallocation first seen to Azure saying why (null when not learnt by asking). */
    readonly knownAfterSeconds: number | null;
  } | null;
  /** `pause` in force: until this time, or "resume" (until `resume`). */
  readonly pausedUntil: string | null;
  /** Its size now (`hardwareProfile.vmSize`), null when unknown (the list failed and state knows none). */
  readonly vmSize: string | null;
  /**
   * Its own size while it runs or waits in a fallback size (`fallbackSizes`; state's `size.originalSize`), so
   * `vmSize` is the fallback; null when it has its own size.
   */
  readonly originalVmSize: string | null;
  /**
   * Azure's eviction-rate band for its size in its region (Resource Graph SpotResources, e.g. "10-15", percent
   * over the trailing 28 days); null when unknown (azure/spotMarket.ts).
   */
  readonly evictionRate: string | null;
  /** The latest Spot price of its size, region and OS, USD per hour (SpotResources); null when unknown. */
  readonly spotPriceUsdPerHour: number | null;
}

export interface StatusReport {
  readonly version: 1;
  readonly command: "status";
  readonly generatedAt: string;
  readonly throttledUntil: string | null;
  readonly vms: StatusRow[];
  /** The lowest remaining throttling budget Azure reported to status's own reads (shared by every client of the subscription). */
  readonly lowestBudget: BudgetSummary | null;
  /** Problems reading live state (the rows then come from the state file only). */
  readonly errors: string[];
  /** The loop's heartbeat: when the last cycle of once or run ended, which mode and process (heartbeat.ts). */
  readonly heartbeat: HeartbeatReport | null;
  /** Configured groups ARM says do not exist (each also in `errors`, in words): `status` then exits 4. */
  readonly missingResourceGroups: Array<{ resourceGroup: string; code: string }>;
}

/**
 * Each tagged Spot VM with its live power state (discovery.ts, as a cycle: one list per group + one
 * instance view per candidate) and what the state file remembers. Changes nothing.
 */
export async function collectStatus(
  api: VmApi,
  store: StateStore,
  settings: { resourceGroups: readonly string[]; tag: RestartTag },
  signal: AbortSignal,
  now = Date.now(),
  pauses: readonly Pause[] = [],
  budget?: BudgetTracker,
  heartbeat: HeartbeatReport | null = null,
  options: {
    /**
     * What a cycle's discovery saw (`run`'s status page): used instead of reading Azure again; a group it
     * lacks shows the state file's VMs.
     */
    readonly discovered?: readonly GroupDiscovery[];
    /** Eviction-rate bands and Spot prices (azure/spotMarket.ts); without it they are null. */
    readonly market?: SpotMarketSource;
  } = {},
): Promise<StatusReport> {
  const { state } = await store.load();
  const errors: string[] = [];
  const missingResourceGroups: StatusReport["missingResourceGroups"] = [];
  const rows = new Map<string, StatusRow>();
  // Where each live VM runs and on what OS: its size's market figures are looked up by them at the end.
  const placed = new Map<string, { location?: string; osType?: string }>();
  const row = (
    resourceGroup: string,
    name: string,
    powerState: string | null,
    s: RestarterState,
    listedSize?: string,
  ): StatusRow => {
    const record = s.vms[vmKey(resourceGroup, name)];
    return {
      resourceGroup,
      name,
      powerState: powerState ?? record?.powerState ?? null,
      evictedSince: iso(record?.evictedSince),
      lastEvictionSeenAt: iso(record?.lastEvictionSeenAt),
      lastStartAt: iso(record?.lastStartAt),
      lastStartedAt: iso(record?.lastStartedAt),
      lastResult: record?.lastResult
        ? `${record.lastResult.outcome}${record.lastResult.code ? ` (${record.lastResult.code})` : ""}`
        : null,
      startAttempts: record?.startAttempts ?? 0,
      backoffUntil:
        record?.backoffUntil !== undefined && record.backoffUntil > now ? iso(record.backoffUntil) : null,
      lastCause: record?.cause
        ? {
            kind: record.cause.kind,
            at: new Date(record.cause.at).toISOString(),
            by: record.cause.by ?? null,
            source: record.cause.source,
            knownAfterSeconds:
              record.cause.knownAfterMs !== undefined
                ? Math.round(record.cause.knownAfterMs / 100) / 10
                : null,
          }
        : null,
      pausedUntil: (() => {
        const pause = pauseFor(pauses, resourceGroup, name, now);
        if (!pause) return null;
        return pause.until === undefined ? "resume" : new Date(pause.until).toISOString();
      })(),
      ...describeSize(listedSize, record?.size),
      evictionRate: null,
      spotPriceUsdPerHour: null,
    };
  };
  // The state file's VMs of a group whose live state is unknown (its list failed, or no cycle yet).
  const rowsFromState = (resourceGroup: string) => {
    for (const record of Object.values(state.vms)) {
      if (record.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()) {
        rows.set(
          vmKey(record.resourceGroup, record.name),
          row(record.resourceGroup, record.name, null, state),
        );
      }
    }
  };
  for (const resourceGroup of settings.resourceGroups) {
    const group = options.discovered
      ? options.discovered.find((g) => g.resourceGroup === resourceGroup)
      : await discoverGroup(api, resourceGroup, settings.tag, signal);
    if (!group) {
      rowsFromState(resourceGroup);
      continue;
    }
    const failure = group.listFailure;
    if (failure) {
      if (failure.kind === "azure" && failure.outcome.kind === "forbidden") {
        throw permissionError(failure.outcome, `on resource group ${resourceGroup}`, failure.error);
      }
      if (failure.kind === "azure" && failure.outcome.kind === "gone") {
        missingResourceGroups.push({ resourceGroup, code: failure.outcome.code });
        errors.push(resourceGroupMissingMessage(resourceGroup, failure.outcome.code));
      } else errors.push(`${resourceGroup}: ${describeAzureError(failure.error).message}`);
      rowsFromState(resourceGroup);
      continue;
    }
    for (const { vm, candidate, powerState, failure: readFailure } of group.vms) {
      if (!candidate) continue;
      if (readFailure)
        errors.push(`${resourceGroup}/${vm.name}: ${describeAzureError(readFailure.error).message}`);
      rows.set(
        vmKey(resourceGroup, vm.name),
        row(resourceGroup, vm.name, powerState ?? null, state, vm.vmSize),
      );
      placed.set(vmKey(resourceGroup, vm.name), { location: vm.location, osType: vm.osType });
    }
  }
  const market = options.market;
  const reading = market
    ? await market.read(
        [...rows].flatMap(([key, r]) => {
          const location = placed.get(key)?.location;
          return location && r.vmSize ? [{ location, skuName: r.vmSize }] : [];
        }),
        signal,
      )
    : undefined;
  for (const [key, r] of rows) {
    rows.set(key, { ...r, ...marketFigures(reading, { ...placed.get(key), vmSize: r.vmSize }) });
  }
  return {
    version: 1,
    command: "status",
    generatedAt: new Date(now).toISOString(),
    throttledUntil:
      state.throttledUntil !== undefined && state.throttledUntil > now ? iso(state.throttledUntil) : null,
    vms: [...rows.values()],
    lowestBudget: budgetSummary(budget?.lowest()),
    heartbeat,
    errors,
    missingResourceGroups,
  };
}

/** Asks Azure to evict a Spot VM (to test the whole chain); finds its group if several are configured. */
export async function simulateEviction(
  api: VmApi,
  settings: { resourceGroups: readonly string[] },
  vmName: string,
  log: Logger,
  signal: AbortSignal,
  resourceGroup?: string,
): Promise<{ resourceGroup: string; name: string }> {
  let group = resourceGroup;
  let name = vmName;
  if (!group && settings.resourceGroups.length === 1) group = settings.resourceGroups[0];
  if (!group) {
    for (const rg of settings.resourceGroups) {
      const found = (await api.listVms(rg, signal)).find(
        (vm) => vm.name.toLowerCase() === vmName.toLowerCase(),
      );
      if (found) {
        group = rg;
        name = found.name;
        break;
      }
    }
    if (!group) {
      throw new UsageError(
        `VM "${vmName}" is not in any configured resource group (${settings.resourceGroups.join(", ")})`,
      );
    }
  }
  try {
    await api.simulateEviction(group, name, signal);
  } catch (error) {
    const outcome = classifyStartOutcome(describeAzureError(error), "simulateEviction");
    if (outcome.kind === "forbidden") {
      // The least-privilege role grants the action only on the owner's word (roleActions.ts OPT_IN_FEATURES).
      throw new PermissionError(
        `the service principal lacks the permission ${outcome.permission} on ${group}/${name} (${outcome.code}): ` +
          "simulate-eviction is opt-in for the least-privilege role; to enable it: " +
          `${OPT_IN_HOW["simulate-eviction"]} (or assign the Contributor role)`,
        outcome.permission,
        { cause: error },
      );
    }
    if (outcome.kind === "gone") {
      throw new UsageError(`VM ${group}/${name} was not found (${outcome.code})`, { cause: error });
    }
    const facts = describeAzureError(error);
    if (facts.statusCode === 409) {
      // Azure evicts only Spot VMs: on a Regular one it answers 409 OperationNotAllowed ("… since it is not
      // an Azure Spot VM"). Said from the VM's own priority (absent on a Regular VM, 2026-04-01), as bad
      // input (exit 2), issue 23 item 7.
      const listed = await api
        .listVms(group, signal)
        .then((vms) => vms.find((vm) => vm.name.toLowerCase() === name.toLowerCase()))
        .catch(() => undefined);
      if (listed && !(EVICTABLE_PRIORITIES as readonly string[]).includes(listed.priority ?? "Regular")) {
        throw new UsageError(
          `VM ${group}/${name} is not a Spot VM (priority ${listed.priority ?? "Regular"}): Azure evicts only Spot VMs, so there is no eviction to simulate (and spot-restarter never restarts it)`,
          { cause: error },
        );
      }
      // Azure refuses to evict a VM that is not running (409 OperationNotAllowed). Say why from the VM's own
      // power state rather than from the wording of the message, and what to do instead.
      const powerState = await api
        .readInstanceState(group, name, signal)
        .then((view) => view.powerState)
        .catch(() => undefined);
      if (powerState === "deallocated") {
        throw new UsageError(
          `VM ${group}/${name} is already deallocated; \`once\`/\`run\` will start it (if it is a tagged Spot VM), then simulate-eviction can evict it again`,
          { cause: error },
        );
      }
      if (powerState !== undefined && powerState !== "running") {
        throw new UsageError(
          `VM ${group}/${name} is ${powerState}: only a running Spot VM can be evicted (${facts.code ?? facts.statusCode}: ${facts.message})`,
          { cause: error },
        );
      }
    }
    throw new Error(
      `simulating the eviction of ${group}/${name} failed (${facts.code ?? facts.statusCode}): ${facts.message}`,
      {
        cause: error,
      },
    );
  }
  log.info("eviction-simulated", { vm: `${group}/${name}` }, "Azure will evict this Spot VM shortly");
  return { resourceGroup: group, name };
}
