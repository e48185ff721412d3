// The whole chain, offline: the Pulumi program applied to the emulator (demo/apply-program.ts) -> its
// stack outputs -> `install --root` through the real bundle -> the installed runtime, with the installed
// config.json and sp.pem, brings the evicted tagged Spot VM back and leaves every other VM alone.
// The emulator enforces RBAC and checks the client assertion, so each planted bug (role on the wrong
// object id, wrong scope, a tag the runtime does not look for, a PEM Entra does not know) must break it.
import "reflect-metadata"; // before the emulator: @peculiar/x509 needs it loaded first
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type AppliedStack, applyProgram, type ProgramConfig } from "../../demo/apply-program";
import {
  exited,
  type InstalledRuntime,
  install,
  installedRuntime,
  type ProcessResult,
  runInstalled,
  startInstalledLoop,
} from "../../demo/chain";
import type { Mutations } from "../../demo/emulator-provider";
import { type EmulatorSeed, type RunningEmulator, startEmulator } from "../../emulator/index";
import {
  createTestPrincipal,
  type EmulatorControl,
  EXAMPLE_SEED_FILE,
  emulatorControl,
} from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";

const GROUP = "personal-network";
const TAGGED = "ubuntu-backup-server-spot";
const UNTAGGED_SPOT = "scratch-builder-spot";
const REGULAR = "vpn-gateway-vm";

let bundle: string;
const dirs: string[] = [];
const emulators: RunningEmulator[] = [];
/** Everything any process printed, to check the private key never appears. */
const printed: string[] = [];
const keyLines = new Set<string>();

before(async () => {
  bundle = await buildRuntimeBundle();
});

