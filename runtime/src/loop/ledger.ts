// What the restarter remembers between cycles and how it changes outside a start: each VM's record
// as discovery reads it, throttling, token health, forgetting VMs no longer listed, and saving it all
// (state.ts stores it). The loop and the start follower (restarter.ts, starts.ts) share one Ledger.

import { TokenHealth } from "../azure/tokenHealth";
import type { Clock } from "../core/clock";
import type { RestarterEvent } from "../core/events";
import { type ObservedVm, type RestarterState, type VmRecord, vmKey } from "../core/vm";
import type { EventBus } from "../signals/events";
import { StateSaver, type StateStore } from "../state/state";
import type { GroupDiscovery, ReadFailure } from "./discovery";
import { newRecord, observePowerState, readFailed } from "./transitions";

export interface ResourceGroupReport {
  readonly name: string;
  readonly vmsListed: number;
  readonly candidates: number;
  readonly error?: string;
}

export class Ledger {
  state: RestarterState = { vms: {} };
  private readonly saver: StateSaver;
  private readonly token = new TokenHealth();
  /**
   * Resource groups ARM says do not exist (lower-cased name -> what was reported): said once per
   * episode, and again when the group lists again, never every cycle (issue 23, item 3).
   */
  private readonly missingGroups = new Map<
    string,
    { resourceGroup: string; code: string; message: string; since: number }
  >();

  constructor(
    private readonly store: StateStore,
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {
    this.saver = new StateSaver(store, (event) => this.events.emit(event), this.clock);
  }

  emit(...events: RestarterEvent[]): void {
    for (const event of events) this.events.emit(event);
  }

  /** Loads the state file; a missing or corrupt one is reported and rebuilt, never fatal. */
  async load(): Promise<void> {
    const loaded = await this.store.load();
    this.state = loaded.state;
    const { path } = this.store;
    const at = this.clock.now();
    if (loaded.problem?.kind === "corrupt") {
      this.emit({ type: "state-rebuilt", at, path, detail: loaded.problem.detail });
    } else if (loaded.problem) {
      this.emit({ type: "state-new", at, path });
    }
  }

  /** False while the state file cannot be written. */
  get saved(): boolean {
    return this.saver.saved;
  }

  /** Resolves once the saves already asked for are done. */
  settled(): Promise<void> {
    return this.saver.settled();
  }

  /** Saves the state (serialised with earlier saves; an unchanged state is not written again). */
  persist(): Promise<void> {
    return this.saver.save(this.state);
  }

  /**
   * Takes one group's discovery into the state: records, token health, throttling, forgetting.
   * `inFlight` holds the keys of VMs being started, whose records are kept even when not listed.
   */
  absorb(
    group: GroupDiscovery,
    inFlight: { has(key: string): boolean },
  ): { observed: ObservedVm[]; report: ResourceGroupReport } {
    const { resourceGroup } = group;
    if (group.listFailure) {
      const failure = group.listFailure;
      const error =
        failure.kind === "token"
          ? `token-unavailable: ${this.noteTokenFailure(failure.error)}`
          : `${failure.outcome.kind}: ${"code" in failure.outcome ? failure.outcome.code : failure.outcome.kind}`;
      if (failure.kind === "azure" && failure.outcome.kind === "gone")
        this.noteGroupMissing(resourceGroup, failure);
      else if (failure.kind === "azure") this.handleReadFailure(failure, { resourceGroup });
      return { observed: [], report: { name: resourceGroup, vmsListed: 0, candidates: 0, error } };
    }
    this.noteTokenOk();
    this.noteGroupListed(resourceGroup);
    const observed: ObservedVm[] = [];
    for (const { vm, source, powerState, provisioningState, hibernated, failure } of group.vms) {
      if (source === "read") {
        const key = vmKey(vm.resourceGroup, vm.name);
        const change = observePowerState(this.state.vms[key], vm, powerState, this.clock.now(), {
          provisioningState,
          hibernated,
        });
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
      observed.push({ ...vm, powerState, provisioningState, hibernated });
    }
    // Records of VMs no longer listed as candidates (deleted, untagged): forget them.
    const candidates = group.vms.filter((d) => d.candidate);
    const candidateKeys = new Set(candidates.map((d) => vmKey(resourceGroup, d.vm.name)));
    for (const [key, record] of Object.entries(this.state.vms)) {
      if (record.resourceGroup.toLowerCase() !== resourceGroup.toLowerCase()) continue;
      if (!candidateKeys.has(key) && !inFlight.has(key)) {
        this.forget(record.resourceGroup, record.name, "no longer listed as a tagged Spot VM");
      }
    }
    return {
      observed,
      report: { name: resourceGroup, vmsListed: group.vms.length, candidates: candidates.length },
    };
  }

  /** The configured groups ARM says do not exist, as of their last list. */
  get missingResourceGroups(): Array<{ resourceGroup: string; code: string; message: string }> {
    return [...this.missingGroups.values()].map(({ resourceGroup, code, message }) => ({
      resourceGroup,
      code,
      message,
    }));
  }

  private noteGroupMissing(resourceGroup: string, failure: Extract<ReadFailure, { kind: "azure" }>): void {
    const key = resourceGroup.toLowerCase();
    if (this.missingGroups.has(key)) return;
    const { events } = readFailed(failure, { resourceGroup }, this.clock.now());
    const event = events.find((e) => e.type === "resource-group-missing");
    if (event?.type !== "resource-group-missing") return;
    this.missingGroups.set(key, {
      resourceGroup,
      code: event.code,
      message: event.message,
      since: event.at,
    });
    this.emit(event);
  }

  private noteGroupListed(resourceGroup: string): void {
    const missing = this.missingGroups.get(resourceGroup.toLowerCase());
    if (!missing) return;
    this.missingGroups.delete(resourceGroup.toLowerCase());
    const at = this.clock.now();
    this.emit({
      type: "resource-group-found",
      at,
      resourceGroup,
      missingSeconds: Math.round((at - missing.since) / 1000),
    });
  }

  /** The credential got no token: reported once per change; the loop carries on and recovers by itself. */
  noteTokenFailure(error: unknown): string {
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

  setThrottled(retryAfterMs: number | undefined, code: string): void {
    const waitMs = retryAfterMs ?? 60_000;
    const at = this.clock.now();
    const until = at + waitMs;
    if ((this.state.throttledUntil ?? 0) >= until) return;
    this.state.throttledUntil = until;
    this.emit({ type: "throttled", at, code, retryAfterSeconds: waitMs / 1000, until });
  }

  forget(resourceGroup: string, name: string, why: string): void {
    const key = vmKey(resourceGroup, name);
    if (!this.state.vms[key]) return;
    delete this.state.vms[key];
    this.emit({ type: "vm-forgotten", resourceGroup, vm: name, at: this.clock.now(), why });
  }

  /** The VM's record, created (and kept) if new; the cause gate updates it in place. */
  recordFor(vm: { resourceGroup: string; name: string }): VmRecord {
    const key = vmKey(vm.resourceGroup, vm.name);
    const record = this.state.vms[key] ?? newRecord(vm);
    this.state.vms[key] = record;
    return record;
  }
}
