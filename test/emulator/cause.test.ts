// Why a VM is deallocated, as the emulator records it: Resource Health annotations read through the
// real @azure/arm-resourcegraph client (queries parsed by Microsoft's Kusto parser), and the Activity
// Log read through the real @azure/arm-monitor client, over HTTPS.
// Annotation names and contexts: https://learn.microsoft.com/azure/service-health/resource-health-vm-annotation
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ComputeManagementClient } from "@azure/arm-compute";
import { MonitorClient } from "@azure/arm-monitor";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import {
  ARM_SCOPE,
  createTestPrincipal,
  emulatorCredential,
  startTestEmulator,
  type TestEmulator,
} from "../../emulator/testing";
import { armFetch, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";
const BUILDER = "scratch-builder-spot";

const ANNOTATIONS_QUERY = (ids: string[]) => `healthresources
| where type =~ 'microsoft.resourcehealth/resourceannotations'
| extend targetResourceId = tolower(tostring(properties.targetResourceId))
| where targetResourceId in (${ids.map((id) => `'${id.toLowerCase()}'`).join(", ")})
| project targetResourceId, annotationName = tostring(properties.annotationName), context = tostring(properties.context), occurredTime = todatetime(properties.occurredTime)`;

interface AnnotationRow {
  targetResourceId: string;
  annotationName: string;
  context: string;
  occurredTime: string;
}

describe("emulator: eviction cause (Resource Graph, Activity Log)", () => {
  let t: TestEmulator;
  let graph: ResourceGraphClient;
  let monitor: MonitorClient;
  let compute: ComputeManagementClient;
  const since = new Date(Date.now() - 60_000).toISOString();

  const annotationOf = async (name: string): Promise<AnnotationRow | undefined> => {
    const result = await graph.resources({
      query: ANNOTATIONS_QUERY([vmPath(t, name)]),
      subscriptions: [t.emulator.subscriptionId],
    });
    return (result.data as AnnotationRow[])[0];
  };
  const activity = async () => {
    const events = [];
    for await (const event of monitor.activityLogs.list(
      `eventTimestamp ge '${since}' and resourceGroupName eq '${t.resourceGroup}'`,
    )) {
      events.push(event);
    }
    return events;
  };

  before(async () => {
    t = await startTestEmulator({
      timing: { startSeconds: 1.5, deallocateSeconds: 0.1, annotationDelaySeconds: 0.4 },
      virtualMachines: [
        {
          resourceGroup: "personal-network",
          name: BACKUP,
          priority: "Spot",
          powerState: "deallocated",
          tags: { AttemptRestartAfterEviction: "true" },
        },
        {
          resourceGroup: "personal-network",
          name: BUILDER,
          priority: "Spot",
          powerState: "deallocated",
          deallocatedBy: "owner",
          tags: { AttemptRestartAfterEviction: "true" },
        },
        {
          resourceGroup: "personal-network",
          name: "nobody-knows",
          priority: "Spot",
          powerState: "deallocated",
          deallocatedBy: "unknown",
        },
        {
          resourceGroup: "personal-network",
          name: "sleeper",
          priority: "SpotPlus",
          powerState: "deallocated",
          hibernated: true,
        },
        {
          resourceGroup: "personal-network",
          name: "being-built",
          priority: "Spot",
          provisioningState: "Creating",
        },
        {
          resourceGroup: "personal-network",
          name: "failed-earlier",
          priority: "Spot",
          powerState: "deallocated",
          provisioningState: "Failed",
        },
        { resourceGroup: "personal-network", name: "no-policy", priority: "Spot", evictionPolicy: null },
        { resourceGroup: "personal-network", name: "worker", priority: "Spot", powerState: "running" },
      ],
    });
    const options = { endpoint: t.emulator.armEndpoint, credentials: { scopes: [ARM_SCOPE] } };
    graph = new ResourceGraphClient(t.credential, options);
    monitor = new MonitorClient(t.credential, t.emulator.subscriptionId, options);
    compute = new ComputeManagementClient(t.credential, t.emulator.subscriptionId, options);
  });
  after(() => t.emulator.stop());

  it("a seed VM deallocated by eviction (the default) has a visible VirtualMachinePreempted annotation", async () => {
    const row = await annotationOf(BACKUP);
    assert.equal(row?.annotationName, "VirtualMachinePreempted");
    assert.equal(row?.context, "Platform Initiated");
    assert.equal(row?.targetResourceId, vmPath(t, BACKUP).toLowerCase());
    assert.ok(!Number.isNaN(Date.parse(row?.occurredTime ?? "")));
  });

  it("deallocatedBy owner: VirtualMachineDeallocationInitiated and an Activity Log entry; unknown: neither", async () => {
    const row = await annotationOf(BUILDER);
    assert.equal(row?.annotationName, "VirtualMachineDeallocationInitiated");
    assert.equal(row?.context, "Customer Initiated");
    const events = await activity();
    const entry = events.find((event) => event.resourceId?.endsWith(`/${BUILDER}`));
    assert.equal(entry?.operationName?.value, "Microsoft.Compute/virtualMachines/deallocate/action");
    assert.equal(entry?.caller, "owner@contoso.com");
    assert.equal(await annotationOf("nobody-knows"), undefined);
    assert.equal(
      events.some((event) => event.resourceId?.endsWith("/nobody-knows")),
      false,
    );
  });

  it("an eviction is annotated VirtualMachinePreempted only after annotationDelaySeconds", async () => {
    await t.control.evict(t.resourceGroup, "worker");
    assert.equal(await annotationOf("worker"), undefined, "not visible at once");
    await sleep(500);
    const row = await annotationOf("worker");
    assert.equal(row?.annotationName, "VirtualMachinePreempted");
    assert.equal(row?.context, "Platform Initiated");
  });

  it("ARM deallocate records VirtualMachineDeallocationInitiated and the caller (the SP's application id)", async () => {
    await compute.virtualMachines.beginStartAndWait(t.resourceGroup, "worker", { updateIntervalInMs: 100 });
    await compute.virtualMachines.beginDeallocateAndWait(t.resourceGroup, "worker", {
      updateIntervalInMs: 100,
    });
    await sleep(500);
    const row = await annotationOf("worker");
    assert.equal(row?.annotationName, "VirtualMachineDeallocationInitiated");
    assert.equal(row?.context, "Customer Initiated");
    const entry = (await activity()).find((event) => event.resourceId?.endsWith("/worker"));
    assert.equal(entry?.caller, t.principal.clientId);
    assert.equal(
      entry?.claims?.["http://schemas.microsoft.com/identity/claims/objectidentifier"],
      t.principal.objectId,
    );
  });

  it("the owner deallocating during a start makes the start end OperationPreempted", async () => {
    const poller = await compute.virtualMachines.beginStart(t.resourceGroup, "worker", {
      updateIntervalInMs: 100,
    });
    await t.control.deallocate(t.resourceGroup, "worker", "alice@contoso.com");
    await assert.rejects(poller.pollUntilDone(), /OperationPreempted/);
    assert.equal((await t.control.vm(t.resourceGroup, "worker"))?.powerState, "deallocated");
    await sleep(500);
    assert.equal((await annotationOf("worker"))?.annotationName, "VirtualMachineDeallocationInitiated");
    const callers = (await activity()).filter((e) => e.resourceId?.endsWith("/worker")).map((e) => e.caller);
    assert.equal(callers[0], "alice@contoso.com", "newest first");
  });

  it("hibernation, SpotPlus, provisioning states and a Spot VM without evictionPolicy", async () => {
    const sleeper = await compute.virtualMachines.instanceView(t.resourceGroup, "sleeper");
    const codes = sleeper.statuses?.map((status) => status.code);
    assert.ok(codes?.includes("PowerState/deallocated"));
    assert.ok(codes?.includes("HibernationState/Hibernated"));
    const listed = [];
    for await (const vm of compute.virtualMachines.list(t.resourceGroup)) listed.push(vm);
    assert.equal(listed.find((vm) => vm.name === "sleeper")?.priority, "SpotPlus");
    assert.equal(listed.find((vm) => vm.name === "being-built")?.provisioningState, "Creating");
    const building = await compute.virtualMachines.instanceView(t.resourceGroup, "being-built");
    assert.equal(building.statuses?.[0]?.code, "ProvisioningState/creating");
    // A seeded Failed shows failed (not succeeded), at level Error like the emulator's failed starts
    // (emulator/README.md: without the error code Azure would append, which the seed cannot give).
    const failed = await compute.virtualMachines.instanceView(t.resourceGroup, "failed-earlier");
    assert.equal(failed.statuses?.[0]?.code, "ProvisioningState/failed");
    assert.equal(failed.statuses?.[0]?.level, "Error");
    const noPolicy = listed.find((vm) => vm.name === "no-policy");
    assert.equal(noPolicy?.priority, "Spot");
    assert.equal(noPolicy?.evictionPolicy, undefined);
  });

  it("rejects what Resource Graph rejects: syntax errors, unknown columns and tables (400 InvalidQuery)", async () => {
    for (const query of [
      "healthresources | where",
      "healthresources | where annotationName == 'x'",
      "healthresourcez | take 1",
    ]) {
      const response = await armFetch<{ error: { code: string; details: Array<{ code: string }> } }>(
        t,
        "POST",
        "/providers/Microsoft.ResourceGraph/resources",
        { query },
        "2024-04-01",
      );
      assert.equal(response.status, 400, query);
      assert.equal(response.body.error.code, "BadRequest");
      assert.equal(response.body.error.details[0]?.code, "InvalidQuery");
    }
    await assert.rejects(graph.resources({ query: "Resources | where" }), { statusCode: 400 });
    // Table names are case-insensitive in Resource Graph.
    const result = await graph.resources({ query: "Resources | where name =~ 'WORKER' | project name" });
    assert.deepEqual(result.data, [{ name: "worker" }]);
  });

  it("sends the quota headers and answers 429 RateLimiting over 15 queries in 5 s", async () => {
    await sleep(5_000); // a fresh quota window
    const statuses: number[] = [];
    let last: Headers | undefined;
    for (let i = 0; i < 16; i++) {
      const response = await armFetch(
        t,
        "POST",
        "/providers/Microsoft.ResourceGraph/resources",
        { query: "resources | take 1" },
        "2024-04-01",
      );
      statuses.push(response.status);
      if (i === 0) assert.equal(response.headers.get("x-ms-user-quota-remaining"), "14");
      assert.match(response.headers.get("x-ms-user-quota-resets-after") ?? "", /^\d\d:\d\d:\d\d$/);
      last = response.headers;
    }
    assert.deepEqual(statuses, [...Array(15).fill(200), 429]);
    assert.ok(Number(last?.get("retry-after")) >= 1);
  });

  it("filters rows by RBAC: without the Resource Health read action, no annotations; Activity Log needs its action", async () => {
    const outsider = await createTestPrincipal();
    await t.control.addPrincipal(outsider);
    const roleId = `/subscriptions/${t.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/0c1e4b9e-1111-4e6f-9f00-00000000aa01`;
    await t.control.addRoleDefinition({
      id: roleId,
      actions: ["Microsoft.Compute/virtualMachines/read"],
      assignableScopes: [`/subscriptions/${t.emulator.subscriptionId}`],
    });
    await t.control.addRoleAssignment({
      principalId: outsider.objectId,
      roleDefinitionId: roleId,
      scope: `/subscriptions/${t.emulator.subscriptionId}/resourceGroups/${t.resourceGroup}`,
    });
    const credential = emulatorCredential(t.emulator, outsider);
    const options = { endpoint: t.emulator.armEndpoint, credentials: { scopes: [ARM_SCOPE] } };
    const limited = new ResourceGraphClient(credential, options);
    const annotations = await limited.resources({ query: ANNOTATIONS_QUERY([vmPath(t, BACKUP)]) });
    assert.deepEqual(annotations.data, [], "health rows hidden");
    const vms = await limited.resources({ query: "resources | project name" });
    assert.ok((vms.data as unknown[]).length >= 7, "the VMs it may read are there");
    const limitedMonitor = new MonitorClient(credential, t.emulator.subscriptionId, options);
    await assert.rejects(
      async () => {
        for await (const _ of limitedMonitor.activityLogs.list(
          `eventTimestamp ge '${since}' and resourceGroupName eq '${t.resourceGroup}'`,
        )) {
          // drain
        }
      },
      { statusCode: 403 },
    );
    // The SDK's pager drops the ARM error body; the answer itself names the missing action.
    const raw = await armFetch<{ error: { code: string; message: string } }>(
      { emulator: t.emulator, credential },
      "GET",
      `/subscriptions/${t.emulator.subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values?$filter=${encodeURIComponent(`eventTimestamp ge '${since}' and resourceGroupName eq '${t.resourceGroup}'`)}`,
      undefined,
      "2015-04-01",
    );
    assert.equal(raw.body.error.code, "AuthorizationFailed");
    assert.match(raw.body.error.message, /Microsoft\.Insights\/eventtypes\/values\/read/);
  });
});