after(async () => {
  await Promise.all(emulators.map((emulator) => emulator.stop()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  const all = printed.join("\n");
  for (const line of keyLines) assert.ok(!all.includes(line), "private key material was printed");
});

/**
 * The example world, except that the tagged VM does not carry our tag yet: the program must add it
 * (merged with its `role` tag), or nothing gets restarted.
 */
function exampleWorld(extra: Partial<EmulatorSeed> = {}): EmulatorSeed {
  const seed = JSON.parse(readFileSync(EXAMPLE_SEED_FILE, "utf8")) as EmulatorSeed;
  for (const vm of seed.virtualMachines ?? []) {
    if (vm.name === TAGGED) vm.tags = { role: "backup" };
  }
  return { ...seed, timing: { startSeconds: 1, evictionDelaySeconds: 0 }, ...extra };
}

interface Chain {
  emulator: RunningEmulator;
  control: EmulatorControl;
  applied: AppliedStack;
  dir: string;
  root: string;
  runtime: InstalledRuntime;
  installResult: ProcessResult;
}

async function run(runtime: InstalledRuntime, command: string, args: string[] = []): Promise<ProcessResult> {
  const result = await runInstalled(runtime, command, args);
  printed.push(result.stdout, result.stderr);
  return result;
}

function rememberKey(pem: string): void {
  const key = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem)?.[1] ?? "";
  for (const line of key.split("\n")) if (line.trim().length > 20) keyLines.add(line.trim());
}

/** Emulator -> apply -> (optionally tamper with the outputs) -> install. */
async function buildChain(options: {
  roleMode: ProgramConfig["roleMode"];
  fallbackSizes?: ProgramConfig["fallbackSizes"];
  fallbackAfterSeconds?: ProgramConfig["fallbackAfterSeconds"];
  allowSimulateEviction?: boolean;
  mutations?: Mutations;
  seed?: Partial<EmulatorSeed>;
  verify?: boolean;
  tamper?: (outputsFile: string) => Promise<void>;
}): Promise<Chain> {
  const emulator = await startEmulator(exampleWorld(options.seed));
  emulators.push(emulator);
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-e2e-"));
  dirs.push(dir);
  const applied = await applyProgram({
    emulator,
    config: {
      resourceGroupName: GROUP,
      restartableVms: [TAGGED],
      roleMode: options.roleMode,
      ...(options.fallbackSizes ? { fallbackSizes: options.fallbackSizes } : {}),
      ...(options.fallbackAfterSeconds !== undefined
        ? { fallbackAfterSeconds: options.fallbackAfterSeconds }
        : {}),
      ...(options.allowSimulateEviction ? { allowSimulateEviction: true } : {}),
    },
    outputsFile: join(dir, "stack-outputs.json"),
    mutations: options.mutations,
  });
  rememberKey(applied.outputs.certificatePem);
  await options.tamper?.(applied.outputsFile);
  const root = join(dir, "root");
  const installResult = await install({
    bundle,
    outputsFile: applied.outputsFile,
    root,
    emulator,
    verify: options.verify ?? false,
  });
  printed.push(installResult.stdout, installResult.stderr);
  return {
    emulator,
    control: emulatorControl(emulator.armEndpoint),
    applied,
    dir,
    root,
    runtime: installedRuntime(root),
    installResult,
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function vm(chain: Chain, name: string) {
  const found = await chain.control.vm(GROUP, name);
  assert.ok(found, `emulator has no VM ${name}`);
  return found;
}

/** The tagged VM is running (as before an eviction), then the installed runtime asks Azure to evict it. */
async function evictTaggedVm(chain: Chain): Promise<void> {
  await chain.control.setVm(GROUP, TAGGED, { powerState: "running" });
  const result = await run(chain.runtime, "simulate-eviction", ["--vm", TAGGED]);
  assert.equal(result.code, 0, result.stderr);
  await waitFor("the eviction", async () =>
    (await vm(chain, TAGGED)).powerState === "deallocated" ? true : undefined,
  );
}

/** The untagged Spot VM and the regular VM were never started by anyone. */
async function assertOthersUntouched(chain: Chain): Promise<void> {
  const untagged = await vm(chain, UNTAGGED_SPOT);
  assert.equal(untagged.powerState, "deallocated", "the untagged Spot VM stays deallocated");
  assert.equal(untagged.startRequests, 0, "nobody asked to start the untagged Spot VM");
  const regular = await vm(chain, REGULAR);
  assert.equal(regular.powerState, "running");
  assert.equal(regular.startRequests, 0, "nobody asked to start the regular VM");
  const requests = await chain.control.requests();
  const touched = requests.filter(
    (request) =>
      request.clientId === chain.applied.outputs.clientId &&
      (request.path.includes(`/${UNTAGGED_SPOT}`) || request.path.includes(`/${REGULAR}`)),
  );
  assert.deepEqual(touched, [], "the runtime sent no request about the other VMs (one list covers them)");
}

interface OnceSummary {
  vms: {
    name: string;
    tagged: boolean;
    decision: string;
    reason: string | null;
    start: { outcome: string } | null;
  }[];
  starts: { issued: number; succeeded: number };
  armRequests: { list: number; instanceView: number; start: number } | null;
  error: string | null;
}

describe("program -> outputs -> install -> runtime against the emulator", () => {
  test("contributor: the installed `once` restarts the evicted tagged Spot VM, nothing else", async () => {
    const chain = await buildChain({ roleMode: "contributor" });
    const { outputs, report } = chain.applied;

    // What the program did in "Azure".
    assert.equal(report.certificatePemIsSecret, true);
    assert.deepEqual((await vm(chain, TAGGED)).tags, { role: "backup", AttemptRestartAfterEviction: "true" });
    assert.deepEqual(
      (await vm(chain, UNTAGGED_SPOT)).tags,
      { role: "build" },
      "only configured VMs are tagged",
    );
    const assignment = report.resources.find((r) => r.type === "azure-native:authorization:RoleAssignment");
    assert.match(
      assignment?.id ?? "",
      new RegExp(
        `^/subscriptions/${outputs.subscriptionId}/resourceGroups/${GROUP}/providers/Microsoft.Authorization/roleAssignments/`,
      ),
    );
    assert.equal(
      report.resources.some((r) => r.type === "azure-native:authorization:RoleDefinition"),
      false,
      "contributor mode creates no custom role",
    );

    // What install wrote.
    assert.equal(chain.installResult.code, 0, `${chain.installResult.stdout}\n${chain.installResult.stderr}`);
    assert.equal(statSync(chain.runtime.key).mode & 0o777, 0o600);
    const config = JSON.parse(readFileSync(chain.runtime.config, "utf8"));
    assert.equal(config.clientId, outputs.clientId);
    assert.deepEqual(config.resourceGroups, [GROUP]);
    assert.deepEqual(config.tag, outputs.restartTag);

    await evictTaggedVm(chain);
    const once = await run(chain.runtime, "once", ["--json"]);
    assert.equal(once.code, 0, once.stderr);
    const summary = JSON.parse(once.stdout) as OnceSummary;
    const decision = (name: string) => summary.vms.find((v) => v.name === name);
    assert.equal(decision(TAGGED)?.decision, "start");
    assert.equal(decision(TAGGED)?.start?.outcome, "started");
    assert.equal(decision(UNTAGGED_SPOT)?.reason, "untagged");
    assert.equal(decision(REGULAR)?.reason, "not-spot");
    assert.deepEqual(summary.starts, { ...summary.starts, issued: 1, succeeded: 1 });
    // One list, one instance view (the only tagged Spot VM), one start.
    assert.equal(summary.armRequests?.list, 1);
    assert.equal(summary.armRequests?.instanceView, 1);
    assert.equal(summary.armRequests?.start, 1);

    const tagged = await vm(chain, TAGGED);
    assert.equal(tagged.powerState, "running");
    assert.equal(tagged.startRequests, 1);
    await assertOthersUntouched(chain);
  });

  test("least-privilege: the installed `run` loop brings the VM back after an eviction and stops on SIGTERM", async () => {
    // verify: the installer's doctor must pass with the custom role's actions too.
    const chain = await buildChain({
      roleMode: "least-privilege",
      allowSimulateEviction: true,
      verify: true,
    });
    const definition = chain.applied.report.resources.find(
      (r) => r.type === "azure-native:authorization:RoleDefinition",
    );
    assert.ok(definition, "least-privilege mode creates a custom role");
    assert.equal(chain.installResult.code, 0, `${chain.installResult.stdout}\n${chain.installResult.stderr}`);
    assert.match(chain.installResult.stdout, /ok: doctor passed/);

    await chain.control.setVm(GROUP, TAGGED, { powerState: "running" });
    const loop = startInstalledLoop(chain.runtime, ["--interval-seconds", "1", "--log-format", "json"]);
    let logs = "";
    loop.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      logs += chunk;
    });
    loop.stdout.resume();
    try {
      // allowSimulateEviction put simulateEviction in the custom role: the installed CLI may use it.
      const evicted = await run(chain.runtime, "simulate-eviction", ["--vm", TAGGED]);
      assert.equal(evicted.code, 0, evicted.stderr);
      await waitFor("the loop to see the eviction and start the VM", async () => {
        const tagged = await vm(chain, TAGGED);
        return tagged.evictions === 1 && tagged.powerState === "running" && /"event":"started"/.test(logs)
          ? true
          : undefined;
      });
      const events = logs
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { event: string; vm?: string });
      const order = ["deallocated-vm-seen", "start-issued", "started"].map((event) =>
        events.findIndex((e) => e.event === event && e.vm?.endsWith(TAGGED)),
      );
      assert.ok(
        order.every((index) => index >= 0),
        `missing events in:\n${logs}`,
      );
      assert.deepEqual(
        [...order].sort((a, b) => a - b),
        order,
        "evicted seen -> start issued -> started",
      );
      assert.equal((await vm(chain, TAGGED)).startRequests, 1);
      await assertOthersUntouched(chain);
    } finally {
      loop.kill("SIGTERM");
      const { code } = await exited(loop);
      printed.push(logs);
      assert.equal(code, 0, `run exits cleanly on SIGTERM:\n${logs}`);
    }
  });
});

