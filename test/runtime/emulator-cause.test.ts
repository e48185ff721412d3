// Restart what Azure evicted, never what its owner stopped (issue 10): the loop with its cause gate
// against the emulator, real SDK clients (@azure/arm-compute, @azure/arm-resourcegraph,
// @azure/arm-monitor) over HTTPS. Fault rows: annotation late, Resource Graph 429/503, permission for the
// signal missing, the owner deallocating during a start (OperationPreempted, a real Compute code:
// https://learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/error-messages).
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createCredential, verifyAuthentication } from "../../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter } from "../../runtime/src/azure/azure";
import { BudgetTracker, RESOURCE_GRAPH_QUOTA } from "../../runtime/src/azure/budgets";
import { LEAST_PRIVILEGE_ACTIONS } from "../../runtime/src/azure/roleActions";
import { vmResourceId } from "../../runtime/src/cause/cause";
import { CauseGate } from "../../runtime/src/cause/causeGate";
import { createArmCauseSource } from "../../runtime/src/cause/causeSource";
import { vmKey } from "../../runtime/src/core/vm";
import { Restarter } from "../../runtime/src/loop/restarter";
import type { Logger } from "../../runtime/src/signals/log";
import { addPause, readPauses } from "../../runtime/src/state/pause";
import { createFileStateStore } from "../../runtime/src/state/state";
import { buildRuntimeBundle } from "../../support/bundle";
import { armFetch } from "../emulator/helpers";
import { resourceGroup, runCli, spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;

function recorder(): Logger & {
  lines: Array<{ event: string; meta: Record<string, unknown>; loggedAt: number }>;
} {
  const lines: Array<{ event: string; meta: Record<string, unknown>; loggedAt: number }> = [];
  const push = (event: string, meta: Record<string, unknown>) =>
    lines.push({ event, meta, loggedAt: Date.now() });
  return { lines, debug: () => {}, info: push, warn: push, error: push };
}

async function wire(
  world: World,
  options: { unknownCauseAfterMs?: number; restartWhen?: "evicted" | "deallocated" } = {},
) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const objectId = await verifyAuthentication(credential, config);
  const counter = createRequestCounter();
  const log = recorder();
  const restartWhen = options.restartWhen ?? "evicted";
  const causeGate = new CauseGate({
    ...(restartWhen === "evicted" ? { source: createArmCauseSource(config, credential, { counter }) } : {}),
    readPauses: () => readPauses(world.stateDir),
    settings: {
      restartWhen,
      unknownCauseAfterMs: options.unknownCauseAfterMs ?? 60_000,
      subscriptionId: config.subscriptionId,
      self: { clientId: config.clientId, ...(objectId ? { objectId } : {}) },
    },
    now: Date.now,
  });
  const restarter = new Restarter({
    api: createArmVmApi(config, credential, { counter, pollIntervalMs: 100 }),
    store: createFileStateStore(world.stateDir),
    log,
    settings: {
      resourceGroups: config.resourceGroups,
      tag: config.tag,
      maxConcurrentStarts: 10,
      backoff: { initialMs: 60_000, maxMs: 1_800_000 },
      startTimeoutMs: 20_000,
      intervalMs: 500,
    },
    counter,
    causeGate,
  });
  await restarter.init();
  const cycle = async () => {
    await restarter.runCycle(never);
    await restarter.waitForStarts();
  };
  return { restarter, log, cycle, counter };
}

const startsOf = async (world: World, name: string) =>
  (await world.control.vm(resourceGroup, name))?.startRequests;

/**
 * Runs cycles until `done` holds, a short pause between them (a failing test ends at the deadline, it
 * does not hang). `done` gets the time the cycle began, so a test can judge by the runtime's own clock.
 */
async function cyclesUntil(
  cycle: () => Promise<void>,
  done: (cycleBegan: number) => boolean | Promise<boolean>,
  what: string,
  deadlineMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const began = Date.now();
    await cycle();
    if (await done(began)) return;
    if (Date.now() > deadline) assert.fail(`not within ${deadlineMs} ms: ${what}`);
    await sleep(100);
  }
}

