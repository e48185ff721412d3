// Starting a VM and following the start to its outcome, without holding up the next cycle: a bounded
// number of start requests at once (semaphore.ts), paced across the fleet (schedule.ts), each ending
// in a record change (transitions.ts) that the Ledger keeps.

import { isCredentialError } from "../azure/authFailure";
import type { VmApi } from "../azure/azure";
import { describeAzureError } from "../azure/azure";
import type { BudgetGauge } from "../azure/budgets";
import { fleetStartsPerMinute } from "../core/azureBudgets";
import type { Clock } from "../core/clock";
import { permissionError } from "../core/errors";
import type { RestarterEvent } from "../core/events";
import { type ObservedVm, type VmRecord, vmKey } from "../core/vm";
import { classifyStartOutcome, requiredPermission } from "./decisions";
import { chooseFallback, planSize } from "./fallback";
import type { Ledger } from "./ledger";
import { capacityIntervalFor, type RetryPolicy, type StartPacer } from "./schedule";
import { Semaphore } from "./semaphore";
import { type FatalError, newRecord, type StartEnd, startEnded, startIssued } from "./transitions";

/**
 * Azure's code for a size without Spot support: "Azure Spot is not supported for this VM size {0}." with the fix
 * "Select another VM size." (azure-compute-docs articles/virtual-machines/error-codes-spot.md).
 */
export const SPOT_NOT_SUPPORTED = "AzureSpotIsNotSupportedForThisVMSize";

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
  /** The fleet's start rate (`retry.fleetStartsPerMinute`): capacity retries stretch to stay within it. */
  readonly fleetStartsPerMinute?: number;
  /** Slows the pacer as Azure's write budgets run low (budgets.ts). */
  readonly budget?: BudgetGauge;
  readonly maxConcurrentStarts: number;
  readonly startTimeoutMs: number;
  /** A start ended with a retry scheduled (the loop may wake earlier for it). */
  readonly onRetryScheduled: () => void;
  /** A start ran into an error that must stop the loop (missing permission, token refused). */
  readonly onFatal: (error: FatalError) => void;
  /** Opt-in fallback sizes, keyed by `vmKey` (lower-cased `<group>/<vm>`); absent or empty: nothing is resized. */
  readonly fallbackSizes?: Readonly<Record<string, readonly string[]>>;
  /** How long starts must have failed for capacity before a fallback size (ms). */
  readonly fallbackAfterMs?: number;
}

/** Stops a start before its request: the resize it needed hit a fatal error (already reported). */
class ResizeFatal extends Error {}

