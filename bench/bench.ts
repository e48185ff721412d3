// `npm run bench`: cost and latency of the runtime against the emulator, side by side with a re-enactment
// of the original script's request pattern (bench/original.ts). For each N (VMs in one resource group,
// 10% of them tagged Spot VMs, all of those evicted) it measures ARM requests per idle cycle and per
// cycle with evictions (with and without start-operation polls), the time from cycle start until every
// evicted VM has a start request and until every one runs, and CPU time and memory of an idle cycle.
// Prints tables, writes bench/results.json and bench/results.svg. See bench/README.md.
// This file only orchestrates: flags.ts (the command line), world.ts (the seed), measure.ts (one size),
// outage.ts (the capacity-outage scenario), report.ts (tables, targets, SVG).
//
//   npm run bench [-- --sizes 10,100,500] [--start-seconds 5] [--original-max-starts 10 | --full] [--quick]
import "reflect-metadata"; // before the emulator helpers: @peculiar/x509 needs it loaded first
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem, type } from "node:os";
import { join } from "node:path";
import { buildBundle, type EmulatorProcess } from "../demo/chain";
import { type AzCalibration, azVersion } from "./az-calibration";
import { parseBenchFlags } from "./flags";
import { measureSize, type SizeResult } from "./measure";
import { liveChildren, measureNodeBaseline, median } from "./ours";
import { measureOutages, type OutageResult } from "./outage";
import { outageTable, outageTargets, report, svg, targets } from "./report";
import { measureSignalDelays, signalDelayTable } from "./signal-delay";
import { LIST_PAGE_SIZE, RETRY_AFTER_SECONDS } from "./world";

const flags = parseBenchFlags();
const { sizes, startSeconds, armLatencyMs, originalMaxStarts } = flags;

