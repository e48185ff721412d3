// Fallback sizes (opt-in) end to end, in-process, against the emulator over HTTPS with the real
// @azure/arm-compute client: a VM whose size has no capacity is resized (while deallocated) to the first
// configured size Azure offers and allows, after fallbackAfterSeconds, and started; at its next eviction it
// goes back to its own size first. A role without the write action stops it with an error naming that
// action; without fallbacks nothing is ever resized (and the program's role has no write action).
import "reflect-metadata";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi } from "../../runtime/src/azure/azure";
import { LEAST_PRIVILEGE_ACTIONS, leastPrivilegeActions } from "../../runtime/src/azure/roleActions";
import { collectStatus, type StatusRow } from "../../runtime/src/cli/commands";
import { formatStatusTable } from "../../runtime/src/cli/statusTable";
import { PermissionError } from "../../runtime/src/core/errors";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { vmKey } from "../../runtime/src/core/vm";
import { Restarter } from "../../runtime/src/loop/restarter";
import { retryPolicyFor } from "../../runtime/src/loop/schedule";
import { createEventBus } from "../../runtime/src/signals/events";
import { createFileStateStore } from "../../runtime/src/state/state";
import { resourceGroup, spotVm, startWorld, type World } from "./harness";

const VM = "build-box-spot";
// Standard_D2s_v5 has no local temp disk; so has Standard_D2as_v5. Standard_D2ds_v5 has one (75 GiB), so
// Azure would refuse it (resize-vm.md "Limitations"): listed first, it must be passed over.
const ORIGINAL = "Standard_D2s_v5";
const WITH_TEMP_DISK = "Standard_D2ds_v5";
const FALLBACK = "Standard_D2as_v5";
const FALLBACK_AFTER_MS = 1_500;
const WRITE = "Microsoft.Compute/virtualMachines/write";

const timing = {
  startSeconds: 0.2,
  evictionDelaySeconds: 0,
  annotationDelaySeconds: 0,
  retryAfterSeconds: 0,
};

function wire(world: World, fallbackSizes: Record<string, string[]>) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const api = createArmVmApi(config, credential, { pollIntervalMs: 100 });
  const events: RestarterEvent[] = [];
  const bus = createEventBus();
  bus.subscribe((event) => events.push(event));
  const restarter = new Restarter({
    api,
    store: createFileStateStore(world.stateDir),
    events: bus,
    settings: {
      resourceGroups: config.resourceGroups,
      tag: config.tag,
      maxConcurrentStarts: 5,
      backoff: { initialMs: 60_000, maxMs: 1_800_000 },
      // Capacity retried every 300 ms here (production: 60 s), so that fallbackAfter passes in a few tries.
      retry: retryPolicyFor(
        { initialMs: 60_000, maxMs: 1_800_000 },
        { capacityIntervalMs: 300, capacityJitterMs: 0, minSpacingMs: 300 },
      ),
      startTimeoutMs: 20_000,
      intervalMs: 300,
      fallbackSizes,
      fallbackAfterMs: FALLBACK_AFTER_MS,
    },
  });
  /** What `status` reports about the VM (its JSON row, its --wide and default tables), read through the same client. */
  const status = async (): Promise<{ row: StatusRow | undefined; table: string; narrow: string }> => {
    const report = await collectStatus(
      api,
      createFileStateStore(world.stateDir),
      { resourceGroups: config.resourceGroups, tag: config.tag },
      new AbortController().signal,
    );
    return {
      row: report.vms.find((vm) => vm.name === VM),
      table: formatStatusTable(report, { wide: true }),
      narrow: formatStatusTable(report),
    };
  };
  return { restarter, events, status };
}

