// One size of the benchmark's world: ours (idle, loop, evictions) and the original pattern (idle,
// evictions), side by side against one emulator process, checked against its request log.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type EmulatorProcess, startEmulatorProcess } from "../demo/chain";
import { createTestPrincipal, emulatorControl, trustEmulatorCa } from "../emulator/testing";
import { type AzCalibration, calibrateAgainstAz } from "./az-calibration";
import { type OriginalCycle, originalTokenSource, runOriginalCycle, totalRequests } from "./original";
import { median, type OnceSummary, runLoop, runOnce, type Subject } from "./ours";
import {
  allTaggedRunning,
  evictTagged,
  GROUP,
  LIST_PAGE_SIZE,
  loggedArmRequests,
  SUBSCRIPTION,
  seedFor,
  TAG,
  TENANT,
} from "./world";

const IDLE_REPEATS = 3;
const LOOP_CYCLES = 7;

export interface MeasureContext {
  readonly startSeconds: number;
  readonly armLatencyMs: number;
  readonly originalMaxStarts: number;
  readonly log: (text: string) => void;
  /** Emulators running now, stopped on Ctrl-C. */
  readonly running: Set<EmulatorProcess>;
}

export interface SizeResult {
  n: number;
  tagged: number;
  listPages: number;
  ours: {
    idle: {
      requests: OnceSummary["armRequests"];
      total: number;
      durationMs: number;
      processCpuMs: number;
      processMaxRssMiB: number;
    };
    loop: { cpuMsPerIdleCycle: number; rssMiB: number; maxRssMiB: number };
    eviction: {
      requests: OnceSummary["armRequests"];
      total: number;
      totalWithoutPolls: number;
      startsIssued: number;
      startsSucceeded: number;
      firstStartRequestedMs: number;
      allStartsRequestedMs: number;
      startRequestSpreadMs: number;
      allRunningMs: number;
    };
    requestsCheckedAgainstEmulatorLog: boolean;
  };
  original: {
    idle: { requests: OriginalCycle["requests"]; total: number; durationMs: number };
    eviction: {
      requests: OriginalCycle["requests"];
      total: number;
      totalWithoutPolls: number;
      matches: number;
      startsPerformed: number;
      allStartsRequestedMs: number;
      allRunningMs: number;
      /** Set when fewer starts were performed than matched: the figures above are extrapolated. */
      extrapolated: {
        measuredStarts: number;
        matches: number;
        meanStartMs: number;
        meanRequestsPerStart: number;
      } | null;
    };
    requestsCheckedAgainstEmulatorLog: boolean;
  };
}