export class StartFollower {
  private readonly inFlight = new Map<string, Promise<StartResult>>();
  private readonly slots: Semaphore;
  private readonly abandon = new AbortController();
  /** The last resize refusal reported per VM: the same one is logged once, not at every start attempt. */
  private readonly skipsReported = new Map<string, string>();
  /** Per VM, fallback sizes Azure refused with AzureSpotIsNotSupportedForThisVMSize: never tried again. */
  private readonly noSpotSizes = new Map<string, Set<string>>();

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
      // A retry the loop woke ahead for (restarter.ts, retryLeadMs) leaves when it falls due, never
      // sooner: the per-VM spacing of schedule.ts holds however early the cycle ran.
      const due = record.backoffUntil;
      // Again until due: a timer may fire a millisecond before the wall clock reaches the due time.
      while (due !== undefined && due > clock.now()) await clock.sleep(due - clock.now(), signal);
      release = await this.slots.acquire(signal);
      // Starts slow down as Azure's write budgets run low, before Azure throttles them.
      if (this.deps.budget) this.deps.pacer.setSlowdown(this.deps.budget.startSlowdown());
      await this.deps.pacer.take(signal);
      // Stopped while waiting for a slot or the pacer (a fatal error, SIGTERM): no start request then.
      signal.throwIfAborted();
      // Fallback sizes (opt-in): the size it should start with, changed while it is deallocated.
      await this.prepareSize(vm, signal);
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
        } else
          outcome = await this.joinConcurrentStart(
            vm,
            classifyStartOutcome(describeAzureError(error), "start"),
            signal,
          );
      }
    } catch {
      outcome = { kind: "interrupted" };
    } finally {
      release?.();
    }
    return this.applyOutcome(vm, record, outcome, requestedAt);
  }

  /**
   * A start refused 409 `Conflict` ("conflict with a concurrent request": Compute's answer while another
   * request acts on the VM, Azure/azure-cli#15765) whose VM is now starting or running: the concurrent request
   * was a start, another host's (two hosts watching one fleet, issue 28, docs/many-groups.md). The VM is coming
   * up, so ours counts as done; anything else stays the conflict it was.
   */
  private async joinConcurrentStart(
    vm: ObservedVm,
    outcome: StartEnd,
    signal: AbortSignal,
  ): Promise<StartEnd> {
    if (outcome.kind !== "conflict" || outcome.code !== "Conflict") return outcome;
    try {
      const { powerState } = await this.deps.api.readInstanceState(vm.resourceGroup, vm.name, signal);
      if (powerState === "starting" || powerState === "running") return classifyStartOutcome(undefined);
    } catch {
      // Unreadable now: the conflict stands, and the next cycle reads the VM again.
    }
    return outcome;
  }

  /**
   * Before a start: back to the VM's own size if it was resized during an earlier deallocation, or to the next
   * fallback size once its size has had no capacity for `fallbackAfterMs` (fallback.ts decides; this performs
   * it). The state records the original size before the first PATCH, so a crash at any point loses nothing.
   * A refused resize is reported and the VM is started at the size it has; a missing permission is fatal.
   */
  private async prepareSize(vm: ObservedVm, signal: AbortSignal): Promise<void> {
    const { api, ledger, clock } = this.deps;
    const key = vmKey(vm.resourceGroup, vm.name);
    const record = ledger.state.vms[key];
    if (!record || !vm.vmSize) return;
    const plan = planSize({
      currentSize: vm.vmSize,
      fallbacks: this.deps.fallbackSizes?.[key] ?? [],
      size: record.size,
      outage: record.evictedSince,
      capacityFailingSince: record.capacityFailingSince,
      now: clock.now(),
      fallbackAfterMs: this.deps.fallbackAfterMs ?? 600_000,
    });
    if (plan.kind === "keep" || !api.resizeVm) return;
    const ref = { resourceGroup: vm.resourceGroup, vm: vm.name };
    const resize = api.resizeVm.bind(api);
    const configured = (this.deps.fallbackSizes?.[key] ?? []).length > 0;
    const attempt = async (
      operation: "listSizes" | "resize",
      call: () => Promise<void>,
    ): Promise<string | undefined> => {
      try {
        await call();
        return undefined;
      } catch (error) {
        if (signal.aborted) throw error;
        const outcome = classifyStartOutcome(describeAzureError(error), operation);
        // Fallbacks since removed (and with them, by `pulumi up`, the write action): going back to its own
        // size is no longer ours to do. Not fatal: the VM is started as it is, and the size is forgotten.
        if (outcome.kind === "forbidden" && !configured) return `forbidden: ${outcome.message}`;
        if (outcome.kind === "forbidden") {
          const permission = /action '([^']+)'/i.test(outcome.message)
            ? outcome.permission
            : requiredPermission[operation];
          const fatal = permissionError(
            { permission, code: outcome.code },
            `needed to ${operation === "resize" ? "resize" : "list the sizes of"} ${vm.resourceGroup}/${vm.name} (fallbackSizes)`,
            error,
          );
          ledger.emit({
            type: "permission-missing",
            ...ref,
            at: clock.now(),
            action: permission,
            message: fatal.message,
          });
          this.deps.onFatal(fatal);
          throw new ResizeFatal(fatal.message);
        }
        if (outcome.kind === "throttled") ledger.setThrottled(outcome.retryAfterMs, outcome.code);
        return "code" in outcome ? `${outcome.code}: ${outcome.message}` : outcome.kind;
      }
    };

    if (plan.kind === "restore") {
      const refused = await attempt("resize", () => resize(vm.resourceGroup, vm.name, plan.to, signal));
      const now = clock.now();
      if (refused) {
        this.reportSkipped(key, {
          type: "vm-resize-skipped",
          ...ref,
          at: now,
          fromSize: plan.from,
          toSize: plan.to,
          reason: `Azure refused it (${refused})`,
        });
        if (refused.startsWith("forbidden:")) {
          // No fallbacks any more and no right to resize: it stays at this size for good; stop trying.
          ledger.state.vms[key] = { ...(ledger.state.vms[key] ?? record), size: undefined };
          await ledger.persist();
        }
        return;
      }
      ledger.state.vms[key] = { ...(ledger.state.vms[key] ?? record), size: undefined };
      this.skipsReported.delete(key);
      ledger.emit({ type: "vm-size-restored", ...ref, at: now, fromSize: plan.from, toSize: plan.to });
      await ledger.persist();
      return;
    }

    if (!api.listAvailableSizes) return;
    const listSizes = api.listAvailableSizes.bind(api);
    let available: Awaited<ReturnType<typeof listSizes>> = [];
    const listRefused = await attempt("listSizes", async () => {
      available = await listSizes(vm.resourceGroup, vm.name, signal);
    });
    if (listRefused) {
      this.reportSkipped(key, {
        type: "vm-resize-skipped",
        ...ref,
        at: clock.now(),
        fromSize: plan.from,
        reason: `listing its sizes failed (${listRefused})`,
      });
      return;
    }
    // Sizes Azure said do not support Spot are passed over for good (never tried again by this process).
    const noSpot = this.noSpotSizes.get(key) ?? new Set<string>();
    const candidates = plan.candidates.filter((size) => !noSpot.has(size.toLowerCase()));
    const { chosen, skipped } = chooseFallback(plan.from, candidates, available);
    if (!chosen) {
      const why = skipped
        .map((s) => `${s.size} ${s.why === "temp-disk" ? "differs in local temp disk" : "is not offered"}`)
        .join(", ");
      this.reportSkipped(key, {
        type: "vm-resize-skipped",
        ...ref,
        at: clock.now(),
        fromSize: plan.from,
        reason: `no fallback size fits (${why})`,
      });
      return;
    }
    const originalSize = record.size?.originalSize ?? plan.from;
    // Written before the PATCH: a crash after it still knows the size to go back to.
    ledger.state.vms[key] = {
      ...record,
      size: { originalSize, size: chosen, phase: "resizing", at: clock.now(), outage: record.evictedSince },
    };
    await ledger.persist();
    const refused = await attempt("resize", () => resize(vm.resourceGroup, vm.name, chosen, signal));
    const now = clock.now();
    const current = ledger.state.vms[key] ?? record;
    if (refused?.startsWith(`${SPOT_NOT_SUPPORTED}:`)) {
      // Not a passing refusal: the size never supports Spot. Skip it, and try the next candidate now.
      noSpot.add(chosen.toLowerCase());
      this.noSpotSizes.set(key, noSpot);
      ledger.state.vms[key] = { ...current, size: record.size };
      this.reportSkipped(key, {
        type: "vm-resize-skipped",
        ...ref,
        at: now,
        fromSize: plan.from,
        toSize: chosen,
        reason: `${chosen} does not support Spot (${refused}); skipped from now on`,
      });
      await ledger.persist();
      return this.prepareSize(vm, signal);
    }
    if (refused) {
      // Nothing changed in Azure: keep what was known before (the original size, if an earlier resize set it).
      ledger.state.vms[key] = { ...current, size: record.size };
      this.reportSkipped(key, {
        type: "vm-resize-skipped",
        ...ref,
        at: now,
        fromSize: plan.from,
        toSize: chosen,
        reason: `Azure refused it (${refused})`,
      });
      await ledger.persist();
      return;
    }
    ledger.state.vms[key] = {
      ...current,
      size: { originalSize, size: chosen, phase: "resized", at: now, outage: record.evictedSince },
      // The next fallback (if this size has no capacity either) waits its own fallbackAfterSeconds.
      capacityFailingSince: undefined,
    };
    this.skipsReported.delete(key);
    ledger.emit({
      type: "vm-fallback-size",
      ...ref,
      at: now,
      fromSize: plan.from,
      toSize: chosen,
      originalSize,
      ...(record.capacityFailingSince !== undefined
        ? { capacityFailingSeconds: Math.round((now - record.capacityFailingSince) / 1000) }
        : {}),
    });
    await ledger.persist();
  }

  /**
   * The retry policy with the capacity interval as budgets allow now (schedule.ts `capacityIntervalFor`):
   * stretched by the subscription's Start budget Azure reports and by how many VMs are being retried.
   */
  private retryNow(key: string): RetryPolicy {
    const { retry, ledger, budget } = this.deps;
    let vmsRetrying = 1;
    // The others in a capacity outage (failing since, not yet started): each will be retried at this pace.
    for (const [other, record] of Object.entries(ledger.state.vms))
      if (other !== key && record.capacityFailingSince !== undefined) vmsRetrying += 1;
    const capacityIntervalMs = capacityIntervalFor(retry, {
      startBudgetShare: budget?.startBudgetShare?.(),
      vmsRetrying,
      fleetStartsPerMinute: this.deps.fleetStartsPerMinute ?? fleetStartsPerMinute,
    });
    return capacityIntervalMs === retry.capacityIntervalMs ? retry : { ...retry, capacityIntervalMs };
  }

  private reportSkipped(key: string, event: Extract<RestarterEvent, { type: "vm-resize-skipped" }>): void {
    const said = `${event.toSize ?? ""} ${event.reason}`;
    if (this.skipsReported.get(key) === said) return;
    this.skipsReported.set(key, said);
    this.deps.ledger.emit(event);
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
      retry: this.retryNow(key),
      rng: this.deps.rng,
    });
    if (current) ledger.state.vms[key] = change.record;
    // The start is over: no longer in flight when the loop works out its next wake for the retry (the
    // promise's own cleanup runs microtasks later, and a wake worked out before it skipped this VM's retry:
    // the bench saw every second retry after an eviction a whole interval late, 62 s apart instead of 31).
    this.inFlight.delete(key);
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
