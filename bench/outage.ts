// The capacity-outage scenario (issue 11): Spot VMs evicted, then Azure has no capacity for them for L
// minutes. When is each one back, and how many start requests did that cost, for
//   - ours: the real bundle (`run`, default retry schedule: about once a minute, runtime/src/loop/schedule.ts);
//   - the original: its cron job, once a minute, the whole `az vm list -d` + `az vm start` pattern
//     (bench/original.ts);
//   - the old backoff: the runtime before issue 11, re-enacted: a cycle every 30 s, and after a failed
//     start a backoff from 1 minute doubling to 30 minutes (attempts at about 1, 3, 7, 15, 31, 61, 91 min).
// All three run at once against one emulator process, each on its own resource group, so they see the
// same outage. The clock is scaled by `timeScale` for everything alike: the runtime's interval and
// retry spacing, the original's cron minute, the old backoff's steps, the emulator's start duration
// and the outage; only the emulator's Retry-After stays 1 real second (its smallest: 30 emulated
// seconds at the default scale 30), which every side honours alike. `--outage-real-minutes` runs the
// same unscaled.
//
// A fleet run adds K VMs failing at once for ours alone and counts its start requests per emulated
// minute against the budgets they must stay in (runtime/src/loop/schedule.ts: a quarter of Compute's).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type EmulatorProcess, startEmulatorProcess } from "../demo/chain";
import type { EmulatorSeed, SeedVirtualMachine } from "../emulator/index";
import {
  CONTRIBUTOR_ROLE_ID,
  createTestPrincipal,
  emulatorControl,
  trustEmulatorCa,
} from "../emulator/testing";
import { fleetStartsPerMinute, minStartSpacingMs } from "../runtime/src/core/azureBudgets";
import { type PreciseBack, preciseBack } from "./expected-wait";
import { originalTokenSource, runOriginalCycle } from "./original";
import { liveChildren } from "./ours";
import { SUBSCRIPTION, TAG, TENANT } from "./world";

export type Side = "ours" | "ours60" | "original" | "oldBackoff";
/** `ours`: the default schedule (20 s, issue 30); `ours60`: the same runtime at the once-a-minute schedule before it. */
export const SIDES: readonly Side[] = ["ours", "ours60", "original", "oldBackoff"];

export interface OutageRun {
  /** Outage length, emulated minutes. */
  readonly minutes: number;
  readonly sides: Record<
    Side,
    {
      /** Emulated minutes from capacity returning until the VM runs, mean over the phases; null: one not back by the deadline. */
      backAfterCapacityMinutes: number | null;
      /** The same, the worst phase. */
      worstBackAfterCapacityMinutes: number | null;
      /** Start requests per VM (mean over the phases). */
      startRequests: number;
      /** From the gaps between its start requests during the outage (expected-wait.ts), emulated seconds. */
      precise: PreciseBack;
      /** Per phase, emulated seconds since the outage began: what the figures come from. */
      timeline: {
        capacityReturnedAt: number;
        startRequestsAt: number[];
        /** The emulator's record; `seenRunningAt`: when the bench's watcher saw it. */
        runningAt: number | null;
        seenRunningAt: number | null;
      }[];
    }
  >;
}

export interface FleetRun {
  readonly vms: number;
  readonly minutes: number;
  readonly startRequests: number;
  /** The most start requests in any 60 emulated seconds, across the fleet. */
  readonly maxStartsPerMinute: number;
  readonly budgetStartsPerMinute: number;
  /** The most start requests in any 3 emulated minutes, and half the subscription's PutVM3Min the emulator reports. */
  readonly maxStartsIn3Minutes: number;
  readonly halfPutVm3Min: number;
  /** The shortest gap between two start requests of one VM as the runtime sent them (emulated seconds). */
  readonly shortestSentGapPerVmSeconds: number | null;
  /**
   * The same as Azure (the emulator) accepted them: less by the requests' transit jitter, which the
   * scaled clock multiplies (300 real ms in a 100-request burst are 9 emulated seconds at x30).
   */
  readonly shortestGapPerVmSeconds: number | null;
  /** The VM with that gap: its start requests (emulated seconds since the outage began). */
  readonly shortestGap: { vm: string; startRequestsAt: number[] } | null;
  readonly budgetGapPerVmSeconds: number;
  /**
   * Whether any VM's accepted starts would have overdrawn Compute's documented per-VM Start bucket
   * (12, refilled at 4 per minute), the budget Azure itself enforces on arrival.
   */
  readonly perVmBucketOverdrawn: boolean;
  readonly allBack: boolean;
}