export async function measureSize(
  ctx: MeasureContext,
  n: number,
  bundle: string,
  workDir: string,
  az: string | undefined,
): Promise<{ result: SizeResult; calibration?: AzCalibration }> {
  const { startSeconds, originalMaxStarts, log, running } = ctx;
  const [ours, theirs, azPrincipal] = await Promise.all([
    createTestPrincipal(),
    createTestPrincipal(),
    createTestPrincipal(),
  ]);
  const dir = mkdtempSync(join(workDir, `n${n}-`));
  const seedFile = join(dir, "seed.json");
  writeFileSync(seedFile, JSON.stringify(seedFor(n, [ours, theirs, azPrincipal], ctx)));
  let emulator: EmulatorProcess | undefined;
  try {
    emulator = await startEmulatorProcess(seedFile);
    running.add(emulator);
    const { ready } = emulator;
    const caCertPem = readFileSync(ready.caCertFile, "utf8");
    const control = emulatorControl(ready.armEndpoint, { caCertPem });
    trustEmulatorCa(caCertPem); // for the original pattern's login (MSAL uses the default CAs)

    // Ours: the bundle with a config like the installer writes, pointed at the emulator.
    writeFileSync(join(dir, "sp.pem"), ours.pem, { mode: 0o600 });
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        tenantId: TENANT,
        clientId: ours.clientId,
        subscriptionId: SUBSCRIPTION,
        certificatePath: "sp.pem",
        resourceGroups: [GROUP],
        tag: TAG,
        intervalSeconds: 30,
        stateDir: "state",
        cloud: { authorityHost: ready.authorityHost, armEndpoint: ready.armEndpoint },
      }),
    );
    const subject: Subject = { bundle, config, caCertFile: ready.caCertFile, workDir: dir };

    log(`N=${n}: ours, ${IDLE_REPEATS} idle cycles (once) and ${LOOP_CYCLES} loop cycles`);
    const idleRuns: Awaited<ReturnType<typeof runOnce>>[] = [];
    for (let i = 0; i < IDLE_REPEATS; i++) {
      await control.clearRequests();
      idleRuns.push(await runOnce(subject));
    }
    const idle = idleRuns[idleRuns.length - 1] as Awaited<ReturnType<typeof runOnce>>;
    const idleLogged = await loggedArmRequests(control, ours.clientId);
    const loop = await runLoop(subject, LOOP_CYCLES);

    const tagged = await evictTagged(control);
    log(`N=${n}: ours, one cycle with ${tagged} evicted VMs (S=${startSeconds}s)`);
    await control.clearRequests();
    const eviction = await runOnce(subject);
    const evictionLogged = await loggedArmRequests(control, ours.clientId);
    const cycleStart = Date.parse(eviction.summary.startedAt);
    const startTimes = evictionLogged
      .filter((r) => r.method === "POST" && r.path.endsWith("/start"))
      .map((r) => Date.parse(r.time));
    const afterOurs = (await control.vms()).filter((vm) => vm.tags[TAG.name] === TAG.value);
    if (!afterOurs.every((vm) => vm.powerState === "running" && vm.startRequests === 1)) {
      throw new Error(
        `N=${n}: after our cycle not every evicted VM runs with exactly one start request: ${JSON.stringify(
          afterOurs.map((vm) => [vm.name, vm.powerState, vm.startRequests]),
        )}; once said ${JSON.stringify(eviction.summary.vms?.filter((vm) => vm.tagged))}`,
      );
    }

    // The original pattern, same world, same principal rights.
    const token = originalTokenSource(theirs, ready.authorityHost);
    const originalOptions = {
      armEndpoint: ready.armEndpoint,
      subscriptionId: SUBSCRIPTION,
      resourceGroup: GROUP,
      caCertPem,
      token,
      tag: TAG,
    };
    // az keeps its token in a cache across invocations; ours logs in before its cycle starts too.
    await token();
    log(`N=${n}: original pattern, idle cycle (az vm list -d)`);
    await allTaggedRunning(control);
    await control.clearRequests();
    const originalIdle = await runOriginalCycle({ ...originalOptions, maxStarts: 0 });
    const originalIdleLogged = await loggedArmRequests(control, theirs.clientId);

    await evictTagged(control);
    const cap = Math.min(tagged, originalMaxStarts);
    log(
      `N=${n}: original pattern, cycle with ${tagged} evicted VMs: ${cap} sequential az vm start` +
        (cap < tagged ? ` (capped; the other ${tagged - cap} extrapolated)` : ""),
    );
    await control.clearRequests();
    const original = await runOriginalCycle({ ...originalOptions, maxStarts: cap });
    const originalLogged = await loggedArmRequests(control, theirs.clientId);

    let calibration: AzCalibration | undefined;
    if (az) {
      log(`N=${n}: the original script with the real az ${az}, and the re-enactment again, to compare`);
      calibration = await calibrateAgainstAz({
        version: az,
        emulator: ready,
        control,
        principal: azPrincipal,
        resourceGroup: GROUP,
        workDir: dir,
        evict: async () => {
          await allTaggedRunning(control);
          await evictTagged(control);
        },
        reenact: async () => {
          const cycle = await runOriginalCycle({ ...originalOptions, maxStarts: Number.POSITIVE_INFINITY });
          return {
            requests: cycle.requests,
            listSeconds: (cycle.listedAt - cycle.startedAt) / 1000,
            startSeconds: cycle.starts.reduce((a, st) => a + (st.doneAt - st.requestedAt), 0) / 1000,
          };
        },
      });
    }

    // Extrapolate a capped run: the starts are strictly sequential, so each further one adds the mean
    // duration and the mean request count of the measured ones.
    const performed = original.starts.length;
    const matches = original.matches.length;
    const meanStartMs = performed
      ? original.starts.reduce((a, s) => a + (s.doneAt - s.requestedAt), 0) / performed
      : 0;
    const meanRequestsPerStart = performed
      ? original.starts.reduce((a, s) => a + s.requests, 0) / performed
      : 0;
    const listMs = original.listedAt - original.startedAt;
    const capped = performed < matches;
    const lastRequested = original.starts[performed - 1]?.requestedAt ?? original.listedAt;
    const lastDone = original.starts[performed - 1]?.doneAt ?? original.listedAt;
    const missing = matches - performed;
    const originalTotal = totalRequests(original.requests) + missing * meanRequestsPerStart;
    const pollsPerStart = performed ? original.requests.poll / performed : 0;
    const originalWithoutPolls =
      totalRequests(original.requests, false) + missing * (meanRequestsPerStart - pollsPerStart);

    const sum = (r: OnceSummary["armRequests"]) => r.total;
    const idleRequests = idle.summary.armRequests;
    const result: SizeResult = {
      n,
      tagged,
      listPages: Math.ceil(n / LIST_PAGE_SIZE),
      ours: {
        idle: {
          requests: idleRequests,
          total: sum(idleRequests),
          durationMs: median(idleRuns.map((r) => r.summary.durationMs)),
          processCpuMs: median(idleRuns.map((r) => r.measure.cpuMicros / 1000)),
          processMaxRssMiB: median(idleRuns.map((r) => r.measure.maxRssKiB / 1024)),
        },
        loop: { cpuMsPerIdleCycle: loop.cpuMsPerCycle, rssMiB: loop.rssMiB, maxRssMiB: loop.maxRssMiB },
        eviction: {
          requests: eviction.summary.armRequests,
          total: eviction.summary.armRequests.total,
          totalWithoutPolls: eviction.summary.armRequests.total - eviction.summary.armRequests.poll,
          startsIssued: eviction.summary.starts.issued,
          startsSucceeded: eviction.summary.starts.succeeded,
          firstStartRequestedMs: Math.min(...startTimes) - cycleStart,
          allStartsRequestedMs: Math.max(...startTimes) - cycleStart,
          startRequestSpreadMs: Math.max(...startTimes) - Math.min(...startTimes),
          allRunningMs: Date.parse(eviction.summary.finishedAt) - cycleStart,
        },
        requestsCheckedAgainstEmulatorLog:
          idleLogged.length === idleRequests.total &&
          evictionLogged.length === eviction.summary.armRequests.total,
      },
      original: {
        idle: {
          requests: originalIdle.requests,
          total: totalRequests(originalIdle.requests),
          durationMs: originalIdle.finishedAt - originalIdle.startedAt,
        },
        eviction: {
          requests: original.requests,
          total: Math.round(originalTotal),
          totalWithoutPolls: Math.round(originalWithoutPolls),
          matches,
          startsPerformed: performed,
          allStartsRequestedMs: capped
            ? listMs + (matches - 1) * meanStartMs
            : lastRequested - original.startedAt,
          allRunningMs: capped ? listMs + matches * meanStartMs : lastDone - original.startedAt,
          extrapolated: capped
            ? { measuredStarts: performed, matches, meanStartMs, meanRequestsPerStart }
            : null,
        },
        requestsCheckedAgainstEmulatorLog:
          originalIdleLogged.length === totalRequests(originalIdle.requests) &&
          originalLogged.length === totalRequests(original.requests),
      },
    };
    return { result, calibration };
  } finally {
    if (emulator) {
      running.delete(emulator);
      await emulator.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
