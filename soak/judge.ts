// Judges a soak run from the emulator's own record of what happened to each VM (its power history and
// start requests), never from the runtime's log lines: a runtime that logged a restart it never made,
// or made one it never logged, is caught either way.
import type { VmHistoryEntry } from "../emulator/state";

export interface JudgedVm {
  readonly name: string;
  readonly history: readonly VmHistoryEntry[];
  /** Deallocated at the start of the run, by an eviction nobody answered yet. */
  readonly initiallyEvicted: boolean;
}

export interface Judgement {
  /** Evictions of restartable VMs (during the run, plus those waiting at its start). */
  readonly evictions: number;
  /** Starts that ended Succeeded. */
  readonly restarts: number;
  /** Each a sentence naming the VM and what was wrong. */
  readonly wrongStarts: string[];
  /** Evictions never answered by a successful start (VM names). */
  readonly missed: string[];
  /** Eviction to the successful start that answered it, ms. */
  readonly latenciesMs: number[];
}

/**
 * Every eviction of a restartable VM is answered by exactly one successful start; a start is accepted
 * only for a VM waiting for one, never twice at once; a VM its owner deallocated is never started
 * again; a VM that must never be started has no start at all.
 */
export function judgeStarts(vms: readonly JudgedVm[], restartable: ReadonlySet<string>): Judgement {
  const judgement = {
    evictions: 0,
    restarts: 0,
    wrongStarts: [] as string[],
    missed: [] as string[],
    latenciesMs: [] as number[],
  };
  for (const vm of vms) {
    if (!restartable.has(vm.name)) {
      const starts = vm.history.filter((e) => e.event === "start-accepted");
      if (starts.length > 0)
        judgement.wrongStarts.push(`${vm.name}: must never be started, ${starts.length} start(s) accepted`);
      continue;
    }
    let waitingSince: number | undefined = vm.initiallyEvicted ? Number.NaN : undefined;
    if (vm.initiallyEvicted) judgement.evictions++;
    let inFlight = false;
    let ownerStopped = false;
    for (const entry of vm.history) {
      const at = Date.parse(entry.at);
      switch (entry.event) {
        case "evicted":
          judgement.evictions++;
          // Evicted again while waiting (or while its start ran): one successful start answers both.
          if (waitingSince === undefined || Number.isNaN(waitingSince)) waitingSince = at;
          inFlight = false; // an eviction ends a start in flight
          ownerStopped = false;
          break;
        case "deallocated-by-owner":
          ownerStopped = true;
          waitingSince = undefined; // the owner's stop is no eviction to answer
          inFlight = false;
          break;
        case "start-accepted":
          if (ownerStopped)
            judgement.wrongStarts.push(`${vm.name}: started after its owner deallocated it (${entry.at})`);
          else if (waitingSince === undefined)
            judgement.wrongStarts.push(`${vm.name}: started while not evicted (${entry.at})`);
          else if (inFlight)
            judgement.wrongStarts.push(`${vm.name}: a second start while one was in flight (${entry.at})`);
          inFlight = true;
          break;
        case "start-succeeded":
          inFlight = false;
          if (waitingSince === undefined) break; // already counted: a start of a running VM is judged above
          judgement.restarts++;
          if (!Number.isNaN(waitingSince)) judgement.latenciesMs.push(at - waitingSince);
          waitingSince = undefined;
          break;
        case "start-failed":
        case "start-preempted":
          inFlight = false;
          break;
      }
    }
    if (waitingSince !== undefined) judgement.missed.push(vm.name);
  }
  return judgement;
}
