// The emulator's Resource Graph pages as Azure does, read through the real @azure/arm-resourcegraph
// client over HTTPS, and the runtime's one paging function (runtime/src/azure/resourceGraph.ts) reads
// every page of it. Azure's rules:
// - azure-rest-api-specs resourcegraph 2024-04-01 resourcegraph.json: QueryRequestOptions `$top`
//   (minimum 1, maximum 1000), `$skip`, `$skipToken`; QueryResponse `totalRecords`, `count`,
//   `resultTruncated` ("true" | "false"), `$skipToken`;
// - examples ResourcesFirstPageQuery.json (totalRecords 386, count 3, resultTruncated "false", a
//   $skipToken) and ResourcesNextPageQuery.json (the token sent back in options.$skipToken);
// - learn.microsoft.com/azure/governance/resource-graph/concepts/paging-results: a query with a
//   take/limit operator, or with only dynamic columns, cannot be paged: resultTruncated "true", no token.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import { RESOURCE_GRAPH_DEFAULT_TOP } from "../../emulator/arm/resourceGraph";
import { ARM_SCOPE, startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { queryAllPages, queryByIdBatches } from "../../runtime/src/azure/resourceGraph";
import { annotationsQuery, vmResourceId } from "../../runtime/src/cause/cause";

const VM_COUNT = 250;
const never = new AbortController().signal;
const names = Array.from({ length: VM_COUNT }, (_, i) => `spot-${String(i).padStart(3, "0")}`);
const VMS_QUERY = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, name";

describe("emulator: Resource Graph pages (100 rows by default, $top up to 1000, $skipToken)", () => {
  let t: TestEmulator;
  let graph: ResourceGraphClient;
  let requests: number;
  const graphRequests = async () =>
    (await t.control.requests()).filter((r) => /microsoft\.resourcegraph\/resources/i.test(r.path)).length;

  before(async () => {
    t = await startTestEmulator({
      // Every VM evicted: each has a VirtualMachinePreempted annotation at once.
      timing: { annotationDelaySeconds: 0 },
      virtualMachines: names.map((name) => ({
        resourceGroup: "personal-network",
        name,
        priority: "Spot" as const,
        powerState: "deallocated" as const,
        tags: { AttemptRestartAfterEviction: "true" },
      })),
      // Many queries here: the per-caller quota is its own test (test/emulator/rateLimit.test.ts).
      rateLimits: { resourceGraph: { enforce: false } },
    });
    graph = new ResourceGraphClient(t.credential, {
      endpoint: t.emulator.armEndpoint,
      credentials: { scopes: [ARM_SCOPE] },
      retryOptions: { maxRetries: 0 },
    });
  });
  after(() => t.emulator.stop());

  it("without $top: the first 100 rows, totalRecords of all, resultTruncated false and a $skipToken", async () => {
    const page = await graph.resources({ query: VMS_QUERY, subscriptions: [t.emulator.subscriptionId] });
    assert.equal(RESOURCE_GRAPH_DEFAULT_TOP, 100);
    assert.equal((page.data as unknown[]).length, 100);
    assert.equal(page.count, 100);
    assert.equal(page.totalRecords, VM_COUNT);
    assert.equal(page.resultTruncated, "false");
    assert.ok(page.skipToken, "a token for the rest");
  });

  it("the token with the same query and scopes gives the next rows; the last page has no token", async () => {
    const seen: string[] = [];
    let skipToken: string | undefined;
    let pages = 0;
    do {
      const page = await graph.resources({
        query: VMS_QUERY,
        subscriptions: [t.emulator.subscriptionId],
        options: { top: 120, ...(skipToken ? { skipToken } : {}) },
      });
      pages++;
      for (const row of page.data as Array<{ name: string }>) seen.push(row.name);
      skipToken = page.skipToken;
    } while (skipToken);
    assert.equal(pages, 3, "120 + 120 + 10");
    assert.deepEqual([...seen].sort(), names, "every row once");
  });

  it("$top 1000 answers all 250 in one page; $top 1001 and a token of another query are refused", async () => {
    const all = await graph.resources({
      query: VMS_QUERY,
      subscriptions: [t.emulator.subscriptionId],
      options: { top: 1000 },
    });
    assert.equal(all.count, VM_COUNT);
    assert.equal(all.skipToken, undefined);
    await assert.rejects(
      graph.resources({
        query: VMS_QUERY,
        subscriptions: [t.emulator.subscriptionId],
        options: { top: 1001 },
      }),
      (error: { statusCode?: number }) => error.statusCode === 400,
    );
    const first = await graph.resources({ query: VMS_QUERY, subscriptions: [t.emulator.subscriptionId] });
    await assert.rejects(
      graph.resources({
        query: `${VMS_QUERY}, location`,
        subscriptions: [t.emulator.subscriptionId],
        options: { skipToken: first.skipToken },
      }),
      (error: { statusCode?: number }) => error.statusCode === 400,
    );
  });

  it("a query with take cannot be paged: resultTruncated true and no token", async () => {
    const page = await graph.resources({
      query: `${VMS_QUERY} | take 150`,
      subscriptions: [t.emulator.subscriptionId],
    });
    assert.equal(page.count, 100);
    assert.equal(page.totalRecords, 150);
    assert.equal(page.resultTruncated, "true");
    assert.equal(page.skipToken, undefined);
    const result = await queryAllPages(
      graph,
      { query: `${VMS_QUERY} | take 150`, subscriptions: [t.emulator.subscriptionId] },
      never,
      { pageSize: 100 },
    );
    assert.equal(result.truncated, true, "the runtime is told rows are missing");
    assert.equal(result.rows.length, 100);
  });

  it("queryAllPages follows every token: 250 rows in ceil(250/40) = 7 requests of $top 40", async () => {
    requests = await graphRequests();
    const result = await queryAllPages(
      graph,
      { query: VMS_QUERY, subscriptions: [t.emulator.subscriptionId] },
      never,
      { pageSize: 40 },
    );
    assert.equal(result.truncated, false);
    assert.equal(result.requests, 7);
    assert.equal((await graphRequests()) - requests, 7, "what the emulator received");
    assert.deepEqual(result.rows.map((row) => row.name).sort(), names);
  });

  it("queryByIdBatches: the annotations of 250 VMs in batches of 100 ids, every annotation once", async () => {
    const ids = names.map((name) => vmResourceId(t.emulator.subscriptionId, "personal-network", name));
    requests = await graphRequests();
    const result = await queryByIdBatches(
      graph,
      ids,
      annotationsQuery,
      { subscriptions: [t.emulator.subscriptionId] },
      never,
      { idsPerQuery: 100 },
    );
    assert.equal(result.requests, 3, "100 + 100 + 50 ids, each batch in one page of $top 1000");
    assert.equal((await graphRequests()) - requests, 3);
    const targets = result.rows.map((row) => String(row.targetResourceId));
    assert.equal(new Set(targets).size, VM_COUNT);
    assert.ok(result.rows.every((row) => row.annotationName === "VirtualMachinePreempted"));
  });
});
