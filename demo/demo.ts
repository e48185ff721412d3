// `npm run demo`: the whole product on this machine, narrated. Starts the emulator with
// emulator/examples/personal-network.json, applies the Pulumi program to it, installs the runtime into a
// temporary root from the stack outputs, starts the installed runtime loop, simulates an eviction of the
// tagged Spot VM beside its owner's stop of another one (left alone), and tells what happens, with
// timestamps; it ends with `spot-restarter report` (what the evictions cost, from the eviction history). Cleans up (processes, temp files) on success,
// on failure and on Ctrl-C. Exit code 0 when the evicted VM came back and nothing else was touched.
//
//   npm run demo [-- --role-mode least-privilege] [--interval-seconds N] [--keep]
import "reflect-metadata"; // before the emulator control client: @peculiar/x509 needs it loaded first
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type EmulatorControl, emulatorControl } from "../emulator/testing";
import { parseToolArgs } from "../support/toolArgs";
import { type AppliedStack, applyProgram } from "./apply-program";
import {
  buildBundle,
  exited,
  type InstalledRuntime,
  install,
  installedRuntime,
  type RuntimeProcess,
  runInstalled,
  startEmulatorProcess,
  startInstalledLoop,
} from "./chain";

const REPO = resolve(__dirname, "..");
const SEED = join(REPO, "emulator/examples/personal-network.json");
const GROUP = "personal-network";
const TAGGED = "ubuntu-backup-server-spot";
/** A second restartable Spot VM, added to the example world, that its owner stops (`az vm deallocate`). */
const OWNED = "dev-box-spot";
const OWNER = "you@contoso.com";
/**
 * The whole demo must finish well under a minute; past this it gives up (and still cleans up). Its test
 * (test/e2e/demo.test.ts) raises it to its own timeout through SPOT_RESTARTER_DEMO_DEADLINE_SECONDS: on a
 * loaded CI machine the emulator alone took 21 s to start, and the test bounds the demo already.
 */
const DEADLINE_MS = (Number(process.env.SPOT_RESTARTER_DEMO_DEADLINE_SECONDS) || 50) * 1000;

const t0 = Date.now();
const clock = () => `+${((Date.now() - t0) / 1000).toFixed(2).padStart(5)}s`;
const say = (who: string, text: string) => process.stdout.write(`${clock()}  ${who.padEnd(7)} ${text}\n`);
const detail = (text: string) => process.stdout.write(`${" ".repeat(16)}${text}\n`);

class DemoFailure extends Error {}

// ---- clean-up, whatever happens ---------------------------------------------------------------------

const cleanups: Array<() => Promise<void> | void> = [];
let cleaned: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaned ??= (async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch {
        // best effort: the next step still runs
      }
    }
  })();
  return cleaned;
}

const abort = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stdout.write(`\n${clock()}  demo    ${signal}: stopping and cleaning up\n`);
    abort.abort(new DemoFailure(`interrupted by ${signal}`));
  });
}

