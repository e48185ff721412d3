// Runs the real runtime bundle as the benchmark subject: `once --json` (one cycle, as cron runs it) and
// the `run` loop (as systemd runs it), each in its own process with bench/measure-hook.cjs loaded to
// read CPU time and memory without changing what the runtime does.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { ArmRequestCounts } from "../runtime/src/azure/azure";
import type { OnceSummary as RuntimeOnceSummary } from "../runtime/src/cli/commands";
import { type ProcessOptions, runProcess, spawnProcess } from "../support/process";

export interface Measure {
  /** Taken at each `cycle-done` log line. */
  samples: { at: number; cpuMicros: number; rssBytes: number }[];
  /** Whole process: user + system CPU time. */
  cpuMicros: number;
  maxRssKiB: number;
  uptimeMs: number;
}

/**
 * What `once --json` prints: the runtime's own contract (runtime/src/cli/commands.ts), with the ARM request
 * counts always present (the bundle counts its requests).
 */
export type OnceSummary = Omit<RuntimeOnceSummary, "armRequests"> & {
  readonly armRequests: ArmRequestCounts;
};

export interface Subject {
  bundle: string;
  config: string;
  caCertFile: string;
  workDir: string;
}

const HOOK = join(__dirname, "measure-hook.cjs");

/** Runtime processes running now: the benchmark ends them on Ctrl-C. */
export const liveChildren = new Set<ChildProcess>();

function spawnMeasured(
  subject: Subject,
  args: string[],
  stateDir: string,
  measureFile: string,
  options: Pick<ProcessOptions, "onStderrLine"> = {},
) {
  const running = spawnProcess(
    process.execPath,
    ["--require", HOOK, subject.bundle, ...args, "--config", subject.config],
    {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: subject.caCertFile,
        SPOT_RESTARTER_STATE_DIR: stateDir,
        BENCH_MEASURE_FILE: measureFile,
      },
      ...options,
    },
  );
  liveChildren.add(running.child);
  running.child.once("exit", () => liveChildren.delete(running.child));
  return running;
}

/** One `once --json` cycle with a fresh state directory (so no backoff or memory of earlier runs). */
export async function runOnce(subject: Subject): Promise<{ summary: OnceSummary; measure: Measure }> {
  const dir = mkdtempSync(join(subject.workDir, "once-"));
  try {
    const measureFile = join(dir, "measure.json");
    const { code, stdout, stderr } = await spawnMeasured(
      subject,
      ["once", "--json", "--log-format", "json", "--log-level", "debug"],
      join(dir, "state"),
      measureFile,
    ).done;
    if (code !== 0) throw new Error(`once exited with ${code}:\n${stderr.slice(-2000)}`);
    return {
      summary: JSON.parse(stdout) as OnceSummary,
      measure: JSON.parse(readFileSync(measureFile, "utf8")) as Measure,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The `run` loop for `cycles` idle cycles at a 1 s interval; CPU per cycle is the median difference
 * between consecutive cycles after the first two (start-up, token, JIT warm-up excluded).
 */
export async function runLoop(
  subject: Subject,
  cycles: number,
): Promise<{ cpuMsPerCycle: number; rssMiB: number; maxRssMiB: number; cycles: number }> {
  const dir = mkdtempSync(join(subject.workDir, "loop-"));
  try {
    const measureFile = join(dir, "measure.json");
    let seen = 0;
    let enough: () => void = () => {};
    const counted = new Promise<void>((resolve) => {
      enough = resolve;
    });
    const child = spawnMeasured(
      subject,
      ["run", "--interval-seconds", "1", "--log-format", "json", "--log-level", "debug"],
      join(dir, "state"),
      measureFile,
      {
        onStderrLine: (line) => {
          if (line.includes('"event":"cycle-done"') && ++seen >= cycles) enough();
        },
      },
    );
    await Promise.race([
      counted,
      child.done.then(({ code, stderr }) => {
        throw new Error(`run exited early (${code}):\n${stderr.slice(-2000)}`);
      }),
    ]);
    const { code } = await child.stop("SIGTERM");
    if (code !== 0) throw new Error(`run exited with ${code} on SIGTERM`);
    const measure = JSON.parse(readFileSync(measureFile, "utf8")) as Measure;
    const deltas = measure.samples
      .slice(2)
      .map((sample, i) => sample.cpuMicros - (measure.samples[i + 1]?.cpuMicros ?? 0));
    const last = measure.samples[measure.samples.length - 1];
    return {
      cpuMsPerCycle: median(deltas) / 1000,
      rssMiB: (last?.rssBytes ?? 0) / 2 ** 20,
      maxRssMiB: measure.maxRssKiB / 1024,
      cycles: measure.samples.length,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same measurement of a Node.js process that does nothing: what any Node.js cron job costs. */
export async function measureNodeBaseline(workDir: string): Promise<{ cpuMs: number; maxRssMiB: number }> {
  const dir = mkdtempSync(join(workDir, "baseline-"));
  try {
    const measureFile = join(dir, "measure.json");
    await runProcess(process.execPath, ["--require", HOOK, "-e", "0"], {
      env: { ...process.env, BENCH_MEASURE_FILE: measureFile },
    });
    const measure = JSON.parse(readFileSync(measureFile, "utf8")) as Measure;
    return { cpuMs: measure.cpuMicros / 1000, maxRssMiB: measure.maxRssKiB / 1024 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
