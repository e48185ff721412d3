// The restart loop: discover (discovery.ts), decide (pure, decisions.ts), start concurrently
// (bounded) and follow each start to its outcome without holding up the next cycle (starts.ts),
// remember what happened (ledger.ts; transitions.ts computes each record's change, state.ts stores
// it). Every state change is an event on the EventBus (events.ts); the log, notifications and
// metrics subscribe to it.
import { describeAzureError, type RequestCounter, type VmApi } from "../azure/azure";
import type { BudgetGauge } from "../azure/budgets";
import type { VmGraph } from "../azure/vmGraph";
import { CauseGate } from "../cause/causeGate";
import { type Clock, systemClock } from "../core/clock";
import { AuthError, messageChain, PermissionError } from "../core/errors";
import type { RestarterEvent } from "../core/events";
import { type RestarterState, type RestartTag, vmKey } from "../core/vm";
import { createEventBus, type EventBus } from "../signals/events";
import type { Logger } from "../signals/log";
import { logSink } from "../signals/logSink";
import type { StateStore } from "../state/state";
import { type BackoffPolicy, type Decision, selectRestartCandidates } from "./decisions";
import {
  type DiscoveryOptions,
  discoverByGraph,
  discoverGroups,
  discoveryDisagreements,
  type GroupDiscovery,
} from "./discovery";
import { Ledger, type ResourceGroupReport } from "./ledger";
import { PermissionWait } from "./permissionWait";
import {
  minCycleGapFor,
  nextCycleAt,
  RetryLead,
  type RetryPolicy,
  retryPolicyFor,
  StartPacer,
} from "./schedule";
import { StartFollower, type StartResult } from "./starts";
import type { FatalError } from "./transitions";

export type { Clock } from "../core/clock";
export { systemClock } from "../core/clock";
export type { ResourceGroupReport } from "./ledger";
export { Semaphore } from "./semaphore";
export type { StartResult } from "./starts";
export type { FatalError, StartEnd } from "./transitions";

export interface RestarterSettings {
  readonly resourceGroups: readonly string[];
  readonly tag: RestartTag;
  readonly maxConcurrentStarts: number;
  readonly backoff: BackoffPolicy;
  readonly startTimeoutMs: number;
  readonly intervalMs: number;
  /** When failed starts are retried (schedule.ts); by default derived from Azure's budgets, `backoff` for unexpected failures. */
  readonly retry?: RetryPolicy;
  /** Shortest gap between cycles when a retry falls due before the next interval (schedule.ts). */
  readonly minCycleGapMs?: number;
  /** Start requests per minute across all VMs, and how many may leave at once (schedule.ts). */
  readonly fleetStartsPerMinute?: number;
  readonly fleetStartBurst?: number;
  /** Opt-in fallback sizes keyed `<group>/<vm>` (any case), and how long capacity must fail first (starts.ts). */
  readonly fallbackSizes?: Readonly<Record<string, readonly string[]>>;
  readonly fallbackAfterMs?: number;
  /**
   * How VMs are found (issue 28; config `discovery`, `auto` already resolved): `list` (default) lists each
   * group; `resource-graph` asks Resource Graph once per cycle (deps.graph), with a list sweep every
   * `sweepEveryCycles` cycles (the first cycle is one).
   */
  readonly discovery?: "list" | "resource-graph";
  readonly sweepEveryCycles?: number;
}

/** Resource Graph discovery lists every group this often (cycles), to catch what the graph missed (issue 28). */
export const DISCOVERY_SWEEP_EVERY_CYCLES = 10;

export interface RestarterDeps {
  readonly api: VmApi;
  readonly store: StateStore;
  readonly settings: RestarterSettings;
  /** Where every state change goes; the caller subscribes the log and other sinks to it. */
  readonly events?: EventBus;
  /** Without `events`: a bus is made with this log as its only sink. */
  readonly log?: Logger;
  readonly clock?: Clock;
  readonly rng?: () => number;
  readonly counter?: RequestCounter;
  /** Why is it deallocated, and does that mean "start"? (owner stops, pauses; cause.ts). Absent = start every deallocation. */
  readonly causeGate?: CauseGate;
  /** The remaining budgets Azure reports (budgets.ts): low ones defer reads that can wait and slow starts. */
  readonly budget?: BudgetGauge;
  /** Resource Graph, for `settings.discovery: "resource-graph"` (azure/vmGraph.ts). */
  readonly graph?: VmGraph;
  /** Our service principal's object id (the token's `oid`): a missing permission names it (`run`). */
  readonly principalObjectId?: string;
}