/**
 * Compute's "Update VM" policy per VM, as documented ("Throttling limits for Virtual machines",
 * https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits): a bucket of 12 starts
 * refilled at 4 per minute. Written here apart from runtime/src/loop/schedule.ts, as the bench's oracle.
 */
const AZURE_START_BUCKET_PER_VM = { capacity: 12, refillPerMinute: 4 };

/** True when the start times (emulated minutes, ascending) ever find the per-VM bucket empty. */
export function overdrawsPerVmBucket(times: readonly number[]): boolean {
  let tokens = AZURE_START_BUCKET_PER_VM.capacity;
  let last = times[0] ?? 0;
  for (const at of times) {
    tokens = Math.min(
      AZURE_START_BUCKET_PER_VM.capacity,
      tokens + (at - last) * AZURE_START_BUCKET_PER_VM.refillPerMinute,
    );
    last = at;
    if (tokens < 1) return true;
    tokens -= 1;
  }
  return false;
}

export interface OutageResult {
  readonly timeScale: number;
  /** Emulated seconds a start (failing or not) takes. */
  readonly startSeconds: number;
  /** Runs per side and length, their outages ending evenly spread over a minute. */
  readonly phases: number;
  /**
   * The scaled clock's resolution (emulated seconds): the watcher's measured mean poll period (an
   * HTTPS round trip to each emulator and a 50 ms timer), times the scale.
   */
  readonly resolutionSeconds: number;
  /** Every VM's accepted starts in the emulator's history match its request log. */
  readonly startsCheckedAgainstLog: boolean;
  readonly runs: OutageRun[];
  readonly fleet: FleetRun | null;
}

export interface OutageOptions {
  readonly minutes: readonly number[];
  readonly timeScale: number;
  readonly fleetVms: number;
  readonly fleetMinutes: number;
  /** Runs per side and length (their outages ending spread over a minute). */
  readonly phases: number;
  readonly bundle: string;
  readonly workDir: string;
  readonly log: (text: string) => void;
  readonly running: Set<EmulatorProcess>;
}

/** The PutVM3Min count the worlds are seeded with (see seed()). */
const SUBSCRIPTION_PUT_VM_3MIN = 1_500;

/** Emulated seconds a start takes, failing or succeeding (Azure's AllocationFailed comes after tens of seconds). */
export const START_SECONDS = 30;
/** The old runtime's interval and backoff (before issue 11). */
const OLD_INTERVAL_SECONDS = 30;
const OLD_BACKOFF = { initialMinutes: 1, maxMinutes: 30 };
/** How long after the outage the slowest side (the old backoff) may take: its next step, plus slack. */
const deadlineMinutes = (minutes: number) => minutes + 1 + OLD_BACKOFF.maxMinutes + 3;

/**
 * Each (side, outage length) runs `phases` times (flags.ts: 8 by default), on one-VM resource groups whose outages end evenly
 * spread over a minute (with 8: L, L + 7.5 s, …): "back after capacity returned" depends on where the
 * return falls between two once-a-minute attempts, so one run alone says little. The phase mean still
 * carries up to half a phase step of luck per side; the precise figure (expected-wait.ts) does not.
 */
const phaseOffsetMinutes = (phase: number, phases: number) => phase / phases;
const groupOf = (side: Side, minutes: number, phase: number) =>
  `outage-${side.toLowerCase()}-${minutes}-p${phase}`;
const vmOf = (side: Side, minutes: number, phase: number) => `${side.toLowerCase()}-l${minutes}-p${phase}`;
const phaseList = (phases: number) => Array.from({ length: phases }, (_, i) => i);
const FLEET_GROUP = "outage-fleet";
/**
 * Ours' single VMs share one resource group: ours starts every VM of a cycle at once, so they do not
 * wait on each other, and its reads stay those of a user with one group (one list per cycle). The
 * original's `az vm start` runs one after another per group, so each of its VMs has a group of its own.
 */
