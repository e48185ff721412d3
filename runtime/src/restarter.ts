// The restart loop: discover (one list per resource group, instance views of candidates only),
// decide (pure, decisions.ts), start concurrently (bounded) and follow each start to its outcome
// without holding up the next cycle, remember what happened (state.ts).
import { setTimeout as sleepFor } from "node:timers/promises";
import { describeTokenFailure, isCredentialError } from "./auth";
import type { ListedVm, RequestCounter, VmApi } from "./azure";
import { describeAzureError } from "./azure";
import {
  type AzureOutcome,
  type BackoffPolicy,
  classifyStartOutcome,
  type Decision,
  isBackoffOutcome,
  isRestartCandidate,
  nextBackoff,
  type ObservedVm,
  type RestarterState,
  type RestartTag,
  selectRestartCandidates,
  type VmRecord,
  vmKey,
} from "./decisions";
import { AuthError, PermissionError } from "./errors";
import type { Logger } from "./log";
import type { StateStore } from "./state";

export interface Clock {
  now(): number;
  /** Resolves after `ms`, rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleepFor(ms, undefined, { signal }),
};

export interface RestarterSettings {
  readonly resourceGroups: readonly string[];
  readonly tag: RestartTag;
  readonly maxConcurrentStarts: number;
  readonly backoff: BackoffPolicy;
  readonly startTimeoutMs: number;
  readonly intervalMs: number;
}

export interface RestarterDeps {
  readonly api: VmApi;
  readonly store: StateStore;
  readonly log: Logger;
  readonly settings: RestarterSettings;
  readonly clock?: Clock;
  readonly rng?: () => number;
  readonly counter?: RequestCounter;
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

/** How a start ended: an Azure outcome, or we stopped following it, or no token could be had. */
export type StartEnd =
  | AzureOutcome
  | { kind: "interrupted" }
  | { kind: "token-unavailable"; message: string };

/** Thrown out of the loop when carrying on is pointless: the principal cannot do its job. */
export type FatalError = AuthError | PermissionError;

export class Restarter {
  private state: RestarterState = { vms: {} };
  private readonly inFlight = new Map<string, Promise<StartResult>>();
  private readonly clock: Clock;
  private readonly rng: () => number;
  private readonly slots: Semaphore;
  private saving: Promise<void> = Promise.resolve();
  private lastSaved: string | undefined;
  private saveTrouble: string | undefined;
  private readonly abandonStarts = new AbortController();
  private fatal: FatalError | undefined;

  constructor(private readonly deps: RestarterDeps) {
    this.clock = deps.clock ?? systemClock;
    this.rng = deps.rng ?? Math.random;
    this.slots = new Semaphore(deps.settings.maxConcurrentStarts);
  }