export interface CycleReport {
  readonly startedAt: number;
  readonly finishedAt: number;
  /** Set when the cycle did not query ARM because ARM asked us to wait. */
  readonly skipped?: "throttled";
  readonly resourceGroups: ResourceGroupReport[];
  readonly decisions: Decision[];
  /** The starts this cycle issued, each settling with its outcome (never rejecting). */
  readonly starts: Promise<StartResult>[];
}

export class Restarter {
  private readonly clock: Clock;
  private readonly rng: () => number;
  private readonly retry: RetryPolicy;
  /** Paces start requests across all VMs within Azure's subscription budgets (schedule.ts). */
  readonly pacer: StartPacer;
  private readonly ledger: Ledger;
  private readonly follower: StartFollower;
  /** `run` waits out a missing permission instead of exiting (permissionWait.ts). */
  private readonly permissions: PermissionWait;
  private fatal: FatalError | undefined;
  private discovered: GroupDiscovery[] | undefined;
  /** Cycles discovered on Resource Graph so far (the sweep's count). */
  private discoveryCycles = 0;
  private onFatal: (() => void) | undefined;
  private onRetryScheduled: (() => void) | undefined;
  /** Why is it deallocated, and does that mean "start"? Tells what it decides on the bus. */
  private readonly causeGate: CauseGate;
  /** How far ahead of a retry the loop wakes, from its measured discovery times (schedule.ts). */
  private readonly lead: RetryLead;
  /** No cycle comes sooner than this after the last began (schedule.ts, nextCycleAt). */
  private readonly minCycleGapMs: number;

  constructor(private readonly deps: RestarterDeps) {
    this.clock = deps.clock ?? systemClock;
    // Without a gate configured, every deallocation is started (and announced as such).
    this.causeGate = deps.causeGate ?? CauseGate.startingEveryDeallocation(() => this.clock.now());
    this.rng = deps.rng ?? Math.random;
    this.retry = deps.settings.retry ?? retryPolicyFor(deps.settings.backoff);
    this.minCycleGapMs = deps.settings.minCycleGapMs ?? minCycleGapFor(this.retry);
    this.lead = new RetryLead(this.minCycleGapMs);
    this.pacer = new StartPacer(
      this.clock,
      deps.settings.fleetStartsPerMinute,
      deps.settings.fleetStartBurst,
    );
    this.permissions = new PermissionWait(
      deps.settings.intervalMs,
      () => this.clock.now(),
      deps.principalObjectId,
    );
    const events = this.permissions.filter(deps.events ?? createEventBus());
    if (!deps.events && deps.log) events.subscribe(logSink(deps.log));
    this.ledger = new Ledger(deps.store, events, this.clock);
    this.follower = new StartFollower({
      api: deps.api,
      ledger: this.ledger,
      clock: this.clock,
      rng: this.rng,
      retry: this.retry,
      pacer: this.pacer,
      fleetStartsPerMinute: deps.settings.fleetStartsPerMinute,
      budget: deps.budget,
      maxConcurrentStarts: deps.settings.maxConcurrentStarts,
      startTimeoutMs: deps.settings.startTimeoutMs,
      fallbackSizes: Object.fromEntries(
        Object.entries(deps.settings.fallbackSizes ?? {}).map(([key, sizes]) => [key.toLowerCase(), sizes]),
      ),
      ...(deps.settings.fallbackAfterMs !== undefined
        ? { fallbackAfterMs: deps.settings.fallbackAfterMs }
        : {}),
      onRetryScheduled: () => this.onRetryScheduled?.(),
      onFatal: (error) => {
        this.fatal ??= error;
        this.onFatal?.();
      },
    });
  }

  private get state(): RestarterState {
    return this.ledger.state;
  }

  private emit(...events: RestarterEvent[]): void {
    this.ledger.emit(...events);
  }

  /** Loads the state file; a missing or corrupt one is reported and rebuilt, never fatal. */
  init(): Promise<void> {
    return this.ledger.load();
  }

  get currentState(): RestarterState {
    return structuredClone(this.state);
  }

