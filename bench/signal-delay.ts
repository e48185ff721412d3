// The wait for Azure's word (issue 31): how long after an eviction is the VM started, and running, when
// the Resource Health annotation that says "evicted" shows up 0, 60 or 300 s late (docs/signal-delays.md:
// Microsoft documents no bound; Resource Graph's samples say "within 5 minutes in general")? Ours runs its
// default, `restartWhen: evicted` (it starts a VM once Azure says it was evicted, never an owner's stop); the
// original's cron job starts every deallocated tagged Spot VM at its next minute, whatever the cause.
//
// One emulator per delay (the delay is the emulator's `timing.annotationDelaySeconds`), on the scaled clock
// of outage.ts (x30 by default): ours' interval, capacity interval and unknownCauseAfterSeconds, the cron
// minute, the start (30 s), Resource Graph's quota window and Compute's budgets alike. `phases` VMs per side,
// evicted at moments spread over a minute (where an eviction falls against the cron minute and ours' cycle
// is luck): the figures are means over them, from the emulator's own VM history (start accepted, running).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type EmulatorProcess, startEmulatorProcess } from "../demo/chain";
import { createTestPrincipal, emulatorControl, trustEmulatorCa } from "../emulator/testing";
import { originalTokenSource, runOriginalCycle } from "./original";
import { retrying, START_SECONDS, seed, sleep, spot, startOurs } from "./outage";
import { SUBSCRIPTION, TAG } from "./world";

export interface SignalDelayRow {
  /** How late the annotation shows (emulated seconds). */
  readonly delaySeconds: number;
  /** Per side: mean emulated seconds from the eviction to the first start request and to running; null: one not back. */
  readonly ours: { firstStartSeconds: number | null; runningSeconds: number | null };
  readonly original: { firstStartSeconds: number | null; runningSeconds: number | null };
}

export interface SignalDelayResult {
  readonly timeScale: number;
  readonly phases: number;
  readonly startSeconds: number;
  readonly rows: SignalDelayRow[];
}

export interface SignalDelayOptions {
  readonly delays: readonly number[];
  readonly timeScale: number;
  readonly phases: number;
  readonly bundle: string;
  readonly workDir: string;
  readonly log: (text: string) => void;
  readonly running: Set<EmulatorProcess>;
}

const OURS_GROUP = "signal-ours";
const originalGroup = (phase: number) => `signal-original-p${phase}`;

