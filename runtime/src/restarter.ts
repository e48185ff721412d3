// The restart loop: discover (discovery.ts), decide (pure, decisions.ts), start concurrently
// (bounded) and follow each start to its outcome without holding up the next cycle, remember what
// happened (transitions.ts computes each record's change, state.ts stores it). Every state change
// is an event on the EventBus (events.ts); the log, notifications and metrics subscribe to it.
import { isCredentialError } from "./authFailure";
import type { RequestCounter, VmApi } from "./azure";
import { describeAzureError } from "./azure";
import type { CauseGate } from "./causeGate";
import { type Clock, systemClock } from "./clock";
import {
  type BackoffPolicy,
  classifyStartOutcome,
  type Decision,
  type ObservedVm,
  type RestarterState,
  type RestartTag,
  selectRestartCandidates,
  type VmRecord,
  vmKey,
} from "./decisions";
import { discoverGroups, type GroupDiscovery, type ReadFailure } from "./discovery";
import { AuthError, messageChain, PermissionError } from "./errors";
import { createEventBus, type EventBus, type RestarterEvent } from "./events";
import type { Logger } from "./log";
import { logSink } from "./logSink";
import { minCycleGapFor, nextCycleAt, type RetryPolicy, retryPolicyFor, StartPacer } from "./schedule";
import { Semaphore } from "./semaphore";
import { StateSaver, type StateStore } from "./state";
import { TokenHealth } from "./tokenHealth";
import {
  type FatalError,
  newRecord,
  observePowerState,
  readFailed,
  type StartEnd,
  startEnded,
  startIssued,
} from "./transitions";

export type { Clock } from "./clock";
export { systemClock } from "./clock";
export { Semaphore } from "./semaphore";
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
}

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
}

/** What one start ended with, for summaries. */
export interface StartResult {
  readonly resourceGroup: string;
  readonly name: string;
  readonly outcome: StartEnd["kind"];
  readonly code?: string;
  readonly message?: string;
  readonly backoffUntil?: number;
  readonly requestedAt: number;
  readonly endedAt: number;
}

export interface ResourceGroupReport {
  readonly name: string;
  readonly vmsListed: number;
  readonly candidates: number;
  readonly error?: string;
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
  private state: RestarterState = { vms: {} };
  private readonly inFlight = new Map<string, Promise<StartResult>>();
  private readonly clock: Clock;
  private readonly rng: () => number;
  private readonly slots: Semaphore;
  private readonly retry: RetryPolicy;
  /** Paces start requests across all VMs within Azure's subscription budgets (schedule.ts). */
  readonly pacer: StartPacer;
  private readonly events: EventBus;
  private readonly saver: StateSaver;
  private readonly token = new TokenHealth();
  private readonly abandonStarts = new AbortController();
  private fatal: FatalError | undefined;
  private onFatal: (() => void) | undefined;
  private onRetryScheduled: (() => void) | undefined;

  constructor(private readonly deps: RestarterDeps) {
    this.clock = deps.clock ?? systemClock;
    this.rng = deps.rng ?? Math.random;
    this.slots = new Semaphore(deps.settings.maxConcurrentStarts);
    this.retry = deps.settings.retry ?? retryPolicyFor(deps.settings.backoff);
    this.pacer = new StartPacer(
      this.clock,
      deps.settings.fleetStartsPerMinute,
      deps.settings.fleetStartBurst,
    );
    this.events = deps.events ?? createEventBus();
    if (!deps.events && deps.log) this.events.subscribe(logSink(deps.log));
    this.saver = new StateSaver(deps.store, (event) => this.events.emit(event), this.clock);
  }

  private emit(...events: RestarterEvent[]): void {
    for (const event of events) this.events.emit(event);
  }

  /** Loads the state file; a missing or corrupt one is reported and rebuilt, never fatal. */
  async init(): Promise<void> {
    const loaded = await this.deps.store.load();
    this.state = loaded.state;
    const { path } = this.deps.store;
    const at = this.clock.now();
    if (loaded.problem?.kind === "corrupt") {
      this.emit({ type: "state-rebuilt", at, path, detail: loaded.problem.detail });
    } else if (loaded.problem) {
      this.emit({ type: "state-new", at, path });
    }
  }

