// `npm run bench` flags: parsed and checked by a function (nothing happens at import), so the other
// bench modules and tests can import what they need without a command line.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseToolArgs } from "../support/toolArgs";

export interface BenchFlags {
  readonly sizes: number[];
  readonly startSeconds: number;
  /** Added to every Resource Manager request by the emulator (a delay fault): loopback has none, Azure has some. */
  readonly armLatencyMs: number;
  readonly originalMaxStarts: number;
  readonly noAz: boolean;
  readonly out: string;
  /** Capacity-outage lengths in emulated minutes (bench/outage.ts); empty = the scenario is skipped. */
  readonly outageMinutes: number[];
  /** Emulated seconds per real second in the outage scenario. */
  readonly timeScale: number;
  /** The outage scenario's real-time run: its length in minutes (0 = none). */
  readonly outageRealMinutes: number;
  /** VMs failing at once in the outage scenario's fleet run (budget check). */
  readonly outageFleet: number;
  /** Runs per side and outage length, their outages ending spread over a minute. */
  readonly outagePhases: number;
  /** Only the outage scenario (no sizes). */
  readonly outageOnly: boolean;
  /** Annotation delays (emulated seconds) for the signal-delay scenario (bench/signal-delay.ts); empty = skipped. */
  readonly signalDelays: number[];
  /** Only the signal-delay scenario. */
  readonly signalOnly: boolean;
}

/**
 * The capacity-outage scenario's runs per side and length (bench/outage.ts): 8 outages ending 7.5 s
 * apart keep the phase mean's luck within ±3.75 s and still fit a 2-core machine at x30.
 */
export const DEFAULT_OUTAGE_PHASES = 8;

const BENCH_USAGE = `npm run bench: the runtime's ARM requests, latency, CPU and memory against the emulator, beside a
re-enactment of the original script, per fleet size; and the capacity-outage scenario (bench/README.md).
Writes bench/results.json and bench/results.svg. The full run takes many minutes of both cores.

Usage: npm run bench -- [OPTIONS]
  --quick                   sizes 10,100, the original capped at 3 starts, outages 5,20 min (a smoke run:
                            what it can and cannot show: docs/benchmark.md)
  --sizes LIST              comma-separated VM counts from 10 to 5000 (default 10,100,500)
  --start-seconds S         how long the emulator takes to start a VM (default 5)
  --original-max-starts N   starts of the original re-enacted per size before extrapolating (default 10)
  --full                    re-enact every start of the original
  --arm-latency-ms MS       add MS to every ARM request (default 0: loopback has none)
  --no-az                   skip the az CLI calibration
  --out DIR                 where results.json and results.svg go (default bench/)
  --outage LIST             capacity-outage lengths in emulated minutes (default 5,20,60), or none
  --outage-only             only the capacity-outage scenario
  --time-scale X            emulated seconds per real second in the outage scenario (default 30)
  --outage-fleet N          VMs failing at once in the fleet run (default 100; 0 skips it)
  --outage-phases N         runs per side and outage length (default ${DEFAULT_OUTAGE_PHASES})
  --outage-real-minutes M   also run the single-VM outage unscaled for M minutes (default 0: no)
  -h, --help                this help
`;

/** Parses `argv`; a bad flag is reported naming it and what it takes, and the process exits 2. */
export function parseBenchFlags(argv: string[] = process.argv.slice(2)): BenchFlags {
  const values = parseToolArgs(
    "bench",
    BENCH_USAGE,
    {
      sizes: { type: "string" },
      "start-seconds": { type: "string", default: "5" },
      "original-max-starts": { type: "string", default: "10" },
      full: { type: "boolean", default: false },
      "no-az": { type: "boolean", default: false },
      "arm-latency-ms": { type: "string", default: "0" },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: join(__dirname) },
      outage: { type: "string" },
      "time-scale": { type: "string", default: "30" },
      "outage-only": { type: "boolean", default: false },
      "outage-real-minutes": { type: "string" },
      "outage-fleet": { type: "string" },
      "outage-phases": { type: "string", default: String(DEFAULT_OUTAGE_PHASES) },
      "signal-delays": { type: "string", default: "0,60,300" },
      "signal-only": { type: "boolean", default: false },
    },
    argv,
  );
  const quick = values.quick === true;
  const flags: BenchFlags = {
    sizes: (values.sizes ?? (quick ? "10,100" : "10,100,500")).split(",").map(Number),
    startSeconds: Number(values["start-seconds"]),
    armLatencyMs: Number(values["arm-latency-ms"]),
    originalMaxStarts: values.full
      ? Number.POSITIVE_INFINITY
      : quick
        ? 3
        : Number(values["original-max-starts"]),
    noAz: values["no-az"] === true,
    out: values.out as string,
    outageMinutes:
      values.outage === "none" ? [] : (values.outage ?? (quick ? "5,20" : "5,20,60")).split(",").map(Number),
    timeScale: Number(values["time-scale"]),
    outageRealMinutes: Number(values["outage-real-minutes"] ?? "0"),
    outageFleet: Number(values["outage-fleet"] ?? "100"),
    outagePhases: Number(values["outage-phases"]),
    outageOnly: values["outage-only"] === true || values["signal-only"] === true,
    signalDelays:
      values["signal-delays"] === "none" ? [] : String(values["signal-delays"]).split(",").map(Number),
    signalOnly: values["signal-only"] === true,
  };
  const bad = (flag: string, expected: string, got: unknown) => {
    process.stderr.write(`bench: --${flag} must be ${expected} (got ${JSON.stringify(got)})\n`);
    process.exit(2);
  };
  if (!flags.sizes.every((n) => Number.isInteger(n) && n >= 10 && n <= 5000))
    bad("sizes", "comma-separated VM counts from 10 to 5000", values.sizes);
  if (!(flags.startSeconds > 0 && flags.startSeconds <= 600))
    bad("start-seconds", "a number of seconds in (0, 600]", values["start-seconds"]);
  if (!(flags.armLatencyMs >= 0 && flags.armLatencyMs <= 5000))
    bad("arm-latency-ms", "milliseconds from 0 to 5000", values["arm-latency-ms"]);
  if (!(flags.originalMaxStarts >= 1))
    bad("original-max-starts", "a whole number from 1", values["original-max-starts"]);
  if (!flags.outageMinutes.every((m) => m >= 1 && m <= 240))
    bad("outage", "comma-separated outage lengths in minutes from 1 to 240, or none", values.outage);
  if (!(flags.timeScale >= 1 && flags.timeScale <= 600))
    bad("time-scale", "emulated seconds per real second, from 1 to 600", values["time-scale"]);
  if (!(flags.outageRealMinutes >= 0 && flags.outageRealMinutes <= 30))
    bad("outage-real-minutes", "minutes from 0 to 30", values["outage-real-minutes"]);
  if (!(Number.isInteger(flags.outageFleet) && flags.outageFleet >= 0 && flags.outageFleet <= 500))
    bad("outage-fleet", "a whole number of VMs from 0 to 500", values["outage-fleet"]);
  if (!(Number.isInteger(flags.outagePhases) && flags.outagePhases >= 1 && flags.outagePhases <= 30))
    bad("outage-phases", "a whole number of runs from 1 to 30", values["outage-phases"]);
  if (!flags.signalDelays.every((d) => d >= 0 && d <= 1800))
    bad(
      "signal-delays",
      "comma-separated annotation delays in seconds from 0 to 1800, or none",
      values["signal-delays"],
    );
  // Made now, not after the run: a missing folder must not cost the figures.
  mkdirSync(flags.out, { recursive: true });
  return flags;
}
