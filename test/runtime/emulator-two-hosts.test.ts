// Two hosts watching one fleet (issue 28): two `run` loops, each with its own state directory, the same
// principal, one emulator. Through an eviction storm every VM is restarted, neither host logs a failure, and no
// eviction costs more than two start requests (one per host). When both hosts start the same VM at once,
// Compute refuses the second with 409 Conflict ("conflict with a concurrent request", Azure/azure-cli#15765);
// the host that got it finds the VM starting and counts its start as done.
import "reflect-metadata";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter, type VmApi } from "../../runtime/src/azure/azure";
import { Restarter } from "../../runtime/src/loop/restarter";
import type { Logger } from "../../runtime/src/signals/log";
import { createFileStateStore } from "../../runtime/src/state/state";
import { spotVm, startWorld, type World } from "./harness";

const VMS = Array.from({ length: 8 }, (_, i) => `storm-${i}`);

interface Line {
  event: string;
  meta: Record<string, unknown>;
  message: string;
}

function recorder(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const push = (event: string, meta: Record<string, unknown>, message = "") =>
    lines.push({ event, meta, message });
  return { lines, debug: () => {}, info: push, warn: push, error: push };
}

function host(world: World, log: Logger, stateDir: string, wrap: (api: VmApi) => VmApi = (api) => api) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const counter = createRequestCounter();
  return new Restarter({
    api: wrap(createArmVmApi(config, credential, { counter, pollIntervalMs: 100 })),
    store: createFileStateStore(stateDir),
    log,
    counter,
    settings: {
      resourceGroups: config.resourceGroups,
      tag: config.tag,
      maxConcurrentStarts: 10,
      backoff: { initialMs: 60_000, maxMs: 1_800_000 },
      startTimeoutMs: 30_000,
      intervalMs: 1_000,
    },
  });
}

/** Waits for `condition` (polled), failing after a generous deadline rather than hanging. */
async function waitFor(what: string, condition: () => Promise<boolean>, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const failures = (log: { lines: Line[] }) =>
  log.lines.filter((l) =>
    ["start-failed", "vm-restart-failing", "cycle-failed", "read-failed"].includes(l.event),
  );

describe("two hosts, one fleet", () => {
  let world: World;
  before(async () => {
    world = await startWorld(
      VMS.map((name) => spotVm(name, { powerState: "running" })),
      // Compute refuses a start while another is in flight (the emulator's `concurrentStart: "conflict"`).
      { startSeconds: 0.5, seed: { concurrentStart: "conflict" } },
    );
  });
  after(() => world.emulator.stop());

  it("both decide to start one VM at once: one start is accepted, the other's 409 Conflict counts as done", async () => {
    // Both hosts' start requests for the VM leave only once both hosts have decided to send one (a barrier
    // around the real client), so they meet at Compute: whichever arrives second is refused.
    const waiting = new Map<string, Array<() => void>>();
    const barrier = async (name: string) => {
      const queue = waiting.get(name) ?? [];
      waiting.set(name, queue);
      if (queue.length === 1) {
        for (const release of queue.splice(0)) release();
        return;
      }
      await new Promise<void>((resolve, reject) => {
        queue.push(resolve);
        setTimeout(() => reject(new Error(`the other host never started ${name}`)), 60_000).unref();
      });
    };
    const gated = (api: VmApi): VmApi => ({
      ...api,
      startVm: async (resourceGroup, name, signal, handlers) => {
        await barrier(name);
        return api.startVm(resourceGroup, name, signal, handlers);
      },
    });
    const logA = recorder();
    const logB = recorder();
    const a = host(world, logA, mkdtempSync(join(tmpdir(), "spot-restarter-host-a-")), gated);
    const b = host(world, logB, mkdtempSync(join(tmpdir(), "spot-restarter-host-b-")), gated);
    await Promise.all([a.init(), b.init()]);
    await world.control.evict(world.resourceGroup, "storm-0");
    await waitFor("the eviction", async () =>
      (await world.control.vms()).some((vm) => vm.name === "storm-0" && vm.powerState === "deallocated"),
    );
    await world.control.clearRequests();
    const [cycleA, cycleB] = await Promise.all([
      a.runCycle(new AbortController().signal),
      b.runCycle(new AbortController().signal),
    ]);
    const results = await Promise.all([...cycleA.starts, ...cycleB.starts]);
    assert.equal(results.length, 2, "each host started it");
    const starts = (await world.control.requests()).filter(
      (r) => r.method === "POST" && r.path.endsWith("/start"),
    );
    assert.deepEqual(starts.map((r) => r.status).sort(), [202, 409]);
    for (const log of [logA, logB]) {
      assert.deepEqual(failures(log), []);
      assert.equal(log.lines.filter((l) => l.event === "started").length, 1, "each host counts it restarted");
    }
    await waitFor("storm-0 running", async () =>
      (await world.control.vms()).some((vm) => vm.name === "storm-0" && vm.powerState === "running"),
    );
  });

  it("two run loops through an eviction storm: every VM restarted, no failure, at most two starts per eviction", async () => {
    const logA = recorder();
    const logB = recorder();
    const a = host(world, logA, mkdtempSync(join(tmpdir(), "spot-restarter-host-a-")));
    const b = host(world, logB, mkdtempSync(join(tmpdir(), "spot-restarter-host-b-")));
    await Promise.all([a.init(), b.init()]);
    const before = new Map((await world.control.vms()).map((vm) => [vm.name, vm.startRequests]));
    await world.control.clearRequests();
    const stop = new AbortController();
    const loops = Promise.all([a.runLoop(stop.signal), b.runLoop(stop.signal)]);
    try {
      for (const name of VMS) await world.control.evict(world.resourceGroup, name);
      await waitFor("every VM evicted and running again", async () => {
        const vms = await world.control.vms();
        return VMS.every((name) => {
          const vm = vms.find((v) => v.name === name);
          return (
            vm !== undefined && vm.powerState === "running" && vm.startRequests > (before.get(name) ?? 0)
          );
        });
      });
    } finally {
      stop.abort();
      await loops;
    }
    // Every start request that reached Compute, refused ones included (the request log, not the VM's count).
    const sent = (await world.control.requests()).filter(
      (r) => r.method === "POST" && r.path.endsWith("/start"),
    );
    for (const name of VMS) {
      const starts = sent.filter((r) => r.path.endsWith(`/virtualMachines/${name}/start`));
      assert.ok(
        starts.length >= 1 && starts.length <= 2,
        `${name}: ${starts.length} start requests for one eviction`,
      );
      assert.ok(
        starts.every((r) => r.status === 202 || r.status === 409),
        `${name}: ${starts.map((r) => r.status)}`,
      );
    }
    assert.deepEqual(failures(logA), []);
    assert.deepEqual(failures(logB), []);
  });
});
