// The remaining budgets Azure reports on every answer, read by the runtime (budgets.ts) through the
// real @azure/arm-compute client against the emulator over HTTPS: the lowest one in `status`, the
// `once` summary and the metrics; reads that can wait are deferred and starts slow down when low.
// The emulator counts down the policies as Compute does (emulator/rateLimit.ts); a seed's lower
// `limits` stand for a subscription whose budget other clients have mostly spent.
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi, createRequestCounter } from "../../runtime/src/azure/azure";
import { BudgetTracker, parseBudgetHeaders, RESOURCE_GRAPH_QUOTA } from "../../runtime/src/azure/budgets";
import { collectStatus, runOnce } from "../../runtime/src/cli/commands";
import { formatStatusTable } from "../../runtime/src/cli/statusTable";
import { Restarter, type RestarterSettings } from "../../runtime/src/loop/restarter";
import { silentLogger } from "../../runtime/src/signals/log";
import { createMetrics } from "../../runtime/src/signals/metrics/index";
import { createFileStateStore } from "../../runtime/src/state/state";
import { resourceGroup, spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;

function wire(world: World, budget: BudgetTracker | undefined) {
  const config = { ...world.config, armMaxRetries: 0 };
  const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
    typeof createCredential
  >[1]);
  const counter = createRequestCounter();
  const api = createArmVmApi(config, credential, {
    counter,
    pollIntervalMs: 100,
    policies: budget ? [budget.policy] : [],
  });
  const settings: RestarterSettings = {
    resourceGroups: config.resourceGroups,
    tag: config.tag,
    maxConcurrentStarts: 10,
    backoff: { initialMs: 60_000, maxMs: 1_800_000 },
    startTimeoutMs: 20_000,
    intervalMs: 1_000,
  };
  const store = createFileStateStore(world.stateDir);
  const restarter = new Restarter({ api, store, log: silentLogger, settings, counter, budget });
  return { api, counter, restarter, store, settings, config };
}

describe("parsing the remaining-budget headers", () => {
  it("reads every policy of a Compute answer and ARM's counts (values from real answers)", () => {
    // Azure/azure-sdk-for-js arm-compute recordings and the "Troubleshooting API throttling errors" page.
    const headers: Record<string, string> = {
      "x-ms-ratelimit-remaining-resource":
        "Microsoft.Compute/HighCostGet3Min;133,Microsoft.Compute/HighCostGet30Min;657",
      "x-ms-ratelimit-remaining-subscription-reads": "11999",
    };
    assert.deepEqual(
      parseBudgetHeaders((name) => headers[name]),
      [
        { policy: "Microsoft.Compute/HighCostGet3Min", remaining: 133 },
        { policy: "Microsoft.Compute/HighCostGet30Min", remaining: 657 },
        { policy: "subscription-reads", remaining: 11999 },
      ],
    );
    assert.deepEqual(
      parseBudgetHeaders((name) =>
        name === "x-ms-ratelimit-remaining-resource" ? "garbage;;,x;1" : undefined,
      ),
      [],
    );
  });
});

