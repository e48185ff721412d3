// `npm run bench`: cost and latency of the runtime against the emulator, side by side with a re-enactment
// of the original script's request pattern (bench/original.ts). For each N (VMs in one resource group,
// 10% of them tagged Spot VMs, all of those evicted) it measures ARM requests per idle cycle and per
// cycle with evictions (with and without start-operation polls), the time from cycle start until every
// evicted VM has a start request and until every one runs, and CPU time and memory of an idle cycle.
// Prints tables, writes bench/results.json and bench/results.svg. See bench/README.md.
//
//   npm run bench [-- --sizes 10,100,500] [--start-seconds 5] [--original-max-starts 10 | --full] [--quick]
import "reflect-metadata"; // before the emulator helpers: @peculiar/x509 needs it loaded first
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem, type } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ClientCertificateCredential } from "@azure/identity";
import { buildBundle, type EmulatorProcess, startEmulatorProcess } from "../demo/chain";
import type { EmulatorSeed, SeedVirtualMachine } from "../emulator/index";
import {
  ARM_SCOPE,
  CONTRIBUTOR_ROLE_ID,
  createTestPrincipal,
  type EmulatorControl,
  emulatorControl,
  type TestPrincipal,
  trustEmulatorCa,
} from "../emulator/testing";
import { type AzCalibration, azVersion, calibrateAgainstAz } from "./az-calibration";
import { type OriginalCycle, runOriginalCycle, totalRequests } from "./original";
import {
  liveChildren,
  measureNodeBaseline,
  median,
  type OnceSummary,
  runLoop,
  runOnce,
  type Subject,
} from "./ours";
import { renderCharts } from "./svg";

const GROUP = "bench";
const TAG = { name: "AttemptRestartAfterEviction", value: "true" } as const;
const TENANT = "72f988bf-0000-4000-8000-0000000be4c4";
const SUBSCRIPTION = "5f1c3a52-0000-4000-8000-0000000be4c4";
const LIST_PAGE_SIZE = 50;
const RETRY_AFTER_SECONDS = 1;
const IDLE_REPEATS = 3;
const LOOP_CYCLES = 7;

const { values } = parseArgs({
  options: {
    sizes: { type: "string" },
    "start-seconds": { type: "string", default: "5" },
    "original-max-starts": { type: "string", default: "10" },
    full: { type: "boolean", default: false },
    "no-az": { type: "boolean", default: false },
    "arm-latency-ms": { type: "string", default: "0" },
    quick: { type: "boolean", default: false },
    out: { type: "string", default: join(__dirname) },
  },
});
const sizes = (values.sizes ?? (values.quick ? "10,100" : "10,100,500")).split(",").map(Number);
const startSeconds = Number(values["start-seconds"]);
/** Added to every Resource Manager request by the emulator (a delay fault): loopback has none, Azure has some. */
const armLatencyMs = Number(values["arm-latency-ms"]);
const originalMaxStarts = values.full
  ? Number.POSITIVE_INFINITY
  : values.quick
    ? 3
    : Number(values["original-max-starts"]);

/** Refuses a bad flag before minutes of measuring, naming the flag and what it takes. */
function checkFlags(): void {
  const bad = (flag: string, expected: string, got: unknown) => {
    process.stderr.write(`bench: --${flag} must be ${expected} (got ${JSON.stringify(got)})\n`);
    process.exit(2);
  };
  if (!sizes.every((n) => Number.isInteger(n) && n >= 10 && n <= 5000))
    bad("sizes", "comma-separated VM counts from 10 to 5000", values.sizes);
  if (!(startSeconds > 0 && startSeconds <= 600))
    bad("start-seconds", "a number of seconds in (0, 600]", values["start-seconds"]);
  if (!(armLatencyMs >= 0 && armLatencyMs <= 5000))
    bad("arm-latency-ms", "milliseconds from 0 to 5000", values["arm-latency-ms"]);
  if (!(originalMaxStarts >= 1))
    bad("original-max-starts", "a whole number from 1", values["original-max-starts"]);
  // Made now, not after the run: a missing folder must not cost the figures.
  mkdirSync(values.out as string, { recursive: true });
}
checkFlags();