/** Runs cycles (each waiting for its starts) until `done` or the deadline. */
async function cycleUntil(restarter: Restarter, done: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  const signal = new AbortController().signal;
  while (Date.now() < deadline) {
    await restarter.runCycle(signal);
    await restarter.waitForStarts();
    if (restarter.fatalError || (await done())) return;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  assert.fail("timed out");
}

const ofType = <T extends RestarterEvent["type"]>(events: RestarterEvent[], type: T) =>
  events.filter((event): event is Extract<RestarterEvent, { type: T }> => event.type === type);

describe("fallback sizes: capacity missing for the VM's own size", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm(VM, { vmSize: ORIGINAL })], { seed: { timing } });
  });
  after(() => world.emulator.stop());

  it("resizes it after fallbackAfterSeconds to the first allowed, offered fallback, starts it, and restores its size at the next eviction", async () => {
    // AllocationFailed only while the VM has its own size (emulator fault rule `vmSize`).
    await world.control.addFaults({ vm: VM, vmSize: ORIGINAL, startFailsWith: "AllocationFailed" });
    const { restarter, events, status } = wire(world, {
      [`${resourceGroup}/${VM}`]: [WITH_TEMP_DISK, "Standard_Z9_v9", FALLBACK],
    });
    await restarter.init();
    const before = await status();
    assert.deepEqual([before.row?.vmSize, before.row?.originalVmSize], [ORIGINAL, null]);
    const running = async () => (await world.control.vm(resourceGroup, VM))?.powerState === "running";
    await cycleUntil(restarter, running);

    const vm = await world.control.vm(resourceGroup, VM);
    assert.equal(vm?.vmSize, FALLBACK);
    const history = vm?.history ?? [];
    const failed = history.filter((entry) => entry.event === "start-failed");
    const resized = history.filter((entry) => entry.event === "resized");
    assert.ok(failed.length >= 2, "retried at its own size first");
    assert.deepEqual(
      resized.map((entry) => [entry.from, entry.vmSize]),
      [[ORIGINAL, FALLBACK]],
    );
    // Not before fallbackAfterSeconds of capacity failures (from the first failed start's request).
    const firstAccepted = Date.parse(history.find((entry) => entry.event === "start-accepted")?.at ?? "");
    const resizedAt = Date.parse(resized[0]?.at ?? "");
    assert.ok(
      resizedAt - firstAccepted >= FALLBACK_AFTER_MS - 50,
      `resized ${resizedAt - firstAccepted} ms after`,
    );
    // The resize came before the start that succeeded, and no start was tried in between at the new size.
    assert.deepEqual(
      history.slice(history.indexOf(resized[0] as (typeof history)[number])).map((entry) => entry.event),
      ["resized", "start-accepted", "start-succeeded"],
    );

    const fallback = ofType(events, "vm-fallback-size");
    assert.equal(fallback.length, 1);
    assert.equal(fallback[0]?.fromSize, ORIGINAL);
    assert.equal(fallback[0]?.toSize, FALLBACK);
    assert.equal(fallback[0]?.originalSize, ORIGINAL);
    const skipped = ofType(events, "vm-resize-skipped");
    assert.deepEqual(skipped, [], "a fallback was found: nothing skipped");
    assert.ok(ofType(events, "vm-restarted").length === 1);

    // The state file remembers the original size (a crash now loses nothing).
    const saved = JSON.parse(readFileSync(join(world.stateDir, "state.json"), "utf8"));
    assert.deepEqual(
      { ...saved.vms[vmKey(resourceGroup, VM)].size, at: 0, outage: 0 },
      { originalSize: ORIGINAL, size: FALLBACK, phase: "resized", at: 0, outage: 0 },
    );

    // `status` shows it running in the fallback size, with its own size beside it (JSON and table).
    const inFallback = await status();
    assert.equal(inFallback.row?.powerState, "running");
    assert.deepEqual([inFallback.row?.vmSize, inFallback.row?.originalVmSize], [FALLBACK, ORIGINAL]);
    const [header, line] = inFallback.table.split("\n");
    // (This status is given no market source: its last two columns, the market figures, are "-".)
    assert.match(header ?? "", /PAUSED UNTIL {2}SIZE +EVICTION RATE {2}SPOT \$\/H$/);
    assert.match(
      line ?? "",
      new RegExp(`^${resourceGroup}/${VM} +running .* ${FALLBACK} \\(own: ${ORIGINAL}\\) +- +-$`),
    );
    // The default table marks the fallback size and says what the mark means.
    assert.match(inFallback.narrow, new RegExp(`^${VM} +running .* ${FALLBACK}\\*$`, "m"));
    assert.match(inFallback.narrow, /^\* in a fallback size until its next eviction/m);

    // Capacity is back for its own size; at its next eviction it goes back to it first.
    await world.control.clearFaults();
    await world.control.evict(resourceGroup, VM);
    // Evicted, it waits in the fallback size (deallocated) until the next cycle restores its own size.
    const evictedAt = Date.now();
    while ((await world.control.vm(resourceGroup, VM))?.powerState !== "deallocated") {
      assert.ok(Date.now() - evictedAt < 10_000, "the eviction never completed");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const waiting = await status();
    assert.equal(waiting.row?.powerState, "deallocated");
    assert.deepEqual([waiting.row?.vmSize, waiting.row?.originalVmSize], [FALLBACK, ORIGINAL]);
    await cycleUntil(restarter, async () => {
      const now = await world.control.vm(resourceGroup, VM);
      return now?.powerState === "running" && now.vmSize === ORIGINAL;
    });
    const after = await world.control.vm(resourceGroup, VM);
    const tail = (after?.history ?? []).slice((after?.history ?? []).findIndex((e) => e.event === "evicted"));
    assert.deepEqual(
      tail.map((entry) =>
        entry.event === "resized" ? `resized ${entry.from} -> ${entry.vmSize}` : entry.event,
      ),
      ["evicted", `resized ${FALLBACK} -> ${ORIGINAL}`, "start-accepted", "start-succeeded"],
    );
    const restored = ofType(events, "vm-size-restored");
    assert.deepEqual(
      restored.map((event) => [event.fromSize, event.toSize]),
      [[FALLBACK, ORIGINAL]],
    );
    const savedAfter = JSON.parse(readFileSync(join(world.stateDir, "state.json"), "utf8"));
    assert.equal(
      savedAfter.vms[vmKey(resourceGroup, VM)].size,
      undefined,
      "back at its size: nothing to remember",
    );
    const restoredStatus = await status();
    assert.deepEqual([restoredStatus.row?.vmSize, restoredStatus.row?.originalVmSize], [ORIGINAL, null]);
    assert.match(restoredStatus.table.split("\n")[1] ?? "", new RegExp(` ${ORIGINAL} +- +-$`));
  });
});

