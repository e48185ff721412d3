// The components' pure helpers: no mocks needed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  CONTRIBUTOR_ROLE_GUID,
  resourceGroupScope,
  stableRoleGuid,
  subscriptionRoleDefinitionId,
} from "../../components/ResourceGroupAccess";
import { combineCertificateAndKey, toWholeSecondUtc } from "../../components/RestartPrincipal";
import { assertRestartableSpotVm, RESTART_TAG } from "../../components/RestartTag";
import { assertSameTenant, buildInstallCommand } from "../../components/SpotRestarter";

describe("RestartTag", () => {
  it("uses the docs/architecture.md tag", () => {
    assert.deepEqual(RESTART_TAG, { name: "AttemptRestartAfterEviction", value: "true" });
  });

  it("accepts a Spot VM that deallocates on eviction (and the API's default policy)", () => {
    assertRestartableSpotVm({ id: "x", priority: "Spot", evictionPolicy: "Deallocate" }, "rg", "vm");
    assertRestartableSpotVm({ id: "x", priority: "Spot" }, "rg", "vm");
  });

  it("rejects a regular VM and a Delete-policy VM with exact messages", () => {
    const hint =
      'Fix it in Azure, or stop tagging it: remove "vm" from spot-restarter:restartableVms ' +
      "(pulumi config rm --path 'restartableVms[N]', N its position from 0)";
    assert.throws(() => assertRestartableSpotVm({ id: "x" }, "rg", "vm"), {
      message: `VM "vm" in resource group "rg" is not a Spot VM (priority: Regular); only evicted Spot VMs need restarting. ${hint}`,
    });
    assert.throws(
      () => assertRestartableSpotVm({ id: "x", priority: "Spot", evictionPolicy: "Delete" }, "rg", "vm"),
      {
        message:
          'VM "vm" in resource group "rg" has eviction policy Delete: Azure deletes it on eviction, so there is ' +
          `nothing to restart. Recreate it with --eviction-policy Deallocate. ${hint}`,
      },
    );
  });
});

describe("ResourceGroupAccess helpers", () => {
  it("builds the scope and subscription-level role definition ids", () => {
    assert.equal(resourceGroupScope("sub", "rg"), "/subscriptions/sub/resourceGroups/rg");
    assert.equal(
      subscriptionRoleDefinitionId("sub", CONTRIBUTOR_ROLE_GUID),
      "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
    );
  });

  it("derives a stable, well-formed, input-dependent role GUID", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (scope, name) => {
        const guid = stableRoleGuid(scope, name);
        assert.match(guid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal(stableRoleGuid(scope, name), guid);
      }),
    );
    assert.notEqual(
      stableRoleGuid("/subscriptions/s/resourceGroups/a", "r"),
      stableRoleGuid("/subscriptions/s/resourceGroups/b", "r"),
    );
  });
});

describe("SpotRestarter helpers", () => {
  it("renders the install pipe of docs/architecture.md's data flow, into the executable copied to the host", () => {
    assert.equal(
      buildInstallCommand("dev"),
      "pulumi stack output --stack dev --json --show-secrets | ssh HOST sudo ./spot-restarter install --stack-outputs -",
    );
    assert.match(
      buildInstallCommand("prod", "backup-host"),
      /\| ssh backup-host sudo \.\/spot-restarter install/,
    );
  });

  it("insists both providers use one tenant", () => {
    assert.equal(assertSameTenant("AAAA", "aaaa"), "AAAA");
    assert.throws(
      () => assertSameTenant("a", "b"),
      /azuread provider is signed in to tenant a but azure-native to tenant b/,
    );
  });

  it("combines certificate and key into one PEM, certificate first, whatever the trailing newlines", () => {
    const cert = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
    const key = "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----";
    const expected = `${cert}\n${key}\n`;
    assert.equal(combineCertificateAndKey(cert, key), expected);
    assert.equal(combineCertificateAndKey(`${cert}\n`, `${key}\n\n`), expected);
  });
});

describe("RestartPrincipal helpers", () => {
  it("normalises the tls provider's validity end to Graph's whole-second UTC", () => {
    // Go's MarshalText as terraform-provider-tls reports it: nanoseconds and the local offset.
    assert.equal(toWholeSecondUtc("2027-11-30T13:45:12.123456789+01:00"), "2027-11-30T12:45:12Z");
    assert.equal(
      toWholeSecondUtc("2027-11-30T12:45:12.9Z"),
      "2027-11-30T12:45:12Z",
      "truncated, never later",
    );
    assert.equal(toWholeSecondUtc("2027-12-31T23:30:00-01:00"), "2028-01-01T00:30:00Z");
    assert.equal(toWholeSecondUtc("2027-11-30T12:45:12Z"), "2027-11-30T12:45:12Z");
    assert.throws(() => toWholeSecondUtc("30/11/2027"), /not an RFC 3339 date-time/);
  });
});