const t0 = Date.now();
const log = (text: string) =>
  process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${text}\n`);

/** Emulators running now, stopped on Ctrl-C. */
const running = new Set<EmulatorProcess>();

// ---- the world ---------------------------------------------------------------------------------------

function seedFor(n: number, principals: TestPrincipal[]): EmulatorSeed {
  const vms: SeedVirtualMachine[] = [];
  for (let i = 0; i < n; i++) {
    const tagged = i % 10 === 0;
    // A realistic mix: VMs reached over a VPN commonly have no public IP, so half of them (every VM at
    // an odd index) have none. The original's `az vm list -d` reads one more resource per public IP; the
    // report also gives its idle figure for a world where every VM has one.
    const publicIp = i % 2 === 0;
    const name = `${tagged ? "spot" : "vm"}-${String(i).padStart(4, "0")}`;
    vms.push(
      tagged
        ? {
            resourceGroup: GROUP,
            name,
            priority: "Spot",
            evictionPolicy: "Deallocate",
            maxPrice: -1,
            powerState: "running",
            tags: { [TAG.name]: TAG.value, role: "worker" },
            publicIp,
          }
        : {
            resourceGroup: GROUP,
            name,
            priority: "Regular",
            powerState: "running",
            tags: { role: "service" },
            publicIp,
          },
    );
  }
  const scope = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${GROUP}`;
  return {
    tenantId: TENANT,
    subscriptionId: SUBSCRIPTION,
    principals: principals.map((p) => ({
      clientId: p.clientId,
      objectId: p.objectId,
      certificatePem: p.certificatePem,
    })),
    roleAssignments: principals.map((p) => ({
      principalId: p.objectId,
      roleDefinitionId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope,
    })),
    resourceGroups: [{ name: GROUP }],
    virtualMachines: vms,
    timing: { startSeconds, evictionDelaySeconds: 0, retryAfterSeconds: RETRY_AFTER_SECONDS },
    listPageSize: LIST_PAGE_SIZE,
    faults: armLatencyMs > 0 ? [{ pathPattern: "^/subscriptions/", delayMs: armLatencyMs }] : [],
  };
}