  /** What the last cycle's discovery saw, per group (the status page shows it instead of reading Azure again). */
  get lastDiscovery(): readonly GroupDiscovery[] | undefined {
    return this.discovered;
  }

  get startsInFlight(): number {
    return this.follower.size;
  }

  /** False while the state file cannot be written. */
  get stateSaved(): boolean {
    return this.ledger.saved;
  }

  /** Configured groups ARM said do not exist at their last list (`once` exits 4 on them). */
  get missingResourceGroups(): Array<{ resourceGroup: string; code: string; message: string }> {
    return this.ledger.missingResourceGroups;
  }

  /** A fatal error a start ran into (missing permission, token refused), if any. */
  get fatalError(): FatalError | undefined {
    return this.fatal;
  }

  /**
   * One cycle. Returns once discovery and decisions are done and starts are issued; the starts
   * go on in the background (see `CycleReport.starts`, `waitForStarts`).
   */
  async runCycle(signal: AbortSignal, options: { dryRun?: boolean } = {}): Promise<CycleReport> {
    const { settings } = this.deps;
    const startedAt = this.clock.now();
    const throttledUntil = this.state.throttledUntil;
    if (throttledUntil !== undefined && throttledUntil > startedAt) {
      this.emit({ type: "cycle-skipped", at: startedAt, until: throttledUntil });
      return {
        startedAt,
        finishedAt: startedAt,
        skipped: "throttled",
        resourceGroups: [],
        decisions: [],
        starts: [],
      };
    }

    // Starts in flight when discovery begins are not re-read (their power state is the one remembered,
    // `deallocated`); one that ends during discovery must still count as in flight for this cycle's
    // decisions, or the stale `deallocated` would start a VM that is running (BUG-4, test/RELIABILITY.md).
    const inFlightAtDiscovery = new Set(this.follower.keys());
    // A cycle takes the retries that fall due before the next cycle could begin (minCycleGapMs, which
    // also caps the wake lead, so it covers a cycle woken early for a retry); their requests wait for
    // their due times (starts.ts). Left to the next cycle, a retry due just after this one would wait
    // for the gap: up to 10 s late (seen in the bench, a retry 68.8 s after the last where 60 were due).
    const leadMs = this.minCycleGapMs;
    const discovered = await this.discover(signal, {
      // A VM we are starting is not read again: its start's outcome will tell.
      remembered: (vm) => {
        const key = vmKey(vm.resourceGroup, vm.name);
        if (this.follower.has(key)) return { powerState: this.state.vms[key]?.powerState };
        // Azure reports a read budget running low: a VM that waits for its retry anyway is not read
        // (it could not be started this cycle); it is read again once due, or once the budget recovers.
        const record = this.state.vms[key];
        if (
          this.deps.budget?.readsLow() &&
          record?.powerState === "deallocated" &&
          record.backoffUntil !== undefined &&
          record.backoffUntil > startedAt + leadMs
        ) {
          return { powerState: record.powerState };
        }
        return undefined;
      },
    });
    this.discovered = discovered;
    const groups = discovered.map((group) => this.ledger.absorb(group, this.follower));
    const observed = groups.flatMap((g) => g.observed);
    const now = this.clock.now();
    const decisions = selectRestartCandidates(
      observed,
      this.state,
      now,
      settings.tag,
      new Set([...inFlightAtDiscovery, ...this.follower.keys()]),
      leadMs,
    );
    // Only candidates that would be started are asked about (one Resource Graph query for all of them).
    const startable = decisions
      .filter((decision) => decision.action === "start")
      .map((decision) => decision.vm);
    const causes = await this.causeGate.decide(
      startable,
      (vm) => this.ledger.recordFor(vm),
      signal,
      (event) => this.emit(event),
    );
    // From waking to issuing starts: how early the next wake for a retry should come.
    this.lead.observe(this.clock.now() - startedAt);
    const starts: Promise<StartResult>[] = [];
    for (const decision of decisions) {
      if (decision.action !== "start") continue;
      const cause = causes?.get(vmKey(decision.vm.resourceGroup, decision.vm.name));
      if (cause && cause.action !== "start") continue;
      if (options.dryRun) {
        const { vm } = decision;
        this.emit({ type: "would-start", resourceGroup: vm.resourceGroup, vm: vm.name, at: now });
        continue;
      }
      starts.push(this.follower.launch(decision.vm, signal));
    }
    if (!options.dryRun) await this.persist();
    const finishedAt = this.clock.now();
    this.emit({
      type: "cycle-finished",
      at: finishedAt,
      durationSeconds: (finishedAt - startedAt) / 1000,
      vms: observed.length,
      starts: starts.length,
      inFlight: this.follower.size,
      armRequests: this.deps.counter?.snapshot().total,
    });
    return { startedAt, finishedAt, resourceGroups: groups.map((g) => g.report), decisions, starts };
  }

