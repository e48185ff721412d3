// `install` right after `pulumi up`, against the emulator with Azure's replication delays on (seed
// timing.signInReplicationSeconds / roleAssignmentReplicationSeconds): the new service principal is not
// known to Entra ID yet (AADSTS700016 "Application with identifier '…' was not found in the directory",
// learn.microsoft.com/entra/identity-platform/reference-error-codes) and its new role assignment is not
// applied by ARM yet (403 AuthorizationFailed; the Permissions API leaves it out). The installer's
// verification (the real bundle's `doctor`, over HTTPS, with the real Azure SDK clients) waits for both
// with a progress line saying what it waits for, bounded by --verify-wait-seconds, then succeeds; past the
// bound it fails, saying what is still missing and how long it waited.
import "reflect-metadata"; // before the emulator: @peculiar/x509 needs it loaded first
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { type RunningEmulator, startEmulator } from "../../emulator/index";
import { CONTRIBUTOR_ROLE_ID, type EmulatorControl, emulatorControl } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import {
  createTestCertificate,
  removeTempDirs,
  runBundle,
  stackOutputsFor,
  type TestCertificate,
  tempDir,
} from "./fixtures";

// Long enough that the installer's first `doctor` (after it copied and wrote its files, on a loaded
// machine) meets each delay.
const SIGN_IN_DELAY_SECONDS = 8;
const ROLE_DELAY_SECONDS = 16;
const base = stackOutputsFor({ pem: "", notAfter: new Date() });
const group = `/subscriptions/${base.subscriptionId}/resourceGroups/${base.resourceGroupName}`;

let bundle: string;
let emulator: RunningEmulator;
let control: EmulatorControl;
/** Made in `before`, so Entra ID knows it by the time the second test assigns its role. */
let known: Awaited<ReturnType<typeof newPrincipal>>;
const certificates: TestCertificate[] = [];
const printed: string[] = [];

before(async () => {
  bundle = await buildRuntimeBundle();
  emulator = await startEmulator({
    tenantId: base.tenantId,
    subscriptionId: base.subscriptionId,
    resourceGroups: [{ name: base.resourceGroupName }],
    virtualMachines: [
      {
        resourceGroup: base.resourceGroupName,
        name: "ubuntu-backup-server-spot",
        priority: "Spot",
        evictionPolicy: "Deallocate",
        maxPrice: -1,
        powerState: "deallocated",
        tags: { AttemptRestartAfterEviction: "true" },
      },
    ],
    timing: {
      signInReplicationSeconds: SIGN_IN_DELAY_SECONDS,
      roleAssignmentReplicationSeconds: ROLE_DELAY_SECONDS,
    },
  });
  control = emulatorControl(emulator.armEndpoint, { caCertPem: emulator.caCertPem });
  known = await newPrincipal();
});

after(async () => {
  await emulator?.stop();
  const all = printed.join("");
  for (const material of certificates) {
    for (const line of material.keyLines) assert.ok(!all.includes(line), "private key material was printed");
  }
  removeTempDirs();
});

/** What `pulumi up` has just made: an application + service principal with its certificate. */
async function newPrincipal() {
  const certificate = await createTestCertificate();
  certificates.push(certificate);
  const principal = { clientId: randomUUID(), objectId: randomUUID() };
  await control.addPrincipal({ ...principal, certificatePem: certificate.certificatePem });
  return { ...principal, certificate, addedAt: Date.now() };
}

/** …and its role assignment at the resource group. */
function assignContributor(objectId: string) {
  return control.addRoleAssignment({
    principalId: objectId,
    principalType: "ServicePrincipal",
    roleDefinitionId: `/subscriptions/${base.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
    scope: group,
  });
}

async function install(principal: { clientId: string; certificate: TestCertificate }, waitSeconds: number) {
  const outputs = stackOutputsFor(principal.certificate, {
    clientId: principal.clientId,
    cloud: { authorityHost: emulator.authorityHost, armEndpoint: emulator.armEndpoint },
  });
  const result = await runBundle(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      tempDir("root"),
      "--extra-ca-certs",
      emulator.caCertFile,
      "--verify-wait-seconds",
      String(waitSeconds),
    ],
    { stdin: JSON.stringify(outputs) },
  );
  printed.push(result.stdout, result.stderr);
  return result;
}

const progress = /^ {2}waiting for (.+): (\d+) s of at most (\d+) s \(attempt (\d+)\)$/gm;

test("install waits for the new principal and role assignment, saying what it waits for, then passes", async () => {
  const principal = await newPrincipal();
  await assignContributor(principal.objectId);
  const startedAt = Date.now();
  const result = await install(principal, 60);
  const said = `${result.stdout}\n${result.stderr}`;
  assert.equal(result.code, 0, said);
  assert.ok(Date.now() - startedAt >= ROLE_DELAY_SECONDS * 1000, "it cannot pass before the role works");
  const lines = [...result.stdout.matchAll(progress)];
  const waitedFor = lines.map((line) => line[1] ?? "");
  // First Entra ID, then ARM: each named (the checks it holds back listed once), with the time and the bound.
  const signIn = waitedFor.findIndex((what) =>
    what.includes("Entra ID to know the new service principal (AADSTS700016)"),
  );
  const role = waitedFor.findIndex((what) =>
    /^Azure Resource Manager to apply the new role assignment \(permissions on personal-network(, VMs in personal-network)?\)$/.test(
      what,
    ),
  );
  assert.ok(signIn >= 0 && role > signIn, `waited for:\n${waitedFor.join("\n")}`);
  // One line per attempt, numbered, within the bound, spaced (not a line per second for 60 s).
  assert.deepEqual(
    lines.map((line) => Number(line[4])),
    lines.map((_, i) => i + 1),
  );
  assert.ok(lines.every((line) => line[3] === "60" && Number(line[2]) <= 60));
  assert.ok(lines.length <= 10, `${lines.length} progress lines`);
  assert.match(result.stdout, /ok: doctor passed: .*1 tagged Spot VM\(s\) restartable/);
});

test("past --verify-wait-seconds it fails, naming what is still missing and how long it waited", async () => {
  // Entra ID knows this principal by now (made before the first test); its role assignment, made now,
  // does not replicate within the bound.
  const principal = known;
  await new Promise((resolve) =>
    setTimeout(resolve, Math.max(0, principal.addedAt + SIGN_IN_DELAY_SECONDS * 1000 + 500 - Date.now())),
  );
  await assignContributor(principal.objectId);
  const startedAt = Date.now();
  const result = await install(principal, 6);
  const said = `${result.stdout}\n${result.stderr}`;
  assert.equal(result.code, 1, said);
  assert.ok(Date.now() - startedAt < ROLE_DELAY_SECONDS * 1000, "bounded: it gave up before the role worked");
  assert.match(
    result.stdout,
    /waiting for Azure Resource Manager to apply the new role assignment \(permissions on personal-network[^)]*\): \d+ s of at most 6 s \(attempt 1\)/,
  );
  assert.match(
    result.stderr,
    // Before the assignment applies, ARM refuses doctor's own Permissions API call (permissions/read).
    /verification failed: permissions on personal-network: .*Microsoft\.Authorization\/permissions\/read.*\(still so after waiting \d+ s\)/,
  );
  assert.doesNotMatch(result.stdout, /ok: doctor passed/);
});
