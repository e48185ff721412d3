// A config written by install passes `doctor` against the emulator (the installer's own verification
// step), and the installed bundle run by hand logs in and lists the group; a group that does not exist or
// a certificate Entra ID does not know fails the verification, never "ok".
import "reflect-metadata"; // before the emulator: @peculiar/x509 needs it loaded first
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { chmodSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type RunningEmulator, startEmulator } from "../../emulator/index";
import { READER_ROLE_ID } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import {
  createTestCertificate,
  removeTempDirs,
  runBundle,
  stackOutputsFor,
  type TestCertificate,
  tempDir,
} from "./fixtures";

const CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c";

let bundle: string;
let certificate: TestCertificate;
let unregistered: TestCertificate;
let emulator: RunningEmulator;
const printed: string[] = [];

before(async () => {
  [bundle, certificate, unregistered] = await Promise.all([
    buildRuntimeBundle(),
    createTestCertificate(),
    createTestCertificate(),
  ]);
  const outputs = stackOutputsFor(certificate);
  const objectId = randomUUID();
  const group = `/subscriptions/${outputs.subscriptionId}/resourceGroups/${outputs.resourceGroupName}`;
  emulator = await startEmulator({
    tenantId: outputs.tenantId,
    subscriptionId: outputs.subscriptionId,
    principals: [{ clientId: outputs.clientId, objectId, certificatePem: certificate.certificatePem }],
    roleAssignments: [
      {
        principalId: objectId,
        roleDefinitionId: `/subscriptions/${outputs.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR}`,
        scope: group,
      },
      // Reader on the subscription too: ARM authorizes before it looks for the group, so only a caller that
      // may read at a scope above a missing group gets 404 ResourceGroupNotFound; with a role on the group
      // alone Azure answers 403 AuthorizationFailed, which verification rightly takes for a role assignment
      // still replicating (test/installer/replication.test.ts) and waits out.
      {
        principalId: objectId,
        roleDefinitionId: `/subscriptions/${outputs.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${READER_ROLE_ID}`,
        scope: `/subscriptions/${outputs.subscriptionId}`,
      },
    ],
    resourceGroups: [{ name: outputs.resourceGroupName }],
    virtualMachines: [
      {
        resourceGroup: outputs.resourceGroupName,
        name: "ubuntu-backup-server-spot",
        priority: "Spot",
        evictionPolicy: "Deallocate",
        maxPrice: -1,
        powerState: "deallocated",
        tags: { AttemptRestartAfterEviction: "true" },
      },
      { resourceGroup: outputs.resourceGroupName, name: "regular-box", powerState: "running" },
    ],
  });
});

after(async () => {
  await emulator?.stop();
  const all = printed.join("");
  for (const material of [certificate, unregistered]) {
    for (const line of material.keyLines) assert.ok(!all.includes(line), "private key material was printed");
  }
  removeTempDirs();
});

/** GET on the emulator's control API, trusting its CA. */
function controlGet(path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    https
      .get(new URL(path, emulator.armEndpoint), { ca: emulator.caCertPem }, (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve(JSON.parse(body)));
      })
      .on("error", reject);
  });
}

async function run(bundlePath: string, args: string[], stdin?: string, env?: NodeJS.ProcessEnv) {
  const result = await runBundle(bundlePath, args, { stdin, env });
  printed.push(result.stdout, result.stderr);
  return result;
}