describe("fallback sizes: a role without Microsoft.Compute/virtualMachines/write", () => {
  let world: World;
  before(async () => {
    // The program's role with fallbacks, minus the write action.
    world = await startWorld([spotVm(VM, { vmSize: ORIGINAL })], {
      seed: { timing },
      role: "least-privilege",
      actions: leastPrivilegeActions({ fallbackSizes: true }).filter((action) => action !== WRITE),
    });
  });
  after(() => world.emulator.stop());

  it("stops with a permission error naming the write action, and the VM keeps its size", async () => {
    await world.control.addFaults({ vm: VM, vmSize: ORIGINAL, startFailsWith: "AllocationFailed" });
    const { restarter, events } = wire(world, { [`${resourceGroup}/${VM}`]: [FALLBACK] });
    await restarter.init();
    await cycleUntil(restarter, async () => false);
    const fatal = restarter.fatalError;
    assert.ok(fatal instanceof PermissionError, String(fatal));
    assert.equal(fatal.permission, WRITE);
    assert.match(
      fatal.message,
      /lacks the permission Microsoft\.Compute\/virtualMachines\/write needed to resize personal-network\/build-box-spot \(fallbackSizes\)/,
    );
    const missing = ofType(events, "permission-missing");
    assert.deepEqual(
      missing.map((event) => [event.action, event.vm]),
      [[WRITE, VM]],
    );
    assert.equal((await world.control.vm(resourceGroup, VM))?.vmSize, ORIGINAL);
  });
});