  /**
   * This cycle's discovery: lists, or one Resource Graph query (issue 28). With Resource Graph, every
   * `sweepEveryCycles`-th cycle (the first included) lists the groups too and uses the lists (they are ARM's own
   * view, and they see a missing group), logging where the two disagree; a graph that fails, or whose quota is
   * spent until its reset (the budget reader, `x-ms-user-quota-remaining`), gives way to lists for the cycle.
   */
  private async discover(signal: AbortSignal, options: DiscoveryOptions): Promise<GroupDiscovery[]> {
    const { settings, api, graph } = this.deps;
    const list = () => discoverGroups(api, settings.resourceGroups, settings.tag, signal, options);
    if (settings.discovery !== "resource-graph" || !graph) return list();
    const sweep = this.discoveryCycles % (settings.sweepEveryCycles ?? DISCOVERY_SWEEP_EVERY_CYCLES) === 0;
    this.discoveryCycles++;
    const quota = this.deps.budget?.resourceGraphQuota?.();
    if (quota && quota.remaining <= 0) {
      this.emit({
        type: "discovery-fallback",
        at: this.clock.now(),
        reason: "its query quota is spent until it resets",
      });
      return list();
    }
    let graphed: GroupDiscovery[];
    try {
      graphed = (await discoverByGraph(api, graph, settings.resourceGroups, settings.tag, signal, options))
        .groups;
    } catch (error) {
      if (signal.aborted) throw error;
      this.emit({
        type: "discovery-fallback",
        at: this.clock.now(),
        reason: `the query failed: ${describeAzureError(error).message}`,
      });
      return list();
    }
    if (!sweep) return graphed;
    const listed = await list();
    const differences = discoveryDisagreements(listed, graphed);
    if (differences.length > 0) {
      this.emit({
        type: "discovery-disagreement",
        at: this.clock.now(),
        differences: differences.join("; "),
      });
    }
    return listed;
  }

  /** Waits until every start in flight has its outcome (each is bounded by startTimeoutMs). */
  async waitForStarts(): Promise<StartResult[]> {
    const results = await this.follower.all();
    await this.ledger.settled();
    return results;
  }