export async function measureSignalDelays(options: SignalDelayOptions): Promise<SignalDelayResult> {
  const scale = options.timeScale;
  const realMs = (emulatedSeconds: number) => (emulatedSeconds * 1000) / scale;
  const emulated = (ms: number) => (ms * scale) / 1000;
  const phases = Array.from({ length: options.phases }, (_, i) => i);
  const [ours, theirs] = await Promise.all([createTestPrincipal(), createTestPrincipal()]);
  const dir = mkdtempSync(join(options.workDir, "signal-"));
  const emulators: EmulatorProcess[] = [];
  const stops: Array<() => Promise<void>> = [];
  try {
    const rows = await Promise.all(
      options.delays.map(async (delaySeconds): Promise<SignalDelayRow> => {
        const vms = phases.flatMap((p) => [
          spot(OURS_GROUP, `ours-d${delaySeconds}-p${p}`),
          spot(originalGroup(p), `original-d${delaySeconds}-p${p}`),
        ]);
        const principals = [ours, theirs].map((p) => ({
          clientId: p.clientId,
          objectId: p.objectId,
          certificatePem: p.certificatePem,
        }));
        const world = seed(vms, principals, scale);
        world.timing = { ...world.timing, annotationDelaySeconds: delaySeconds / scale };
        world.rateLimits = {
          ...world.rateLimits,
          // Resource Graph's 15 queries per 5 s per caller, on the same clock.
          resourceGraph: { quota: 15, windowSeconds: 5 / scale, enforce: true },
        };
        const seedFile = join(dir, `seed-${delaySeconds}.json`);
        writeFileSync(seedFile, JSON.stringify(world));
        const emulator = await startEmulatorProcess(seedFile);
        emulators.push(emulator);
        options.running.add(emulator);
        const caCertPem = readFileSync(emulator.ready.caCertFile, "utf8");
        trustEmulatorCa(caCertPem);
        const control = emulatorControl(emulator.ready.armEndpoint, { caCertPem });
        const runtime = startOurs(
          options,
          dir,
          `signal-${delaySeconds}`,
          [OURS_GROUP],
          ours.pem,
          ours.clientId,
          emulator.ready,
          20,
          "evicted",
        );
        stops.push(runtime.stop);
        await runtime.firstCycle();
        const token = originalTokenSource(theirs, emulator.ready.authorityHost);
        await token();
        const cron: Promise<unknown>[] = [];
        const cronTimer = setInterval(() => {
          for (const p of phases)
            cron.push(
              runOriginalCycle({
                armEndpoint: emulator.ready.armEndpoint,
                subscriptionId: SUBSCRIPTION,
                resourceGroup: originalGroup(p),
                caCertPem,
                token,
                tag: TAG,
                maxStarts: Number.POSITIVE_INFINITY,
              }).catch(() => undefined),
            );
        }, realMs(60));
        // Evictions spread over a minute, both sides' VM of a phase at once.
        const evictedAt = new Map<string, number>();
        await Promise.all(
          phases.map(async (p) => {
            await sleep(realMs((60 * p) / options.phases));
            const at = Date.now();
            await Promise.all([
              control.evict(OURS_GROUP, `ours-d${delaySeconds}-p${p}`),
              control.evict(originalGroup(p), `original-d${delaySeconds}-p${p}`),
            ]);
            evictedAt.set(`ours-d${delaySeconds}-p${p}`, at);
            evictedAt.set(`original-d${delaySeconds}-p${p}`, at);
          }),
        );
        const deadline = Date.now() + realMs(delaySeconds + 60 + 3 * START_SECONDS + 60);
        while (Date.now() < deadline) {
          const states = await retrying(() => control.vms());
          if (states.every((vm) => vm.powerState === "running")) break;
          await sleep(100);
        }
        clearInterval(cronTimer);
        await Promise.all(cron);
        const final = await retrying(() => control.vms());
        const side = (prefix: string) => {
          const firsts: number[] = [];
          const runs: number[] = [];
          for (const p of phases) {
            const name = `${prefix}-d${delaySeconds}-p${p}`;
            const vm = final.find((v) => v.name === name);
            const evicted = evictedAt.get(name) ?? Number.NaN;
            const accepted = vm?.history.find(
              (h) => h.event === "start-accepted" && Date.parse(h.at) >= evicted,
            );
            const succeeded = vm?.history.find(
              (h) => h.event === "start-succeeded" && Date.parse(h.at) >= evicted,
            );
            if (accepted) firsts.push(emulated(Date.parse(accepted.at) - evicted));
            if (succeeded) runs.push(emulated(Date.parse(succeeded.at) - evicted));
          }
          const mean = (xs: number[]) =>
            xs.length === phases.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
          return { firstStartSeconds: mean(firsts), runningSeconds: mean(runs) };
        };
        return { delaySeconds, ours: side("ours"), original: side("original") };
      }),
    );
    return { timeScale: scale, phases: options.phases, startSeconds: START_SECONDS, rows };
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    for (const emulator of emulators) {
      options.running.delete(emulator);
      await emulator.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The table: per delay, eviction → first start request and → running, ours against the original. */
export function signalDelayTable(result: SignalDelayResult): string {
  const s = (v: number | null) => (v === null ? "not back" : `${v.toFixed(1)} s`);
  const lines = [
    "| annotation delay | ours: eviction → first start | ours: → running | original: → first start | original: → running |",
    "|---|---|---|---|---|",
    ...result.rows.map(
      (r) =>
        `| ${r.delaySeconds} s | ${s(r.ours.firstStartSeconds)} | ${s(r.ours.runningSeconds)} | ${s(r.original.firstStartSeconds)} | ${s(r.original.runningSeconds)} |`,
    ),
  ];
  return lines.join("\n");
}