describe("fallback sizes through the whole chain (opt-in)", () => {
  test("least-privilege + fallbackSizes: the role may resize, install writes the fallbacks, `once` brings the VM back in a fallback size", async () => {
    // The tagged VM (Standard_B2s, 8 GiB temp disk) has no capacity in its own size; Standard_B2ms (temp
    // disk too) does. Standard_D2s_v5 (no temp disk) is listed first and must be passed over.
    const chain = await buildChain({
      roleMode: "least-privilege",
      fallbackSizes: { [TAGGED]: ["Standard_D2s_v5", "Standard_B2ms"] },
      // Time scaled for the test (default 600 s), set as `pulumi config set fallbackAfterSeconds 2` would.
      fallbackAfterSeconds: 2,
      seed: { faults: [{ vm: TAGGED, vmSize: "Standard_B2s", startFailsWith: "AllocationFailed" }] },
    });
    assert.equal(chain.installResult.code, 0, chain.installResult.stderr);
    assert.deepEqual(chain.applied.outputs.fallbackSizes, { [TAGGED]: ["Standard_D2s_v5", "Standard_B2ms"] });
    const installed = JSON.parse(readFileSync(chain.runtime.config, "utf8"));
    assert.deepEqual(installed.fallbackSizes, {
      [`${GROUP}/${TAGGED}`]: ["Standard_D2s_v5", "Standard_B2ms"],
    });
    // spot-restarter:fallbackAfterSeconds -> stack output -> the host's config.
    assert.equal(chain.applied.outputs.fallbackAfterSeconds, 2);
    assert.equal(installed.fallbackAfterSeconds, 2);
    // Time scaled for the test: capacity retried every second (default 60 s).
    writeFileSync(
      chain.runtime.config,
      JSON.stringify({ ...installed, retry: { capacitySeconds: 1 } }, null, 2),
    );

    const deadline = Date.now() + 30_000;
    for (;;) {
      const result = await run(chain.runtime, "once", ["--json"]);
      assert.equal(result.code, 0, result.stderr);
      if ((await vm(chain, TAGGED)).powerState === "running") break;
      assert.ok(Date.now() < deadline, "the VM never came back");
      await new Promise((resolve) => setTimeout(resolve, 700));
    }
    const tagged = await vm(chain, TAGGED);
    assert.equal(tagged.vmSize, "Standard_B2ms");
    assert.deepEqual(
      tagged.history.filter((e) => e.event === "resized").map((e) => [e.from, e.vmSize]),
      [["Standard_B2s", "Standard_B2ms"]],
    );
    assert.ok(
      tagged.history.some((e) => e.event === "start-failed"),
      "its own size was tried first",
    );
    // The emulator enforces RBAC: the resize went through under the program's own custom role, which therefore
    // holds virtualMachines/write (and vmSizes/read) because fallbackSizes is set.
    const requests = await chain.control.requests();
    const mine = (method: string, suffix: string) =>
      requests.filter(
        (r) =>
          r.clientId === chain.applied.outputs.clientId && r.method === method && r.path.endsWith(suffix),
      );
    assert.deepEqual(
      mine("GET", `/${TAGGED}/vmSizes`).map((r) => r.status),
      [200],
    );
    assert.deepEqual(
      mine("PATCH", `/${TAGGED}`).map((r) => r.status),
      [200],
    );
    await assertOthersUntouched(chain);
  });
});