/** The VM's annotation as the runtime reads it (Resource Graph's latest per VM). */
async function latestAnnotation(w: World, name: string): Promise<string | undefined> {
  const config = w.config;
  const credential = createCredential(config, { pem: w.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const rows = await createArmCauseSource(config, credential).readAnnotations(
    [vmResourceId(config.subscriptionId, resourceGroup, name)],
    never,
  );
  return rows[0]?.annotationName;
}

/**
 * A cycle that began after this VM's unknownCauseAfter wait had run out (by the runtime's own record), or
 * the VM is no longer waiting at all (started: the assertions after say whether it should have been).
 */
const pastTheWait = (restarter: Restarter, name: string, unknownCauseAfterMs: number) => (began: number) => {
  const record = restarter.currentState.vms[vmKey(resourceGroup, name)];
  if (record?.lastStartAt !== undefined) return true;
  const since = record?.evictedSince;
  return since !== undefined && began > since + unknownCauseAfterMs;
};

describe("runtime: restart what Azure evicted, never what its owner stopped", () => {
  const worlds: World[] = [];
  after(() => Promise.all(worlds.map((world) => world.emulator.stop())));
  const world = async (...args: Parameters<typeof startWorld>) => {
    const w = await startWorld(...args);
    worlds.push(w);
    return w;
  };

  it("starts the evicted VM, leaves the owner's stop alone (logged once, 0 starts over many cycles), starts an unexplained one after unknownCauseAfterSeconds", async () => {
    const w = await world([
      spotVm("evicted"),
      spotVm("owner-stopped", { deallocatedBy: "owner" }),
      spotVm("mystery", { deallocatedBy: "unknown" }),
    ]);
    const { cycle, log, restarter } = await wire(w, { unknownCauseAfterMs: 2_500 });
    await cycle();
    assert.equal(await startsOf(w, "evicted"), 1);
    assert.equal(await startsOf(w, "mystery"), 0, "waits for a signal first");
    for (let i = 0; i < 6; i++) {
      await sleep(500);
      await cycle();
    }
    assert.equal(await startsOf(w, "owner-stopped"), 0);
    assert.equal(await startsOf(w, "mystery"), 1, "started once the wait is over");
    assert.equal(await startsOf(w, "evicted"), 1);
    const leftAlone = log.lines.filter((l) => l.event === "vm-left-alone");
    assert.equal(leftAlone.length, 1, "logged once");
    assert.equal(leftAlone[0]?.meta.vm, `${resourceGroup}/owner-stopped`);
    assert.ok(
      log.lines.some((l) => l.event === "cause-unknown-starting" && l.meta.vm === `${resourceGroup}/mystery`),
    );
    const record = restarter.currentState.vms[vmKey(resourceGroup, "owner-stopped")];
    assert.equal(record?.cause?.kind, "owner");
  });

  it("an owner's stop seen live (annotation late): waits, then leaves it; an eviction seen live is started once Azure says so", async () => {
    const w = await world(
      [spotVm("worker", { powerState: "running" }), spotVm("spot", { powerState: "running" })],
      { annotationDelaySeconds: 2 },
    );
    const { cycle, log } = await wire(w);
    await cycle(); // both seen running
    await w.control.deallocate(resourceGroup, "worker", "alice@contoso.com");
    await w.control.evict(resourceGroup, "spot");
    await cycle(); // nothing visible yet (annotationDelaySeconds = 2): the owner's stop is unexplained, waits
    assert.equal(await startsOf(w, "worker"), 0);
    await sleep(2_200);
    for (let i = 0; i < 3; i++) await cycle();
    assert.equal(await startsOf(w, "worker"), 0, "never started");
    assert.equal(await startsOf(w, "spot"), 1);
    const leftAlone = log.lines.find((l) => l.event === "vm-left-alone");
    assert.equal(leftAlone?.meta.vm, `${resourceGroup}/worker`);
  });

  it("a late annotation: the cause is known no sooner than Azure shows it, the start leaves in the cycle that learns it, knownAfter recorded", async () => {
    const delaySeconds = 2;
    const w = await world([spotVm("late", { powerState: "running" })], {
      annotationDelaySeconds: delaySeconds,
    });
    const { cycle, log, restarter } = await wire(w);
    await cycle(); // seen running
    const evictedAt = Date.now();
    await w.control.evict(resourceGroup, "late");
    const known = () => log.lines.find((l) => l.event === "cause-known");
    const deadline = Date.now() + 30_000;
    for (;;) {
      await cycle();
      if (known()) break;
      assert.equal(await startsOf(w, "late"), 0, "not started before Azure says why");
      assert.ok(Date.now() < deadline, "the cause never became known");
      await sleep(200);
    }
    // Started by the cycle that learnt it (cycle() waits for its starts).
    assert.equal(await startsOf(w, "late"), 1);
    const record = restarter.currentState.vms[vmKey(resourceGroup, "late")];
    const knownAfterMs = record?.cause?.knownAfterMs ?? Number.NaN;
    assert.equal(known()?.meta.knownAfterSeconds, Math.round(knownAfterMs / 100) / 10);
    // Counted from the runtime's first sighting of the deallocation (logged no sooner than it was made) to
    // the cycle that learnt why, which cannot come before the annotation shows, `delaySeconds` after the eviction.
    const firstSeenLogged = log.lines.find((l) => l.event === "deallocated-vm-seen")?.loggedAt ?? Number.NaN;
    assert.ok(
      knownAfterMs >= evictedAt + delaySeconds * 1000 - firstSeenLogged,
      `known ${knownAfterMs} ms after first seen; first seen logged ${firstSeenLogged - evictedAt} ms after the eviction`,
    );
  });

  it("each signal at its own pace: Resource Graph slow (60 s), the Activity Log quick: the owner's stop is recognised from the Activity Log and never started; the eviction waits for Resource Graph", async () => {
    const w = await world(
      [spotVm("worker", { powerState: "running" }), spotVm("spot", { powerState: "running" })],
      { annotationDelaySeconds: 60, timing: { activityLogDelaySeconds: 0.3 } },
    );
    const { cycle, log } = await wire(w);
    await cycle(); // both seen running
    await w.control.deallocate(resourceGroup, "worker", "alice@contoso.com");
    await w.control.evict(resourceGroup, "spot");
    const deadline = Date.now() + 20_000;
    while (!log.lines.some((l) => l.event === "vm-left-alone")) {
      assert.ok(Date.now() < deadline, "the Activity Log never told the owner's stop");
      await sleep(200);
      await cycle();
    }
    for (let i = 0; i < 3; i++) await cycle();
    assert.equal(await startsOf(w, "worker"), 0, "the owner's stop is never started");
    assert.equal(await startsOf(w, "spot"), 0, "the eviction waits: only Resource Graph can say evicted");
    const known = log.lines.filter((l) => l.event === "cause-known");
    assert.deepEqual(
      known.map((l) => [l.meta.vm, l.meta.kind, l.meta.source]),
      [[`${resourceGroup}/worker`, "owner", "activity-log"]],
    );
  });

  it("an owner's stop, then between two cycles the owner starts it and Azure evicts it: the eviction is started", async () => {
    const w = await world([spotVm("worker", { powerState: "running" })], { annotationDelaySeconds: 0.2 });
    const { cycle, log } = await wire(w);
    await cycle(); // seen running
    await w.control.deallocate(resourceGroup, "worker", "alice@contoso.com");
    await sleep(400);
    await cycle();
    await cycle();
    assert.equal(await startsOf(w, "worker"), 0, "the owner's stop is left alone");
    assert.equal(log.lines.filter((l) => l.event === "vm-left-alone").length, 1);
    // The owner starts it (out of our sight) and Azure evicts it before the next cycle: the runtime
    // sees the same `deallocated`, and only the newer VirtualMachinePreempted annotation tells.
    await w.control.setVm(resourceGroup, "worker", { powerState: "running" });
    await w.control.evict(resourceGroup, "worker");
    await sleep(400);
    await cycle();
    assert.equal(await startsOf(w, "worker"), 1, "started once Resource Health says evicted");
  });

  it("the owner deallocating during our start (OperationPreempted) is not retried against them", async () => {
    const w = await world([spotVm("contested")], { startSeconds: 2 });
    const { restarter, log } = await wire(w);
    await restarter.runCycle(never); // starts it (evicted)
    // The owner acts while our start is in flight: once Azure has accepted it, not after a guessed delay.
    const deadline = Date.now() + 30_000;
    while ((await w.control.vm(resourceGroup, "contested"))?.powerState !== "starting") {
      if (Date.now() > deadline) assert.fail("the start was never accepted");
      await sleep(20);
    }
    await w.control.deallocate(resourceGroup, "contested");
    await restarter.waitForStarts();
    assert.ok(log.lines.some((l) => l.event === "start-conflict" && l.meta.code === "OperationPreempted"));
    for (let i = 0; i < 3; i++) {
      await restarter.runCycle(never);
      await restarter.waitForStarts();
    }
    assert.equal(await startsOf(w, "contested"), 1, "the one start that was preempted, no retry");
  });

  it("Resource Graph 429 or 503: warned once, the Activity Log still recognises an owner's stop; an eviction falls back to the bounded wait", async () => {
    const w = await world([spotVm("evicted"), spotVm("owner-stopped", { deallocatedBy: "owner" })]);
    for (const status of [429, 503]) {
      await w.control.clearFaults();
      await w.control.addFaults({ pathPattern: "Microsoft\\.ResourceGraph", status, retryAfterSeconds: 1 });
      const { cycle, log } = await wire(w, { unknownCauseAfterMs: 1_500 });
      await cycle();
      await cycle();
      assert.equal(log.lines.filter((l) => l.event === "cause-signal-failed").length, 1, `${status}: once`);
      assert.equal(await startsOf(w, "owner-stopped"), 0, `${status}: the Activity Log said owner`);
    }
    await sleep(1_600);
    const { cycle } = await wire(w, { unknownCauseAfterMs: 1_500 });
    await cycle();
    assert.equal(await startsOf(w, "evicted"), 1, "started after the bounded wait, signal or not");
    assert.equal(await startsOf(w, "owner-stopped"), 0);
  });

  it("Resource Graph 403 AccessDenied: permission-missing once naming the Resource Health action; the Activity Log still recognises an owner's stop; an eviction falls back to the bounded wait", async () => {
    const w = await world([spotVm("evicted"), spotVm("owner-stopped", { deallocatedBy: "owner" })]);
    // Resource Graph refuses a caller with 403 and error code AccessDenied (its body: {"error": {"code":
    // "AccessDenied", "message": "Please provide below info when asking for support: …"}}), as reported in
    // Azure/aztfexport#264 and #410 (POST https://management.azure.com/providers/Microsoft.ResourceGraph/resources).
    await w.control.addFaults({
      pathPattern: "Microsoft\\.ResourceGraph",
      status: 403,
      errorCode: "AccessDenied",
      errorMessage:
        "Please provide below info when asking for support: timestamp = 2026-11-30T15:40:00.0000000Z, correlationId = 6f0c3b1e-6d1c-4c55-9d4f-2c3c3c9b1a77.",
    });
    const { cycle, log } = await wire(w, { unknownCauseAfterMs: 1_500 });
    await cycle();
    await cycle();
    assert.equal(await startsOf(w, "owner-stopped"), 0, "the Activity Log said owner");
    assert.equal(await startsOf(w, "evicted"), 0, "unexplained: waits");
    await sleep(1_600);
    await cycle();
    assert.equal(await startsOf(w, "evicted"), 1, "started after the bounded wait");
    assert.equal(await startsOf(w, "owner-stopped"), 0);
    const missing = log.lines.filter((l) => l.event === "permission-missing");
    assert.deepEqual(
      missing.map((l) => [l.meta.signal, l.meta.action]),
      [["resource-graph", "Microsoft.ResourceHealth/availabilityStatuses/read"]],
      "once, not per cycle",
    );
  });

  it("without the signal's permissions: warns once naming the action, degrades to the bounded wait (never down silently)", async () => {
    const w = await world([spotVm("evicted")], {
      role: "least-privilege",
    });
    // The test role minus the eviction-cause actions.
    await w.control.addRoleDefinition({
      id: `/subscriptions/${w.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/4f1d7ac3-5d0e-4c7e-9a59-1c1b6d0a8e21`,
      actions: LEAST_PRIVILEGE_ACTIONS.filter(
        (a) => !a.startsWith("Microsoft.ResourceHealth/") && !a.startsWith("Microsoft.Insights/"),
      ),
      assignableScopes: [`/subscriptions/${w.emulator.subscriptionId}/resourceGroups/${resourceGroup}`],
    });
    const { cycle, log } = await wire(w, { unknownCauseAfterMs: 1_000 });
    await cycle();
    assert.equal(await startsOf(w, "evicted"), 0, "hidden annotation: unknown, waits");
    await sleep(1_100);
    await cycle();
    await cycle();
    assert.equal(await startsOf(w, "evicted"), 1);
    const missing = log.lines.filter((l) => l.event === "permission-missing");
    assert.deepEqual(
      missing.map((l) => l.meta.action),
      ["Microsoft.Insights/eventtypes/values/read"],
      "the Activity Log's 403 names its action; Resource Graph hides rows instead of refusing",
    );
  });

  // Issue 24 item 3. Resource Graph keeps only the latest annotation per VM ("the latest snapshot",
  // https://learn.microsoft.com/azure/virtual-machines/resource-graph-availability), and a resize is
  // annotated too (VirtualMachineSizeChanged, Customer Initiated:
  // https://learn.microsoft.com/azure/service-health/resource-health-vm-annotation). An owner who
  // deallocates and then resizes before the runtime looks leaves no VirtualMachineDeallocationInitiated to
  // read; the Activity Log keeps the deallocate/action with its caller for 90 days
  // (https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log: every write operation, PUT,
  // POST, DELETE, on a resource), so the owner is recognised there.
  it("an owner's deallocate-then-resize (only VirtualMachineSizeChanged in Resource Graph) is recognised from the Activity Log and never started", async () => {
    const unknownCauseAfterMs = 1_500;
    const w = await world([spotVm("worker", { powerState: "running" })]);
    const { cycle, log, restarter } = await wire(w, { unknownCauseAfterMs });
    await cycle(); // seen running
    await w.control.deallocate(resourceGroup, "worker", "alice@contoso.com");
    const resized = await armFetch(
      w,
      "PATCH",
      `/subscriptions/${w.emulator.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/worker`,
      { properties: { hardwareProfile: { vmSize: "Standard_B2ms" } } },
    );
    assert.equal(resized.status, 200, JSON.stringify(resized.body));
    const latest = await latestAnnotation(w, "worker");
    assert.equal(
      latest,
      "VirtualMachineSizeChanged",
      "the deallocation's annotation is no longer the latest",
    );
    await cyclesUntil(cycle, pastTheWait(restarter, "worker", unknownCauseAfterMs), "past unknownCauseAfter");
    assert.equal(await startsOf(w, "worker"), 0, "never started");
    const leftAlone = log.lines.filter((l) => l.event === "vm-left-alone");
    assert.deepEqual(
      leftAlone.map((l) => [l.meta.vm, l.meta.source]),
      [[`${resourceGroup}/worker`, "activity-log"]],
      "recognised once, from the Activity Log",
    );
  });

  // Issue 24 item 7: the owner's annotation alone decides. With the Activity Log refused (a role without
  // Microsoft.Insights/eventtypes/values/read: ARM answers 403), only VirtualMachineDeallocationInitiated
  // says "the owner": a wrong comparison of the annotation's name would start the VM once the wait is over.
  it("the Activity Log refused: a VM whose latest annotation is VirtualMachineDeallocationInitiated is never started", async () => {
    const unknownCauseAfterMs = 1_000;
    const w = await world([spotVm("owner-stopped", { deallocatedBy: "owner" }), spotVm("evicted")], {
      role: "least-privilege",
    });
    await w.control.addRoleDefinition({
      id: `/subscriptions/${w.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/4f1d7ac3-5d0e-4c7e-9a59-1c1b6d0a8e21`,
      actions: LEAST_PRIVILEGE_ACTIONS.filter((a) => !a.startsWith("Microsoft.Insights/")),
      assignableScopes: [`/subscriptions/${w.emulator.subscriptionId}/resourceGroups/${resourceGroup}`],
    });
    const { cycle, log, restarter } = await wire(w, { unknownCauseAfterMs });
    await cyclesUntil(
      cycle,
      pastTheWait(restarter, "owner-stopped", unknownCauseAfterMs),
      "past unknownCauseAfter",
    );
    assert.equal(await startsOf(w, "owner-stopped"), 0, "never started");
    assert.equal(await startsOf(w, "evicted"), 1, "the eviction beside it is started (the query works)");
    // The Activity Log really is refused to this role (it is asked only for what Resource Health leaves
    // unexplained, so the cycles above need not have asked it).
    const config = w.config;
    const credential = createCredential(config, { pem: w.principal.pem } as Parameters<
      typeof createCredential
    >[1]);
    await assert.rejects(
      createArmCauseSource(config, credential).readActivity(resourceGroup, Date.now() - 60_000, never),
      (error: { statusCode?: number }) => error.statusCode === 403,
    );
    assert.deepEqual(
      log.lines.filter((l) => l.event === "vm-left-alone").map((l) => [l.meta.vm, l.meta.source]),
      [[`${resourceGroup}/owner-stopped`, "resource-health"]],
    );
  });

  it("a paused VM is left alone in both modes; restartWhen deallocated starts an owner's stop like the original script", async () => {
    const w = await world([spotVm("owner-stopped", { deallocatedBy: "owner" }), spotVm("evicted")]);
    await addPause(w.stateDir, { name: "evicted", at: Date.now(), until: Date.now() + 60_000 }, Date.now());
    const { cycle, log } = await wire(w, { restartWhen: "deallocated" });
    await cycle();
    assert.equal(await startsOf(w, "owner-stopped"), 1);
    assert.equal(await startsOf(w, "evicted"), 0, "paused");
    assert.ok(log.lines.some((l) => l.event === "vm-left-alone" && l.meta.reason === "paused"));
  });

  // Instance views as Azure sends them: a hibernated VM is `PowerState/deallocated` plus
  // `HibernationState/Hibernated` (https://learn.microsoft.com/azure/virtual-machines/hibernate-resume,
  // "View state of hibernated VM"); a VM in a control-plane operation shows `ProvisioningState/updating`
  // (…/creating, …/deleting) (https://learn.microsoft.com/azure/virtual-machines/states-billing).
  for (const restartWhen of ["evicted", "deallocated"] as const) {
    it(`restartWhen ${restartWhen}: a hibernated VM is never started, one in an operation only once it ends; each logged once`, async () => {
      const w = await world([
        spotVm("sleeper", { hibernated: true }),
        spotVm("busy", { provisioningState: "Updating" }),
        spotVm("going", { provisioningState: "Deleting" }),
        spotVm("evicted"),
      ]);
      const { cycle, log } = await wire(w, { restartWhen, unknownCauseAfterMs: 1_000 });
      for (let i = 0; i < 4; i++) {
        await cycle();
        await sleep(400);
      }
      assert.equal(await startsOf(w, "evicted"), 1);
      assert.equal(await startsOf(w, "sleeper"), 0, "hibernated by a person");
      assert.equal(await startsOf(w, "busy"), 0, "an operation is running on it");
      assert.equal(await startsOf(w, "going"), 0, "being deleted");
      const sleeper = log.lines.filter(
        (l) => l.event === "vm-left-alone" && l.meta.vm === `${resourceGroup}/sleeper`,
      );
      assert.deepEqual(
        sleeper.map((l) => l.meta.reason),
        ["hibernated"],
        "logged once",
      );
      const busy = log.lines.filter((l) => l.event === "provisioning-busy");
      assert.deepEqual(busy.map((l) => [l.meta.vm, l.meta.state]).sort(), [
        [`${resourceGroup}/busy`, "updating"],
        [`${resourceGroup}/going`, "deleting"],
      ]);
      // The operation ends (ProvisioningState/succeeded): the next cycle starts it.
      await w.control.setVm(resourceGroup, "busy", { powerState: "deallocated" });
      await cycle();
      assert.equal(await startsOf(w, "busy"), 1);
      assert.equal(await startsOf(w, "sleeper"), 0);
    });
  }
});

describe("the bundle: pause, resume and status with the last cause", () => {
  let bundle: string;
  let w: World;
  before(async () => {
    bundle = await buildRuntimeBundle();
    w = await startWorld([
      spotVm("evicted"),
      spotVm("owner-stopped", { deallocatedBy: "owner" }),
      spotVm("paused-one"),
    ]);
  });
  after(() => w.emulator.stop());
  const cli = (...args: string[]) =>
    runCli(bundle, [...args, "--config", w.configPath], { caCertFile: w.emulator.caCertFile });

  it("once starts the evicted VM only; status --json names each VM's last cause and pause", async () => {
    const paused = await cli("pause", "--vm", "paused-one", "--for", "2h");
    assert.equal(paused.code, 0, paused.stderr);
    const once = await cli("once", "--json");
    assert.equal(once.code, 0, once.stderr);
    assert.equal(await startsOf(w, "evicted"), 1);
    assert.equal(await startsOf(w, "owner-stopped"), 0);
    assert.equal(await startsOf(w, "paused-one"), 0);
    assert.match(once.stderr, /vm-left-alone .*owner-stopped/);
    const status = await cli("status", "--json");
    assert.equal(status.code, 0, status.stderr);
    const rows = (
      JSON.parse(status.stdout) as {
        vms: Array<{
          name: string;
          lastCause: { kind: string; source: string; knownAfterSeconds: number | null } | null;
          pausedUntil: string | null;
        }>;
      }
    ).vms;
    const byName = new Map(rows.map((row) => [row.name, row]));
    assert.equal(byName.get("evicted")?.lastCause?.kind, "evicted");
    assert.equal(byName.get("evicted")?.lastCause?.source, "resource-health");
    // Seeded with its annotation already there: known in the cycle that first saw it deallocated.
    assert.equal(byName.get("evicted")?.lastCause?.knownAfterSeconds, 0);
    assert.equal(byName.get("owner-stopped")?.lastCause?.kind, "owner");
    const until = Date.parse(byName.get("paused-one")?.pausedUntil ?? "");
    assert.ok(until > Date.now() + 119 * 60_000 && until <= Date.now() + 120 * 60_000);
    // The default table puts a deallocated VM's cause or pause beside its state (cli/statusTable.ts);
    // --wide shows both columns.
    const table = await cli("status");
    assert.match(table.stdout, /^owner-stopped\s+deallocated, owner\b/m);
    assert.match(table.stdout, /^paused-one\s+deallocated, paused\b/m);
    const wide = await cli("status", "--wide");
    assert.match(wide.stdout, /LAST CAUSE\s+PAUSED UNTIL/);
  });

  it("resume: the next cycle starts the evicted VM it had left alone", async () => {
    const resumed = await cli("resume", "--vm", "paused-one");
    assert.equal(resumed.code, 0, resumed.stderr);
    const once = await cli("once");
    assert.equal(once.code, 0, once.stderr);
    assert.equal(await startsOf(w, "paused-one"), 1);
    assert.equal(await startsOf(w, "owner-stopped"), 0);
    const bad = await cli("pause", "--vm", "paused-one", "--for", "soon");
    assert.equal(bad.code, 2);
  });
});

// The cause signals' clients read Azure's budgets too (budgets.ts): ARM's
// `x-ms-ratelimit-remaining-subscription-reads` on the Activity Log, and Resource Graph's per-caller quota
// (`x-ms-user-quota-remaining`, `x-ms-user-quota-resets-after`: "Guidance for throttled requests in Azure
// Resource Graph", https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests).
// When that quota is nearly spent the gate holds its query back and starts nothing it cannot explain.
describe("runtime: the cause gate and Resource Graph's quota", () => {
  let w: World;
  before(async () => {
    // An 8-second quota window (15 queries, as documented) so the test can spend it and see it reset.
    w = await startWorld(
      [spotVm("quiet", { deallocatedBy: "unknown" }), spotVm("owner-stopped", { deallocatedBy: "owner" })],
      { seed: { rateLimits: { resourceGraph: { quota: 15, windowSeconds: 8, enforce: true } } } },
    );
  });
  after(() => w.emulator.stop());

  it("reads the quota and ARM's read budget off the cause clients; holds the query back when nearly spent, then asks again once it resets", async () => {
    const config = { ...w.config, armMaxRetries: 0 };
    const credential = createCredential(config, { pem: w.principal.pem } as Parameters<
      typeof createCredential
    >[1]);
    const objectId = await verifyAuthentication(credential, config);
    const budget = new BudgetTracker();
    const source = createArmCauseSource(config, credential, { policies: [budget.policy] });
    // Other work of the same principal spends 12 of its 15 queries in this window.
    for (let i = 0; i < 12; i++)
      await source.readAnnotations([`/subscriptions/${config.subscriptionId}/x`], never);
    const quota = budget.resourceGraphQuota();
    assert.equal(quota?.policy, RESOURCE_GRAPH_QUOTA);
    assert.equal(quota?.remaining, 3);
    assert.equal(quota?.full, 15);
    assert.ok((quota?.resetsAt ?? 0) > Date.now(), "known until the window resets");
    await source.readActivity(resourceGroup, Date.now() - 60_000, never);
    assert.ok(
      budget.current().some((r) => r.policy === "subscription-reads"),
      "the Activity Log's answer carries ARM's read budget",
    );
    // Neither is a budget the fleet's starts or reads slow down for.
    assert.equal(budget.startSlowdown(), 1);
    assert.equal(budget.readsLow(), false);

    const log = recorder();
    const causeGate = new CauseGate({
      source,
      resourceGraphQuota: () => budget.resourceGraphQuota(),
      readPauses: () => readPauses(w.stateDir),
      // Nothing explains `quiet`: without the hold-back it would be started at once.
      settings: {
        restartWhen: "evicted",
        unknownCauseAfterMs: 0,
        subscriptionId: config.subscriptionId,
        self: { clientId: config.clientId, ...(objectId ? { objectId } : {}) },
      },
      now: Date.now,
    });
    const restarter = new Restarter({
      api: createArmVmApi(config, credential, { pollIntervalMs: 100 }),
      store: createFileStateStore(w.stateDir),
      log,
      settings: {
        resourceGroups: config.resourceGroups,
        tag: config.tag,
        maxConcurrentStarts: 10,
        backoff: { initialMs: 60_000, maxMs: 1_800_000 },
        startTimeoutMs: 20_000,
        intervalMs: 500,
      },
      causeGate,
    });
    await restarter.init();
    const graphQueries = async () =>
      (await w.control.requests()).filter((r) => /microsoft\.resourcegraph/i.test(r.path)).length;

    await w.control.clearRequests();
    await restarter.runCycle(never);
    await restarter.waitForStarts();
    assert.equal(await graphQueries(), 0, "the query is held back");
    assert.equal(await startsOf(w, "quiet"), 0, "unexplained and not asked: it waits, not started");
    assert.equal(await startsOf(w, "owner-stopped"), 0, "the Activity Log still says the owner stopped it");
    const held = log.lines.filter((l) => l.event === "cause-signal-failed");
    assert.equal(held.length, 1);
    assert.equal(held[0]?.meta.code, "quota-low");

    // Once the window has reset the reading is stale: the next cycle asks again.
    await sleep(Math.max(0, (quota?.resetsAt ?? Date.now()) - Date.now()) + 300);
    assert.equal(budget.resourceGraphQuota(), undefined);
    await restarter.runCycle(never);
    await restarter.waitForStarts();
    assert.equal(await graphQueries(), 1);
    assert.ok(log.lines.some((l) => l.event === "cause-signal-back"));
    assert.equal(await startsOf(w, "quiet"), 1, "asked, still unexplained past unknownCauseAfter: started");
    assert.equal(await startsOf(w, "owner-stopped"), 0);
    assert.equal(budget.resourceGraphQuota()?.remaining, 14, "a fresh window");
  });
});

// A region reclaiming capacity evicts many VMs at once. Resource Graph answers 100 rows unless the
// request sets `$top` (up to 1000) and returns `$skipToken` for the rest
// (https://learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data, "Paging results";
// the emulator pages as Azure does, test/emulator/resource-graph-paging.test.ts). Reading only the first
// page, the VMs past the 100th would wait unknownCauseAfterSeconds (60 s in wire()) and start "unknown".
describe("runtime: 110 VMs evicted at once", () => {
  let w: World;
  before(async () => {
    w = await startWorld(Array.from({ length: 110 }, (_, i) => spotVm(`spot-${String(i).padStart(3, "0")}`)));
  });
  after(() => w.emulator.stop());

  it("one cycle explains and starts all 110 (every annotation read, every page followed)", async () => {
    const { cycle, log } = await wire(w);
    await w.control.clearRequests();
    await cycle();
    const vms = await w.control.vms();
    assert.equal(vms.length, 110);
    assert.deepEqual(
      vms.filter((vm) => vm.startRequests !== 1).map((vm) => vm.name),
      [],
      "every VM started exactly once",
    );
    assert.equal(
      log.lines.filter((l) => l.event === "cause-unknown-starting").length,
      0,
      "none started as unknown",
    );
    const graph = (await w.control.requests()).filter((r) => /microsoft\.resourcegraph/i.test(r.path));
    assert.ok(graph.length >= 1 && graph.every((r) => r.status === 200), "Resource Graph read without error");
  });
});
