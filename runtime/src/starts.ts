// Starting a VM and following the start to its outcome, without holding up the next cycle: a bounded
// number of start requests at once (semaphore.ts), paced across the fleet (schedule.ts), each ending
// in a record change (transitions.ts) that the Ledger keeps.

import { isCredentialError } from "./authFailure";
import type { VmApi } from "./azure";
import { describeAzureError } from "./azure";
import type { BudgetGauge } from "./budgets";
import type { Clock } from "./clock";
import { classifyStartOutcome, type ObservedVm, type VmRecord, vmKey } from "./decisions";
import type { Ledger } from "./ledger";
import type { RetryPolicy, StartPacer } from "./schedule";
import { Semaphore } from "./semaphore";
import { type FatalError, newRecord, type StartEnd, startEnded, startIssued } from "./transitions";

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

export interface StartFollowerDeps {
  readonly api: VmApi;
  readonly ledger: Ledger;
  readonly clock: Clock;
  readonly rng: () => number;
  readonly retry: RetryPolicy;
  readonly pacer: StartPacer;
  /** Slows the pacer as Azure's write budgets run low (budgets.ts). */
  readonly budget?: BudgetGauge;
  readonly maxConcurrentStarts: number;
  readonly startTimeoutMs: number;
  /** A start ended with a retry scheduled (the loop may wake earlier for it). */
  readonly onRetryScheduled: () => void;
  /** A start ran into an error that must stop the loop (missing permission, token refused). */
  readonly onFatal: (error: FatalError) => void;
}

export class StartFollower {
  private readonly inFlight = new Map<string, Promise<StartResult>>();
  private readonly slots: Semaphore;
  private readonly abandon = new AbortController();

  constructor(private readonly deps: StartFollowerDeps) {
    this.slots = new Semaphore(deps.maxConcurrentStarts);
  }

  /** The keys (vmKey) of the VMs being started. */
  keys(): IterableIterator<string> {
    return this.inFlight.keys();
  }

  has(key: string): boolean {
    return this.inFlight.has(key);
  }

  get size(): number {
    return this.inFlight.size;
  }

  /** Settles with every start in flight now. */
  all(): Promise<StartResult[]> {
    return Promise.all([...this.inFlight.values()]);
  }

  /** The starts in flight stop being followed and settle promptly as "interrupted". */
  abandonAll(): void {
    this.abandon.abort();
  }

  launch(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const key = vmKey(vm.resourceGroup, vm.name);
    const stop = AbortSignal.any([signal, this.abandon.signal]);
    const promise = this.follow(vm, stop).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  private async follow(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const { api, ledger, clock, startTimeoutMs } = this.deps;
    const key = vmKey(vm.resourceGroup, vm.name);
    let record: VmRecord = ledger.state.vms[key] ?? newRecord(vm);
    ledger.state.vms[key] = record;
    let release: (() => void) | undefined;
    let requestedAt = clock.now();
    let outcome: StartEnd;
    try {
      release = await this.slots.acquire(signal);
      // Starts slow down as Azure's write budgets run low, before Azure throttles them.
      if (this.deps.budget) this.deps.pacer.setSlowdown(this.deps.budget.startSlowdown());
      await this.deps.pacer.take(signal);
      // Stopped while waiting for a slot or the pacer (a fatal error, SIGTERM): no start request then.
      signal.throwIfAborted();
      requestedAt = clock.now();
      const issued = startIssued(ledger.state.vms[key], vm, requestedAt);
      record = issued.record;
      if (ledger.state.vms[key]) ledger.state.vms[key] = record;
      ledger.emit(...issued.events);
      const timeout = AbortSignal.timeout(startTimeoutMs);
      try {
        await api.startVm(vm.resourceGroup, vm.name, AbortSignal.any([signal, timeout]), {
          // The bound is on start requests, not on accepted starts being followed: a slot frees as
          // soon as ARM accepted (202), so every evicted VM of a cycle is requested within moments
          // even when starts take minutes.
          onAccepted: () => {
            release?.();
            ledger.emit({
              type: "start-accepted",
              resourceGroup: vm.resourceGroup,
              vm: vm.name,
              at: clock.now(),
            });
          },
        });
        outcome = classifyStartOutcome(undefined);
      } catch (error) {
        if (signal.aborted) outcome = { kind: "interrupted" };
        else if (isCredentialError(error)) {
          outcome = { kind: "token-unavailable", message: ledger.noteTokenFailure(error) };
        } else if (timeout.aborted) {
          outcome = classifyStartOutcome({
            message: `no outcome after ${startTimeoutMs / 1000} s`,
            timedOut: true,
          });
        } else outcome = classifyStartOutcome(describeAzureError(error), "start");
      }
    } catch {
      outcome = { kind: "interrupted" };
    } finally {
      release?.();
    }
    return this.applyOutcome(vm, record, outcome, requestedAt);
  }

  private applyOutcome(
    vm: ObservedVm,
    issued: VmRecord,
    outcome: StartEnd,
    requestedAt: number,
  ): StartResult {
    const { ledger } = this.deps;
    const key = vmKey(vm.resourceGroup, vm.name);
    const now = this.deps.clock.now();
    // The record as it is now (a cycle may have observed the VM meanwhile), or, if it was forgotten
    // while the start was in flight, the one the start began with (which then stays forgotten).
    const current = ledger.state.vms[key];
    const change = startEnded(current ?? issued, vm, outcome, {
      requestedAt,
      now,
      retry: this.deps.retry,
      rng: this.deps.rng,
    });
    if (current) ledger.state.vms[key] = change.record;
    if (change.record.backoffUntil !== undefined) this.deps.onRetryScheduled();
    ledger.emit(...change.events);
    switch (change.effect?.kind) {
      case "throttle":
        ledger.setThrottled(change.effect.retryAfterMs, change.effect.code);
        break;
      case "forget":
        ledger.forget(vm.resourceGroup, vm.name, change.effect.why);
        break;
      case "fatal":
        this.deps.onFatal(change.effect.error);
        break;
    }
    void ledger.persist();
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
}