const t0 = Date.now();
const log = (text: string) =>
  process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${text}\n`);

/** Emulators running now, stopped on Ctrl-C. */
const running = new Set<EmulatorProcess>();

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), "spot-restarter-bench-"));
  const cleanup = () => rmSync(workDir, { recursive: true, force: true });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, async () => {
      log(`${signal}: stopping`);
      for (const child of liveChildren) child.kill("SIGTERM");
      await Promise.all([...running].map((emulator) => emulator.stop()));
      cleanup();
      process.exit(130);
    });
  }
  try {
    log(
      flags.signalOnly
        ? "signal delays only"
        : flags.outageOnly
          ? "capacity outage only"
          : `sizes ${sizes.join(", ")}; S=${startSeconds}s; original pattern: at most ${originalMaxStarts} starts per run`,
    );
    const bundle = await buildBundle(workDir);
    const baselines = [];
    for (let i = 0; i < 3; i++) baselines.push(await measureNodeBaseline(workDir));
    const nodeBaseline = {
      cpuMs: median(baselines.map((b) => b.cpuMs)),
      maxRssMiB: median(baselines.map((b) => b.maxRssMiB)),
    };
    const az = flags.noAz ? undefined : azVersion();
    if (!az)
      log(
        flags.noAz
          ? "--no-az: not checking the re-enactment against az"
          : "az not installed: the re-enactment is not checked against the real az",
      );
    const results: SizeResult[] = [];
    let calibration: AzCalibration | undefined;
    for (const n of flags.outageOnly ? [] : sizes) {
      // The real az is slow (a Python process per command): compare once, in the smallest world.
      const measured = await measureSize(
        { startSeconds, armLatencyMs, originalMaxStarts, log, running },
        n,
        bundle,
        workDir,
        n === Math.min(...sizes) ? az : undefined,
      );
      results.push(measured.result);
      calibration ??= measured.calibration;
    }
    // Capacity outages (bench/outage.ts): on a scaled clock, then optionally in real time.
    const outageContext = { bundle, workDir, log, running };
    const outage =
      flags.outageMinutes.length && !flags.signalOnly
        ? await measureOutages({
            ...outageContext,
            minutes: flags.outageMinutes,
            timeScale: flags.timeScale,
            fleetVms: flags.outageFleet,
            fleetMinutes: 20,
            phases: flags.outagePhases,
          })
        : undefined;
    const outageRealTime =
      flags.outageRealMinutes > 0 && !flags.signalOnly
        ? await measureOutages({
            ...outageContext,
            minutes: [flags.outageRealMinutes],
            timeScale: 1,
            fleetVms: 0,
            fleetMinutes: 0,
            phases: flags.outagePhases,
          })
        : undefined;

    // The wait for Azure's word (bench/signal-delay.ts): eviction → start and → running at each annotation delay.
    const signalDelay = flags.signalDelays.length
      ? await measureSignalDelays({
          ...outageContext,
          delays: flags.signalDelays,
          timeScale: flags.timeScale,
          phases: Math.min(flags.outagePhases, 4),
        })
      : undefined;

    const cpu = cpus();
    const machine = {
      cpu: `${cpu[0]?.model ?? "unknown"} (${cpu.length} logical CPUs)`,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      os: `${type()} ${release()}`,
      node: process.version,
    };
    const settings = {
      vmsPerSize: sizes,
      taggedFraction: 0.1,
      startSeconds,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
      listPageSize: LIST_PAGE_SIZE,
      evictionDelaySeconds: 0,
      armLatencyMs,
      originalMaxStarts: Number.isFinite(originalMaxStarts) ? originalMaxStarts : "all",
      runtime: "real bundle (once --json), fresh state, default config (maxConcurrentStarts 10)",
      emulator: "separate process on 127.0.0.1 (HTTPS), npm run emulator",
      originalModel:
        "az vm list -d (list + per VM: GET ?$expand=instanceView, NIC, public IP) then sequential az vm start with ARMPolling; az process start-up not modelled",
    };
    const checks = [
      ...targets(results, calibration),
      ...(outage ? outageTargets(outage) : []),
      ...(outageRealTime ? outageTargets(outageRealTime) : []),
    ];
    const tables = report(results, calibration);
    const footnote =
      `${machine.cpu}, ${machine.os}, Node ${machine.node}; emulator: S=${startSeconds}s, Retry-After ${RETRY_AFTER_SECONDS}s, ARM latency +${armLatencyMs} ms, ` +
      `list page ${LIST_PAGE_SIZE}; hollow points: original extrapolated from ${Number.isFinite(originalMaxStarts) ? originalMaxStarts : "all"} measured starts`;
    const output = {
      generatedAt: new Date().toISOString(),
      durationSeconds: Math.round((Date.now() - t0) / 1000),
      machine,
      settings,
      results,
      nodeBaseline,
      azCalibration: calibration ?? null,
      outage: outage ?? null,
      outageRealTime: outageRealTime ?? null,
      signalDelay: signalDelay ?? null,
      targets: checks,
    };
    writeFileSync(join(flags.out, "results.json"), `${JSON.stringify(output, null, 2)}\n`);
    if (results.length) writeFileSync(join(flags.out, "results.svg"), svg(results, footnote));

    const anyEstimated = results.some((r) => r.original.eviction.extrapolated);
    const sizeReport = results.length
      ? [
          `Emulator: separate process, HTTPS on loopback${armLatencyMs ? ` + ${armLatencyMs} ms per ARM request` : " (no added latency)"}; start takes S=${startSeconds} s, Retry-After ${RETRY_AFTER_SECONDS} s, list pages of ${LIST_PAGE_SIZE}; 10% of VMs are tagged Spot, all evicted`,
          "",
          "ARM requests per cycle (with start-operation polls; without them in parentheses)",
          tables.requests,
          "",
          "Seconds from cycle start (all tagged Spot VMs evicted)",
          tables.latency,
          anyEstimated
            ? `* original pattern extrapolated: its starts are strictly sequential; ${originalMaxStarts} were run and the rest added at their mean duration and request count (--full runs them all)`
            : "",
          "",
          "Cost of an idle cycle of ours (CPU = user + system; once = whole process incl. Node start-up and login)",
          tables.cost,
          `For scale: a Node.js process that does nothing (node -e 0) takes ${nodeBaseline.cpuMs.toFixed(0)} ms CPU and ${nodeBaseline.maxRssMiB.toFixed(0)} MiB here.`,
          "",
          calibration
            ? `Re-enactment vs the real az ${calibration.azVersion} (N=${Math.min(...sizes)}, same world): ` +
              `${calibration.sameRequests ? "same requests" : "DIFFERENT requests"} ` +
              `(az: ${JSON.stringify(calibration.az)}; re-enactment: ${JSON.stringify(calibration.reenactment)}); ` +
              `az adds ${calibration.azOverheadSecondsPerInvocation.toFixed(1)} s per invocation ` +
              `(list -d ${calibration.azListSeconds.toFixed(1)} s vs ${calibration.reenactmentListSeconds.toFixed(1)} s, ` +
              `vm start ${calibration.azStartSeconds.toFixed(1)} s vs ${calibration.reenactmentStartSeconds.toFixed(1)} s)`
            : "Re-enactment not checked against the real az (not installed, or --no-az)",
          "",
        ]
      : [];
    const outageReport = (result: OutageResult | undefined, title: string) =>
      result
        ? [
            title,
            outageTable(result),
            `Expected back = Σg²/(2Σg) over the gaps g between a VM's start requests while it had no capacity, pooled over the runs, + its successful start to running (bench/expected-wait.ts); times from the emulator's VM history, ${result.startsCheckedAgainstLog ? "checked against its request log: same counts" : "MISMATCH with its request log (see results.json)"}`,
            result.fleet
              ? `Fleet: ${result.fleet.vms} VMs without capacity for ${result.fleet.minutes} min (ours): ${result.fleet.startRequests} start requests, at most ${result.fleet.maxStartsPerMinute} in any minute across VMs (budget ${result.fleet.budgetStartsPerMinute}), per VM at least ${result.fleet.shortestSentGapPerVmSeconds?.toFixed(1) ?? "-"} s apart as sent (budget ${result.fleet.budgetGapPerVmSeconds} s; ${result.fleet.shortestGapPerVmSeconds?.toFixed(1) ?? "-"} s as received, the scaled clock multiplying transit jitter; Compute's per-VM bucket ${result.fleet.perVmBucketOverdrawn ? "OVERDRAWN" : "never empty"}); ${result.fleet.allBack ? "all back" : "NOT all back"}`
              : "",
            "",
          ]
        : [];
    process.stdout.write(
      [
        "",
        `Machine: ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`,
        ...sizeReport,
        ...outageReport(
          outage,
          `Capacity outage, clock x${flags.timeScale} for all sides (emulated minutes; a start takes ${outage?.startSeconds ?? 0} s, Retry-After 1 real second; ${outage?.phases ?? 0} runs per row, their outages ending spread over a minute)`,
        ),
        ...outageReport(outageRealTime, "Capacity outage in real time"),
        ...(signalDelay
          ? [
              `The wait for Azure's word: a VM evicted, its Resource Health annotation late by the delay (clock x${signalDelay.timeScale}; ${signalDelay.phases} evictions per row spread over a minute; means in emulated seconds; a start takes ${signalDelay.startSeconds} s). Ours asks Azure why (restartWhen: evicted, never an owner's stop); the original starts every deallocation at its next cron minute`,
              signalDelayTable(signalDelay),
              "",
            ]
          : []),
        "Targets",
        ...checks.map((c) => `  ${c.met ? "MET    " : "NOT MET"}  ${c.target}: ${c.detail}`),
        "",
        results.length === 0
          ? ""
          : `Request counts checked against the emulator's log: ${results.every((r) => r.ours.requestsCheckedAgainstEmulatorLog && r.original.requestsCheckedAgainstEmulatorLog) ? "yes, all equal" : "MISMATCH (see results.json)"}`,
        `Wrote ${join(flags.out, "results.json")}${results.length ? " and results.svg" : ""} in ${Math.round((Date.now() - t0) / 1000)} s`,
        "",
      ].join("\n"),
    );
  } finally {
    cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