test("install verifies the new config with doctor against the emulator (endpoints by flag)", async () => {
  const root = tempDir("root");
  const result = await run(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      root,
      "--authority-host",
      emulator.authorityHost,
      "--arm-endpoint",
      emulator.armEndpoint,
      "--extra-ca-certs",
      emulator.caCertFile,
    ],
    JSON.stringify(stackOutputsFor(certificate)),
  );
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /verify: spot-restarter doctor/);
  assert.match(result.stdout, /ok: doctor passed: .*1 tagged Spot VM\(s\) restartable/);
  assert.match(result.stdout, /ubuntu-backup-server-spot/, "the verification reports what it found");

  // The same config, run by hand with the installed bundle, as `spot-restarter once` would on the host.
  const once = await run(
    join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs"),
    ["once", "--config", join(root, "etc/spot-restarter/config.json"), "--dry-run", "--json"],
    undefined,
    {
      ...process.env,
      NODE_EXTRA_CA_CERTS: join(root, "etc/spot-restarter/extra-ca.pem"),
      SPOT_RESTARTER_STATE_DIR: join(root, "var/lib/spot-restarter"),
    },
  );
  assert.equal(once.code, 0, once.stderr);
  assert.match(once.stdout, /ubuntu-backup-server-spot/);
  // Dry runs: the VM is still deallocated and nobody asked to start it.
  const vms = (await controlGet("/_emulator/vms")) as {
    name: string;
    powerState: string;
    startRequests: number;
  }[];
  const spot = vms.find((vm) => vm.name === "ubuntu-backup-server-spot");
  assert.equal(spot?.powerState, "deallocated");
  assert.equal(spot?.startRequests, 0);
});

test("a cloud object in the stack outputs works the same way", async () => {
  const root = tempDir("root");
  // The cron job's user (when it exists here) must be able to enter the tree, as it enters / on a host.
  chmodSync(root, 0o755);
  const outputs = stackOutputsFor(certificate, {
    cloud: { authorityHost: emulator.authorityHost, armEndpoint: emulator.armEndpoint },
  });
  const result = await run(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      root,
      "--extra-ca-certs",
      emulator.caCertFile,
      "--scheduler",
      "cron",
    ],
    JSON.stringify(outputs),
  );
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /ok: doctor passed/);
});

test("a resource group that does not exist fails verification, never 'ok'", async () => {
  const root = tempDir("root");
  const outputs = stackOutputsFor(certificate, {
    resourceGroupName: "no-such-group",
    cloud: { authorityHost: emulator.authorityHost, armEndpoint: emulator.armEndpoint },
  });
  const result = await run(
    bundle,
    ["install", "--stack-outputs", "-", "--root", root, "--extra-ca-certs", emulator.caCertFile],
    JSON.stringify(outputs),
  );
  assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
  assert.match(
    result.stderr,
    /verification failed: resource group no-such-group: does not exist in subscription .* \(ResourceGroupNotFound\)/,
  );
  assert.doesNotMatch(result.stdout, /ok: /);
});

test("a certificate Entra ID does not know fails verification with exit code 1 and a hint", async () => {
  const root = tempDir("root");
  const result = await run(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      root,
      "--authority-host",
      emulator.authorityHost,
      "--arm-endpoint",
      emulator.armEndpoint,
      "--extra-ca-certs",
      emulator.caCertFile,
      "--verify-wait-seconds",
      "0",
    ],
    JSON.stringify(stackOutputsFor(unregistered)),
  );
  assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
  // AADSTS700027 may be a credential still replicating: install waits for it, here not at all.
  assert.match(
    result.stderr,
    /verification failed: token: cannot authenticate: Entra ID rejected the certificate .*\(AADSTS700027\)/,
  );
  assert.match(result.stderr, /--no-verify/);
});

test("a private CA not given: the summary names the configured endpoint, --extra-ca-certs, and the real fix", async () => {
  const root = tempDir("root");
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const result = await run(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      root,
      "--authority-host",
      emulator.authorityHost,
      "--arm-endpoint",
      emulator.armEndpoint,
      "--verify-wait-seconds",
      "0",
    ],
    JSON.stringify(stackOutputsFor(certificate)),
    env,
  );
  assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
  const said = `${result.stdout}\n${result.stderr}`;
  // The runtime's own diagnosis, passed through: the endpoint it was configured with, and the installer flag.
  assert.ok(said.includes(new URL(emulator.authorityHost).host), said);
  assert.match(said, /--extra-ca-certs FILE/);
  assert.doesNotMatch(
    said,
    /login\.microsoftonline\.com/,
    "not the public cloud's authority: another one is configured",
  );
  assert.match(
    result.stderr,
    /Apply the fix shown above for each failed check, then run the same install again/,
  );
  assert.doesNotMatch(result.stderr, /or pass --no-verify to skip/);
});
