// Deterministic reproductions of bugs the fault matrix and the property tests found, each against a
// fake VmApi so the interleaving is forced rather than hoped for.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explainAuthFailure } from "../../runtime/src/azure/auth";
import type { ListedVm, VmApi } from "../../runtime/src/azure/azure";
import { parseConfig } from "../../runtime/src/config/config";
import { Restarter } from "../../runtime/src/loop/restarter";
import { silentLogger } from "../../runtime/src/signals/log";
import { createMemoryStateStore } from "../../runtime/src/state/state";

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const listed = (name: string): ListedVm => ({
  resourceGroup: "rg",
  name,
  priority: "Spot",
  evictionPolicy: "Deallocate",
  maxPrice: -1,
  tags: { AttemptRestartAfterEviction: "true" },
});

describe("regressions", () => {
  it("BUG-4: a start that succeeds while a cycle is discovering is not started again (stale power state)", async () => {
    const power: Record<string, string> = { a: "deallocated", b: "running" };
    const startA = deferred();
    const readB = deferred();
    let cycle = 0;
    const starts: string[] = [];
    const api: VmApi = {
      listVms: async () => [listed("a"), listed("b")],
      readInstanceState: async (_rg, name) => {
        // In the second cycle the instance view of b is slow; a's start ends meanwhile.
        if (cycle === 2 && name === "b") await readB.promise;
        return { powerState: power[name], provisioningState: "succeeded", hibernated: false };
      },
      startVm: async (_rg, name) => {
        starts.push(name);
        if (name === "a" && starts.length === 1) {
          await startA.promise;
          power.a = "running";
        }
      },
      simulateEviction: async () => {},
    };
    const restarter = new Restarter({
      api,
      store: createMemoryStateStore(),
      log: silentLogger,
      settings: {
        resourceGroups: ["rg"],
        tag: { name: "AttemptRestartAfterEviction", value: "true" },
        maxConcurrentStarts: 10,
        backoff: { initialMs: 60_000, maxMs: 60_000 },
        startTimeoutMs: 10_000,
        intervalMs: 1_000,
      },
    });
    await restarter.init();
    const signal = new AbortController().signal;
    cycle = 1;
    const first = await restarter.runCycle(signal);
    assert.equal(first.starts.length, 1);
    cycle = 2;
    const second = restarter.runCycle(signal);
    await new Promise((r) => setImmediate(r));
    startA.resolve();
    await first.starts[0];
    readB.resolve();
    const report = await second;
    assert.deepEqual(starts, ["a"], "a was started once: it is running, not deallocated");
    assert.equal(report.starts.length, 0);
  });
});

describe("regressions: authentication", () => {
  it("BUG-10: an Entra 503 whose body carries an AADSTS code is transient (run waits instead of exiting 3)", async () => {
    const config = parseConfig(
      {
        tenantId: "72f988bf-0000-4000-8000-00000000e1a0",
        clientId: "11111111-0000-4000-8000-000000000001",
        subscriptionId: "5f1c3a52-0000-4000-8000-00000000e1a0",
        certificatePath: "/dev/null",
        resourceGroups: ["rg"],
      },
      "/x/config.json",
    ).config;
    const msal = Object.assign(
      new Error("temporarily_unavailable: AADSTS90033: A transient error has occurred."),
      {
        status: 503,
        errorCode: "temporarily_unavailable",
      },
    );
    const error = new Error("AADSTS90033: A transient error has occurred.", { cause: msal });
    const explained = await explainAuthFailure(error, config, async () => ({ kind: "ok", status: 200 }));
    assert.equal(explained.transient, true, explained.message);
    assert.match(explained.message, /HTTP 503/);
  });
});
