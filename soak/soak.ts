// The soak run: the real bundle in `run` mode against an emulator that evicts random tagged VMs and
// injects random faults, for M minutes; then faults stop and every startable VM must come back.
// Prints restarts, wrong starts (must be 0), missed restarts (must be 0), ARM requests per cycle and
// the runtime's RSS at start and end. Exit code 1 when an invariant broke or the RSS grew.
//
//   npm run soak -- --minutes 10 [--vms 12] [--interval-seconds 2] [--seed 42] [--signal-delay-seconds 0.2] [--json]
import { judgeStarts } from "./judge";
import "reflect-metadata";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FaultRule, SeedVirtualMachine } from "../emulator/index";
import { startTestEmulator } from "../emulator/testing";
import { buildRuntimeBundle } from "../support/bundle";
import { findSecret } from "../support/secrets";
import { parseToolArgs } from "../support/toolArgs";

const RG = "personal-network";
const TAG = "AttemptRestartAfterEviction";

interface Options {
  minutes: number;
  vms: number;
  intervalSeconds: number;
  seed: number;
  json: boolean;
  /** Per cent of RSS growth (warm-up to end) tolerated before the run fails. */
  rssGrowthPercent: number;
  /** Pause between two chaos actions, drawn from [min, max] ms (default 1-4 s; the smoke test goes faster). */
  chaosPauseMs?: readonly [number, number];
  /**
   * How late Azure says why a VM is deallocated (emulator `annotationDelaySeconds`, and the Activity Log's the
   * same): 0.2 s by default; a slow signal (issue 31: Microsoft documents no bound) must only delay restarts,
   * never start an owner's stop.
   */
  signalDelaySeconds?: number;
}

export interface SoakResult {
  minutes: number;
  vms: { total: number; restartable: number };
  evictions: number;
  /** Restartable VMs their owner deallocated during the run (each must never be started after). */
  ownerDeallocations: number;
  restarts: number;
  wrongStarts: number;
  wrongStartDetails: string[];
  missedRestarts: number;
  missed: string[];
  faultsInjected: Record<string, number>;
  cycles: number;
  armRequests: number;
  armRequestsPerCycle: number;
  idleCycleRequests: number;
  tokenRequests: number;
  restartLatencyMs: { p50: number; p95: number; max: number };
  rssMb: { start: number; end: number; max: number };
  secretLeak: string | null;
  exitCode: number | null;
  ok: boolean;
}