const OURS_GROUP = "outage-ours";
/** The once-a-minute schedule (before issue 30): the same runtime, `retry.capacitySeconds` 60. */
const OURS60_GROUP = "outage-ours60";

/** A tagged Spot VM, running (the scenario evicts it). */
export const spot = (resourceGroup: string, name: string): SeedVirtualMachine => ({
  resourceGroup,
  name,
  priority: "Spot",
  evictionPolicy: "Deallocate",
  maxPrice: -1,
  powerState: "running",
  tags: { [TAG.name]: TAG.value },
  publicIp: false,
});

/**
 * One emulator's world, on the scaled clock: starts take START_SECONDS emulated, and Azure's budgets
 * (the remaining-budget headers ours reads and slows down by) refill on the same clock: Compute's
 * windows shortened and ARM's buckets refilled `timeScale` times faster. Unscaled they would drain
 * 30 times too fast in emulated time and hold ours back for a budget Azure would not have spent.
 */
export function seed(
  vms: SeedVirtualMachine[],
  principals: { clientId: string; objectId: string; certificatePem: string }[],
  timeScale: number,
): EmulatorSeed {
  return {
    tenantId: TENANT,
    subscriptionId: SUBSCRIPTION,
    principals,
    roleAssignments: principals.map((p) => ({
      principalId: p.objectId,
      roleDefinitionId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope: `/subscriptions/${SUBSCRIPTION}`,
    })),
    virtualMachines: vms,
    timing: {
      startSeconds: START_SECONDS / timeScale,
      evictionDelaySeconds: 0,
      retryAfterSeconds: 1,
      annotationDelaySeconds: 0,
    },
    rateLimits: {
      // The subscription's Start ("Update VM") budget as Compute documents it (a bucket of 1,500, refilled at
      // 500 a minute: https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits), not the
      // 240 an arm-compute recording starts from: the fleet's 100 VMs and the 8 x L single VMs each stand for
      // an owner's subscription, and ours now stretches its retries as this budget falls below half.
      limits: { PutVM3Min: SUBSCRIPTION_PUT_VM_3MIN, PutVM30Min: 15_000 },
      windowScale: 1 / timeScale,
      armReads: { capacity: 250, refillPerSecond: 25 * timeScale },
      armWrites: { capacity: 200, refillPerSecond: 10 * timeScale },
    },
    faults: [],
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A control-API call again after a dropped keep-alive connection (the machine is busy: it happens). */
export async function retrying<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(200 * attempt);
    }
  }
}