describe("fallback sizes: not configured", () => {
  let world: World;
  before(async () => {
    // The program's least-privilege role without fallbacks: no write, no size listing.
    world = await startWorld([spotVm(VM, { vmSize: ORIGINAL })], {
      seed: { timing },
      role: "least-privilege",
    });
  });
  after(() => world.emulator.stop());

  it("never resizes (no size listing, no PATCH), however long capacity is missing, and the role has no write", async () => {
    assert.ok(!LEAST_PRIVILEGE_ACTIONS.includes(WRITE));
    await world.control.addFaults({ vm: VM, vmSize: ORIGINAL, startFailsWith: "AllocationFailed" });
    await world.control.clearRequests();
    const { restarter, events } = wire(world, {});
    await restarter.init();
    const until = Date.now() + FALLBACK_AFTER_MS * 2;
    await cycleUntil(restarter, async () => Date.now() > until);
    assert.equal(restarter.fatalError, undefined);
    const requests = await world.control.requests();
    assert.ok(
      requests.some((request) => request.path.endsWith(`/${VM}/start`)),
      "it kept trying to start",
    );
    assert.deepEqual(
      requests.filter(
        (request) =>
          request.method === "PATCH" || request.method === "PUT" || request.path.endsWith("/vmSizes"),
      ),
      [],
    );
    assert.equal((await world.control.vm(resourceGroup, VM))?.vmSize, ORIGINAL);
    assert.deepEqual(ofType(events, "vm-fallback-size"), []);
  });
});

describe("fallback sizes: none that Azure would allow", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm(VM, { vmSize: ORIGINAL })], { seed: { timing } });
  });
  after(() => world.emulator.stop());

  it("never PATCHes across the temp-disk line; says so once and keeps starting it at its own size", async () => {
    await world.control.addFaults({ vm: VM, vmSize: ORIGINAL, startFailsWith: "AllocationFailed" });
    await world.control.clearRequests();
    const { restarter, events } = wire(world, { [`${resourceGroup}/${VM}`]: [WITH_TEMP_DISK] });
    await restarter.init();
    const until = Date.now() + FALLBACK_AFTER_MS * 2.5;
    await cycleUntil(restarter, async () => Date.now() > until);
    const requests = await world.control.requests();
    assert.deepEqual(
      requests.filter((request) => request.method === "PATCH" || request.method === "PUT"),
      [],
    );
    assert.ok(requests.filter((request) => request.path.endsWith("/vmSizes")).length >= 2, "asked each try");
    const skipped = ofType(events, "vm-resize-skipped");
    assert.equal(skipped.length, 1, "reported once, not at every attempt");
    assert.match(
      skipped[0]?.reason ?? "",
      /no fallback size fits \(Standard_D2ds_v5 differs in local temp disk\)/,
    );
    const failedAfterSkip = ofType(events, "start-failed").filter(
      (event) => event.at > (skipped[0]?.at ?? 0),
    );
    assert.ok(failedAfterSkip.length >= 1, "still started at its own size");
    assert.equal((await world.control.vm(resourceGroup, VM))?.vmSize, ORIGINAL);
  });
});

