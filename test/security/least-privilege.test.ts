// The least-privilege role (runtime/src/azure/roleActions.ts; simulateEviction/action only when the owner opts
// in) is enough for every runtime command, and the emulator denies, with AuthorizationFailed, what it does not
// grant: deallocate, power off, delete, tag writes, role assignments, and by default simulateEviction.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ARM_SCOPE } from "../../emulator/testing";
import { leastPrivilegeActions } from "../../runtime/src/azure/roleActions";
import { type Row, resourceGroup, spawnRuntime, spotVm, startRow } from "../faults/harness";

describe("least privilege", () => {
  let row: Row;
  before(async () => {
    // The role `pulumi up` defines with spot-restarter:allowSimulateEviction true.
    row = await startRow([spotVm("evicted"), spotVm("live", { powerState: "running" })], {
      role: "least-privilege",
      actions: leastPrivilegeActions({ simulateEviction: true }),
      startSeconds: 0.3,
    });
  });
  after(() => row.close());

  it("by default cannot evict: simulate-eviction is refused and says how to enable it", async () => {
    const plain = await startRow([spotVm("live", { powerState: "running" })], { role: "least-privilege" });
    try {
      const evict = await plain.cli(["simulate-eviction", "--config", plain.configPath, "--vm", "live"]);
      assert.notEqual(evict.code, 0);
      assert.match(evict.stderr, /Microsoft\.Compute\/virtualMachines\/simulateEviction\/action/);
      assert.match(evict.stderr, /pulumi config set spot-restarter:allowSimulateEviction true && pulumi up/);
      assert.equal((await plain.control.vm(resourceGroup, "live"))?.powerState, "running");
    } finally {
      await plain.close();
    }
  });

  it("is enough for once, run, status and (opted in) simulate-eviction", async () => {
    const dry = await row.cli(["once", "--config", row.configPath, "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    const once = await row.cli(["once", "--config", row.configPath, "--json"]);
    assert.equal(once.code, 0, once.stderr);
    assert.equal(JSON.parse(once.stdout).starts.succeeded, 1);
    const status = await row.cli(["status", "--config", row.configPath, "--json"]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).errors.length, 0);
    const evict = await row.cli(["simulate-eviction", "--config", row.configPath, "--vm", "live"]);
    assert.equal(evict.code, 0, evict.stderr);
    assert.equal((await row.control.vm(resourceGroup, "live"))?.powerState, "deallocated");
    const runtime = await spawnRuntime(row);
    await row.waitForVm("live", "running", 15_000);
    const exit = await runtime.stop();
    assert.equal(exit.code, 0, runtime.stderr());
    const denied = (await row.armRequests()).filter((r) => r.status === 403);
    assert.deepEqual(denied, [], "no request of the runtime was denied");
  });

  describe("the emulator denies what the role does not grant", () => {
    const vmPath = (name: string) =>
      `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`;
    async function arm(method: string, path: string, body?: unknown) {
      const token = await row.credential.getToken(ARM_SCOPE);
      const response = await fetch(`${row.emulator.armEndpoint}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token?.token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return {
        status: response.status,
        code: text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined,
        text,
      };
    }
    const denials: Array<[string, () => [string, string, unknown?], string]> = [
      [
        "deallocate",
        () => ["POST", `${vmPath("live")}/deallocate?api-version=2024-07-01`],
        "deallocate/action",
      ],
      ["power off", () => ["POST", `${vmPath("live")}/powerOff?api-version=2024-07-01`], "powerOff/action"],
      ["delete", () => ["DELETE", `${vmPath("live")}?api-version=2024-07-01`], "virtualMachines/delete"],
      [
        "a tag write",
        () => [
          "PATCH",
          `${vmPath("live")}/providers/Microsoft.Resources/tags/default?api-version=2021-04-01`,
          { operation: "Merge", properties: { tags: { owned: "yes" } } },
        ],
        "tags/write",
      ],
      [
        "a role assignment",
        () => [
          "PUT",
          `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`,
          {
            properties: {
              roleDefinitionId: `/subscriptions/${row.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635`,
              principalId: row.principal.objectId,
              principalType: "ServicePrincipal",
            },
          },
        ],
        "roleAssignments/write",
      ],
    ];
    for (const [what, request, action] of denials) {
      it(`${what}: 403 AuthorizationFailed naming the action`, async () => {
        const [method, path, body] = request();
        const answer = await arm(method, path, body);
        assert.equal(answer.status, 403, `${what}: ${answer.status} ${answer.text}`);
        assert.equal(answer.code, "AuthorizationFailed");
        assert.match(answer.text, new RegExp(action.replace("/", "\\/")));
        assert.equal(
          (await row.control.vm(resourceGroup, "live"))?.powerState !== undefined,
          true,
          "still there",
        );
      });
    }

    it("while Contributor may delete (the denial is RBAC, not a missing route)", async () => {
      const contributor = await startRow([spotVm("doomed", { powerState: "running" })]);
      try {
        const token = await contributor.credential.getToken(ARM_SCOPE);
        const path = `/subscriptions/${contributor.emulator.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/doomed?api-version=2024-07-01`;
        const response = await fetch(`${contributor.emulator.armEndpoint}${path}`, {
          method: "DELETE",
          headers: { Authorization: `Bearer ${token?.token}` },
        });
        assert.equal(response.status, 200, await response.text());
        assert.equal(await contributor.control.vm(resourceGroup, "doomed"), undefined);
      } finally {
        await contributor.close();
      }
    });
  });
});