describe("budgets the fleet acts on, and those it only shows", () => {
  const answer = (headers: Record<string, string>) => (name: string) => headers[name];

  it("learns a policy's full count from the most it has seen, never below the floor public answers start from", () => {
    // A subscription whose PutVM budget starts at 741: `Microsoft.Compute/PutVM3Min;740,Microsoft.Compute/PutVM30Min;3695`
    // (a public Go throttling exporter's header examples). Measured against a fixed 240, 500 left would read as
    // everything left; against what was seen it is two thirds.
    const budget = new BudgetTracker();
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-resource":
          "Microsoft.Compute/PutVM3Min;740,Microsoft.Compute/PutVM30Min;3695",
      }),
    );
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-resource":
          "Microsoft.Compute/PutVM3Min;300,Microsoft.Compute/PutVM30Min;3600",
      }),
    );
    const put = budget.current().find((r) => r.policy === "Microsoft.Compute/PutVM3Min");
    assert.equal(put?.full, 740);
    assert.ok(Math.abs((budget.startBudgetShare() ?? 1) - 300 / 740) < 1e-9, `${budget.startBudgetShare()}`);
    // `GetOperation3Min;49999` seen in another subscription: the same.
    budget.record(
      answer({ "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/GetOperation3Min;49999" }),
    );
    assert.equal(
      budget.current().find((r) => r.policy === "Microsoft.Compute/GetOperation3Min")?.full,
      49_999,
    );
    // A runtime begun in a busy window (100 left, the first it sees) does not take 100 for the whole: the
    // floor (239 left after one write in the arm-compute recordings) holds until more is seen.
    const fresh = new BudgetTracker();
    fresh.record(answer({ "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/PutVM3Min;100" }));
    assert.equal(fresh.current()[0]?.full, 240);
    assert.ok(Math.abs((fresh.startBudgetShare() ?? 1) - 100 / 240) < 1e-9);
  });

  it("reads ARM's subscription-global counts too (249 of 250 beside 3749 of 15 x 250 in a real answer)", () => {
    // A recorded ARM answer: `x-ms-ratelimit-remaining-subscription-reads: 249`,
    // `x-ms-ratelimit-remaining-subscription-global-reads: 3749`; the global limit is 15 times one principal's
    // ("Understand how Azure Resource Manager throttles requests", regional throttling).
    const headers = answer({
      "x-ms-ratelimit-remaining-subscription-reads": "249",
      "x-ms-ratelimit-remaining-subscription-global-reads": "3749",
    });
    assert.deepEqual(parseBudgetHeaders(headers), [
      { policy: "subscription-reads", remaining: 249 },
      { policy: "subscription-global-reads", remaining: 3749 },
    ]);
    const budget = new BudgetTracker();
    budget.record(headers);
    assert.equal(budget.readsLow(), false);
    // Other principals spent the global budget: reads that can wait, wait, though this principal's own is full.
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-subscription-reads": "249",
        "x-ms-ratelimit-remaining-subscription-global-reads": "600",
      }),
    );
    assert.equal(budget.lowest()?.policy, "subscription-global-reads");
    assert.equal(budget.readsLow(), true);
    budget.record(answer({ "x-ms-ratelimit-remaining-subscription-global-writes": "1000" }));
    assert.ok(Math.abs((budget.startBudgetShare() ?? 1) - 1000 / 3000) < 1e-9);
  });

  it("reads Resource Graph's quota and when it resets (the documented example: 10 left, 00:00:03)", () => {
    // "Guidance for throttled requests in Azure Resource Graph": `x-ms-user-quota-remaining: 10`,
    // `x-ms-user-quota-resets-after: 00:00:03` (https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests).
    assert.deepEqual(
      parseBudgetHeaders(
        answer({ "x-ms-user-quota-remaining": "10", "x-ms-user-quota-resets-after": "00:00:03" }),
      ),
      [{ policy: RESOURCE_GRAPH_QUOTA, remaining: 10, resetsInMs: 3_000 }],
    );
    let now = 1_000_000;
    const budget = new BudgetTracker(() => now);
    budget.record(answer({ "x-ms-user-quota-remaining": "10", "x-ms-user-quota-resets-after": "00:00:03" }));
    assert.equal(budget.resourceGraphQuota()?.remaining, 10);
    assert.equal(budget.resourceGraphQuota()?.resetsAt, 1_003_000);
    now += 3_000;
    assert.equal(budget.resourceGraphQuota(), undefined, "the window has reset: the count says nothing now");
    // The quota is the cause gate's concern, never the start pacer's nor the reads'.
    budget.record(answer({ "x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:05" }));
    assert.equal(budget.startSlowdown(), 1);
    assert.equal(budget.readsLow(), false);
  });

  it("a Get Operation budget running low slows starts (each start is followed by polls)", () => {
    // Azure/azure-sdk-for-js sdk/compute/arm-compute/recordings/node/compute_test/recording_virtualmachines_delete_test.js:
    // a VM operation poll answers `Microsoft.Compute/GetOperation3Min;14797,Microsoft.Compute/GetOperation30Min;29797`.
    const budget = new BudgetTracker();
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-resource":
          "Microsoft.Compute/GetOperation3Min;14797,Microsoft.Compute/GetOperation30Min;29797",
      }),
    );
    assert.equal(budget.startSlowdown(), 1);
    assert.equal(budget.lowest()?.full, 15_000);
    // Other clients of the subscription have spent it down to 750 of 15000 (5%): a fifth of the rate.
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-resource":
          "Microsoft.Compute/GetOperation3Min;750,Microsoft.Compute/GetOperation30Min;29000",
      }),
    );
    assert.ok(Math.abs(budget.startSlowdown() - 750 / 15_000 / 0.25) < 1e-9, `${budget.startSlowdown()}`);
    assert.equal(budget.readsLow(), false, "polls are not the reads that can wait");
  });

  it("a policy it has no documented count for is shown but never slows the fleet (per-VM buckets among them)", () => {
    // A real Compute policy this runtime never spends and does not list, whose name looks like a read
    // budget: a scale-set list answers `Microsoft.Compute/HighCostGetVMScaleSet3Min;170,
    // Microsoft.Compute/HighCostGetVMScaleSet30Min;852` (palmerabollo/azure-throttling-exporter index.js,
    // "Header example"). Here other clients have spent it down to 2.
    const budget = new BudgetTracker();
    const vmss = (three: number, thirty: number) =>
      answer({
        "x-ms-ratelimit-remaining-resource": `Microsoft.Compute/HighCostGetVMScaleSet3Min;${three},Microsoft.Compute/HighCostGetVMScaleSet30Min;${thirty}`,
      });
    budget.record(vmss(170, 852));
    budget.record(vmss(2, 700));
    const lowest = budget.lowest();
    assert.equal(lowest?.policy, "Microsoft.Compute/HighCostGetVMScaleSet3Min");
    assert.equal(lowest?.full, 170, "measured against the most seen");
    assert.equal(budget.readsLow(), false, "not a budget this runtime's reads spend");
    assert.equal(budget.startSlowdown(), 1);
    // The listed High Cost Get at the same share does defer reads.
    budget.record(
      answer({
        "x-ms-ratelimit-remaining-resource":
          "Microsoft.Compute/HighCostGet3Min;2,Microsoft.Compute/HighCostGet30Min;600",
      }),
    );
    assert.equal(budget.readsLow(), true);
  });
});

