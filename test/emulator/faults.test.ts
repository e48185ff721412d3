// Each kind of fault rule, through the real SDK pipeline (which retries 429/5xx and dropped sockets).
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";
const BUILDER = "scratch-builder-spot";

describe("emulator: fault rules", () => {
  let t: TestEmulator;
  let compute: ComputeManagementClient;
  before(async () => {
    t = await startTestEmulator({ timing: { startSeconds: 0.1, retryAfterSeconds: 0 } });
    compute = new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
      endpoint: t.emulator.armEndpoint,
    });
    await t.credential.getToken("https://management.azure.com/.default");
  });
  afterEach(async () => {
    await t.control.clearFaults();
    await t.control.clearRequests();
  });
  after(() => t.emulator.stop());

  it("answers 429 with Retry-After and Azure's throttling body, `times` times", async () => {
    await t.control.addFaults({
      method: "GET",
      pathPattern: "/virtualMachines$",
      status: 429,
      retryAfterSeconds: 1,
      times: 1,
    });
    const path = `/subscriptions/${t.emulator.subscriptionId}/resourceGroups/${t.resourceGroup}/providers/Microsoft.Compute/virtualMachines`;
    const throttled = await armFetch<{ error: { code: string; details: Array<{ code: string }> } }>(
      t,
      "GET",
      path,
    );
    assert.equal(throttled.status, 429);
    assert.equal(throttled.headers.get("retry-after"), "1");
    assert.equal(throttled.body.error.code, "OperationNotAllowed");
    assert.equal(throttled.body.error.details[0]?.code, "TooManyRequests");
    assert.equal((await armFetch(t, "GET", path)).status, 200, "times: 1 is used up");
    assert.deepEqual(await t.control.faults(), []);
  });

  it("lets the SDK retry through a 429 and a 503 and records each attempt", async () => {
    await t.control.addFaults(
      { pathPattern: "/instanceView$", status: 429, retryAfterSeconds: 0, times: 1 },
      { pathPattern: "/instanceView$", status: 503, times: 1 },
    );
    await compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
    const statuses = (await t.control.requests())
      .filter((r) => r.path.endsWith("/instanceView"))
      .map((r) => r.status);
    assert.deepEqual(statuses, [429, 503, 200]);
  });

  it("uses a custom status and error code", async () => {
    await t.control.addFaults({ vm: BACKUP, status: 500, errorCode: "InternalExecutionError", times: 1 });
    const response = await armFetch<{ error: { code: string } }>(t, "GET", vmPath(t, BACKUP));
    assert.equal(response.status, 500);
    assert.equal(response.body.error.code, "InternalExecutionError");
  });

  it("matches on method, path and VM name only", async () => {
    await t.control.addFaults({ method: "POST", vm: BUILDER, status: 409 });
    assert.equal((await armFetch(t, "GET", vmPath(t, BUILDER))).status, 200, "other method");
    assert.equal((await armFetch(t, "POST", `${vmPath(t, BACKUP)}/deallocate`)).status, 202, "other VM");
    assert.equal((await armFetch(t, "POST", `${vmPath(t, BUILDER)}/deallocate`)).status, 409, "match");
    assert.equal(
      (await armFetch(t, "POST", `${vmPath(t, BUILDER)}/deallocate`)).status,
      409,
      "no times: holds until cleared",
    );
  });

  it("delays a response by delayMs", async () => {
    await t.control.addFaults({ vm: BACKUP, delayMs: 400, times: 1 });
    const started = Date.now();
    assert.equal((await armFetch(t, "GET", vmPath(t, BACKUP))).status, 200);
    assert.ok(Date.now() - started >= 380, `took ${Date.now() - started} ms`);
  });

  it("drops the connection (logged as status 0), and the SDK retries", async () => {
    await t.control.addFaults({ vm: BACKUP, pathPattern: "/instanceView$", dropConnection: true, times: 1 });
    await assert.rejects(armFetch(t, "GET", `${vmPath(t, BACKUP)}/instanceView`));
    await t.control.addFaults({ vm: BACKUP, pathPattern: "/instanceView$", dropConnection: true, times: 1 });
    await compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
    const statuses = (await t.control.requests()).map((r) => r.status);
    assert.deepEqual(statuses, [0, 0, 200]);
  });

  it("makes starts fail with startFailsWith `times` times, then succeed", async () => {
    await t.control.addFaults({ vm: BACKUP, startFailsWith: "AllocationFailed", times: 2 });
    for (let attempt = 0; attempt < 2; attempt++) {
      await assert.rejects(
        compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 }),
        /AllocationFailed/,
      );
    }
    await compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 });
    const vm = await t.control.vm(t.resourceGroup, BACKUP);
    assert.equal(vm?.powerState, "running");
    assert.equal(vm?.startRequests, 3);
  });

  it("makes starts fail with startFailsWith for forSeconds, then succeed (a capacity outage of known length)", async () => {
    await t.control.setVm(t.resourceGroup, BACKUP, { powerState: "deallocated" });
    const before = (await t.control.vm(t.resourceGroup, BACKUP))?.startRequests ?? 0;
    await t.control.addFaults({ vm: BACKUP, startFailsWith: "AllocationFailed", forSeconds: 1.5 });
    const addedAt = Date.now();
    await assert.rejects(
      compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 }),
      /AllocationFailed/,
    );
    assert.ok(Date.now() - addedAt < 1_500, "the first attempt falls inside the outage");
    await new Promise((resolve) => setTimeout(resolve, 1_500 - (Date.now() - addedAt) + 50));
    await compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, { updateIntervalInMs: 50 });
    const vm = await t.control.vm(t.resourceGroup, BACKUP);
    assert.equal(vm?.powerState, "running");
    assert.equal((vm?.startRequests ?? 0) - before, 2);
  });

  it("reports SpotPriceGreaterThanProvidedMaxPrice in the operation status", async () => {
    await t.control.addFaults({ vm: BUILDER, startFailsWith: "SpotPriceGreaterThanProvidedMaxPrice" });
    const response = await armFetch(t, "POST", `${vmPath(t, BUILDER)}/start`);
    assert.equal(response.status, 202);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const statusUrl = new URL(response.headers.get("azure-asyncoperation") ?? "");
    const status = await armFetch<{ status: string; error: { code: string } }>(
      t,
      "GET",
      statusUrl.pathname + statusUrl.search,
    );
    assert.equal(status.body.status, "Failed");
    assert.equal(status.body.error.code, "SpotPriceGreaterThanProvidedMaxPrice");
  });

  it("refuses a rule without an effect", async () => {
    await assert.rejects(t.control.addFaults({ vm: BACKUP }), /needs an effect/);
  });
});
