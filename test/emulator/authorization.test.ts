// Role assignments and role definitions through ARM, as Pulumi's azure-native and az use them.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ComputeManagementClient } from "@azure/arm-compute";
import {
  CONTRIBUTOR_ROLE_ID,
  createTestPrincipal,
  emulatorCredential,
  LEAST_PRIVILEGE_ACTIONS,
  OWNER_ROLE_ID,
  startTestEmulator,
  type TestEmulator,
} from "../../emulator/testing";
import { armFetch, rgPath } from "./helpers";

const API = "2022-04-01";
type Assignment = {
  id: string;
  name: string;
  properties: { principalId: string; roleDefinitionId: string; scope: string; principalType: string };
};

describe("emulator: role assignments and definitions", () => {
  let owner: TestEmulator;
  const subscriptionScope = () => `/subscriptions/${owner.emulator.subscriptionId}`;

  before(async () => {
    // The deployer: Owner on the subscription (like the person running `pulumi up`).
    owner = await startTestEmulator({}, { role: "none" });
    await owner.control.addRoleAssignment({
      principalId: owner.principal.objectId,
      roleDefinitionId: `${subscriptionScope()}/providers/Microsoft.Authorization/roleDefinitions/${OWNER_ROLE_ID}`,
      scope: subscriptionScope(),
    });
  });
  after(() => owner.emulator.stop());

  it("creates, reads, lists and deletes a Contributor assignment for a new service principal", async () => {
    const sp = await createTestPrincipal();
    await owner.control.addPrincipal({
      clientId: sp.clientId,
      objectId: sp.objectId,
      certificatePem: sp.certificatePem,
    });
    const name = randomUUID();
    const url = `${rgPath(owner)}/providers/Microsoft.Authorization/roleAssignments/${name}`;
    const roleDefinitionId = `${subscriptionScope()}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`;
    const created = await armFetch<Assignment>(
      owner,
      "PUT",
      url,
      { properties: { roleDefinitionId, principalId: sp.objectId, principalType: "ServicePrincipal" } },
      API,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.id, url);
    assert.equal(created.body.properties.scope, rgPath(owner));
    assert.equal(created.body.properties.roleDefinitionId, roleDefinitionId);

    assert.equal((await armFetch<Assignment>(owner, "GET", url, undefined, API)).body.name, name);
    const listed = await armFetch<{ value: Assignment[] }>(
      owner,
      "GET",
      `${rgPath(owner)}/providers/Microsoft.Authorization/roleAssignments?$filter=${encodeURIComponent(`principalId eq '${sp.objectId}'`)}`,
      undefined,
      API,
    );
    assert.deepEqual(
      listed.body.value.map((a) => a.name),
      [name],
    );

    const again = await armFetch<{ error: { code: string } }>(
      owner,
      "PUT",
      `${rgPath(owner)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`,
      { properties: { roleDefinitionId, principalId: sp.objectId } },
      API,
    );
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "RoleAssignmentExists");

    // The new principal can now use the resource group.
    const compute = new ComputeManagementClient(
      emulatorCredential(owner.emulator, sp),
      owner.emulator.subscriptionId,
      { endpoint: owner.emulator.armEndpoint },
    );
    await compute.virtualMachines.instanceView(owner.resourceGroup, "ubuntu-backup-server-spot");

    assert.equal((await armFetch(owner, "DELETE", url, undefined, API)).status, 200);
    assert.equal((await armFetch(owner, "DELETE", url, undefined, API)).status, 204);
    assert.equal((await armFetch(owner, "GET", url, undefined, API)).status, 404);
    await assert.rejects(
      compute.virtualMachines.instanceView(owner.resourceGroup, "ubuntu-backup-server-spot"),
      /AuthorizationFailed|does not have authorization/,
    );
  });

  it("refuses an unknown principal with PrincipalNotFound and an unknown role", async () => {
    const url = `${rgPath(owner)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`;
    const unknownPrincipal = await armFetch<{ error: { code: string } }>(
      owner,
      "PUT",
      url,
      { properties: { roleDefinitionId: CONTRIBUTOR_ROLE_ID, principalId: randomUUID() } },
      API,
    );
    assert.equal(unknownPrincipal.status, 400);
    assert.equal(unknownPrincipal.body.error.code, "PrincipalNotFound");
    // With principalType ARM does not look the principal up: an object id that is no service principal
    // (say, the application's) is accepted, and the assignment then grants nobody anything.
    const notLookedUp = await armFetch<{ properties: { principalId: string } }>(
      owner,
      "PUT",
      url,
      {
        properties: {
          roleDefinitionId: CONTRIBUTOR_ROLE_ID,
          principalId: randomUUID(),
          principalType: "ServicePrincipal",
        },
      },
      API,
    );
    assert.equal(notLookedUp.status, 201);
    const unknownRole = await armFetch<{ error: { code: string } }>(
      owner,
      "PUT",
      url,
      { properties: { roleDefinitionId: randomUUID(), principalId: owner.principal.objectId } },
      API,
    );
    assert.equal(unknownRole.body.error.code, "RoleDefinitionDoesNotExist");
  });

  it("creates a least-privilege custom role, assigns it, and enforces exactly its actions", async () => {
    const roleName = randomUUID();
    const definitionUrl = `${subscriptionScope()}/providers/Microsoft.Authorization/roleDefinitions/${roleName}`;
    const definition = await armFetch<{ id: string; properties: { roleName: string; type: string } }>(
      owner,
      "PUT",
      definitionUrl,
      {
        properties: {
          roleName: "spot-restarter-least-privilege",
          type: "CustomRole",
          description: "start evicted Spot VMs",
          permissions: [{ actions: LEAST_PRIVILEGE_ACTIONS, notActions: [] }],
          assignableScopes: [rgPath(owner)],
        },
      },
      API,
    );
    assert.equal(definition.status, 201, JSON.stringify(definition.body));
    assert.equal(definition.body.id, definitionUrl);
    assert.equal(definition.body.properties.type, "CustomRole");

    const sp = await createTestPrincipal();
    await owner.control.addPrincipal({
      clientId: sp.clientId,
      objectId: sp.objectId,
      certificatePem: sp.certificatePem,
    });
    const assignmentUrl = `${rgPath(owner)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`;
    const assigned = await armFetch(
      owner,
      "PUT",
      assignmentUrl,
      {
        properties: {
          roleDefinitionId: definition.body.id,
          principalId: sp.objectId,
          principalType: "ServicePrincipal",
        },
      },
      API,
    );
    assert.equal(assigned.status, 201);

    const compute = new ComputeManagementClient(
      emulatorCredential(owner.emulator, sp),
      owner.emulator.subscriptionId,
      { endpoint: owner.emulator.armEndpoint },
    );
    await compute.virtualMachines.instanceView(owner.resourceGroup, "ubuntu-backup-server-spot");
    await assert.rejects(
      compute.virtualMachines.beginDeallocateAndWait(owner.resourceGroup, "vpn-gateway-vm"),
      /deallocate\/action/,
    );

    const inUse = await armFetch<{ error: { code: string } }>(owner, "DELETE", definitionUrl, undefined, API);
    assert.equal(inUse.body.error.code, "RoleDefinitionHasAssignments");
    await armFetch(owner, "DELETE", assignmentUrl, undefined, API);
    assert.equal((await armFetch(owner, "DELETE", definitionUrl, undefined, API)).status, 200);
  });

  it("finds built-in roles by name, as az role assignment create does", async () => {
    const listed = await armFetch<{ value: Array<{ name: string; id: string }> }>(
      owner,
      "GET",
      `${subscriptionScope()}/providers/Microsoft.Authorization/roleDefinitions?$filter=${encodeURIComponent("roleName eq 'Contributor'")}`,
      undefined,
      API,
    );
    assert.deepEqual(
      listed.body.value.map((d) => d.name),
      [CONTRIBUTOR_ROLE_ID],
    );
    assert.equal(
      listed.body.value[0]?.id,
      `${subscriptionScope()}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
    );
  });

  it("does not let a Contributor create role assignments", async () => {
    const contributor = await startTestEmulator({}, { role: "contributor" });
    try {
      const response = await armFetch<{ error: { code: string } }>(
        contributor,
        "PUT",
        `${rgPath(contributor)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`,
        {
          properties: { roleDefinitionId: CONTRIBUTOR_ROLE_ID, principalId: contributor.principal.objectId },
        },
        API,
      );
      assert.equal(response.status, 403);
      assert.equal(response.body.error.code, "AuthorizationFailed");
    } finally {
      await contributor.emulator.stop();
    }
  });

  it("emulates Entra replication delay when principalType is missing (principalReplicationSeconds)", async () => {
    const delayed = await startTestEmulator(
      { timing: { principalReplicationSeconds: 60 } },
      { role: "none" },
    );
    try {
      await delayed.control.addRoleAssignment({
        principalId: delayed.principal.objectId,
        roleDefinitionId: OWNER_ROLE_ID,
        scope: `/subscriptions/${delayed.emulator.subscriptionId}`,
      });
      const sp = await createTestPrincipal();
      await delayed.control.addPrincipal({
        clientId: sp.clientId,
        objectId: sp.objectId,
        certificatePem: sp.certificatePem,
      });
      const put = (principalType?: string) =>
        armFetch<{ error?: { code: string } }>(
          delayed,
          "PUT",
          `${rgPath(delayed)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`,
          {
            properties: {
              roleDefinitionId: CONTRIBUTOR_ROLE_ID,
              principalId: sp.objectId,
              ...(principalType ? { principalType } : {}),
            },
          },
          API,
        );
      assert.equal((await put()).body.error?.code, "PrincipalNotFound");
      assert.equal((await put("ServicePrincipal")).status, 201);
    } finally {
      await delayed.emulator.stop();
    }
  });

  it("a custom role created moments ago cannot be assigned yet: 400 RoleDefinitionDoesNotExist (roleDefinitionReplicationSeconds)", async () => {
    // ARM's answer while a new role replicates, as terraform-provider-azurerm#10442 and pulumi-azure#840
    // quote it: "The specified role definition with ID '…' does not exist."
    const DELAY_SECONDS = 2;
    const delayed = await startTestEmulator(
      { timing: { roleDefinitionReplicationSeconds: DELAY_SECONDS } },
      { role: "none" },
    );
    try {
      await delayed.control.addRoleAssignment({
        principalId: delayed.principal.objectId,
        roleDefinitionId: OWNER_ROLE_ID,
        scope: `/subscriptions/${delayed.emulator.subscriptionId}`,
      });
      const guid = randomUUID();
      const defined = await armFetch(
        delayed,
        "PUT",
        `${rgPath(delayed)}/providers/Microsoft.Authorization/roleDefinitions/${guid}`,
        {
          properties: {
            roleName: `replicating-${guid.slice(0, 8)}`,
            type: "CustomRole",
            permissions: [{ actions: LEAST_PRIVILEGE_ACTIONS, notActions: [] }],
            assignableScopes: [rgPath(delayed)],
          },
        },
        API,
      );
      assert.equal(defined.status, 201, JSON.stringify(defined.body));
      const definedAt = Date.now();
      const assign = () =>
        armFetch<{ error?: { code: string; message: string } }>(
          delayed,
          "PUT",
          `${rgPath(delayed)}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`,
          {
            properties: {
              roleDefinitionId: `/subscriptions/${delayed.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${guid}`,
              principalId: delayed.principal.objectId,
              principalType: "ServicePrincipal",
            },
          },
          API,
        );
      const early = await assign();
      assert.equal(early.status, 400);
      assert.equal(early.body.error?.code, "RoleDefinitionDoesNotExist");
      assert.equal(
        early.body.error?.message,
        `The specified role definition with ID '${guid}' does not exist.`,
      );
      // Once it has replicated, the same assignment goes through.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, definedAt + DELAY_SECONDS * 1000 + 200 - Date.now())),
      );
      const late = await assign();
      assert.equal(late.status, 201, JSON.stringify(late.body));
    } finally {
      await delayed.emulator.stop();
    }
  });
});