describe("budgets against the emulator", () => {
  let plenty: World;
  let scarce: World;
  before(async () => {
    plenty = await startWorld([spotVm("backup")]);
    // Another client has spent most of the List budget (10 of 140 left this window) and of PutVM (30 of 240).
    scarce = await startWorld([spotVm("backup"), spotVm("builder"), spotVm("no-capacity")], {
      seed: { rateLimits: { limits: { HighCostGet3Min: 10, PutVM3Min: 30 } } },
    });
  });
  after(async () => {
    await plenty.emulator.stop();
    await scarce.emulator.stop();
  });

  it("reads the headers of every answer; with plenty left nothing is low", async () => {
    const budget = new BudgetTracker();
    const { api } = wire(plenty, budget);
    await api.listVms(resourceGroup, never);
    const lowest = budget.lowest();
    assert.equal(lowest?.policy, "Microsoft.Compute/HighCostGet3Min");
    assert.equal(lowest?.remaining, 139);
    assert.equal(lowest?.full, 140);
    await api.readInstanceState(resourceGroup, "backup", never);
    const policies = budget.current().map((r) => r.policy);
    for (const policy of [
      "Microsoft.Compute/HighCostGet30Min",
      "Microsoft.Compute/LowCostGet3Min",
      "Microsoft.Compute/LowCostGet30Min",
      "subscription-reads",
      "subscription-global-reads",
    ]) {
      assert.ok(policies.includes(policy), `${policy} in ${policies.join(", ")}`);
    }
    assert.equal(budget.readsLow(), false);
    assert.equal(budget.startSlowdown(), 1);
  });

  it("status shows the lowest budget; the metrics expose each policy and the lowest share", async () => {
    const budget = new BudgetTracker();
    const metrics = createMetrics();
    metrics.watchBudgets(budget);
    const { api, store, settings } = wire(scarce, budget);
    const report = await collectStatus(api, store, settings, never, Date.now(), [], budget);
    assert.equal(report.lowestBudget?.policy, "Microsoft.Compute/HighCostGet3Min");
    assert.equal(report.lowestBudget?.remaining, 9);
    assert.match(
      formatStatusTable(report),
      /^Lowest Azure budget left: Microsoft\.Compute\/HighCostGet3Min 9 of 140 \(6%\)$/m,
    );
    assert.equal(budget.readsLow(), true, "9 of 140 is below a quarter");
    const text = await metrics.render();
    assert.match(
      text,
      /^spot_restarter_arm_budget_remaining\{policy="Microsoft\.Compute\/HighCostGet3Min"\} 9$/m,
    );
    const ratio = Number(/^spot_restarter_arm_budget_lowest_ratio ([0-9.e-]+)$/m.exec(text)?.[1]);
    assert.ok(Math.abs(ratio - 9 / 140) < 1e-9, `ratio ${ratio}`);
  });

  it("with a read budget low, a VM waiting for its retry is not read; one due is; starts slow down as PutVM runs low", async () => {
    await scarce.control.addFaults({ vm: "no-capacity", startFailsWith: "AllocationFailed" });
    const budget = new BudgetTracker();
    const { restarter, counter, config } = wire(scarce, budget);
    await restarter.init();
    const first = await runOnce({ restarter, counter, budget, tag: config.tag }, never, { dryRun: false });
    assert.equal(first.summary.starts.issued, 3);
    const failed = first.summary.vms.find((vm) => vm.name === "no-capacity");
    assert.equal(failed?.start?.outcome, "capacity");
    assert.ok(failed?.start?.backoffUntil, "a capacity failure waits for its retry");
    // Three starts: PutVM3Min 27 of 240 left (11%): starts go at 27/240 / 0.25 = 45% of the rate.
    assert.equal(first.summary.lowestBudget?.policy, "Microsoft.Compute/HighCostGet3Min");
    assert.ok(
      Math.abs(budget.startSlowdown() - 27 / 240 / 0.25) < 1e-9,
      `slowdown ${budget.startSlowdown()}`,
    );

    // Next cycle, reads still low: the VM in backoff is not read (its retry is not due), the others are.
    await scarce.control.clearRequests();
    await scarce.control.evict(resourceGroup, "backup");
    await runOnce({ restarter, counter, budget, tag: config.tag }, never, { dryRun: false });
    const views = (await scarce.control.requests())
      .filter((r) => r.method === "GET" && r.path.toLowerCase().endsWith("/instanceview"))
      .map((r) => r.path.split("/").at(-2));
    assert.deepEqual(views.sort(), ["backup", "builder"]);
    // The start of `backup` left with the slowed pacer.
    assert.ok(Math.abs(restarter.pacer.currentSlowdown - 27 / 240 / 0.25) < 1e-9);

    // Without budget readings (or with plenty left) the VM in backoff is read as before.
    const unaware = wire(scarce, undefined);
    await unaware.restarter.init();
    await scarce.control.clearRequests();
    await runOnce({ restarter: unaware.restarter, counter: unaware.counter, tag: config.tag }, never, {
      dryRun: false,
    });
    const read = (await scarce.control.requests()).filter(
      (r) => r.method === "GET" && r.path.toLowerCase().endsWith("/no-capacity/instanceview"),
    );
    assert.equal(read.length, 1);
  });
});