function checkAborted(): void {
  if (abort.signal.aborted) throw abort.signal.reason;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    checkAborted();
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new DemoFailure(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- narration of what the emulated Azure and the runtime do -----------------------------------------

interface Timeline {
  evictionRequested?: number;
  evicted?: number;
  seen?: number;
  startRequested?: number;
  running?: number;
}

/** Polls the control API and narrates each VM's power-state change. */
function watchAzure(control: EmulatorControl, timeline: Timeline): () => void {
  const last = new Map<string, string>();
  let stopped = false;
  let evictionsSeen = 0;
  void (async () => {
    while (!stopped) {
      try {
        for (const vm of await control.vms()) {
          const before = last.get(vm.name);
          if (before !== undefined && before !== vm.powerState) {
            const evicted = vm.evictions > evictionsSeen && vm.name === TAGGED;
            if (evicted) {
              evictionsSeen = vm.evictions;
              // The emulator's own record of the moment, not when this poll noticed it.
              timeline.evicted = vm.lastEvictedAt ? Date.parse(vm.lastEvictedAt) : Date.now();
            }
            if (vm.name === TAGGED && vm.powerState === "running" && timeline.evicted)
              timeline.running ??= Date.now();
            const why = evicted
              ? "  (evicted by Azure)"
              : vm.name === OWNED && vm.powerState === "deallocated"
                ? "  (its owner's stop)"
                : "";
            say("azure", `${vm.name}: ${before} -> ${vm.powerState}${why}`);
          }
          last.set(vm.name, vm.powerState);
        }
      } catch {
        // the emulator is going away at the end
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return () => {
    stopped = true;
  };
}

const NARRATED = new Set([
  "run-started",
  "deallocated-vm-seen",
  "cause-unknown",
  "vm-evicted",
  "vm-left-alone",
  "start-issued",
  "started",
  "vm-running",
  "power-state-changed",
  "start-failed",
  "start-failed-price",
  "throttled",
  "permission-missing",
  "token-refused",
  "cycle-failed",
  "run-stopped",
]);

/** Narrates the runtime's JSON log lines (one per state change), and keeps them for a failure report. */
function narrateRuntime(loop: RuntimeProcess, timeline: Timeline, log: string[]): void {
  let buffer = "";
  loop.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) {
      log.push(line);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        say("runtime", line);
        continue;
      }
      const event = String(entry.event);
      const vm = typeof entry.vm === "string" ? entry.vm.split("/").pop() : undefined;
      if (vm === TAGGED && timeline.evictionRequested) {
        if (event === "deallocated-vm-seen") timeline.seen ??= Date.now();
        if (event === "start-issued") timeline.startRequested ??= Date.now();
      }
      if (NARRATED.has(event) || entry.level === "error") {
        say("runtime", `${event}${vm ? ` ${vm}` : ""}: ${entry.msg}`);
      }
    }
  });
  loop.stdout.resume();
}

/**
 * The owner's notification receiver: a local `webhook` channel. Its URL goes through `pulumi config`
 * (secret), the stack output, the installer and the runtime config, as a Slack or ntfy URL would;
 * every message the runtime posts is narrated. Its path is a random token, never printed.
 */
async function startNotificationReceiver(): Promise<{
  url: string;
  received: Array<Record<string, unknown>>;
}> {
  const received: Array<Record<string, unknown>> = [];
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8").on("data", (chunk: string) => {
      body += chunk;
    });
    request.on("end", () => {
      response.writeHead(204).end();
      // install's doctor checks only that the channel's origin answers: a GET with no path, no message.
      if (request.method === "GET") {
        say("notify", `reachability check: ${request.method} ${request.url} (doctor, during install)`);
        return;
      }
      try {
        const message = JSON.parse(body) as Record<string, unknown>;
        received.push(message);
        say("notify", `${message.event}: ${message.message}`);
      } catch {
        say("notify", "a message that is not JSON");
      }
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  cleanups.push(() => new Promise<void>((done) => server.close(() => done())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook/${randomBytes(12).toString("hex")}`, received };
}

// ---- the demo ------------------------------------------------------------------------------------------

function vmLine(vm: {
  name: string;
  priority: string;
  powerState: string;
  tags: Record<string, string>;
}): string {
  const tags = Object.entries(vm.tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return `${vm.name.padEnd(27)} ${vm.priority.padEnd(8)} ${vm.powerState.padEnd(12)} ${tags}`;
}

const DEMO_USAGE = `npm run demo: the whole product on this machine, narrated. Starts the Azure emulator, applies
the Pulumi program to it, installs the runtime into a temporary root from the stack outputs, runs the
installed loop, evicts the tagged Spot VM beside its owner's stop of another one, and tells what happens.
Exit 0 when the evicted VM came back and the owner's VM was left alone; cleans up on every exit.

Usage: npm run demo [-- OPTIONS]
  --role-mode MODE          contributor (default) or least-privilege: the role the program assigns
  --interval-seconds N      the installed loop's interval (default 2)
  --keep                    keep the temporary directory (stack outputs, config, logs) for a look afterwards
  -h, --help                this help
`;

async function main(): Promise<void> {
  const values = parseToolArgs("demo", DEMO_USAGE, {
    "role-mode": { type: "string", default: "contributor" },
    "interval-seconds": { type: "string", default: "2" },
    keep: { type: "boolean", default: false },
  });
  const roleMode = values["role-mode"];
  if (roleMode !== "contributor" && roleMode !== "least-privilege") {
    throw new DemoFailure(`--role-mode: contributor or least-privilege, got ${roleMode}`);
  }
  const interval = values["interval-seconds"];
  const deadline = setTimeout(
    () => abort.abort(new DemoFailure(`the demo took longer than ${DEADLINE_MS / 1000}s`)),
    DEADLINE_MS,
  );
  cleanups.push(() => clearTimeout(deadline));

  process.stdout.write(
    `spot-restarter demo, ${new Date(t0).toISOString()}: everything runs on this machine against an Azure emulator.\n\n`,
  );
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-demo-"));
  cleanups.push(() => {
    if (values.keep) say("demo", `kept ${dir} (--keep)`);
    else rmSync(dir, { recursive: true, force: true });
  });

  // 1. Azure.
  say(
    "demo",
    `starting the emulator: npm run emulator -- --seed ${join("emulator/examples", "personal-network.json")}`,
  );
  const emulatorProcess = await startEmulatorProcess(SEED, { signal: abort.signal });
  cleanups.push(() => emulatorProcess.stop());
  const { ready } = emulatorProcess;
  const control = emulatorControl(ready.armEndpoint, { caCertPem: readFileSync(ready.caCertFile, "utf8") });
  // A dev box beside the backup server: restartable too, but its owner will stop it to save money.
  await control.putVm(GROUP, OWNED, {
    location: "eastus",
    vmSize: "Standard_D2s_v5",
    priority: "Spot",
    evictionPolicy: "Deallocate",
    maxPrice: -1,
    powerState: "running",
    tags: { role: "dev" },
  });
  say("azure", `Entra ID + Resource Manager at ${ready.armEndpoint}, resource group ${GROUP}:`);
  const initial = await control.vms();
  for (const vm of initial) detail(vmLine(vm));

  // 2. pulumi up.
  checkAborted();
  say(
    "pulumi",
    `pulumi up (index.ts, roleMode ${roleMode}, restartableVms [${TAGGED}, ${OWNED}]); the providers act on the emulator`,
  );
  const receiver = await startNotificationReceiver();
  detail(
    "pulumi config set --path 'notifications[0].type' webhook; pulumi config set --secret --path 'notifications[0].url' <a local receiver>; pulumi config set allowSimulateEviction true",
  );
  const applied: AppliedStack = await applyProgram({
    emulator: ready,
    config: {
      resourceGroupName: GROUP,
      restartableVms: [TAGGED, OWNED],
      roleMode,
      notifications: [{ type: "webhook", url: receiver.url }],
      // The demo evicts its VM with `simulate-eviction`: a least-privilege role may do so only when asked.
      allowSimulateEviction: true,
    },
    outputsFile: join(dir, "stack-outputs.json"),
    stack: "demo",
    signal: abort.signal,
  });
  for (const resource of applied.report.resources) {
    const [pkg, , type] = resource.type.split(/[:/]/);
    detail(`+ ${`${pkg}:${type?.split(":").pop()}`.padEnd(38)} ${resource.name}`);
  }
  const { outputs } = applied;
  say(
    "pulumi",
    `outputs: clientId ${outputs.clientId}, certificatePem [secret], notifications [secret], certificateExpiresOn ${outputs.certificateExpiresOn}`,
  );
  const tagged = await control.vm(GROUP, TAGGED);
  detail(`${TAGGED} tags now: ${JSON.stringify(tagged?.tags)} (merged, never replaced)`);

  // 3. The host: bundle and install.
  checkAborted();
  const bundle = await buildBundle(dir);
  const root = join(dir, "root");
  // install --root installs below an existing root it checked (owned by us, not writable by others).
  mkdirSync(root, { mode: 0o755 });
  say(
    "install",
    `pulumi stack output --json --show-secrets > outputs.json; spot-restarter.cjs install --root ${root}`,
  );
  const installed = await install({
    bundle,
    outputsFile: applied.outputsFile,
    root,
    emulator: ready,
    verify: true,
    signal: abort.signal,
  });
  if (installed.code !== 0)
    throw new DemoFailure(`install failed (exit code ${installed.code}):\n${installed.stderr}`);
  for (const line of installed.stdout.split("\n")) {
    if (/^\s+created|ok: /.test(line)) detail(line.trim().replace(/^created\s+/, ""));
  }
  const runtime: InstalledRuntime = installedRuntime(root);

  // 4. The loop, as the systemd unit runs it.
  checkAborted();
  const timeline: Timeline = {};
  const stopWatching = watchAzure(control, timeline);
  cleanups.push(stopWatching);
  say(
    "demo",
    `starting the installed runtime: spot-restarter run --config ${runtime.config} --interval-seconds ${interval}`,
  );
  const loop = startInstalledLoop(runtime, ["--interval-seconds", interval, "--log-format", "json"]);
  const runtimeLog: string[] = [];
  cleanups.push(async () => {
    if (loop.exitCode === null && loop.signalCode === null) {
      loop.kill("SIGTERM");
      await exited(loop);
    }
  });
  narrateRuntime(loop, timeline, runtimeLog);
  let stopping = false;
  const failIfLoopExits = exited(loop).then(({ code }) => {
    if (!abort.signal.aborted && !stopping)
      abort.abort(new DemoFailure(`the runtime exited (code ${code}):\n${runtimeLog.join("\n")}`));
  });
  void failIfLoopExits;

  if (initial.find((vm) => vm.name === TAGGED)?.powerState !== "running") {
    say(
      "demo",
      `${TAGGED} starts out deallocated in this world (evicted while nobody watched): the first cycle should start it`,
    );
    await waitFor(`${TAGGED} to run`, async () =>
      (await control.vm(GROUP, TAGGED))?.powerState === "running" ? true : undefined,
    );
  }

  // 5. The owner stops one VM, and Azure evicts the other: both end PowerState/deallocated.
  await new Promise((r) => setTimeout(r, 500));
  checkAborted();
  say(
    "demo",
    `its owner stops ${OWNED} to save money: az vm deallocate --name ${OWNED} (as ${OWNER}; Resource Health: VirtualMachineDeallocationInitiated)`,
  );
  await control.deallocate(GROUP, OWNED, OWNER);
  say(
    "demo",
    `simulating an eviction: spot-restarter simulate-eviction --vm ${TAGGED}  (POST …/simulateEviction)`,
  );
  timeline.evictionRequested = Date.now();
  const simulated = await runInstalled(
    runtime,
    "simulate-eviction",
    ["--vm", TAGGED, "--log-format", "json"],
    {
      signal: abort.signal,
    },
  );
  if (simulated.code !== 0)
    throw new DemoFailure(`simulate-eviction failed (exit code ${simulated.code}):\n${simulated.stderr}`);
  await waitFor("the evicted VM to run again", async () =>
    timeline.running !== undefined && timeline.startRequested !== undefined ? true : undefined,
  );

  await waitFor(
    "the vm-restarted and vm-left-alone notifications",
    async () =>
      receiver.received.some((m) => m.event === "vm-restarted") &&
      receiver.received.some((m) => m.event === "vm-left-alone" && m.vm === OWNED)
        ? true
        : undefined,
    15_000,
  );

  // 6. What happened, and what did not.
  checkAborted();
  stopWatching();
  const final = await control.vms();
  const requests = (await control.requests()).filter((r) => r.clientId === outputs.clientId);
  const at = (ms: number | undefined) =>
    ms === undefined ? "?" : `+${((ms - (timeline.evicted ?? 0)) / 1000).toFixed(2)}s`;
  process.stdout.write("\n");
  say("demo", "timeline of the eviction:");
  detail(`evicted by Azure            ${at(timeline.evicted)}`);
  detail(`evicted VM seen by runtime  ${at(timeline.seen)}`);
  detail(`start requested             ${at(timeline.startRequested)}`);
  detail(`running again               ${at(timeline.running)}`);
  say("demo", "every VM now:");
  let ok = true;
  for (const vm of final) {
    const before = initial.find((v) => v.name === vm.name);
    const verdict =
      vm.name === TAGGED
        ? vm.powerState === "running" && vm.evictions === 1
          ? `brought back (${vm.startRequests} start requests: first cycle + after the eviction)`
          : "NOT brought back"
        : vm.name === OWNED
          ? vm.startRequests === 0 && vm.powerState === "deallocated"
            ? "left alone (its owner deallocated it: 0 start requests)"
            : "STARTED AGAINST ITS OWNER"
          : vm.startRequests === 0 && vm.powerState === before?.powerState
            ? `left alone (${vm.priority === "Spot" ? "Spot, untagged" : "Regular VM"}: 0 start requests)`
            : "TOUCHED";
    if (/NOT|TOUCHED|AGAINST/.test(verdict)) ok = false;
    detail(`${vm.name.padEnd(27)} ${vm.powerState.padEnd(12)} ${verdict}`);
  }
  const kinds = new Map<string, number>();
  for (const r of requests) {
    const kind = r.path.includes("/oauth2/")
      ? "token"
      : r.path.endsWith("/virtualMachines")
        ? "list"
        : r.path.endsWith("/instanceView")
          ? "instanceView"
          : r.path.endsWith("/start")
            ? "start"
            : r.path.endsWith("/simulateEviction")
              ? "simulateEviction"
              : r.path.includes("/operations/")
                ? "poll"
                : "other";
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  say(
    "azure",
    `requests from the service principal (install check, loop, simulate-eviction): ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}; ${requests.every((r) => r.status < 400) ? "all allowed" : "SOME REFUSED"}`,
  );

  const status = await runInstalled(runtime, "status", [], { signal: abort.signal });
  say("demo", "spot-restarter status:");
  for (const line of status.stdout.trim().split("\n")) detail(line);
  // Azure's market data for the VM (Resource Graph SpotResources; the example seed's spotEvictionRates and
  // spotPrices): status read it once and keeps it an hour in the state directory.
  const statusJson = await runInstalled(runtime, "status", ["--json"], { signal: abort.signal });
  const market = (
    JSON.parse(statusJson.stdout) as {
      vms: Array<{
        name: string;
        vmSize: string | null;
        evictionRate: string | null;
        spotPriceUsdPerHour: number | null;
      }>;
    }
  ).vms.find((vm) => vm.name === TAGGED);
  say(
    "azure",
    `${TAGGED} (${market?.vmSize ?? "?"}): evictionRate ${market?.evictionRate ?? "unknown"}%, spotPriceUsdPerHour ${market?.spotPriceUsdPerHour ?? "unknown"} (status --json, from Resource Graph SpotResources)`,
  );

  stopping = true;
  loop.kill("SIGTERM");
  const { code } = await exited(loop);
  say("demo", `runtime stopped on SIGTERM (exit code ${code})`);
  say(
    "notify",
    `messages the owner got: ${receiver.received.map((m) => `${m.event}${m.downtimeSeconds !== undefined ? ` (down ${m.downtimeSeconds} s)` : ""}`).join(", ") || "none"}`,
  );
  if (code !== 0) ok = false;
  if (!ok) throw new DemoFailure("the chain did not do what it should (see above)");
  say(
    "demo",
    `done in ${((Date.now() - t0) / 1000).toFixed(1)}s: the evicted Spot VM came back, the one its owner stopped stayed stopped, nothing else was touched`,
  );
  // What it cost, from the eviction history the loop kept (docs/eviction-history.md).
  const report = await runInstalled(runtime, "report", ["--since", "1h"], { signal: abort.signal });
  say("demo", "spot-restarter report --since 1h:");
  for (const line of report.stdout.trim().split("\n")) detail(line);
  if (report.code !== 0) throw new DemoFailure(`report failed: ${report.stderr.trim()}`);
}

main()
  .then(async () => {
    await cleanUp();
    process.exitCode = 0;
  })
  .catch(async (error: unknown) => {
    const reason = abort.signal.aborted ? abort.signal.reason : error;
    process.stderr.write(`\ndemo failed: ${reason instanceof Error ? reason.message : String(reason)}\n`);
    await cleanUp();
    process.exitCode = abort.signal.aborted && /interrupted/.test(String(reason?.message)) ? 130 : 1;
  });