  /**
   * The loop for `run`: a cycle every intervalMs (with a little jitter), longer when ARM throttles
   * us. Returns when `signal` aborts, after the starts in flight have recorded their outcome.
   * A missing permission is waited out with a backoff (permissionWait.ts); a refused token throws.
   */
  async runLoop(signal: AbortSignal, onTick?: () => void): Promise<void> {
    const { settings } = this.deps;
    this.permissions.startLooping();
    try {
      while (!signal.aborted) {
        onTick?.();
        const restored = this.permissions.cycleBegins();
        if (restored) this.emit(restored);
        const cycleStartedAt = this.clock.now();
        let denied: PermissionError | undefined;
        try {
          const { starts, skipped } = await this.runCycle(signal);
          if (skipped) this.permissions.cycleInconclusive();
          const works = this.fatal || skipped ? undefined : this.permissions.cycleSucceeded(starts.length);
          if (works) this.emit(works);
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof PermissionError) denied = error;
          else if (error instanceof AuthError) throw error;
          else {
            this.permissions.cycleInconclusive();
            this.emit({ type: "cycle-failed", at: this.clock.now(), message: messageChain(error) });
          }
        }
        denied ??= this.takeDeniedPermission();
        if (this.fatal) throw this.fatal;
        if (denied) {
          if (!(await this.waitForPermission(denied, signal))) break;
          continue;
        }
        const jitter = 1 + (this.rng() - 0.5) * 0.2;
        const regularAt = this.clock.now() + Math.round(settings.intervalMs * jitter);
        try {
          // A VM whose retry falls due before the next interval is not held back by up to a whole
          // interval (schedule.ts, nextCycleAt); a start that fails while we sleep may bring the wake forward.
          for (;;) {
            let wakeAt = nextCycleAt(
              cycleStartedAt,
              regularAt - cycleStartedAt,
              this.minCycleGapMs,
              this.pendingRetryTimes(cycleStartedAt),
            );
            const throttledUntil = this.state.throttledUntil;
            if (throttledUntil !== undefined) wakeAt = Math.max(wakeAt, throttledUntil);
            // A read budget running low: no cycle earlier than the interval (each lists every group).
            if (this.deps.budget?.readsLow()) wakeAt = Math.max(wakeAt, regularAt);
            if (!(await this.sleepUnlessFatal(wakeAt - this.clock.now(), signal)) || this.fatal) break;
          }
        } catch {
          break;
        }
        // A start refused a permission while we slept: wait before the next cycle, as for a read.
        const refused = this.takeDeniedPermission();
        if (this.fatal) throw this.fatal;
        if (refused && !(await this.waitForPermission(refused, signal))) break;
      }
    } finally {
      // Whether stopped by a signal or by a fatal error, the starts in flight stop being followed
      // and settle promptly as "interrupted" (the next run reads their power state again).
      this.follower.abandonAll();
      await this.waitForStarts();
      await this.persist();
    }
  }

  /** A start's refused permission, taken out of `fatal` (in `run` it is waited out, not fatal). */
  private takeDeniedPermission(): PermissionError | undefined {
    if (!(this.fatal instanceof PermissionError)) return undefined;
    const denied = this.fatal;
    this.fatal = undefined;
    return denied;
  }

  /** Reports a refused permission (once per episode) and sleeps its backoff; false when stopped. */
  private async waitForPermission(denied: PermissionError, signal: AbortSignal): Promise<boolean> {
    const { delayMs, event } = this.permissions.denied(denied);
    if (event) this.emit(event);
    try {
      await this.clock.sleep(delayMs, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** When to wake for the VMs waiting for a retry: their due times, less the measured discovery lead. */
  private *pendingRetryTimes(cycleStartedAt?: number): Iterable<number> {
    // A VM waits for Azure to say why it is deallocated: ask again at the shortest gap between cycles (5 s
    // with the default 20 s capacity interval) rather than after a whole interval (docs/signal-delays.md):
    // Resource Graph answers 15 queries per 5 s per caller, so one question per gap is well inside it, and the
    // start follows the answer in the same cycle.
    if (cycleStartedAt !== undefined && this.causeGate.awaitingCause)
      yield cycleStartedAt + this.minCycleGapMs;
    const leadMs = this.lead.ms;
    for (const record of Object.values(this.state.vms)) {
      if (record.backoffUntil === undefined || record.powerState !== "deallocated") continue;
      if (this.follower.has(vmKey(record.resourceGroup, record.name))) continue;
      const wake = record.backoffUntil - leadMs;
      // Due after the last cycle began (its start ended during that cycle, which saw it in flight and could
      // not take it): wake for it even when the lead puts the wake before that cycle's beginning, which
      // nextCycleAt leaves to that cycle; the bench saw such a retry wait a whole interval (60 s, not 31).
      yield cycleStartedAt !== undefined && record.backoffUntil > cycleStartedAt
        ? Math.max(wake, cycleStartedAt + 1)
        : wake;
    }
  }

  /** Sleeps `ms`; true when a retry was scheduled meanwhile (the caller works out the wake again). */
  private async sleepUnlessFatal(ms: number, signal: AbortSignal): Promise<boolean> {
    const wake = new AbortController();
    let rescheduled = false;
    this.onFatal = () => wake.abort();
    this.onRetryScheduled = () => {
      rescheduled = true;
      wake.abort();
    };
    try {
      await this.clock.sleep(Math.max(0, ms), AbortSignal.any([signal, wake.signal]));
    } catch (error) {
      if (signal.aborted) throw error;
    } finally {
      this.onFatal = undefined;
      this.onRetryScheduled = undefined;
    }
    return rescheduled;
  }

  /** Saves the state (serialised with earlier saves; an unchanged state is not written again). */
  persist(): Promise<void> {
    return this.ledger.persist();
  }
}