  get currentState(): RestarterState {
    return structuredClone(this.state);
  }

  get startsInFlight(): number {
    return this.inFlight.size;
  }

  /** False while the state file cannot be written. */
  get stateSaved(): boolean {
    return this.saver.saved;
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
    const inFlightAtDiscovery = new Set(this.inFlight.keys());
    const discovered = await discoverGroups(this.deps.api, settings.resourceGroups, settings.tag, signal, {
      // A VM we are starting is not read again: its start's outcome will tell.
      remembered: (vm) => {
        const key = vmKey(vm.resourceGroup, vm.name);
        return this.inFlight.has(key) ? { powerState: this.state.vms[key]?.powerState } : undefined;
      },
    });
    const groups = discovered.map((group) => this.absorb(group));
    const observed = groups.flatMap((g) => g.observed);
    const now = this.clock.now();
    const decisions = selectRestartCandidates(
      observed,
      this.state,
      now,
      settings.tag,
      new Set([...inFlightAtDiscovery, ...this.inFlight.keys()]),
    );
    // Only candidates that would be started are asked about (one Resource Graph query for all of them).
    const startable = decisions
      .filter((decision) => decision.action === "start")
      .map((decision) => decision.vm);
    const causes = this.deps.causeGate
      ? await this.deps.causeGate.decide(startable, (vm) => this.recordFor(vm), signal)
      : undefined;
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
      starts.push(this.launchStart(decision.vm, signal));
    }
    if (!options.dryRun) await this.persist();
    const finishedAt = this.clock.now();
    this.emit({
      type: "cycle-finished",
      at: finishedAt,
      durationSeconds: (finishedAt - startedAt) / 1000,
      vms: observed.length,
      starts: starts.length,
      inFlight: this.inFlight.size,
      armRequests: this.deps.counter?.snapshot().total,
    });
    return { startedAt, finishedAt, resourceGroups: groups.map((g) => g.report), decisions, starts };
  }

  /** Waits until every start in flight has its outcome (each is bounded by startTimeoutMs). */
  async waitForStarts(): Promise<StartResult[]> {
    const results = await Promise.all([...this.inFlight.values()]);
    await this.saver.settled();
    return results;
  }

  /**
   * The loop for `run`: a cycle every intervalMs (with a little jitter), longer when ARM throttles
   * us. Returns when `signal` aborts, after the starts in flight have recorded their outcome.
   * Throws a FatalError when a permission is missing.
   */
  async runLoop(signal: AbortSignal, onTick?: () => void): Promise<void> {
    const { settings } = this.deps;
    try {
      while (!signal.aborted) {
        onTick?.();
        const cycleStartedAt = this.clock.now();
        try {
          await this.runCycle(signal);
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof AuthError || error instanceof PermissionError) throw error;
          this.emit({ type: "cycle-failed", at: this.clock.now(), message: messageChain(error) });
        }
        if (this.fatal) throw this.fatal;
        const jitter = 1 + (this.rng() - 0.5) * 0.2;
        const regularAt = this.clock.now() + Math.round(settings.intervalMs * jitter);
        try {
          // A VM whose retry falls due before the next interval is not held back by up to a whole
          // interval (schedule.ts, nextCycleAt); a start that fails while we sleep may bring the wake forward.
          for (;;) {
            let wakeAt = nextCycleAt(
              cycleStartedAt,
              regularAt - cycleStartedAt,
              settings.minCycleGapMs ?? minCycleGapFor(this.retry),
              this.pendingRetryTimes(),
            );
            const throttledUntil = this.state.throttledUntil;
            if (throttledUntil !== undefined) wakeAt = Math.max(wakeAt, throttledUntil);
            if (!(await this.sleepUnlessFatal(wakeAt - this.clock.now(), signal)) || this.fatal) break;
          }
        } catch {
          break;
        }
        if (this.fatal) throw this.fatal;
      }
    } finally {
      // Whether stopped by a signal or by a fatal error, the starts in flight stop being followed
      // and settle promptly as "interrupted" (the next run reads their power state again).
      this.abandonStarts.abort();
      await this.waitForStarts();
      await this.persist();
    }
  }

  /** When the VMs waiting for a retry fall due. */
  private *pendingRetryTimes(): Iterable<number> {
    for (const record of Object.values(this.state.vms)) {
      if (record.backoffUntil === undefined || record.powerState !== "deallocated") continue;
      if (!this.inFlight.has(vmKey(record.resourceGroup, record.name))) yield record.backoffUntil;
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

  /** Takes one group's discovery into the state: records, token health, throttling, forgetting. */
  private absorb(group: GroupDiscovery): { observed: ObservedVm[]; report: ResourceGroupReport } {
    const { resourceGroup } = group;
    if (group.listFailure) {
      const failure = group.listFailure;
      const error =
        failure.kind === "token"
          ? `token-unavailable: ${this.noteTokenFailure(failure.error)}`
          : `${failure.outcome.kind}: ${"code" in failure.outcome ? failure.outcome.code : failure.outcome.kind}`;
      if (failure.kind === "azure") this.handleReadFailure(failure, { resourceGroup });
      return { observed: [], report: { name: resourceGroup, vmsListed: 0, candidates: 0, error } };
    }
    this.noteTokenOk();
    const observed: ObservedVm[] = [];
    for (const { vm, source, powerState, failure } of group.vms) {
      if (source === "read") {
        const key = vmKey(vm.resourceGroup, vm.name);
        const change = observePowerState(this.state.vms[key], vm, powerState, this.clock.now());
        this.state.vms[key] = change.record;
        this.emit(...change.events);
      } else if (failure?.kind === "token") {
        this.noteTokenFailure(failure.error);
      } else if (failure?.kind === "azure") {
        if (failure.outcome.kind === "gone") {
          this.forget(resourceGroup, vm.name, "deleted between list and instance view");
          continue;
        }
        this.handleReadFailure(failure, { resourceGroup, vm: vm.name });
      }
      observed.push({ ...vm, powerState });
    }
    // Records of VMs no longer listed as candidates (deleted, untagged): forget them.
    const candidates = group.vms.filter((d) => d.candidate);
    const candidateKeys = new Set(candidates.map((d) => vmKey(resourceGroup, d.vm.name)));
    for (const [key, record] of Object.entries(this.state.vms)) {
      if (record.resourceGroup.toLowerCase() !== resourceGroup.toLowerCase()) continue;
      if (!candidateKeys.has(key) && !this.inFlight.has(key)) {
        this.forget(record.resourceGroup, record.name, "no longer listed as a tagged Spot VM");
      }
    }
    return {
      observed,
      report: { name: resourceGroup, vmsListed: group.vms.length, candidates: candidates.length },
    };
  }

  /** The credential got no token: reported once per change; the loop carries on and recovers by itself. */
  private noteTokenFailure(error: unknown): string {
    const { message, event } = this.token.failed(error, this.clock.now());
    if (event) this.emit(event);
    return message;
  }

  private noteTokenOk(): void {
    const event = this.token.succeeded(this.clock.now());
    if (event) this.emit(event);
  }

  private handleReadFailure(
    failure: Extract<ReadFailure, { kind: "azure" }>,
    where: { resourceGroup: string; vm?: string },
  ): void {
    const result = readFailed(failure, where, this.clock.now());
    if (result.effect?.kind === "fatal") throw result.effect.error;
    if (result.effect?.kind === "throttle") this.setThrottled(result.effect.retryAfterMs, result.effect.code);
    this.emit(...result.events);
  }

  private setThrottled(retryAfterMs: number | undefined, code: string): void {
    const waitMs = retryAfterMs ?? 60_000;
    const at = this.clock.now();
    const until = at + waitMs;
    if ((this.state.throttledUntil ?? 0) >= until) return;
    this.state.throttledUntil = until;
    this.emit({ type: "throttled", at, code, retryAfterSeconds: waitMs / 1000, until });
  }

  private forget(resourceGroup: string, name: string, why: string): void {
    const key = vmKey(resourceGroup, name);
    if (!this.state.vms[key]) return;
    delete this.state.vms[key];
    this.emit({ type: "vm-forgotten", resourceGroup, vm: name, at: this.clock.now(), why });
  }

  private launchStart(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const key = vmKey(vm.resourceGroup, vm.name);
    const stop = AbortSignal.any([signal, this.abandonStarts.signal]);
    const promise = this.followStart(vm, stop).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  private async followStart(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const { api, settings } = this.deps;
    const key = vmKey(vm.resourceGroup, vm.name);
    let record: VmRecord = this.state.vms[key] ?? newRecord(vm);
    this.state.vms[key] = record;
    let release: (() => void) | undefined;
    let requestedAt = this.clock.now();
    let outcome: StartEnd;
    try {
      release = await this.slots.acquire(signal);
      await this.pacer.take(signal);
      // Stopped while waiting for a slot or the pacer (a fatal error, SIGTERM): no start request then.
      signal.throwIfAborted();
      requestedAt = this.clock.now();
      const issued = startIssued(this.state.vms[key], vm, requestedAt);
      record = issued.record;
      if (this.state.vms[key]) this.state.vms[key] = record;
      this.emit(...issued.events);
      const timeout = AbortSignal.timeout(settings.startTimeoutMs);
      try {
        await api.startVm(vm.resourceGroup, vm.name, AbortSignal.any([signal, timeout]), {
          // The bound is on start requests, not on accepted starts being followed: a slot frees as
          // soon as ARM accepted (202), so every evicted VM of a cycle is requested within moments
          // even when starts take minutes.
          onAccepted: () => {
            release?.();
            this.emit({
              type: "start-accepted",
              resourceGroup: vm.resourceGroup,
              vm: vm.name,
              at: this.clock.now(),
            });
          },
        });
        outcome = classifyStartOutcome(undefined);
      } catch (error) {
        if (signal.aborted) outcome = { kind: "interrupted" };
        else if (isCredentialError(error)) {
          outcome = { kind: "token-unavailable", message: this.noteTokenFailure(error) };
        } else if (timeout.aborted) {
          outcome = classifyStartOutcome({
            message: `no outcome after ${settings.startTimeoutMs / 1000} s`,
            timedOut: true,
          });
        } else outcome = classifyStartOutcome(describeAzureError(error), "start");
      }
    } catch {
      outcome = { kind: "interrupted" };
    } finally {
      release?.();
    }
    return this.applyStartOutcome(vm, record, outcome, requestedAt);
  }

  private applyStartOutcome(
    vm: ObservedVm,
    issued: VmRecord,
    outcome: StartEnd,
    requestedAt: number,
  ): StartResult {
    const key = vmKey(vm.resourceGroup, vm.name);
    const now = this.clock.now();
    // The record as it is now (a cycle may have observed the VM meanwhile), or, if it was forgotten
    // while the start was in flight, the one the start began with (which then stays forgotten).
    const current = this.state.vms[key];
    const change = startEnded(current ?? issued, vm, outcome, {
      requestedAt,
      now,
      retry: this.retry,
      rng: this.rng,
    });
    if (current) this.state.vms[key] = change.record;
    if (change.record.backoffUntil !== undefined) this.onRetryScheduled?.();
    this.emit(...change.events);
    switch (change.effect?.kind) {
      case "throttle":
        this.setThrottled(change.effect.retryAfterMs, change.effect.code);
        break;
      case "forget":
        this.forget(vm.resourceGroup, vm.name, change.effect.why);
        break;
      case "fatal":
        this.fatal ??= change.effect.error;
        this.onFatal?.();
        break;
    }
    void this.persist();
    return {
      resourceGroup: vm.resourceGroup,
      name: vm.name,
      outcome: outcome.kind,
      code: "code" in outcome ? outcome.code : undefined,
      message: "message" in outcome ? outcome.message : undefined,
      backoffUntil: change.record.backoffUntil,
      requestedAt,
      endedAt: now,
    };
  }

  /** The VM's record, created (and kept) if new; the cause gate updates it in place. */
  private recordFor(vm: { resourceGroup: string; name: string }): VmRecord {
    const key = vmKey(vm.resourceGroup, vm.name);
    const record = this.state.vms[key] ?? newRecord(vm);
    this.state.vms[key] = record;
    return record;
  }

  /** Saves the state (serialised with earlier saves; an unchanged state is not written again). */
  persist(): Promise<void> {
    return this.saver.save(this.state);
  }
}
