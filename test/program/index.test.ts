// index.ts as a whole: it exports exactly docs/architecture.md's stack outputs, with the right shapes.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { STACK_OUTPUT_NAMES } from "../../runtime/src/core/stackOutputNames";
import { createProgramMocks, promiseOf, SUBSCRIPTION_ID, TENANT_ID } from "../../support/pulumi-mocks";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// RFC 3339 date-time with a time zone (Z or ±hh:mm), optional fraction.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// The contract's one list (runtime/src/core/stackOutputNames.ts).
const STACK_OUTPUTS = STACK_OUTPUT_NAMES;

let program: Record<string, pulumi.Output<unknown>>;

before(async () => {
  const mocks = createProgramMocks([
    { resourceGroup: "personal-network", name: "ubuntu-backup-server-spot" },
    { resourceGroup: "personal-network", name: "vpn-dev" },
  ]);
  pulumi.runtime.setAllConfig({
    "spot-restarter:resourceGroupName": "personal-network",
    "spot-restarter:restartableVms": '["ubuntu-backup-server-spot","vpn-dev"]',
    "spot-restarter:roleMode": "least-privilege",
    "spot-restarter:certificateValidityDays": "180",
    "spot-restarter:certificateRenewalDays": "20",
    // As `pulumi config set --path 'fallbackSizes.vpn-dev[0]' Standard_D2as_v5` leaves it.
    "spot-restarter:fallbackSizes": JSON.stringify({ "vpn-dev": ["Standard_D2as_v5", "Standard_D2s_v5"] }),
    // An integer key reaches the program as text, like the days above.
    "spot-restarter:fallbackAfterSeconds": "900",
    // As `pulumi config set --secret --path 'notifications[0].url' …` leaves it: structured config
    // reaches the program as JSON text.
    "spot-restarter:notifications": JSON.stringify([
      {
        type: "ntfy",
        url: "https://ntfy.sh/spot-restarter-SECRET-topic",
        events: ["vm-evicted", "vm-restarted"],
      },
      { type: "slack", url: "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxsecret" },
    ]),
  });
  await pulumi.runtime.setMocks(mocks.mocks, "spot-restarter", "dev", false);
  program = require("../../index");
});

describe("index.ts stack outputs", () => {
  it("exports exactly the docs/architecture.md names", () => {
    assert.deepEqual(Object.keys(program).sort(), [...STACK_OUTPUTS].sort());
    for (const name of STACK_OUTPUTS) assert.ok(pulumi.Output.isInstance(program[name]), name);
  });

  it("has the right shapes", async () => {
    const value = async (name: string) => promiseOf(program[name]);
    assert.equal(await value("tenantId"), TENANT_ID);
    assert.equal(await value("subscriptionId"), SUBSCRIPTION_ID);
    assert.match(String(await value("clientId")), GUID);
    assert.equal(await value("resourceGroupName"), "personal-network");
    assert.deepEqual(await value("resourceGroups"), [
      `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/personal-network`,
    ]);
    assert.deepEqual(await value("restartTag"), { name: "AttemptRestartAfterEviction", value: "true" });
    assert.deepEqual(await value("restartableVms"), ["ubuntu-backup-server-spot", "vpn-dev"]);
    assert.deepEqual(await value("fallbackSizes"), { "vpn-dev": ["Standard_D2as_v5", "Standard_D2s_v5"] });
    assert.equal(await value("fallbackAfterSeconds"), 900);
    const expiresOn = String(await value("certificateExpiresOn"));
    assert.match(expiresOn, RFC3339);
    const days = (new Date(expiresOn).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 179.9 && days <= 180, `expires in ${days} days`);
    assert.equal(
      await value("installCommand"),
      "pulumi stack output --stack dev --json --show-secrets | ssh HOST sudo ./spot-restarter install --stack-outputs -",
    );
  });

  it("keeps certificatePem and notifications secret, and only those", async () => {
    for (const name of STACK_OUTPUTS) {
      assert.equal(
        await pulumi.isSecret(program[name]),
        name === "certificatePem" || name === "notifications",
        name,
      );
    }
    const pem = String(await promiseOf(program.certificatePem));
    assert.match(
      pem,
      /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n/,
    );
    assert.equal(new X509Certificate(pem).subject, "CN=spot-restarter-dev");
  });

  it("passes the notification channels through, validated, as the runtime config's objects", async () => {
    assert.deepEqual(await promiseOf(program.notifications), [
      {
        type: "ntfy",
        url: "https://ntfy.sh/spot-restarter-SECRET-topic",
        events: ["vm-evicted", "vm-restarted"],
      },
      { type: "slack", url: "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxsecret" },
    ]);
  });

  it("serializes to the JSON `pulumi stack output --json` prints", async () => {
    const outputs = Object.fromEntries(
      await Promise.all(STACK_OUTPUTS.map(async (name) => [name, await promiseOf(program[name])])),
    );
    const parsed = JSON.parse(JSON.stringify(outputs));
    for (const key of ["tenantId", "subscriptionId", "clientId"]) assert.match(parsed[key], GUID);
    assert.equal(typeof parsed.certificatePem, "string");
    assert.ok(Array.isArray(parsed.restartableVms));
  });
});