/** Ours: the bundle's `run` loop on `groups`, scaled. Returns a stop function. */
export function startOurs(
  options: Pick<OutageOptions, "timeScale" | "bundle">,
  dir: string,
  name: string,
  groups: string[],
  principalPem: string,
  clientId: string,
  ready: { authorityHost: string; armEndpoint: string; caCertFile: string },
  capacitySeconds = 20,
  /** `evicted` (the default: asks Azure why) or `deallocated` (like the original: every deallocation). */
  restartWhen: "evicted" | "deallocated" = "deallocated",
) {
  const home = mkdtempSync(join(dir, `${name}-`));
  writeFileSync(join(home, "sp.pem"), principalPem, { mode: 0o600 });
  const config = join(home, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      tenantId: TENANT,
      clientId,
      subscriptionId: SUBSCRIPTION,
      certificatePath: "sp.pem",
      resourceGroups: groups,
      tag: TAG,
      // Defaults, scaled: a cycle every 30 s, a capacity retry every 20 s stretching up to 60 s.
      intervalSeconds: Math.max(1, Math.round(30 / options.timeScale)),
      retry: {
        capacitySeconds: capacitySeconds / options.timeScale,
        capacityMaxSeconds: Math.max(60, capacitySeconds) / options.timeScale,
        fleetStartsPerMinute: Math.round(fleetStartsPerMinute * options.timeScale),
      },
      // In the outage: like the original and the old runtime, every deallocation is started (no cause
      // lookups); the signal-delay scenario (signal-delay.ts) runs the default, which asks Azure why.
      restartWhen,
      unknownCauseAfterSeconds: 600 / options.timeScale,
      stateDir: join(home, "state"),
      cloud: { authorityHost: ready.authorityHost, armEndpoint: ready.armEndpoint },
    }),
  );
  const child = spawn(
    process.execPath,
    [options.bundle, "run", "--config", config, "--log-format", "json", "--log-level", "debug"],
    {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ready.caCertFile },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  liveChildren.add(child);
  let stderr = "";
  let cycles = 0;
  let partial = "";
  // When the runtime sent each start request (its `start-issued` log line, stamped as the request
  // leaves), per VM name: what the runtime controls, apart from the transit the scaled clock magnifies.
  const sent = new Map<string, number[]>();
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-20_000);
    cycles += chunk.split('"event":"cycle-done"').length - 1;
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.includes('"event":"start-issued"')) continue;
      const { vm, time } = JSON.parse(line) as { vm: string; time: string };
      const name = vm.split("/").at(-1) as string;
      const times = sent.get(name) ?? [];
      times.push(Date.parse(time));
      sent.set(name, times);
    }
  });
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  return {
    /** The runtime's own send times (epoch ms) of each VM's start requests. */
    sentAt: (vm: string) => sent.get(vm) ?? [],
    async firstCycle() {
      const started = Date.now();
      while (cycles === 0) {
        if (child.exitCode !== null) throw new Error(`ours (${name}) exited: ${stderr.slice(-2000)}`);
        if (Date.now() - started > 60_000)
          throw new Error(`ours (${name}) did no cycle in 60 s: ${stderr.slice(-2000)}`);
        await sleep(50);
      }
    },
    async stop() {
      child.kill("SIGTERM");
      await closed;
      liveChildren.delete(child);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Runs the scenario; one emulator for every outage length and side, concurrently. */
export async function measureOutages(options: OutageOptions): Promise<OutageResult> {
  const scale = options.timeScale;
  const emulated = (realMs: number) => (realMs * scale) / 60_000; // emulated minutes
  const realMs = (emulatedMinutes: number) => (emulatedMinutes * 60_000) / scale;
  const phases = phaseList(options.phases);
  const phaseCount = options.phases;
  const [ours, theirs] = await Promise.all([createTestPrincipal(), createTestPrincipal()]);
  const dir = mkdtempSync(join(options.workDir, "outage-"));
  const asSeedPrincipal = (p: typeof ours) => ({
    clientId: p.clientId,
    objectId: p.objectId,
    certificatePem: p.certificatePem,
  });
  // Three emulators, each side alone in its subscription as it would be in Azure: the budgets ours
  // reads (a subscription's Compute list budget above all) count its own requests only, not the
  // original's and the old backoff's lists of 2 x L x phases groups, nor the fleet's. The original and
  // the old backoff read no budgets and share one.
  const worldVms: Record<"ours" | "theirs" | "fleet", SeedVirtualMachine[]> = {
    ours: options.minutes.flatMap((m) =>
      phases.flatMap((phase) => [
        spot(OURS_GROUP, vmOf("ours", m, phase)),
        spot(OURS60_GROUP, vmOf("ours60", m, phase)),
      ]),
    ),
    theirs: options.minutes.flatMap((m) =>
      (["original", "oldBackoff"] as const).flatMap((side) =>
        phases.map((phase) => spot(groupOf(side, m, phase), vmOf(side, m, phase))),
      ),
    ),
    fleet: Array.from({ length: options.fleetVms }, (_, i) =>
      spot(FLEET_GROUP, `fleet-${String(i).padStart(3, "0")}`),
    ),
  };
  const emulators: EmulatorProcess[] = [];
  const stops: Array<() => Promise<void>> = [];
  let stopping = false;
  try {
    const startWorld = async (name: keyof typeof worldVms, principal: typeof ours) => {
      const seedFile = join(dir, `seed-${name}.json`);
      writeFileSync(seedFile, JSON.stringify(seed(worldVms[name], [asSeedPrincipal(principal)], scale)));
      const emulator = await startEmulatorProcess(seedFile);
      emulators.push(emulator);
      options.running.add(emulator);
      const { ready } = emulator;
      const caCertPem = readFileSync(ready.caCertFile, "utf8");
      trustEmulatorCa(caCertPem);
      return { ready, caCertPem, control: emulatorControl(ready.armEndpoint, { caCertPem }) };
    };
    const [oursWorld, theirWorld, fleetWorld] = await Promise.all([
      startWorld("ours", ours),
      startWorld("theirs", theirs),
      options.fleetVms > 0 ? startWorld("fleet", ours) : undefined,
    ]);
    const worlds = [oursWorld, theirWorld, ...(fleetWorld ? [fleetWorld] : [])];

    // Ours: one process for the single VMs, one for the fleet (its own state and pacer, as on its own host).
    const single = startOurs(options, dir, "ours", [OURS_GROUP], ours.pem, ours.clientId, oursWorld.ready);
    stops.push(single.stop);
    const single60 = startOurs(
      options,
      dir,
      "ours60",
      [OURS60_GROUP],
      ours.pem,
      ours.clientId,
      oursWorld.ready,
      60,
    );
    stops.push(single60.stop);
    const fleet = fleetWorld
      ? startOurs(options, dir, "fleet", [FLEET_GROUP], ours.pem, ours.clientId, fleetWorld.ready)
      : undefined;
    if (fleet) stops.push(fleet.stop);
    await single.firstCycle();
    await single60.firstCycle();
    await fleet?.firstCycle();

    const token = originalTokenSource(theirs, theirWorld.ready.authorityHost);
    await token();
    const cycleOf = (resourceGroup: string) =>
      runOriginalCycle({
        armEndpoint: theirWorld.ready.armEndpoint,
        subscriptionId: SUBSCRIPTION,
        resourceGroup,
        caCertPem: theirWorld.caCertPem,
        token,
        tag: TAG,
        maxStarts: Number.POSITIVE_INFINITY,
      });

    // The outage: every VM evicted at once, no capacity for L minutes (the rule lapses by itself).
    const longest = Math.max(...options.minutes, options.fleetVms > 0 ? options.fleetMinutes : 0);
    options.log(
      `outage: L = ${options.minutes.join(", ")} min${options.fleetVms ? ` and ${options.fleetVms} VMs for ${options.fleetMinutes} min` : ""}, clock x${scale} (about ${Math.ceil(realMs(deadlineMinutes(longest)) / 1000)} s at most)`,
    );
    const outageOf = (m: number, phase: number) => (vm: string) => ({
      vm,
      startFailsWith: "AllocationFailed",
      forSeconds: realMs(m + phaseOffsetMinutes(phase, phaseCount)) / 1000,
    });
    const singleFaults = (sides: readonly Side[]) =>
      options.minutes.flatMap((m) =>
        sides.flatMap((side) => phases.map((phase) => outageOf(m, phase)(vmOf(side, m, phase)))),
      );
    const fleetVms = worldVms.fleet.map((vm) => vm.name);
    const faultsOf = new Map([
      [oursWorld, singleFaults(["ours", "ours60"])],
      [theirWorld, singleFaults(["original", "oldBackoff"])],
      ...(fleetWorld
        ? [
            [
              fleetWorld,
              fleetVms.map((vm) => ({
                vm,
                startFailsWith: "AllocationFailed",
                forSeconds: realMs(options.fleetMinutes) / 1000,
              })),
            ] as const,
          ]
        : []),
    ]);
    await Promise.all(worlds.map((world) => world.control.clearRequests()));
    const t0 = Date.now();
    await Promise.all(worlds.map((world) => world.control.addFaults(...(faultsOf.get(world) ?? []))));
    const all = (
      await Promise.all(worlds.map(async (world) => (await world.control.vms()).map((vm) => ({ vm, world }))))
    ).flat();
    await Promise.all(all.map(({ vm, world }) => world.control.evict(vm.resourceGroup, vm.name)));

    // The original's cron: every (scaled) minute, a new run whatever the last one is doing.
    const cron: Promise<unknown>[] = [];
    const cronTimer = setInterval(() => {
      for (const m of options.minutes)
        for (const phase of phases) cron.push(cycleOf(groupOf("original", m, phase)).catch(() => undefined));
    }, realMs(1));
    // The old backoff: a cycle every 30 s; a failed start waits 1, 2, 4, … up to 30 minutes from its end.
    const oldLoops = options.minutes
      .flatMap((m) => phases.map((phase) => ({ m, phase })))
      .map(async ({ m, phase }) => {
        let attempts = 0;
        let notBefore = 0;
        while (!stopping) {
          await sleep(realMs(OLD_INTERVAL_SECONDS / 60));
          if (stopping || Date.now() < notBefore) continue;
          const cycle = await cycleOf(groupOf("oldBackoff", m, phase)).catch(() => undefined);
          const start = cycle?.starts[0];
          if (!start) continue;
          if (start.status === "Succeeded") return;
          attempts += 1;
          const gapMinutes = Math.min(
            OLD_BACKOFF.maxMinutes,
            OLD_BACKOFF.initialMinutes * 2 ** (attempts - 1),
          );
          notBefore = start.doneAt + realMs(gapMinutes);
        }
      });

    // Watch every VM until it runs (or the deadline).
    const backAt = new Map<string, number>();
    const watched = all.map(({ vm }) => vm.name);
    const everyVm = async () =>
      (await Promise.all(worlds.map((world) => retrying(() => world.control.vms())))).flat();
    const deadline = t0 + realMs(deadlineMinutes(longest));
    const watchStartedAt = Date.now();
    let polls = 0;
    while (Date.now() < deadline && backAt.size < watched.length) {
      for (const vm of await everyVm()) {
        if (vm.powerState === "running" && !backAt.has(vm.name)) backAt.set(vm.name, Date.now());
      }
      polls += 1;
      await sleep(50);
    }
    // The scaled clock's resolution on this machine now: one poll is an HTTPS round trip to each
    // emulator and a 50 ms timer, the kind of real-time latency every side's requests carry; times the scale.
    const resolutionSeconds = polls ? emulated((Date.now() - watchStartedAt) / polls) * 60 : 0;
    stopping = true;
    clearInterval(cronTimer);
    await Promise.all([...oldLoops, ...cron]);
    const final = new Map((await everyVm()).map((vm) => [vm.name, vm]));
    const requests = (
      await Promise.all(worlds.map((world) => retrying(() => world.control.requests())))
    ).flat();

    // Accepted start requests per VM (ms since epoch): the emulator's history stamps each when it was
    // accepted, the moment its capacity is decided (the request log's time is when the answer was
    // written, a busy emulator's event loop later). The log's count of accepted starts checks it.
    const startRequestsAt = new Map<string, number[]>();
    for (const vm of final.values())
      startRequestsAt.set(
        vm.name,
        vm.history.filter((entry) => entry.event === "start-accepted").map((entry) => Date.parse(entry.at)),
      );
    // When each VM was running again, as the emulator recorded it (its start's end): the watcher sees
    // it up to a poll later, and a busy moment made that 4 emulated seconds on one side in a trial run.
    const runningAt = new Map<string, number>();
    for (const vm of final.values()) {
      const succeeded = vm.history.find((entry) => entry.event === "start-succeeded");
      if (succeeded) runningAt.set(vm.name, Date.parse(succeeded.at));
    }
    const loggedStarts = new Map<string, number>();
    for (const r of requests) {
      const vm = /\/virtualMachines\/([^/]+)\/start$/i.exec(r.path)?.[1];
      if (r.method === "POST" && vm && r.status >= 200 && r.status < 300)
        loggedStarts.set(vm, (loggedStarts.get(vm) ?? 0) + 1);
    }
    const startsCheckedAgainstLog = [...startRequestsAt].every(
      ([vm, times]) => times.length === (loggedStarts.get(vm) ?? 0),
    );

    const runs: OutageRun[] = options.minutes.map((m) => {
      const sides = {} as OutageRun["sides"];
      for (const side of SIDES) {
        const after = phases.map((phase) => {
          const back = backAt.get(vmOf(side, m, phase));
          return back === undefined
            ? null
            : emulated(back - t0) - (m + phaseOffsetMinutes(phase, phaseCount));
        });
        const known = after.filter((a): a is number => a !== null);
        sides[side] = {
          backAfterCapacityMinutes:
            known.length === phaseCount ? known.reduce((a, b) => a + b, 0) / phaseCount : null,
          worstBackAfterCapacityMinutes: known.length === phaseCount ? Math.max(...known) : null,
          startRequests:
            phases.reduce((sum, phase) => sum + (final.get(vmOf(side, m, phase))?.startRequests ?? 0), 0) /
            phaseCount,
          precise: preciseBack(
            phases.map((phase) => ({
              startRequestsAt: startRequestsAt.get(vmOf(side, m, phase)) ?? [],
              runningAt: runningAt.get(vmOf(side, m, phase)) ?? null,
            })),
            scale,
          ),
          // What the figures come from, per phase (emulated seconds since the outage began).
          timeline: phases.map((phase) => {
            const back = backAt.get(vmOf(side, m, phase));
            const at = (time: number) => Math.round(emulated(time - t0) * 600) / 10;
            const running = runningAt.get(vmOf(side, m, phase));
            return {
              capacityReturnedAt: Math.round((m + phaseOffsetMinutes(phase, phaseCount)) * 600) / 10,
              startRequestsAt: (startRequestsAt.get(vmOf(side, m, phase)) ?? []).map(at),
              runningAt: running === undefined ? null : at(running),
              seenRunningAt: back === undefined ? null : at(back),
            };
          }),
        };
      }
      return { minutes: m, sides };
    });

    let fleetRun: FleetRun | null = null;
    if (fleetVms.length) {
      // Accepted starts as the emulator's history stamps them (checked against the log above).
      const starts = fleetVms
        .flatMap((vm) => (startRequestsAt.get(vm) ?? []).map((at) => ({ vm, at: emulated(at - t0) })))
        .sort((a, b) => a.at - b.at);
      // The most start requests in any 60 emulated seconds (a sliding window), and per VM the shortest gap.
      let maxPerMinute = 0;
      for (let i = 0, j = 0; i < starts.length; i++) {
        while ((starts[i]?.at ?? 0) - (starts[j]?.at ?? 0) >= 1) j++;
        maxPerMinute = Math.max(maxPerMinute, i - j + 1);
      }
      let maxIn3Minutes = 0;
      for (let i = 0, j = 0; i < starts.length; i++) {
        while ((starts[i]?.at ?? 0) - (starts[j]?.at ?? 0) >= 3) j++;
        maxIn3Minutes = Math.max(maxIn3Minutes, i - j + 1);
      }
      const lastByVm = new Map<string, number>();
      let shortestGapSeconds = Number.POSITIVE_INFINITY;
      let shortestGap: FleetRun["shortestGap"] = null;
      for (const start of starts) {
        const last = lastByVm.get(start.vm);
        if (last !== undefined && (start.at - last) * 60 < shortestGapSeconds) {
          shortestGapSeconds = (start.at - last) * 60;
          shortestGap = {
            vm: start.vm,
            startRequestsAt: (startRequestsAt.get(start.vm) ?? []).map(
              (at) => Math.round(emulated(at - t0) * 600) / 10,
            ),
          };
        }
        lastByVm.set(start.vm, start.at);
      }
      // The same per VM from the runtime's own send times.
      let shortestSent = Number.POSITIVE_INFINITY;
      for (const vm of fleetVms) {
        const times = fleet?.sentAt(vm) ?? [];
        for (let i = 1; i < times.length; i++)
          shortestSent = Math.min(shortestSent, emulated((times[i] ?? 0) - (times[i - 1] ?? 0)) * 60);
      }
      const perVmBucketOverdrawn = fleetVms.some((vm) =>
        overdrawsPerVmBucket(
          (startRequestsAt.get(vm) ?? []).map((at) => emulated(at - t0)).sort((a, b) => a - b),
        ),
      );
      fleetRun = {
        vms: fleetVms.length,
        perVmBucketOverdrawn,
        shortestSentGapPerVmSeconds: Number.isFinite(shortestSent) ? shortestSent : null,
        minutes: options.fleetMinutes,
        startRequests: starts.length,
        maxStartsPerMinute: maxPerMinute,
        budgetStartsPerMinute: fleetStartsPerMinute,
        maxStartsIn3Minutes: maxIn3Minutes,
        halfPutVm3Min: SUBSCRIPTION_PUT_VM_3MIN / 2,
        shortestGapPerVmSeconds: Number.isFinite(shortestGapSeconds) ? shortestGapSeconds : null,
        shortestGap,
        budgetGapPerVmSeconds: minStartSpacingMs / 1000,
        allBack: fleetVms.every((vm) => backAt.has(vm)),
      };
    }
    return {
      timeScale: scale,
      startSeconds: START_SECONDS,
      phases: phaseCount,
      resolutionSeconds,
      startsCheckedAgainstLog,
      runs,
      fleet: fleetRun,
    };
  } finally {
    stopping = true;
    for (const stop of stops) await stop().catch(() => undefined);
    for (const emulator of emulators) {
      options.running.delete(emulator);
      await emulator.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
