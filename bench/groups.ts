// Idle ARM requests per cycle across many resource groups (issue 28): G = 1, 10, 50 groups of 2 tagged Spot
// VMs, all running, for list discovery, Resource Graph discovery and the original script (run once per group,
// as it takes one group). In-process against the emulator with the real SDK clients; about 1 minute.
//
//   npm run bench:groups                # G = 1, 10, 50
//   npm run bench:groups -- --groups 1,5
//
// Counted from the emulator's request log: every ARM request (token requests excluded), retries and pages
// included. Resource Graph's figure is its steady cycle; its list sweep (the first cycle, then every 10th)
// costs the list figure plus the query, so 10 cycles average (9 × graph + sweep) / 10, printed beside it.
import "reflect-metadata";
import { parseArgs } from "node:util";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../emulator/testing";
import { createCredential } from "../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter } from "../runtime/src/azure/azure";
import { createArmVmGraph } from "../runtime/src/azure/vmGraph";
import { parseConfig } from "../runtime/src/config/config";
import { DISCOVERY_SWEEP_EVERY_CYCLES, Restarter } from "../runtime/src/loop/restarter";
import { silentLogger } from "../runtime/src/signals/log";
import { createMemoryStateStore } from "../runtime/src/state/state";
import { spotVm } from "../support/world";
import { runOriginalCycle, totalRequests } from "./original";

const never = new AbortController().signal;

async function armRequests(t: TestEmulator): Promise<number> {
  const log = await t.control.requests();
  return log.filter((r) => /^\/(subscriptions|providers)\//i.test(r.path)).length;
}

async function oursIdle(
  t: TestEmulator,
  groups: string[],
  discovery: "list" | "resource-graph",
): Promise<{ steady: number; sweep: number }> {
  const config = parseConfig(
    {
      tenantId: t.emulator.tenantId,
      clientId: t.principal.clientId,
      subscriptionId: t.emulator.subscriptionId,
      certificatePath: "/unused.pem",
      resourceGroups: groups,
      cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint },
      restartWhen: "deallocated",
    },
    "/bench/config.json",
  ).config;
  const credential = createCredential(config, { pem: t.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const counter = createRequestCounter();
  const restarter = new Restarter({
    api: createArmVmApi(config, credential, { counter }),
    ...(discovery === "resource-graph" ? { graph: createArmVmGraph(config, credential, { counter }) } : {}),
    store: createMemoryStateStore(),
    log: silentLogger,
    counter,
    settings: {
      resourceGroups: groups,
      tag: config.tag,
      maxConcurrentStarts: 10,
      backoff: { initialMs: 60_000, maxMs: 1_800_000 },
      startTimeoutMs: 20_000,
      intervalMs: 30_000,
      discovery,
    },
  });
  await restarter.init();
  await t.control.clearRequests();
  await restarter.runCycle(never); // the first cycle: a sweep with Resource Graph
  const sweep = await armRequests(t);
  await t.control.clearRequests();
  await restarter.runCycle(never);
  return { steady: await armRequests(t), sweep };
}

async function originalIdle(t: TestEmulator, groups: string[]): Promise<number> {
  let total = 0;
  for (const group of groups) {
    const cycle = await runOriginalCycle({
      armEndpoint: t.emulator.armEndpoint,
      subscriptionId: t.emulator.subscriptionId,
      resourceGroup: group,
      caCertPem: t.emulator.caCertPem,
      token: async () => (await t.credential.getToken(ARM_SCOPE))?.token ?? "",
      tag: { name: "AttemptRestartAfterEviction", value: "true" },
      maxStarts: 0,
    });
    total += totalRequests(cycle.requests);
  }
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { groups: { type: "string", default: "1,10,50" } } });
  const sizes = String(values.groups)
    .split(",")
    .map((g) => Number(g.trim()));
  const largest = Math.max(...sizes);
  const groupNames = Array.from({ length: largest }, (_, i) => `rg-${String(i + 1).padStart(2, "0")}`);
  const t = await startTestEmulator(
    {
      virtualMachines: groupNames.flatMap((group) => [
        spotVm(`${group}-a`, { resourceGroup: group, powerState: "running" }),
        spotVm(`${group}-b`, { resourceGroup: group, powerState: "running" }),
      ]),
      rateLimits: { resourceGraph: { enforce: false } },
    },
    { everyGroup: true },
  );
  try {
    const rows: string[] = [];
    for (const g of sizes) {
      const groups = groupNames.slice(0, g);
      const list = await oursIdle(t, groups, "list");
      const graph = await oursIdle(t, groups, "resource-graph");
      await t.control.clearRequests();
      const original = await originalIdle(t, groups);
      const every = DISCOVERY_SWEEP_EVERY_CYCLES;
      const average = (graph.steady * (every - 1) + graph.sweep) / every;
      rows.push(
        `| ${g} × 2 | ${list.steady} | ${graph.steady} (${average.toFixed(1)} with the sweep) | ${original} |`,
      );
    }
    process.stdout.write(
      [
        "| groups × tagged VMs | list | resource-graph | original script |",
        "| --- | --- | --- | --- |",
        ...rows,
        "",
      ].join("\n"),
    );
  } finally {
    await t.emulator.stop();
  }
}

void main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
