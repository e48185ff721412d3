// Replication as Azure shows it after `pulumi up`: a principal, a certificate or a role assignment created
// moments ago does not work yet (seed timing.signInReplicationSeconds / roleAssignmentReplicationSeconds),
// then does. Entra's real answers: AADSTS700016 "Application with identifier '…' was not found in the
// directory '…'" and AADSTS700027 "The certificate with identifier used to sign the client assertion is not
// registered on application" (both as emulator/entra.ts sends them, from Entra ID's documented error
// catalogue, learn.microsoft.com/entra/identity-platform/reference-error-codes); ARM's 403
// AuthorizationFailed "… If access was recently granted, please refresh your credentials.".
// The runtime's `run` rides them out instead of exiting.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ClientCertificateCredential } from "@azure/identity";
import {
  ARM_SCOPE,
  CONTRIBUTOR_ROLE_ID,
  createTestPrincipal,
  type TestPrincipal,
} from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { type Row, sleep, spawnRuntime, spotVm, startRow } from "../faults/harness";
import { armFetch } from "./helpers";

const DELAY_SECONDS = 3;

describe("emulator: replication delays", () => {
  let row: Row;
  let fresh: TestPrincipal;
  let addedAt: number;
  before(async () => {
    row = await startRow([spotVm("evicted")], {
      timing: { signInReplicationSeconds: DELAY_SECONDS, roleAssignmentReplicationSeconds: DELAY_SECONDS },
    });
    // What `pulumi up` just made: a new principal with its certificate, and its role assignment.
    fresh = await createTestPrincipal();
    addedAt = Date.now();
    await row.control.addPrincipal({
      clientId: fresh.clientId,
      objectId: fresh.objectId,
      certificatePem: fresh.certificatePem,
    });
    await row.control.addRoleAssignment({
      principalId: fresh.objectId,
      roleDefinitionId: `/subscriptions/${row.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope: `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/personal-network`,
    });
  });
  after(() => row.close());

  const credentialOf = (principal: TestPrincipal) =>
    new ClientCertificateCredential(
      row.emulator.tenantId,
      principal.clientId,
      { certificate: principal.pem },
      { authorityHost: row.emulator.authorityHost, disableInstanceDiscovery: true },
    );

  it("the seeded principal and role work at once; the new ones only after the delay", async () => {
    // Seeded: works immediately.
    const seeded = await armFetch(row, "GET", "/subscriptions/x".replace("x", row.emulator.subscriptionId));
    assert.notEqual(seeded.status, 401);
    // New principal: AADSTS700016 at first.
    await assert.rejects(credentialOf(fresh).getToken(ARM_SCOPE), /AADSTS700016/);
    await sleep(Math.max(0, addedAt + DELAY_SECONDS * 1000 + 300 - Date.now()));
    const token = await credentialOf(fresh).getToken(ARM_SCOPE);
    assert.ok(token?.token);
  });

  it("a new certificate on a known principal: AADSTS700027 until it has replicated", async () => {
    const rolled = await createTestPrincipal();
    // The same application gets a second certificate (a renewal): the old one keeps working.
    await row.control.addPrincipal({
      clientId: row.principal.clientId,
      objectId: row.principal.objectId,
      certificatePem: rolled.certificatePem,
    });
    const renewed = { ...rolled, clientId: row.principal.clientId, objectId: row.principal.objectId };
    await assert.rejects(credentialOf(renewed).getToken(ARM_SCOPE), /AADSTS700027/);
    assert.ok(
      (await credentialOf(row.principal).getToken(ARM_SCOPE))?.token,
      "the old certificate still works",
    );
    await sleep(DELAY_SECONDS * 1000 + 300);
    assert.ok((await credentialOf(renewed).getToken(ARM_SCOPE))?.token);
  });
});

describe("run rides out a principal and role that are still replicating", () => {
  // Longer than the runtime's own start-up on a loaded machine, so it meets the delay.
  const RUN_DELAY_SECONDS = 8;
  let row: Row;
  before(async () => {
    await buildRuntimeBundle();
    row = await startRow([spotVm("evicted")], {
      role: "none",
      timing: {
        signInReplicationSeconds: RUN_DELAY_SECONDS,
        roleAssignmentReplicationSeconds: RUN_DELAY_SECONDS,
      },
    });
  });
  after(() => row.close());

  it("keeps running, says what it waits for, and restarts the VM once Azure caught up", async () => {
    const fresh = await createTestPrincipal();
    await row.control.addPrincipal({
      clientId: fresh.clientId,
      objectId: fresh.objectId,
      certificatePem: fresh.certificatePem,
    });
    await row.control.addRoleAssignment({
      principalId: fresh.objectId,
      roleDefinitionId: `/subscriptions/${row.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope: `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/personal-network`,
    });
    const pemPath = join(row.dir, "fresh.pem");
    writeFileSync(pemPath, fresh.pem, { mode: 0o600 });
    writeFileSync(
      row.configPath,
      JSON.stringify({ ...row.configFile, clientId: fresh.clientId, certificatePath: "fresh.pem" }),
    );
    const runtime = await spawnRuntime(row);
    await row.waitForVm("evicted", "running", 30_000);
    const exit = await runtime.stop();
    assert.equal(exit.code, 0, runtime.stderr());
    assert.match(runtime.stderr(), /AADSTS700016[^\n]*takes minutes to reach Entra ID: starting anyway/);
  });
});

describe("run rides out a role assignment that is still replicating (403 right after install)", () => {
  // The principal signs in at once (seeded); only its role assignment, made at run time, waits.
  const ROLE_DELAY_SECONDS = 8;
  let row: Row;
  before(async () => {
    await buildRuntimeBundle();
    row = await startRow([spotVm("evicted")], {
      role: "none",
      timing: { roleAssignmentReplicationSeconds: ROLE_DELAY_SECONDS },
    });
  });
  after(() => row.close());

  it("keeps running, logs the missing action and scope once, and restarts the VM once the role works", async () => {
    const scope = `/subscriptions/${row.emulator.subscriptionId}/resourceGroups/personal-network`;
    await row.control.addRoleAssignment({
      principalId: row.principal.objectId,
      roleDefinitionId: `/subscriptions/${row.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope,
    });
    const grantedAt = Date.now();
    const runtime = await spawnRuntime(row);
    const waiting = await runtime.waitFor("permission-missing");
    // The action by its full name, the scope a role must cover, and that it keeps going.
    assert.match(waiting.msg, /lacks the permission Microsoft\.Compute\/virtualMachines\/read/);
    assert.equal(waiting.scope, scope);
    assert.match(waiting.msg, /still running/);
    // What to check if it lasts: the object id the role must name (the service principal's, from its token).
    assert.ok(
      waiting.msg.includes(`object id ${row.principal.objectId}, not the application's`),
      waiting.msg,
    );
    await row.waitForVm("evicted", "running", 30_000);
    assert.ok(Date.now() - grantedAt >= ROLE_DELAY_SECONDS * 1000, "not before the role replicated");
    const works = await runtime.waitFor("permission-restored");
    assert.match(works.msg, /permissions work again \(Microsoft\.Compute\/virtualMachines\/read\)/);
    assert.equal(runtime.child.exitCode, null, `run exited:\n${runtime.stderr()}`);
    const exit = await runtime.stop();
    assert.equal(exit.code, 0, runtime.stderr());
    // Said once, not once per cycle (a cycle a second, backing off, for the 8 s it waited).
    assert.equal(runtime.events("permission-missing").length, 1, runtime.stderr());
    assert.equal(runtime.events("permission-restored").length, 1, runtime.stderr());
    assert.equal((await row.startRequests("evicted")).length, 1);
    // Backing off: far fewer refused lists than the 8 one-second cycles it would otherwise have made.
    const refused = (await row.armRequests()).filter((request) => request.status === 403);
    assert.ok(refused.length >= 2 && refused.length <= 5, `${refused.length} refused requests`);
  });
});