  /** Loads the state file; a missing or corrupt one is reported and rebuilt, never fatal. */
  async init(): Promise<void> {
    const loaded = await this.deps.store.load();
    this.state = loaded.state;
    if (loaded.problem?.kind === "corrupt") {
      this.deps.log.warn(
        "state-rebuilt",
        { path: this.deps.store.path },
        `${loaded.problem.detail}; starting from empty state, rebuilt from the next observation`,
      );
    } else if (loaded.problem) {
      this.deps.log.info("state-new", { path: this.deps.store.path }, "no state file yet; starting fresh");
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
    return this.saveTrouble === undefined;
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
    const { log, settings } = this.deps;
    const startedAt = this.clock.now();
    const throttledUntil = this.state.throttledUntil;
    if (throttledUntil !== undefined && throttledUntil > startedAt) {
      log.debug(
        "cycle-skipped",
        { until: new Date(throttledUntil).toISOString() },
        "ARM throttled us; waiting out Retry-After",
      );
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
    const groups = await Promise.all(settings.resourceGroups.map((rg) => this.discoverGroup(rg, signal)));
    const observed = groups.flatMap((g) => g.observed);
    const now = this.clock.now();
    const decisions = selectRestartCandidates(
      observed,
      this.state,
      now,
      settings.tag,
      new Set([...inFlightAtDiscovery, ...this.inFlight.keys()]),
    );
    const starts: Promise<StartResult>[] = [];
    for (const decision of decisions) {
      if (decision.action !== "start") continue;
      if (options.dryRun) {
        log.info(
          "would-start",
          { vm: `${decision.vm.resourceGroup}/${decision.vm.name}` },
          "dry run: would start this deallocated VM",
        );
        continue;
      }
      starts.push(this.launchStart(decision.vm, signal));
    }
    if (!options.dryRun) await this.persist();
    const finishedAt = this.clock.now();
    log.debug(
      "cycle-done",
      {
        vms: observed.length,
        starts: starts.length,
        inFlight: this.inFlight.size,
        ms: finishedAt - startedAt,
        armRequests: this.deps.counter?.snapshot().total,
      },
      "cycle finished",
    );
    return { startedAt, finishedAt, resourceGroups: groups.map((g) => g.report), decisions, starts };
  }

  /** Waits until every start in flight has its outcome (each is bounded by startTimeoutMs). */
  async waitForStarts(): Promise<StartResult[]> {
    const results = await Promise.all([...this.inFlight.values()]);
    await this.saving;
    return results;
  }

  /**
   * The loop for `run`: a cycle every intervalMs (with a little jitter), longer when ARM throttles
   * us. Returns when `signal` aborts, after the starts in flight have recorded their outcome.
   * Throws a FatalError when a permission is missing.
   */
  async runLoop(signal: AbortSignal, onTick?: () => void): Promise<void> {
    const { log, settings } = this.deps;
    try {
      while (!signal.aborted) {
        onTick?.();
        try {
          await this.runCycle(signal);
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof AuthError || error instanceof PermissionError) throw error;
          log.error("cycle-failed", {}, `cycle failed, trying again next interval: ${messageChain(error)}`);
        }
        if (this.fatal) throw this.fatal;
        const jitter = 1 + (this.rng() - 0.5) * 0.2;
        let waitMs = Math.round(settings.intervalMs * jitter);
        const throttledUntil = this.state.throttledUntil;
        if (throttledUntil !== undefined) waitMs = Math.max(waitMs, throttledUntil - this.clock.now());
        try {
          await this.sleepUnlessFatal(waitMs, signal);
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

  private async sleepUnlessFatal(ms: number, signal: AbortSignal): Promise<void> {
    const wake = new AbortController();
    this.onFatal = () => wake.abort();
    try {
      await this.clock.sleep(Math.max(0, ms), AbortSignal.any([signal, wake.signal]));
    } catch (error) {
      if (signal.aborted) throw error;
    } finally {
      this.onFatal = undefined;
    }
  }

  private onFatal: (() => void) | undefined;

  private async discoverGroup(
    resourceGroup: string,
    signal: AbortSignal,
  ): Promise<{ observed: ObservedVm[]; report: ResourceGroupReport }> {
    const { api, settings } = this.deps;
    let listed: ListedVm[];
    try {
      listed = await api.listVms(resourceGroup, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (isCredentialError(error)) {
        const message = this.noteTokenFailure(error);
        return {
          observed: [],
          report: {
            name: resourceGroup,
            vmsListed: 0,
            candidates: 0,
            error: `token-unavailable: ${message}`,
          },
        };
      }
      const outcome = classifyStartOutcome(describeAzureError(error), "list");
      this.handleReadFailure(outcome, { resourceGroup }, error);
      return {
        observed: [],
        report: {
          name: resourceGroup,
          vmsListed: 0,
          candidates: 0,
          error: `${outcome.kind}: ${errorCode(outcome)}`,
        },
      };
    }
    this.noteTokenOk();
    const candidates = listed.filter((vm) => isRestartCandidate(vm, settings.tag));
    const observed = await Promise.all(
      listed.map(async (vm): Promise<ObservedVm | undefined> => {
        if (!candidates.includes(vm)) return { ...vm, powerState: undefined };
        const key = vmKey(resourceGroup, vm.name);
        // A VM we are starting is not read again: its start's outcome will tell.
        if (this.inFlight.has(key)) return { ...vm, powerState: this.state.vms[key]?.powerState };
        try {
          const powerState = await api.readPowerState(resourceGroup, vm.name, signal);
          this.observePowerState(vm, powerState);
          return { ...vm, powerState };
        } catch (error) {
          if (signal.aborted) throw error;
          if (isCredentialError(error)) {
            this.noteTokenFailure(error);
            return { ...vm, powerState: undefined };
          }
          const outcome = classifyStartOutcome(describeAzureError(error), "instanceView");
          if (outcome.kind === "gone") {
            this.forget(resourceGroup, vm.name, "deleted between list and instance view");
            return undefined;
          }
          this.handleReadFailure(outcome, { resourceGroup, vm: vm.name }, error);
          return { ...vm, powerState: undefined };
        }
      }),
    );
    // Records of VMs no longer listed as candidates (deleted, untagged): forget them.
    const candidateKeys = new Set(candidates.map((vm) => vmKey(resourceGroup, vm.name)));
    for (const [key, record] of Object.entries(this.state.vms)) {
      if (record.resourceGroup.toLowerCase() !== resourceGroup.toLowerCase()) continue;
      if (!candidateKeys.has(key) && !this.inFlight.has(key)) {
        this.forget(record.resourceGroup, record.name, "no longer listed as a tagged Spot VM");
      }
    }
    return {
      observed: observed.filter((vm): vm is ObservedVm => vm !== undefined),
      report: { name: resourceGroup, vmsListed: listed.length, candidates: candidates.length },
    };
  }

  /**
   * The credential could not get a token (Entra ID down, unreachable, or refusing us). Logged once
   * per change of the failure, not per cycle; the loop carries on and recovers by itself.
   */
  private noteTokenFailure(error: unknown): string {
    const failure = describeTokenFailure(error);
    if (this.tokenTrouble !== failure.message) {
      this.tokenTrouble = failure.message;
      this.deps.log.warn(
        "token-unavailable",
        { status: failure.status, transient: failure.transient },
        `cannot get a token from Entra ID: ${failure.message}; no ARM requests until it answers again, retrying every cycle`,
      );
    }
    return failure.message;
  }

  private noteTokenOk(): void {
    if (this.tokenTrouble === undefined) return;
    this.tokenTrouble = undefined;
    this.deps.log.info("token-available", {}, "Entra ID issues tokens again");
  }

  private tokenTrouble: string | undefined;

  private handleReadFailure(
    outcome: AzureOutcome,
    where: { resourceGroup: string; vm?: string },
    error: unknown,
  ): void {
    const { log } = this.deps;
    const vm = where.vm ? `${where.resourceGroup}/${where.vm}` : undefined;
    switch (outcome.kind) {
      case "throttled":
        this.setThrottled(outcome.retryAfterMs, outcome.code);
        return;
      case "forbidden":
        throw new PermissionError(
          `the service principal lacks the permission ${outcome.permission} on resource group ${where.resourceGroup} (${outcome.code}); grant it (the Contributor role, or the least-privilege role of the Pulumi program) and try again`,
          outcome.permission,
          { cause: error },
        );
      case "unauthorized":
        throw new AuthError(
          `Azure Resource Manager refused the token (${outcome.code}): check cloud.audience and cloud.armEndpoint in the config (${outcome.message})`,
          "audience",
          { cause: error },
        );
      case "gone":
        log.warn(
          "resource-group-missing",
          { resourceGroup: where.resourceGroup, vm, code: outcome.code },
          `not found: ${outcome.message}`,
        );
        return;
      default:
        log.warn(
          "read-failed",
          { resourceGroup: where.resourceGroup, vm, code: errorCode(outcome) },
          `reading from ARM failed; trying again next cycle: ${messageChain(error)}`,
        );
    }
  }

  private setThrottled(retryAfterMs: number | undefined, code: string): void {
    const waitMs = retryAfterMs ?? 60_000;
    const until = this.clock.now() + waitMs;
    if ((this.state.throttledUntil ?? 0) >= until) return;
    this.state.throttledUntil = until;
    this.deps.log.warn(
      "throttled",
      { code, retryAfterSeconds: Math.round(waitMs / 100) / 10, until: new Date(until).toISOString() },
      "ARM throttled us; no requests until Retry-After has passed",
    );
  }

  private observePowerState(vm: ListedVm, powerState: string | undefined): void {
    const { log } = this.deps;
    const key = vmKey(vm.resourceGroup, vm.name);
    const now = this.clock.now();
    const previous = this.state.vms[key];
    const record: VmRecord = previous ?? { resourceGroup: vm.resourceGroup, name: vm.name, startAttempts: 0 };
    this.state.vms[key] = record;
    const id = `${vm.resourceGroup}/${vm.name}`;
    if (powerState === record.powerState) return;
    if (powerState === "deallocated") {
      record.evictedSince ??= now;
      record.lastEvictionSeenAt = now;
      log.info(
        "evicted-vm-seen",
        { vm: id, was: record.powerState ?? "unknown" },
        "tagged Spot VM is deallocated (evicted); it will be started",
      );
    } else if (powerState === "running") {
      if (record.evictedSince !== undefined || record.backoffUntil !== undefined) {
        log.info("vm-running", { vm: id, was: record.powerState ?? "unknown" }, "VM is running again");
      } else {
        log.debug("power-state", { vm: id, state: powerState }, "VM is running");
      }
      record.evictedSince = undefined;
      record.startAttempts = 0;
      record.backoffUntil = undefined;
    } else {
      log.info(
        "power-state-changed",
        { vm: id, state: powerState ?? "unknown", was: record.powerState ?? "unknown" },
        `VM is ${powerState ?? "in an unknown power state"}; not a restart candidate`,
      );
    }
    record.powerState = powerState;
  }

  private forget(resourceGroup: string, name: string, why: string): void {
    const key = vmKey(resourceGroup, name);
    if (!this.state.vms[key]) return;
    delete this.state.vms[key];
    this.deps.log.info("vm-forgotten", { vm: `${resourceGroup}/${name}` }, `forgetting VM: ${why}`);
  }

  private launchStart(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const key = vmKey(vm.resourceGroup, vm.name);
    const stop = AbortSignal.any([signal, this.abandonStarts.signal]);
    const promise = this.followStart(vm, stop).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  private async followStart(vm: ObservedVm, signal: AbortSignal): Promise<StartResult> {
    const { api, log, settings } = this.deps;
    const id = `${vm.resourceGroup}/${vm.name}`;
    const key = vmKey(vm.resourceGroup, vm.name);
    const record: VmRecord = this.state.vms[key] ?? {
      resourceGroup: vm.resourceGroup,
      name: vm.name,
      startAttempts: 0,
    };
    this.state.vms[key] = record;
    let release: (() => void) | undefined;
    let requestedAt = this.clock.now();
    let outcome: StartEnd;
    try {
      release = await this.slots.acquire(signal);
      requestedAt = this.clock.now();
      record.lastStartAt = requestedAt;
      record.lastResult = { outcome: "issued", at: record.lastStartAt };
      log.info("start-issued", { vm: id, attempt: record.startAttempts + 1 }, "starting evicted Spot VM");
      const timeout = AbortSignal.timeout(settings.startTimeoutMs);
      try {
        await api.startVm(vm.resourceGroup, vm.name, AbortSignal.any([signal, timeout]), {
          // The bound is on start requests, not on accepted starts being followed: a slot frees as
          // soon as ARM accepted (202), so every evicted VM of a cycle is requested within moments
          // even when starts take minutes.
          onAccepted: () => {
            release?.();
            log.debug("start-accepted", { vm: id }, "ARM accepted the start");
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
    record: VmRecord,
    outcome: StartEnd,
    requestedAt: number,
  ): StartResult {
    const { log, settings } = this.deps;
    const id = `${vm.resourceGroup}/${vm.name}`;
    const now = this.clock.now();
    const code = "code" in outcome ? outcome.code : undefined;
    const message = "message" in outcome ? outcome.message : undefined;
    record.lastResult = { outcome: outcome.kind, code, at: now };
    switch (outcome.kind) {
      case "started":
        record.startAttempts = 0;
        record.backoffUntil = undefined;
        record.evictedSince = undefined;
        record.lastStartedAt = now;
        record.powerState = "running";
        log.info(
          "started",
          { vm: id, seconds: Math.round((now - requestedAt) / 100) / 10 },
          "VM is running again",
        );
        break;
      case "token-unavailable":
        // Not the VM's fault: no backoff; the next cycle tries again (noteTokenFailure logged it).
        break;
      case "interrupted":
        log.info(
          "start-interrupted",
          { vm: id },
          "stopped following the start (shutting down); next run looks again",
        );
        break;
      case "throttled":
        this.setThrottled(outcome.retryAfterMs, outcome.code);
        break;
      case "gone":
        this.forget(vm.resourceGroup, vm.name, `start answered ${outcome.code}: the VM no longer exists`);
        break;
      case "conflict":
        log.info(
          "start-conflict",
          { vm: id, code: outcome.code },
          `another operation is in progress; retrying next cycle: ${outcome.message}`,
        );
        break;
      case "timeout":
        log.warn(
          "start-timeout",
          { vm: id },
          `${outcome.message}; the next cycle reads its power state again`,
        );
        break;
      case "forbidden":
        this.setFatal(
          new PermissionError(
            `the service principal lacks the permission ${outcome.permission} needed to start ${id} (${outcome.code}); grant it and try again`,
            outcome.permission,
          ),
        );
        log.error("permission-missing", { vm: id, permission: outcome.permission }, outcome.message);
        break;
      case "unauthorized":
        this.setFatal(
          new AuthError(
            `Azure Resource Manager refused the token (${outcome.code}): ${outcome.message}`,
            "audience",
          ),
        );
        log.error("token-refused", { vm: id, code: outcome.code }, outcome.message);
        break;
      default: {
        if (!isBackoffOutcome(outcome)) break;
        record.startAttempts += 1;
        const delay = nextBackoff(record.startAttempts, this.rng, settings.backoff);
        record.backoffUntil = now + delay;
        const why =
          outcome.kind === "price"
            ? `the Spot price is above the VM's max price (${vm.maxPrice === undefined || vm.maxPrice === -1 ? "-1 = on-demand price" : `${vm.maxPrice} USD/h`})`
            : outcome.kind === "capacity"
              ? "Azure has no Spot capacity for this size now"
              : outcome.kind === "quota"
                ? "a quota or policy refused the start"
                : `unexpected failure: ${outcome.message}`;
        log.warn(
          outcome.kind === "price" ? "start-failed-price" : "start-failed",
          {
            vm: id,
            code: outcome.code,
            attempts: record.startAttempts,
            backoffSeconds: Math.round(delay / 100) / 10,
            maxPrice: outcome.kind === "price" ? (vm.maxPrice ?? -1) : undefined,
          },
          `${why}; next attempt after ${new Date(record.backoffUntil).toISOString()}`,
        );
      }
    }
    void this.persist();
    return {
      resourceGroup: vm.resourceGroup,
      name: vm.name,
      outcome: outcome.kind,
      code,
      message,
      backoffUntil: record.backoffUntil,
      requestedAt,
      endedAt: now,
    };
  }

  private setFatal(error: FatalError): void {
    this.fatal ??= error;
    this.onFatal?.();
  }

  /** Saves are serialised: each writes the state as it is when its turn comes. */
  persist(): Promise<void> {
    this.saving = this.saving
      .catch(() => {})
      .then(async () => {
        // An idle cycle changes nothing: skip the write (and the disk wear of one per interval).
        const snapshot = JSON.stringify(this.state);
        if (snapshot === this.lastSaved) return;
        await this.deps.store.save(this.state);
        this.lastSaved = snapshot;
        if (this.saveTrouble !== undefined) {
          this.saveTrouble = undefined;
          this.deps.log.info(
            "state-saved",
            { path: this.deps.store.path },
            "the state file can be written again",
          );
        }
      })
      .catch((error) => {
        // Restarting VMs goes on without persistence; said once per kind of failure, not per cycle.
        const trouble = (error as NodeJS.ErrnoException).code ?? messageChain(error);
        if (trouble === this.saveTrouble) return;
        this.saveTrouble = trouble;
        this.deps.log.error(
          "state-save-failed",
          { path: this.deps.store.path, code: (error as NodeJS.ErrnoException).code },
          `cannot persist state (${messageChain(error)}); restarting VMs goes on, from memory`,
        );
      });
    return this.saving;
  }
}

/** A counting semaphore whose waits take an AbortSignal. */
export class Semaphore {
  private available: number;
  private readonly waiters: Array<() => void> = [];
  constructor(size: number) {
    this.available = size;
  }
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.available > 0) {
      this.available--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = this.waiters.indexOf(grant);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(signal.reason);
        };
        const grant = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        this.waiters.push(grant);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.available++;
    };
  }
}

function errorCode(outcome: AzureOutcome): string {
  return "code" in outcome ? outcome.code : outcome.kind;
}

export function messageChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": caused by: ");
}
