// The program as `pulumi preview` runs it (index.ts, preview mode, mocks) in a child process: bad config
// and bad VMs must stop it with a message that names the problem and the fix.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SUBSCRIPTION_ID } from "../../support/pulumi-mocks";
import { preview } from "./fixtures/runPreview";

const RG = "personal-network";

describe("pulumi preview of index.ts", { concurrency: true }, () => {
  it("succeeds for good config and Spot VMs, tagging each", async () => {
    const result = await preview({
      config: { resourceGroupName: RG, restartableVms: '["ubuntu-backup-server-spot"]' },
      vms: [{ resourceGroup: RG, name: "ubuntu-backup-server-spot" }],
    });
    assert.deepEqual(result.errors, []);
    assert.equal(result.exitCode, 0);
    assert.ok(
      result.resources.includes(
        "azure-native:resources:TagAtScope::spot-restarter-tag-ubuntu-backup-server-spot-tags",
      ),
      result.resources.join("\n"),
    );
  });

  it("fails for a VM that does not exist, is not Spot, or is deleted on eviction", async () => {
    const result = await preview({
      config: { resourceGroupName: RG, restartableVms: '["ok-spot","gone","regular-vm","delete-vm"]' },
      vms: [
        { resourceGroup: RG, name: "ok-spot" },
        { resourceGroup: RG, name: "regular-vm", priority: "Regular" },
        { resourceGroup: RG, name: "delete-vm", priority: "Spot", evictionPolicy: "Delete" },
      ],
    });
    assert.equal(result.exitCode, 1);
    const hint = (vm: string) =>
      `Fix it in Azure, or stop tagging it: remove "${vm}" from spot-restarter:restartableVms ` +
      "(pulumi config rm --path 'restartableVms[N]', N its position from 0)";
    const expected = [
      `VM "gone" was not found in resource group "${RG}" (or this identity cannot read it): ` +
        `ResourceNotFound: The Resource 'Microsoft.Compute/virtualMachines/gone' under resource group '${RG}' ` +
        `was not found. Check the name with \`az vm list -g ${RG} -o table\`. ${hint("gone")}`,
      `VM "regular-vm" in resource group "${RG}" is not a Spot VM (priority: Regular); only evicted Spot VMs ` +
        `need restarting. ${hint("regular-vm")}`,
      `VM "delete-vm" in resource group "${RG}" has eviction policy Delete: Azure deletes it on eviction, so ` +
        `there is nothing to restart. Recreate it with --eviction-policy Deallocate. ${hint("delete-vm")}`,
    ];
    for (const message of expected) {
      assert.ok(
        result.errors.some((line) => line.endsWith(message)),
        `missing:\n${message}\nin:\n${result.errors.join("\n")}`,
      );
    }
    assert.ok(!result.errors.some((line) => line.includes('"ok-spot"')), "the good VM is not blamed");
    assert.deepEqual(
      new Set(result.kinds),
      new Set(["ResourceError"]),
      "reported against the component, no stack",
    );
  });

  it("fails when azuread and azure-native are signed in to different tenants", async () => {
    const result = await preview({
      config: { resourceGroupName: RG },
      armTenantId: "99999999-9999-4999-8999-999999999999",
    });
    assert.equal(result.exitCode, 1);
    assert.ok(
      result.errors.some((line) =>
        line.includes(
          "The azuread provider is signed in to tenant 11111111-1111-4111-8111-111111111111 but azure-native " +
            "to tenant 99999999-9999-4999-8999-999999999999",
        ),
      ),
      result.errors.join("\n"),
    );
    assert.deepEqual(new Set(result.kinds), new Set(["ResourceError"]));
  });

  it("fails before creating anything when resourceGroupName is missing", async () => {
    const result = await preview({ config: {} });
    assert.equal(result.exitCode, 1);
    assert.deepEqual(result.errors, [
      "spot-restarter:resourceGroupName is required: the resource group that holds your Spot VMs. " +
        "Fix: pulumi config set resourceGroupName <group>",
    ]);
    assert.deepEqual(result.kinds, ["RunError"], "printed without a stack trace");
    assert.deepEqual(result.resources, []);
  });

  it("fails before creating anything on a fallbackAfterSeconds that is not whole seconds in range", async () => {
    const result = await preview({ config: { resourceGroupName: RG, fallbackAfterSeconds: "10m" } });
    assert.equal(result.exitCode, 1);
    assert.deepEqual(result.errors, [
      'spot-restarter:fallbackAfterSeconds must be a whole number of seconds from 0 to 86400, got "10m". ' +
        "Fix: pulumi config set fallbackAfterSeconds 600",
    ]);
    assert.deepEqual(result.kinds, ["RunError"], "printed without a stack trace");
    assert.deepEqual(result.resources, []);
  });

  it("tags VMs in two groups (issue 28: name and group/name) and exports both groups", async () => {
    const result = await preview({
      config: {
        resourceGroupName: RG,
        restartableVms: '["ubuntu-backup-server-spot","build-rg/build-box-spot"]',
      },
      vms: [
        { resourceGroup: RG, name: "ubuntu-backup-server-spot" },
        { resourceGroup: "build-rg", name: "build-box-spot" },
      ],
    });
    assert.deepEqual(result.errors, []);
    for (const resource of [
      "azure-native:resources:TagAtScope::spot-restarter-tag-ubuntu-backup-server-spot-tags",
      "azure-native:resources:TagAtScope::spot-restarter-tag-build-rg/build-box-spot-tags",
      "azure-native:authorization:RoleAssignment::spot-restarter-access-assignment",
      "azure-native:authorization:RoleAssignment::spot-restarter-access-assignment-build-rg",
    ]) {
      assert.ok(result.resources.includes(resource), `${resource} in:\n${result.resources.join("\n")}`);
    }
  });

  it("refuses a full VM id in the stack's own subscription, naming the entry and the group/name to write", async () => {
    const id = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/build-rg/providers/Microsoft.Compute/virtualMachines/build-box-spot`;
    const result = await preview({
      config: { resourceGroupName: RG, restartableVms: JSON.stringify([id]) },
      vms: [{ resourceGroup: "build-rg", name: "build-box-spot" }],
    });
    assert.equal(result.exitCode, 1);
    const expected =
      `spot-restarter:restartableVms[0] "${id}" is a full VM id in the stack's own subscription ${SUBSCRIPTION_ID}: ` +
      "write it as build-rg/build-box-spot (a full id is for a VM in another subscription). " +
      "Fix: pulumi config set --path 'restartableVms[0]' build-rg/build-box-spot";
    assert.ok(
      result.errors.some((line) => line.endsWith(expected)),
      `missing:\n${expected}\nin:\n${result.errors.join("\n")}`,
    );
    assert.ok(!result.resources.some((resource) => resource.includes("TagAtScope")), "nothing tagged");
  });

  it("fails on duplicate VM names from config", async () => {
    const result = await preview({ config: { resourceGroupName: RG, restartableVms: '["a","a"]' } });
    assert.equal(result.exitCode, 1);
    assert.deepEqual(result.errors, [
      'spot-restarter:restartableVms lists "a" twice (entries 0 and 1 name the same VM; Azure VM and resource group names are case-insensitive). ' +
        "Fix: pulumi config rm --path 'restartableVms[1]'",
    ]);
  });
});