describe("a planted bug breaks the chain (the emulator enforces what Azure enforces)", () => {
  test("role assigned to the application's object id: 403 and a clear permission error, VM stays down", async () => {
    const chain = await buildChain({ roleMode: "contributor", mutations: { roleAssignee: "application" } });
    assert.equal(chain.installResult.code, 0, chain.installResult.stderr);
    await chain.control.setVm(GROUP, TAGGED, { powerState: "deallocated" });
    const once = await run(chain.runtime, "once", ["--json"]);
    assert.equal(once.code, 4, `exit code 4 (a permission is missing):\n${once.stderr}`);
    assert.match(
      once.stderr,
      /lacks the permission Microsoft\.Compute\/virtualMachines\/read on resource group personal-network \(AuthorizationFailed\)/,
      "names the missing permission and where",
    );
    const servicePrincipal = (await chain.control.principals()).find(
      (p) => p.clientId === chain.applied.outputs.clientId,
    );
    assert.ok(servicePrincipal, "the program registered its service principal");
    assert.match(
      once.stderr,
      new RegExp(
        `the role assignment must name this service principal's object id ${servicePrincipal.objectId}`,
      ),
      "names the object id the role must be assigned to",
    );
    const denied = (await chain.control.requests()).filter(
      (r) => r.clientId === chain.applied.outputs.clientId && r.status === 403,
    );
    assert.ok(denied.length > 0, "ARM answered 403");
    assert.equal((await vm(chain, TAGGED)).startRequests, 0);
  });

  test("role assigned at another resource group: 403, exit code 4", async () => {
    const { subscriptionId } = JSON.parse(readFileSync(EXAMPLE_SEED_FILE, "utf8")) as EmulatorSeed;
    const chain = await buildChain({
      roleMode: "contributor",
      seed: { resourceGroups: [{ name: GROUP }, { name: "other-group" }] },
      mutations: { roleScope: `/subscriptions/${subscriptionId}/resourceGroups/other-group` },
    });
    assert.equal(chain.installResult.code, 0, chain.installResult.stderr);
    const once = await run(chain.runtime, "once", ["--json"]);
    assert.equal(once.code, 4, `exit code 4 (a permission is missing):\n${once.stderr}`);
    assert.match(
      once.stderr,
      /lacks the permission \S+ on resource group personal-network/,
      "names where it needs it",
    );
    assert.equal((await vm(chain, TAGGED)).startRequests, 0);
  });

  test("a tag the runtime does not look for: the evicted VM is never started", async () => {
    const chain = await buildChain({ roleMode: "contributor", mutations: { tagName: "AttemptRestart" } });
    assert.equal(chain.installResult.code, 0, chain.installResult.stderr);
    assert.deepEqual((await vm(chain, TAGGED)).tags, { role: "backup", AttemptRestart: "true" });
    const once = await run(chain.runtime, "once", ["--json"]);
    assert.equal(once.code, 0, once.stderr);
    const summary = JSON.parse(once.stdout) as OnceSummary;
    assert.equal(summary.vms.find((v) => v.name === TAGGED)?.reason, "untagged");
    assert.equal(summary.starts.issued, 0);
    const tagged = await vm(chain, TAGGED);
    assert.equal(tagged.powerState, "deallocated");
    assert.equal(tagged.startRequests, 0);
  });

  test("a PEM Entra ID does not know (another key pair): authentication fails, exit code 3", async () => {
    const chain = await buildChain({
      roleMode: "contributor",
      tamper: async (file) => {
        const stranger = await createTestPrincipal();
        rememberKey(stranger.pem);
        const outputs = JSON.parse(readFileSync(file, "utf8"));
        writeFileSync(file, JSON.stringify({ ...outputs, certificatePem: stranger.pem }), { mode: 0o600 });
      },
    });
    assert.equal(chain.installResult.code, 0, chain.installResult.stderr);
    const once = await run(chain.runtime, "once", ["--json"]);
    assert.equal(once.code, 3, `exit code 3 (authentication failed):\n${once.stderr}`);
    assert.match(once.stderr, new RegExp(chain.applied.outputs.clientId), "names the client id");
    assert.equal((await vm(chain, TAGGED)).startRequests, 0);
  });
});