async function evictTagged(control: EmulatorControl): Promise<number> {
  const tagged = (await control.vms()).filter((vm) => vm.tags[TAG.name] === TAG.value);
  for (const vm of tagged) await control.evict(GROUP, vm.name);
  for (;;) {
    const states = (await control.vms()).filter((vm) => vm.tags[TAG.name] === TAG.value);
    if (states.every((vm) => vm.powerState === "deallocated")) return states.length;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function allTaggedRunning(control: EmulatorControl): Promise<void> {
  for (const vm of await control.vms()) {
    if (vm.tags[TAG.name] === TAG.value && vm.powerState !== "running") {
      await control.setVm(GROUP, vm.name, { powerState: "running" });
    }
  }
}

/** Requests the emulator logged from this client (token requests excluded: ARM only). */
async function loggedArmRequests(control: EmulatorControl, clientId: string) {
  return (await control.requests()).filter((r) => r.clientId === clientId && !r.path.includes("/oauth2/"));
}

// ---- one size ----------------------------------------------------------------------------------------

interface SizeResult {
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

async function measureSize(
  n: number,
  bundle: string,
  workDir: string,
  az: string | undefined,
): Promise<{ result: SizeResult; calibration?: AzCalibration }> {
  const [ours, theirs, azPrincipal] = await Promise.all([
    createTestPrincipal(),
    createTestPrincipal(),
    createTestPrincipal(),
  ]);
  const dir = mkdtempSync(join(workDir, `n${n}-`));
  const seedFile = join(dir, "seed.json");
  writeFileSync(seedFile, JSON.stringify(seedFor(n, [ours, theirs, azPrincipal])));
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
      throw new Error(`N=${n}: after our cycle not every evicted VM runs with exactly one start request`);
    }

    // The original pattern, same world, same principal rights.
    const credential = new ClientCertificateCredential(
      TENANT,
      theirs.clientId,
      { certificate: theirs.pem },
      { authorityHost: ready.authorityHost, disableInstanceDiscovery: true },
    );
    const token = async () => {
      const result = await credential.getToken(ARM_SCOPE);
      if (!result) throw new Error("no token for the original pattern");
      return result.token;
    };
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

// ---- report ------------------------------------------------------------------------------------------

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** The original's time to all running if each az invocation's own overhead (measured) is added. */
function withAzOverhead(r: SizeResult, calibration: AzCalibration | undefined): number | undefined {
  if (!calibration) return undefined;
  const invocations = r.original.eviction.matches + 1; // az vm list -d, then one az vm start per match
  return r.original.eviction.allRunningMs + invocations * calibration.azOverheadSecondsPerInvocation * 1000;
}

function report(results: SizeResult[], calibration: AzCalibration | undefined) {
  const est = (r: SizeResult) => (r.original.eviction.extrapolated ? "*" : "");
  const requests = table(
    [
      "N",
      "tagged",
      "idle: ours",
      "idle: original",
      "idle ratio",
      "idle: original, every VM with a public IP",
      "evictions: ours (no polls)",
      "evictions: original (no polls)",
    ],
    results.map((r) => [
      String(r.n),
      String(r.tagged),
      String(r.ours.idle.total),
      String(r.original.idle.total),
      x(r.original.idle.total, r.ours.idle.total),
      // The request log shows one public-IP GET per VM that has one, nothing else depends on it.
      String(r.original.idle.total + (r.n - r.original.idle.requests.publicIp)),
      `${r.ours.eviction.total} (${r.ours.eviction.totalWithoutPolls})`,
      `${r.original.eviction.total}${est(r)} (${r.original.eviction.totalWithoutPolls}${est(r)})`,
    ]),
  );
  const latency = table(
    [
      "N",
      "all starts requested: ours",
      "spread",
      "original",
      "all running: ours",
      "original",
      "ratio",
      ...(calibration ? ["original + az start-up", "ratio"] : []),
    ],
    results.map((r) => [
      String(r.n),
      s(r.ours.eviction.allStartsRequestedMs),
      `${r.ours.eviction.startRequestSpreadMs} ms`,
      `${s(r.original.eviction.allStartsRequestedMs)}${est(r)}`,
      s(r.ours.eviction.allRunningMs),
      `${s(r.original.eviction.allRunningMs)}${est(r)}`,
      x(r.original.eviction.allRunningMs, r.ours.eviction.allRunningMs),
      ...(calibration
        ? [
            `${s(withAzOverhead(r, calibration) as number)}${est(r)}`,
            x(withAzOverhead(r, calibration) as number, r.ours.eviction.allRunningMs),
          ]
        : []),
    ]),
  );
  const cost = table(
    ["N", "once: cycle time", "process CPU", "peak RSS", "run loop: CPU per idle cycle", "RSS"],
    results.map((r) => [
      String(r.n),
      `${r.ours.idle.durationMs} ms`,
      `${r.ours.idle.processCpuMs.toFixed(0)} ms`,
      `${r.ours.idle.processMaxRssMiB.toFixed(0)} MiB`,
      `${r.ours.loop.cpuMsPerIdleCycle.toFixed(1)} ms`,
      `${r.ours.loop.rssMiB.toFixed(0)} MiB`,
    ]),
  );
  return { requests, latency, cost };
}

function targets(results: SizeResult[], calibration: AzCalibration | undefined) {
  const checks: { target: string; met: boolean; detail: string }[] = [];
  for (const r of results) {
    const expected = r.listPages + r.tagged;
    checks.push({
      target: `N=${r.n}: requests per idle cycle = list pages + tagged Spot VMs (${r.listPages} + ${r.tagged})`,
      met: r.ours.idle.total === expected,
      detail: `measured ${r.ours.idle.total} (list ${r.ours.idle.requests.list}, instanceView ${r.ours.idle.requests.instanceView}, other ${r.ours.idle.requests.other})`,
    });
  }
  const at500 = results.find((r) => r.n === 500);
  if (at500) {
    checks.push({
      target: "N=500: every start requested within one cycle, within 1 s of each other",
      met:
        at500.ours.eviction.startsIssued === at500.tagged && at500.ours.eviction.startRequestSpreadMs <= 1000,
      detail: `${at500.ours.eviction.startsIssued}/${at500.tagged} starts in one cycle, spread ${at500.ours.eviction.startRequestSpreadMs} ms`,
    });
  }
  const at100 = results.find((r) => r.n === 100);
  if (at100) {
    const idleRatio = at100.original.idle.total / at100.ours.idle.total;
    const timeRatio = at100.original.eviction.allRunningMs / at100.ours.eviction.allRunningMs;
    checks.push({
      target: "N=100: at least 10x fewer requests per idle cycle than the original",
      met: idleRatio >= 10,
      detail: `${at100.original.idle.total} vs ${at100.ours.idle.total}: ${idleRatio.toFixed(1)}x`,
    });
    checks.push({
      target:
        "N=100: at least 10x less time from cycle start to all running than the original (re-enactment)",
      met: timeRatio >= 10,
      detail: `${s(at100.original.eviction.allRunningMs)} vs ${s(at100.ours.eviction.allRunningMs)}: ${timeRatio.toFixed(1)}x${at100.original.eviction.extrapolated ? " (original extrapolated)" : ""}`,
    });
    const withAz = withAzOverhead(at100, calibration);
    if (withAz !== undefined) {
      checks.push({
        target: "N=100: the same, counting az's own overhead per invocation (measured against the real az)",
        met: withAz / at100.ours.eviction.allRunningMs >= 10,
        detail: `${s(withAz)} vs ${s(at100.ours.eviction.allRunningMs)}: ${(withAz / at100.ours.eviction.allRunningMs).toFixed(1)}x`,
      });
    }
  }
  return checks;
}

function svg(results: SizeResult[], footnote: string): string {
  const pts = (f: (r: SizeResult) => number, estimated?: (r: SizeResult) => boolean) =>
    results.map((r) => ({ x: r.n, y: f(r), estimated: estimated?.(r) }));
  const est = (r: SizeResult) => r.original.eviction.extrapolated !== null;
  return renderCharts(
    [
      {
        title: "ARM requests per cycle",
        yLabel: "requests (log)",
        xLabel: "VMs in the resource group (10% tagged Spot)",
        series: [
          {
            label: "original, cycle with evictions",
            color: "#c0392b",
            points: pts((r) => r.original.eviction.total, est),
          },
          {
            label: "original, idle cycle",
            color: "#c0392b",
            dashed: true,
            points: pts((r) => r.original.idle.total),
          },
          {
            label: "ours, cycle with evictions",
            color: "#2471a3",
            points: pts((r) => r.ours.eviction.total),
          },
          {
            label: "ours, idle cycle",
            color: "#2471a3",
            dashed: true,
            points: pts((r) => r.ours.idle.total),
          },
        ],
      },
      {
        title: "Seconds from cycle start (all evicted)",
        yLabel: "seconds (log)",
        xLabel: "VMs in the resource group (10% tagged Spot)",
        series: [
          {
            label: "original, until all running",
            color: "#c0392b",
            points: pts((r) => r.original.eviction.allRunningMs / 1000, est),
          },
          {
            label: "original, until all start requests sent",
            color: "#c0392b",
            dashed: true,
            points: pts((r) => r.original.eviction.allStartsRequestedMs / 1000, est),
          },
          {
            label: "ours, until all running",
            color: "#2471a3",
            points: pts((r) => r.ours.eviction.allRunningMs / 1000),
          },
          {
            label: "ours, until all start requests sent",
            color: "#2471a3",
            dashed: true,
            points: pts((r) => r.ours.eviction.allStartsRequestedMs / 1000),
          },
        ],
      },
    ],
    footnote,
  );
}

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
      `sizes ${sizes.join(", ")}; S=${startSeconds}s; original pattern: at most ${originalMaxStarts} starts per run`,
    );
    const bundle = await buildBundle(workDir);
    const baselines = [];
    for (let i = 0; i < 3; i++) baselines.push(await measureNodeBaseline(workDir));
    const nodeBaseline = {
      cpuMs: median(baselines.map((b) => b.cpuMs)),
      maxRssMiB: median(baselines.map((b) => b.maxRssMiB)),
    };
    const az = values["no-az"] ? undefined : azVersion();
    if (!az)
      log(
        values["no-az"]
          ? "--no-az: not checking the re-enactment against az"
          : "az not installed: the re-enactment is not checked against the real az",
      );
    const results: SizeResult[] = [];
    let calibration: AzCalibration | undefined;
    for (const n of sizes) {
      // The real az is slow (a Python process per command): compare once, in the smallest world.
      const measured = await measureSize(n, bundle, workDir, n === Math.min(...sizes) ? az : undefined);
      results.push(measured.result);
      calibration ??= measured.calibration;
    }

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
    const checks = targets(results, calibration);
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
      targets: checks,
    };
    writeFileSync(join(values.out as string, "results.json"), `${JSON.stringify(output, null, 2)}\n`);
    writeFileSync(join(values.out as string, "results.svg"), svg(results, footnote));

    const anyEstimated = results.some((r) => r.original.eviction.extrapolated);
    process.stdout.write(
      [
        "",
        `Machine: ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`,
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
        "Targets",
        ...checks.map((c) => `  ${c.met ? "MET    " : "NOT MET"}  ${c.target}: ${c.detail}`),
        "",
        `Request counts checked against the emulator's log: ${results.every((r) => r.ours.requestsCheckedAgainstEmulatorLog && r.original.requestsCheckedAgainstEmulatorLog) ? "yes, all equal" : "MISMATCH (see results.json)"}`,
        `Wrote ${join(values.out as string, "results.json")} and results.svg in ${Math.round((Date.now() - t0) / 1000)} s`,
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