describe("fallback sizes: removed after a resize (and the write action with them)", () => {
  let world: World;
  before(async () => {
    // Left at its fallback size by an earlier run; the role is the program's without fallbacks again.
    world = await startWorld([spotVm(VM, { vmSize: FALLBACK })], {
      seed: { timing },
      role: "least-privilege",
    });
  });
  after(() => world.emulator.stop());

  it("cannot go back to its own size: says so, forgets it, and starts it as it is (no fatal error)", async () => {
    await createFileStateStore(world.stateDir).save({
      vms: {
        [vmKey(resourceGroup, VM)]: {
          resourceGroup,
          name: VM,
          startAttempts: 0,
          size: { originalSize: ORIGINAL, size: FALLBACK, phase: "resized", at: 1, outage: 1 },
        },
      },
    });
    const { restarter, events } = wire(world, {});
    await restarter.init();
    await cycleUntil(
      restarter,
      async () => (await world.control.vm(resourceGroup, VM))?.powerState === "running",
    );
    assert.equal(restarter.fatalError, undefined);
    assert.equal((await world.control.vm(resourceGroup, VM))?.vmSize, FALLBACK);
    const skipped = ofType(events, "vm-resize-skipped");
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]?.toSize, ORIGINAL);
    assert.match(skipped[0]?.reason ?? "", /forbidden: .*Microsoft\.Compute\/virtualMachines\/write/);
    const saved = JSON.parse(readFileSync(join(world.stateDir, "state.json"), "utf8"));
    assert.equal(saved.vms[vmKey(resourceGroup, VM)].size, undefined);
  });
});

describe("fallback sizes: a size without Spot support (AzureSpotIsNotSupportedForThisVMSize)", () => {
  // The emulator answers a Spot VM's resize to a seeded `spotUnsupportedSizes` entry as Azure documents the
  // refusal: 409 AzureSpotIsNotSupportedForThisVMSize, "Azure Spot is not supported for this VM size {0}."
  // (azure-compute-docs articles/virtual-machines/error-codes-spot.md).
  const NO_SPOT = "Standard_D4as_v5";
  let world: World;
  before(async () => {
    world = await startWorld([spotVm(VM, { vmSize: ORIGINAL })], {
      seed: { timing, spotUnsupportedSizes: [NO_SPOT] },
    });
  });
  after(() => world.emulator.stop());

  it("is skipped at once for the next fallback, and never asked for again", async () => {
    // No capacity in the own size nor in the fallback it lands in first, so fallbacks are asked for repeatedly.
    await world.control.addFaults({ vm: VM, vmSize: ORIGINAL, startFailsWith: "AllocationFailed" });
    await world.control.addFaults({ vm: VM, vmSize: FALLBACK, startFailsWith: "AllocationFailed" });
    const { restarter, events } = wire(world, {
      [`${resourceGroup}/${VM}`]: [NO_SPOT, FALLBACK, "Standard_D8as_v5"],
    });
    await restarter.init();
    const resizedTo = async (size: string) => (await world.control.vm(resourceGroup, VM))?.vmSize === size;
    await cycleUntil(restarter, () => resizedTo("Standard_D8as_v5"));
    const patches = (await world.control.requests()).filter(
      (r) => r.method === "PATCH" && r.path.toLowerCase().endsWith(`/virtualmachines/${VM.toLowerCase()}`),
    );
    // One refused PATCH to the size without Spot, then at once the next fallback; later fallbacks never return to it.
    assert.equal(patches.filter((r) => r.status === 409).length, 1);
    const history = (await world.control.vm(resourceGroup, VM))?.history ?? [];
    assert.deepEqual(
      history.filter((entry) => entry.event === "resized").map((entry) => entry.vmSize),
      [FALLBACK, "Standard_D8as_v5"],
    );
    const skipped = ofType(events, "vm-resize-skipped").filter((e) => e.toSize === NO_SPOT);
    assert.equal(skipped.length, 1);
    assert.match(
      skipped[0]?.reason ?? "",
      /does not support Spot \(AzureSpotIsNotSupportedForThisVMSize: Azure Spot is not supported for this VM size Standard_D4as_v5\.\)/,
    );
    assert.equal(restarter.fatalError, undefined);
  });
});
