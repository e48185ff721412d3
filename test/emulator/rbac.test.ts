// RBAC: what Contributor, Reader, a least-privilege custom role and no role may do.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import { actionMatches, roleAllows, scopeContains } from "../../emulator/rbac";
import {
  LEAST_PRIVILEGE_ACTIONS,
  READER_ROLE_ID,
  startTestEmulator,
  type TestEmulator,
} from "../../emulator/testing";
import { armFetch, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";

describe("emulator: RBAC rules (pure)", () => {
  it("matches actions case-insensitively with * anywhere", () => {
    assert.ok(actionMatches("*", "Microsoft.Compute/virtualMachines/start/action"));
    assert.ok(actionMatches("*/read", "Microsoft.Compute/virtualMachines/read"));
    assert.ok(!actionMatches("*/read", "Microsoft.Compute/virtualMachines/start/action"));
    assert.ok(
      actionMatches("Microsoft.Compute/virtualMachines/*", "microsoft.compute/VIRTUALMACHINES/start/action"),
    );
    assert.ok(
      actionMatches("Microsoft.Compute/*/read", "Microsoft.Compute/virtualMachines/instanceView/read"),
    );
    assert.ok(
      !actionMatches(
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/instanceView/read",
      ),
    );
  });
  it("subtracts notActions (Contributor cannot write role assignments)", () => {
    const contributor = {
      actions: ["*"],
      notActions: ["Microsoft.Authorization/*/Write", "Microsoft.Authorization/*/Delete"],
    };
    assert.ok(roleAllows(contributor, "Microsoft.Resources/tags/write"));
    assert.ok(!roleAllows(contributor, "Microsoft.Authorization/roleAssignments/write"));
    assert.ok(roleAllows(contributor, "Microsoft.Authorization/roleAssignments/read"));
  });
  it("covers a scope and its descendants only, by whole segments", () => {
    assert.ok(
      scopeContains(
        "/subscriptions/s/resourceGroups/rg",
        "/subscriptions/s/resourcegroups/RG/providers/x/y/z",
      ),
    );
    assert.ok(!scopeContains("/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2"));
    assert.ok(scopeContains("/", "/subscriptions/s"));
  });
});

async function expectForbidden(promise: Promise<unknown>, action: string): Promise<void> {
  await assert.rejects(promise, (error: { statusCode?: number; code?: string; message?: string }) => {
    assert.equal(error.statusCode, 403);
    assert.equal(error.code, "AuthorizationFailed");
    // The paging helper replaces the message ("Pagination failed with unexpected statusCode 403").
    if (!error.message?.startsWith("Pagination failed"))
      assert.ok(error.message?.includes(`'${action}'`), error.message);
    return true;
  });
}

for (const [role, allowed] of [
  ["contributor", { list: true, view: true, start: true, tags: true }],
  ["reader", { list: true, view: true, start: false, tags: false }],
  ["least-privilege", { list: true, view: true, start: true, tags: false }],
  ["none", { list: false, view: false, start: false, tags: false }],
] as const) {
  describe(`emulator: RBAC enforcement for ${role}`, () => {
    let t: TestEmulator;
    let compute: ComputeManagementClient;
    before(async () => {
      t = await startTestEmulator({ timing: { startSeconds: 0 } }, { role });
      compute = new ComputeManagementClient(t.credential, t.emulator.subscriptionId, {
        endpoint: t.emulator.armEndpoint,
      });
    });
    after(() => t.emulator.stop());

    it(`${allowed.list ? "may" : "may not"} list VMs`, async () => {
      const listing = (async () => {
        for await (const _vm of compute.virtualMachines.list(t.resourceGroup));
      })();
      if (allowed.list) await listing;
      else await expectForbidden(listing, "Microsoft.Compute/virtualMachines/read");
    });

    it(`${allowed.view ? "may" : "may not"} read the instance view`, async () => {
      const view = compute.virtualMachines.instanceView(t.resourceGroup, BACKUP);
      if (allowed.view) await view;
      else await expectForbidden(view, "Microsoft.Compute/virtualMachines/instanceView/read");
    });

    it(`${allowed.start ? "may" : "may not"} start a VM`, async () => {
      const start = compute.virtualMachines.beginStartAndWait(t.resourceGroup, BACKUP, {
        updateIntervalInMs: 50,
      });
      if (allowed.start) await start;
      else await expectForbidden(start, "Microsoft.Compute/virtualMachines/start/action");
    });

    it(`${allowed.tags ? "may" : "may not"} write tags`, async () => {
      const response = await armFetch<{ error?: { code: string } }>(
        t,
        "PATCH",
        `${vmPath(t, BACKUP)}/providers/Microsoft.Resources/tags/default`,
        { operation: "Merge", properties: { tags: { owner: "test" } } },
        "2021-04-01",
      );
      assert.equal(response.status, allowed.tags ? 200 : 403);
    });

    it("has no access to another resource group's scope", async () => {
      const response = await armFetch<{ error: { code: string } }>(
        t,
        "GET",
        `/subscriptions/${t.emulator.subscriptionId}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines`,
      );
      assert.equal(response.status, 403);
      assert.equal(response.body.error.code, "AuthorizationFailed");
    });
  });
}

describe("emulator: following a start needs Microsoft.Compute/locations/operations/read", () => {
  const withoutOperationsRead = [
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/instanceView/read",
    "Microsoft.Compute/virtualMachines/start/action",
  ];
  let lacking: TestEmulator;
  let full: TestEmulator;
  before(async () => {
    [lacking, full] = await Promise.all([
      startTestEmulator({}, { role: "least-privilege", actions: withoutOperationsRead }),
      startTestEmulator({}, { role: "least-privilege" }),
    ]);
  });
  after(async () => {
    await Promise.all([lacking.emulator.stop(), full.emulator.stop()]);
  });

  async function startAndPoll(t: TestEmulator) {
    const start = await armFetch(t, "POST", `${vmPath(t, BACKUP)}/start`);
    const statusUrl = start.headers.get("azure-asyncoperation") ?? start.headers.get("location") ?? "";
    const poll = await armFetch<{ error?: { code: string; message: string }; status?: string }>(
      t,
      "GET",
      new URL(statusUrl).pathname + new URL(statusUrl).search,
    );
    return { start, poll, statusUrl };
  }

  it("a role without it: the start is accepted (202), its status poll is refused with 403 naming the action", async () => {
    const { start, poll, statusUrl } = await startAndPoll(lacking);
    assert.equal(start.status, 202);
    assert.match(statusUrl, /\/providers\/Microsoft\.Compute\/locations\/[^/]+\/operations\/[^/?]+/);
    assert.equal(poll.status, 403);
    assert.equal(poll.body.error?.code, "AuthorizationFailed");
    assert.match(
      poll.body.error?.message ?? "",
      /does not have authorization to perform action 'Microsoft\.Compute\/locations\/operations\/read' over scope '\/subscriptions\/[^']+\/providers\/Microsoft\.Compute\/locations\/[^']+\/operations\//,
    );
    assert.equal((await lacking.control.vm(lacking.resourceGroup, BACKUP))?.startRequests, 1, "it did start");
  });

  it("the least-privilege role (which has it) polls to the outcome", async () => {
    const { start, poll } = await startAndPoll(full);
    assert.equal(start.status, 202);
    assert.equal(poll.status, 200, JSON.stringify(poll.body));
  });

  it("the SDK's poller fails on the poll, after ARM accepted the start", async () => {
    const client = new ComputeManagementClient(lacking.credential, lacking.emulator.subscriptionId, {
      endpoint: lacking.emulator.armEndpoint,
    });
    const poller = await client.virtualMachines.beginStart(lacking.resourceGroup, BACKUP, {
      updateIntervalInMs: 50,
    });
    await expectForbidden(poller.pollUntilDone(), "Microsoft.Compute/locations/operations/read");
  });
});

describe("emulator: the Permissions API (what the caller may do at a resource group)", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator({}, { role: "least-privilege" });
  });
  after(() => t.emulator.stop());

  it("lists the caller's own role permissions at the group, as Permissions_ListForResourceGroup does", async () => {
    const answer = await armFetch<{ value: Array<Record<string, string[]>> }>(
      t,
      "GET",
      `/subscriptions/${t.emulator.subscriptionId}/resourcegroups/${t.resourceGroup}/providers/Microsoft.Authorization/permissions`,
      undefined,
      "2022-04-01",
    );
    assert.equal(answer.status, 200);
    assert.equal(answer.body.value.length, 1);
    assert.deepEqual(answer.body.value[0]?.actions, [...LEAST_PRIVILEGE_ACTIONS]);
    assert.deepEqual(answer.body.value[0]?.notActions, []);
    assert.deepEqual(answer.body.value[0]?.dataActions, []);
  });

  it("is authorized as Microsoft.Authorization/permissions/read: 403 AuthorizationFailed without it", async () => {
    const without = await startTestEmulator(
      {},
      {
        role: "least-privilege",
        actions: LEAST_PRIVILEGE_ACTIONS.filter((a) => a !== "Microsoft.Authorization/permissions/read"),
      },
    );
    try {
      const answer = await armFetch<{ error: { code: string; message: string } }>(
        without,
        "GET",
        `/subscriptions/${without.emulator.subscriptionId}/resourcegroups/${without.resourceGroup}/providers/Microsoft.Authorization/permissions`,
        undefined,
        "2022-04-01",
      );
      assert.equal(answer.status, 403);
      assert.equal(answer.body.error.code, "AuthorizationFailed");
      assert.match(answer.body.error.message, /'Microsoft\.Authorization\/permissions\/read'/);
    } finally {
      await without.emulator.stop();
    }
  });

  it("answers 404 ResourceGroupNotFound for a group that does not exist, to a caller with access above it", async () => {
    // ARM checks access before existence: only a role at the subscription lets it say the group is missing.
    await t.control.addRoleAssignment({
      principalId: t.principal.objectId,
      principalType: "ServicePrincipal",
      roleDefinitionId: `/subscriptions/${t.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${READER_ROLE_ID}`,
      scope: `/subscriptions/${t.emulator.subscriptionId}`,
    });
    const answer = await armFetch<{ error: { code: string; message: string } }>(
      t,
      "GET",
      `/subscriptions/${t.emulator.subscriptionId}/resourcegroups/no-such-group/providers/Microsoft.Authorization/permissions`,
      undefined,
      "2022-04-01",
    );
    assert.equal(answer.status, 404);
    assert.equal(answer.body.error.code, "ResourceGroupNotFound");
    assert.equal(answer.body.error.message, "Resource group 'no-such-group' could not be found.");
  });
});