/** Small deterministic PRNG (mulberry32), so a failing soak can be replayed with its --seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return Math.round((kb / 1024) * 10) / 10;
  } catch {
    return Number.NaN;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export async function soak(options: Options, say: (line: string) => void = console.log): Promise<SoakResult> {
  const random = prng(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  // The population: restartable VMs, plus every kind that must never be started.
  const restartable = Array.from({ length: Math.max(2, options.vms - 5) }, (_, i) => `spot-${i}`);
  const vm = (name: string, o: Partial<SeedVirtualMachine>): SeedVirtualMachine =>
    ({
      resourceGroup: RG,
      name,
      priority: "Spot",
      evictionPolicy: "Deallocate",
      maxPrice: -1,
      powerState: "running",
      tags: { [TAG]: "true" },
      ...o,
    }) as SeedVirtualMachine;
  const neverStart = [
    vm("untagged-spot", { tags: { role: "build" } }),
    vm("tag-false-spot", { tags: { [TAG]: "false" } }),
    vm("regular-vm", { priority: "Regular", evictionPolicy: undefined, maxPrice: undefined }),
    vm("user-stopped-spot", { powerState: "stopped" }),
    vm("user-deallocated-untagged", { powerState: "deallocated", tags: {} }),
  ];
  const population = [...restartable.map((name) => vm(name, {})), ...neverStart];
  const t = await startTestEmulator(
    {
      virtualMachines: population,
      // annotationDelaySeconds: Resource Health explains an eviction 0.2 s after it (--signal-delay-seconds).
      timing: {
        startSeconds: 1,
        evictionDelaySeconds: 0,
        tokenLifetimeSeconds: 600,
        annotationDelaySeconds: options.signalDelaySeconds ?? 0.2,
      },
    },
    { role: "least-privilege" },
  );
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-soak-"));
  writeFileSync(join(dir, "sp.pem"), t.principal.pem, { mode: 0o600 });
  const backoff = { initialSeconds: 2, maxSeconds: 16 };
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      tenantId: t.emulator.tenantId,
      clientId: t.principal.clientId,
      subscriptionId: t.emulator.subscriptionId,
      certificatePath: "sp.pem",
      resourceGroups: [RG],
      intervalSeconds: options.intervalSeconds,
      stateDir: join(dir, "state"),
      backoff,
      // Every retry scaled down like the backoff, so the settle phase's bound (the longest backoff) holds:
      // by default a capacity failure is retried 60 s and a price refusal 2-10 min after it.
      retry: { capacitySeconds: backoff.initialSeconds, price: backoff, quota: backoff },
      startTimeoutSeconds: 60,
      cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint },
    }),
  );

  const bundle = await buildRuntimeBundle();
  const child = spawn(
    process.execPath,
    [bundle, "run", "--config", join(dir, "config.json"), "--log-format", "json", "--log-level", "debug"],
    {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: t.emulator.caCertFile },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderrTail = "";
  let partial = "";
  const events: Array<{ at: number; event: string; vm?: string; armRequests?: number }> = [];
  let leak: string | null = null;
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    leak ??= findSecret(text, t.principal) ?? null;
    stderrTail = (stderrTail + text).slice(-8_000);
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      try {
        const parsed = JSON.parse(line) as { time: string; event: string; vm?: string; armRequests?: number };
        if (
          [
            "start-issued",
            "started",
            "start-failed",
            "start-failed-price",
            "cycle-done",
            "cycle-skipped",
            "run-started",
          ].includes(parsed.event)
        ) {
          events.push({
            at: Date.parse(parsed.time),
            event: parsed.event,
            vm: parsed.vm,
            armRequests: parsed.armRequests,
          });
        }
      } catch {
        // a crash trace: kept in stderrTail
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));

  const evictions: Array<{ at: number; vm: string }> = [];
  // Restartable VMs their owner has deallocated and not started again: they must stay down.
  const ownerStopped = new Set<string>();
  let ownerDeallocations = 0;
  const faultsInjected: Record<string, number> = {};
  const rss: Array<{ at: number; mb: number }> = [];
  const began = Date.now();
  const endOfChaos = began + options.minutes * 60_000;
  say(
    `soak: ${options.minutes} min, ${population.length} VMs (${restartable.length} restartable), interval ${options.intervalSeconds} s, seed ${options.seed}, runtime pid ${child.pid}`,
  );

  const faultMenu: Array<[string, () => FaultRule]> = [
    [
      "429-list",
      () => ({
        method: "GET",
        pathPattern: "/virtualMachines$",
        status: 429,
        retryAfterSeconds: 2,
        times: 1,
      }),
    ],
    [
      "429-instanceView",
      () => ({ pathPattern: "/instanceView$", status: 429, retryAfterSeconds: 1, times: 2 }),
    ],
    [
      "429-start",
      () => ({ method: "POST", pathPattern: "/start$", status: 429, retryAfterSeconds: 1, times: 1 }),
    ],
    ["503-burst", () => ({ pathPattern: "^/subscriptions/", status: 503, times: 3 })],
    ["500-start", () => ({ method: "POST", pathPattern: "/start$", status: 500, times: 1 })],
    ["drop-connection", () => ({ pathPattern: "^/subscriptions/", dropConnection: true, times: 2 })],
    ["token-slow", () => ({ pathPattern: "/oauth2/v2.0/token$", delayMs: 2_000, times: 1 })],
    [
      "allocation-failed",
      () => ({
        vm: pick(restartable),
        startFailsWith: "AllocationFailed",
        times: 1 + Math.floor(random() * 3),
      }),
    ],
    [
      "zonal-allocation-failed",
      () => ({ vm: pick(restartable), startFailsWith: "ZonalAllocationFailed", times: 1 }),
    ],
    [
      "spot-price",
      () => ({ vm: pick(restartable), startFailsWith: "SpotPriceGreaterThanProvidedMaxPrice", times: 1 }),
    ],
  ];

  let nextReport = began + 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the runtime did not start:\n${stderrTail}`)), 30_000);
      const check = setInterval(() => {
        if (events.some((e) => e.event === "run-started")) {
          clearTimeout(timer);
          clearInterval(check);
          resolve();
        }
      }, 50);
      void exited.then(() => {
        clearTimeout(timer);
        clearInterval(check);
        reject(new Error(`the runtime exited:\n${stderrTail}`));
      });
    });
    let first = true;
    while (Date.now() < endOfChaos && child.exitCode === null) {
      // The first action is always an owner's stop, so every run (the smoke test too) has one.
      const roll = first ? 0.42 : random();
      first = false;
      if (roll < 0.4) {
        const running = (await t.control.vms()).filter(
          (v) => restartable.includes(v.name) && v.powerState === "running",
        );
        if (running.length > 0) {
          const victim = pick(running).name;
          await t.control.evict(RG, victim);
          evictions.push({ at: Date.now(), vm: victim });
        }
      } else if (roll < 0.47) {
        // The owner acts on a restartable VM: deallocates it (the portal's Stop: Resource Health records
        // VirtualMachineDeallocationInitiated, the Activity Log the caller), which the runtime must never
        // start again (soak/judge.ts counts any start of it as wrong); or starts one they had stopped, out
        // of the judged record (a control-API power change, not an ARM start), so it can be evicted again.
        const mine = [...ownerStopped];
        if (mine.length > 0 && random() < 0.4) {
          const name = pick(mine);
          ownerStopped.delete(name);
          await t.control.setVm(RG, name, { powerState: "running" });
        } else {
          const running = (await t.control.vms()).filter(
            (v) => restartable.includes(v.name) && v.powerState === "running" && !ownerStopped.has(v.name),
          );
          if (running.length > 0) {
            const name = pick(running).name;
            ownerStopped.add(name);
            ownerDeallocations++;
            await t.control.deallocate(RG, name, "owner@contoso.com");
          }
        }
      } else if (roll < 0.55) {
        // A VM that must never be started is deallocated too (an untagged eviction, a user stop).
        const other = pick(["untagged-spot", "tag-false-spot"]);
        const found = await t.control.vm(RG, other);
        if (found?.powerState === "running") await t.control.evict(RG, other);
        else await t.control.setVm(RG, other, { powerState: "running" });
      } else if (roll < 0.85) {
        const [name, make] = pick(faultMenu);
        await t.control.addFaults(make());
        faultsInjected[name] = (faultsInjected[name] ?? 0) + 1;
      } else if (roll < 0.9) {
        await t.control.clearFaults();
      }
      if (child.pid) rss.push({ at: Date.now(), mb: rssMb(child.pid) });
      if (Date.now() >= nextReport) {
        nextReport += 60_000;
        say(
          `  ${Math.round((Date.now() - began) / 60_000)} min: ${evictions.length} evictions, ${events.filter((e) => e.event === "started").length} restarts, RSS ${rss.at(-1)?.mb} MB`,
        );
      }
      const [pauseMin, pauseMax] = options.chaosPauseMs ?? [1_000, 4_000];
      await sleep(pauseMin + random() * (pauseMax - pauseMin));
    }

    // Faults stop. Every restartable VM must be running within the longest backoff + a cycle + a start
    // (but for those their owner stopped, which must stay deallocated).
    await t.control.clearFaults();
    const settleMs =
      (backoff.maxSeconds + options.intervalSeconds * 1.1 + 1 + 2 + 2 + (options.signalDelaySeconds ?? 0.2)) *
      1000;
    const deadline = Date.now() + settleMs;
    let missed: string[] = [];
    for (;;) {
      missed = (await t.control.vms())
        .filter(
          (v) => restartable.includes(v.name) && !ownerStopped.has(v.name) && v.powerState !== "running",
        )
        .map((v) => `${v.name} (${v.powerState})`);
      if (missed.length === 0 || Date.now() > deadline) break;
      await sleep(250);
    }
    // A few idle cycles: their cost is the per-cycle baseline.
    const idleFrom = Date.now();
    await sleep(options.intervalSeconds * 3_000);
    const idleRequests = (await t.control.requests()).filter(
      (r) => r.path.startsWith("/subscriptions/") && Date.parse(r.time) >= idleFrom,
    );
    const idleCycles = events.filter((e) => e.event === "cycle-done" && e.at >= idleFrom).length;
    if (child.pid) rss.push({ at: Date.now(), mb: rssMb(child.pid) });

    child.kill("SIGTERM");
    const exitCode = await exited;
    leak ??= findSecret(stdout, t.principal) ?? null;

    // Judged from the emulator's record of each VM (power history, start requests), not from the
    // runtime's log lines: see soak/judge.ts.
    const initial = new Map(population.map((v) => [v.name, v.powerState]));
    const judged = judgeStarts(
      (await t.control.vms()).map((v) => ({
        name: v.name,
        history: v.history,
        initiallyEvicted: initial.get(v.name) === "deallocated",
      })),
      new Set(restartable),
    );
    const wrongStartDetails = judged.wrongStarts;
    // An unanswered eviction, or a restartable VM not running when the run settled (one entry per VM).
    const allMissed = [
      ...judged.missed,
      ...missed.filter((entry) => !judged.missed.includes(entry.split(" ")[0] ?? "")),
    ];
    const latencies = judged.latenciesMs;

    const all = await t.control.requests();
    const arm = all.filter(
      (r) => r.path.startsWith("/subscriptions/") && r.clientId === t.principal.clientId,
    );
    const cycles = events.filter((e) => e.event === "cycle-done").length;
    const warm = rss.find((r) => r.at - began >= Math.min(60_000, options.minutes * 60_000 * 0.2)) ?? rss[0];
    const end = rss.at(-1);
    const result: SoakResult = {
      minutes: options.minutes,
      vms: { total: population.length, restartable: restartable.length },
      evictions: judged.evictions,
      ownerDeallocations,
      restarts: judged.restarts,
      wrongStarts: wrongStartDetails.length,
      wrongStartDetails,
      missedRestarts: allMissed.length,
      missed: allMissed,
      faultsInjected,
      cycles,
      armRequests: arm.length,
      armRequestsPerCycle: cycles ? Math.round((arm.length / cycles) * 100) / 100 : 0,
      idleCycleRequests: idleCycles ? Math.round((idleRequests.length / idleCycles) * 10) / 10 : 0,
      tokenRequests: all.filter((r) => /\/oauth2\/(v2\.0\/)?token$/.test(r.path)).length,
      restartLatencyMs: {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        max: Math.max(0, ...latencies),
      },
      rssMb: {
        start: warm?.mb ?? Number.NaN,
        end: end?.mb ?? Number.NaN,
        max: Math.max(...rss.map((r) => r.mb)),
      },
      secretLeak: leak,
      exitCode,
      ok: false,
    };
    const rssGrew = result.rssMb.end > result.rssMb.start * (1 + options.rssGrowthPercent / 100);
    result.ok =
      result.wrongStarts === 0 && result.missedRestarts === 0 && !rssGrew && leak === null && exitCode === 0;
    return result;
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await t.emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(result: SoakResult): string {
  const faults = Object.entries(result.faultsInjected)
    .map(([name, n]) => `${name} ${n}`)
    .join(", ");
  return [
    `soak ${result.ok ? "PASSED" : "FAILED"} after ${result.minutes} min (${result.vms.total} VMs, ${result.vms.restartable} restartable)`,
    `  evictions           ${result.evictions}`,
    `  owner stops         ${result.ownerDeallocations}  (restartable VMs their owner deallocated: never to be started)`,
    `  restarts            ${result.restarts}  (eviction → running: p50 ${result.restartLatencyMs.p50} ms, p95 ${result.restartLatencyMs.p95} ms, max ${result.restartLatencyMs.max} ms)`,
    `  wrong starts        ${result.wrongStarts}${result.wrongStartDetails.length ? `: ${result.wrongStartDetails.join("; ")}` : ""}`,
    `  missed restarts     ${result.missedRestarts}${result.missed.length ? `: ${result.missed.join(", ")}` : ""}`,
    `  faults injected     ${faults || "none"}`,
    `  cycles              ${result.cycles}`,
    `  ARM requests        ${result.armRequests} (${result.armRequestsPerCycle} per cycle overall; ${result.idleCycleRequests} per idle cycle)`,
    `  token requests      ${result.tokenRequests}`,
    `  RSS                 ${result.rssMb.start} MB after warm-up → ${result.rssMb.end} MB at the end (max ${result.rssMb.max} MB)`,
    `  secrets in output   ${result.secretLeak ?? "none"}`,
    `  runtime exit code   ${result.exitCode}`,
  ].join("\n");
}

const SOAK_USAGE = `npm run soak: the real bundle in \`run\` mode against an emulator that evicts random tagged VMs
and injects random faults for M minutes; then the faults stop and every startable VM must come back.
Prints restarts, wrong starts (must be 0), missed restarts (must be 0), ARM requests per cycle and the
runtime's memory. Exit 1 when an invariant broke or the memory grew past the limit.

Usage: npm run soak -- [OPTIONS]
  --minutes M               chaos phase length (default 10; a settle phase follows)
  --vms N                   VMs in the world (default 12: N-5 restartable, 5 that must never be started)
  --interval-seconds S      the runtime's interval (default 2)
  --seed N                  replay a run (random by default, printed)
  --json                    the figures as JSON on stdout (progress goes to stderr)
  --rss-growth-percent P    fail when the memory at the end is more than P % above that after warm-up (default 25)
  --signal-delay-seconds D  how late Azure says why a VM is deallocated (Resource Health, Activity Log; default 0.2)
  -h, --help                this help
`;

if (require.main === module) {
  const values = parseToolArgs("soak", SOAK_USAGE, {
    minutes: { type: "string", default: "10" },
    vms: { type: "string", default: "12" },
    "interval-seconds": { type: "string", default: "2" },
    seed: { type: "string" },
    json: { type: "boolean", default: false },
    "rss-growth-percent": { type: "string", default: "25" },
    "signal-delay-seconds": { type: "string", default: "0.2" },
  });
  const options: Options = {
    minutes: Number(values.minutes),
    vms: Number(values.vms),
    intervalSeconds: Number(values["interval-seconds"]),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed),
    json: values.json === true,
    rssGrowthPercent: Number(values["rss-growth-percent"]),
    signalDelaySeconds: Number(values["signal-delay-seconds"]),
  };
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === "number" && !(Number.isFinite(value) && value > 0)) {
      console.error(`soak: --${name} must be a positive number`);
      process.exit(2);
    }
  }
  soak(options, (line) => console.error(line))
    .then((result) => {
      console.log(options.json ? JSON.stringify(result, null, 2) : report(result));
      process.exitCode = result.ok ? 0 : 1;
    })
    .catch((error: unknown) => {
      console.error(`soak: ${(error as Error).message}`);
      process.exitCode = 1;
    });
}
