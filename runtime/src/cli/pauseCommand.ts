// `pause` and `resume`: the owner's word about one VM, written to the state directory's pauses file
// (state/pause.ts) without the lock, so they work while `run` runs. The name is checked against the
// tagged Spot VMs first (issue 23, item 2: a typo used to print "paused" and leave the real VM to be
// restarted during maintenance): the live list when Azure answers, else the VMs the state file knows.
import type { VmApi } from "../azure/azure";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupNamePattern } from "../config/configSchema";
import { exitCodes, messageChain, UsageError } from "../core/errors";
import type { RestarterState, RestartTag } from "../core/vm";
import { isRestartCandidate } from "../loop/decisions";
import type { Logger } from "../signals/log";
import { addPause, type Pause, parseDuration, removePause } from "../state/pause";
import { str, type Values } from "./cliArgs";

export interface KnownVm {
  readonly resourceGroup: string;
  readonly name: string;
}

export interface KnownVms {
  readonly vms: readonly KnownVm[];
  /** The groups whose VMs come from the state file (Azure did not answer), each with why. */
  readonly fromState: ReadonlyArray<{ resourceGroup: string; why: string }>;
}

/**
 * The tagged Spot VMs of each configured group: Azure's list where it answers (any answer but a list,
 * a 403 too, counts as not answering), else the VMs the state file remembers in that group.
 */
export async function knownTaggedVms(
  api: VmApi | { unavailable: string },
  state: RestarterState,
  settings: { resourceGroups: readonly string[]; tag: RestartTag },
  signal: AbortSignal,
): Promise<KnownVms> {
  const vms: KnownVm[] = [];
  const fromState: Array<{ resourceGroup: string; why: string }> = [];
  await Promise.all(
    settings.resourceGroups.map(async (resourceGroup) => {
      try {
        if ("unavailable" in api) throw new Error(api.unavailable);
        const listed = await api.listVms(resourceGroup, signal);
        for (const vm of listed) {
          if (isRestartCandidate(vm, settings.tag)) vms.push({ resourceGroup, name: vm.name });
        }
      } catch (error) {
        fromState.push({ resourceGroup, why: messageChain(error) });
        for (const record of Object.values(state.vms)) {
          if (record.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()) {
            vms.push({ resourceGroup: record.resourceGroup, name: record.name });
          }
        }
      }
    }),
  );
  vms.sort((a, b) => `${a.resourceGroup}/${a.name}`.localeCompare(`${b.resourceGroup}/${b.name}`));
  return { vms, fromState };
}

/** The known VMs `--vm NAME [--resource-group RG]` names (names and groups are case-insensitive in Azure). */
export function matchKnownVm(known: readonly KnownVm[], name: string, resourceGroup?: string): KnownVm[] {
  return known.filter(
    (vm) =>
      vm.name.toLowerCase() === name.toLowerCase() &&
      (resourceGroup === undefined || vm.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()),
  );
}

/** Why a name was refused: the known VMs, and where that list came from. */
export function unknownVmMessage(
  command: "pause" | "resume",
  name: string,
  resourceGroup: string | undefined,
  known: KnownVms,
): string {
  const where = resourceGroup ? ` in resource group ${resourceGroup}` : "";
  const list = known.vms.length
    ? `the tagged Spot VMs are: ${known.vms.map((vm) => `${vm.resourceGroup}/${vm.name}`).join(", ")}`
    : "no tagged Spot VM is known";
  const source = known.fromState.length
    ? ` (for ${known.fromState.map((g) => g.resourceGroup).join(", ")} from the state file: Azure did not answer: ${known.fromState[0]?.why})`
    : "";
  const fix =
    command === "pause"
      ? "check the name, or pass --force to pause a VM not seen yet"
      : "check the name (`status` lists the VMs and their pauses)";
  return `${command}: no tagged Spot VM named ${name}${where}; ${list}${source}; ${fix}`;
}

export interface PauseDeps {
  /** The ARM client, or why there is none (no certificate, say): then the state file's VMs are used. */
  readonly api: () => Promise<VmApi | { unavailable: string }>;
  readonly loadState: () => Promise<RestarterState>;
  readonly now: () => number;
}

/** How long the name check waits for Azure before using the state file (the SDK retries within it). */
const lookupTimeoutMs = 30_000;

export async function runPauseCommand(
  command: "pause" | "resume",
  values: Values,
  config: RuntimeConfig,
  log: Logger,
  deps: PauseDeps,
  signal: AbortSignal,
): Promise<number> {
  const vm = str(values.vm);
  if (!vm || !/^[\w.-]{1,64}$/.test(vm)) {
    throw new UsageError(`${command}: --vm NAME is required (1-64 letters, digits, _ . -)`);
  }
  const resourceGroup = str(values["resource-group"]);
  if (resourceGroup !== undefined && !resourceGroupNamePattern.test(resourceGroup)) {
    throw new UsageError(`${command}: --resource-group expects a resource group name`);
  }
  const forText = str(values.for);
  const forMs = forText === undefined ? undefined : parseDuration(forText);
  if (command === "pause" && forText !== undefined && forMs === undefined) {
    throw new UsageError(
      `pause: --for expects a duration like 2h, 30m, 1d or 1h30m, got ${JSON.stringify(forText)}`,
    );
  }
  const lookup = async () =>
    knownTaggedVms(
      await deps.api(),
      await deps.loadState(),
      config,
      AbortSignal.any([signal, AbortSignal.timeout(lookupTimeoutMs)]),
    );

  if (command === "resume") {
    // A pause in the file is ended whatever Azure lists (a VM paused with --force, or deleted since).
    const removed = await removePause(config.stateDir, vm, resourceGroup);
    if (removed) {
      log.info("resumed", { vm }, "pause ended: the loop may start this VM again");
      return exitCodes.ok;
    }
    const known = await lookup();
    if (matchKnownVm(known.vms, vm, resourceGroup).length === 0) {
      throw new UsageError(unknownVmMessage("resume", vm, resourceGroup, known));
    }
    log.info("not-paused", { vm }, "this VM was not paused");
    return exitCodes.ok;
  }

  let name = vm;
  if (values.force !== true) {
    const known = await lookup();
    const matches = matchKnownVm(known.vms, vm, resourceGroup);
    if (matches.length === 0) throw new UsageError(unknownVmMessage("pause", vm, resourceGroup, known));
    // Azure's spelling, so the pauses file and `status` show the VM's own name.
    name = matches[0]?.name ?? vm;
  }
  const now = deps.now();
  const pause: Pause = {
    name,
    ...(resourceGroup ? { resourceGroup } : {}),
    ...(forMs ? { until: now + forMs } : {}),
    at: now,
  };
  const replaced = await addPause(config.stateDir, pause, now);
  const until = forMs ? new Date(now + forMs).toISOString() : "resume";
  const replacedText = replaced
    ? `; replaces the pause set at ${new Date(replaced.at).toISOString()} until ${replaced.until === undefined ? "resume" : new Date(replaced.until).toISOString()}`
    : "";
  log.info(
    "paused",
    { vm: name, until, ...(values.force === true ? { forced: true } : {}) },
    `${forMs ? "the loop leaves this VM alone until then" : "the loop leaves this VM alone until `resume`"}${replacedText}`,
  );
  return exitCodes.ok;
}
