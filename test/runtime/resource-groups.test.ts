// Issue 23, item 3: a missing resource group is a failure, and no VM is started twice. `once` and
// `status` exit 4 naming the group and the fix (as doctor fails); `run` says so once per episode (log and
// notification) and again when the group lists again, never every cycle; groups that differ only in case
// are refused when the config is read; and discovery keys VMs by their lower-cased id whatever it is given.
import "reflect-metadata";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { READER_ROLE_ID } from "../../emulator/testing";
import { createCredential } from "../../runtime/src/azure/auth";
import { createArmVmApi } from "../../runtime/src/azure/azure";
import { runOnce } from "../../runtime/src/cli/commands";
import { duplicateResourceGroups, parseConfig, resourceGroupIdentity } from "../../runtime/src/config/config";
import { ConfigError, exitCodes } from "../../runtime/src/core/errors";
import { Restarter } from "../../runtime/src/loop/restarter";
import { createMemoryStateStore } from "../../runtime/src/state/state";
import { buildRuntimeBundle } from "../../support/bundle";
import { type Receiver, startReceiver } from "../helpers/receiver";
import { resourceGroup, runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

const never = new AbortController().signal;
const expected =
  "resource group no-such-group not found (ResourceGroupNotFound): check resourceGroups and subscriptionId in the config";

/** Reader on the whole subscription: ARM checks authorization before existence, so only then is an
 * unknown group a 404 ResourceGroupNotFound (with a role on one group only it is 403 AuthorizationFailed). */
async function readerOnSubscription(world: World): Promise<void> {
  await world.control.addRoleAssignment({
    principalId: world.principal.objectId,
    principalType: "ServicePrincipal",
    roleDefinitionId: `/subscriptions/${world.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${READER_ROLE_ID}`,
    scope: `/subscriptions/${world.emulator.subscriptionId}`,
  });
}

describe("duplicate resource groups are refused when the config is read", () => {
  const base = {
    tenantId: "00000000-0000-0000-0000-000000000001",
    clientId: "00000000-0000-0000-0000-000000000002",
    subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
    certificatePath: "/etc/spot-restarter/sp.pem",
  };
  it("names both entries (Azure's group names are case-insensitive), exit 2", () => {
    assert.throws(
      () => parseConfig({ ...base, resourceGroups: ["rg", "other", "RG"] }, "/etc/c.json"),
      (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.exitCode, exitCodes.usage);
        assert.equal(
          error.message,
          'config file /etc/c.json: field "resourceGroups": resourceGroups[0] ("rg") and resourceGroups[2] ("RG") name the same resource group (Azure\'s resource group names are case-insensitive); remove one',
        );
        return true;
      },
    );
    assert.deepEqual(
      parseConfig({ ...base, resourceGroups: ["rg", "rg2"] }, "/c.json").config.resourceGroups,
      ["rg", "rg2"],
    );
  });

  it("compares (subscription, lower-cased name): a group id in the config's subscription is the same group", () => {
    const sub = base.subscriptionId;
    assert.equal(
      resourceGroupIdentity(`/subscriptions/${sub.toUpperCase()}/resourceGroups/RG`, sub),
      resourceGroupIdentity("rg", sub),
    );
    assert.deepEqual(duplicateResourceGroups(["rg", `/subscriptions/${sub}/resourceGroups/Rg`], sub), [0, 1]);
    assert.equal(
      duplicateResourceGroups(
        ["rg", "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg"],
        sub,
      ),
      undefined,
      "the same name in another subscription is another group",
    );
  });
});

describe("discovery: no VM is started twice in a cycle, whatever the groups say", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("evicted")]);
  });
  after(() => world.emulator.stop());

  it("groups differing only in case: one list, one start", async () => {
    const config = { ...world.config, armMaxRetries: 0 };
    const credential = createCredential(config, { pem: world.principal.pem } as Parameters<
      typeof createCredential
    >[1]);
    const api = createArmVmApi(config, credential, { pollIntervalMs: 100 });
    const restarter = new Restarter({
      api,
      store: createMemoryStateStore(),
      settings: {
        resourceGroups: [resourceGroup, resourceGroup.toUpperCase()],
        tag: config.tag,
        maxConcurrentStarts: 10,
        backoff: { initialMs: 60_000, maxMs: 600_000 },
        startTimeoutMs: 20_000,
        intervalMs: 1_000,
      },
    });
    await restarter.init();
    await world.control.clearRequests();
    const { summary } = await runOnce({ restarter, tag: config.tag }, never, { dryRun: false });
    assert.equal(summary.starts.issued, 1);
    assert.equal(summary.vms.length, 1);
    assert.equal((await world.control.vm(resourceGroup, "evicted"))?.startRequests, 1);
    const lists = (await world.control.requests()).filter(
      (r) => r.method === "GET" && /\/virtualMachines$/i.test(r.path.split("?")[0] ?? ""),
    );
    assert.equal(lists.length, 1, "the group is listed once");
  });
});

describe("a resource group that does not exist", () => {
  let bundle: string;
  let world: World;
  let receiver: Receiver;
  before(async () => {
    bundle = await buildRuntimeBundle();
    receiver = await startReceiver();
    world = await startWorld([spotVm("backup")], {
      config: { notifications: [{ type: "webhook", url: `${receiver.origin}/hook` }] },
    });
    await readerOnSubscription(world);
    world.writeConfig({ resourceGroups: [resourceGroup, "no-such-group"] });
  });
  after(async () => {
    await world.emulator.stop();
    await receiver.close();
  });
  const cli = (...args: string[]) =>
    runCli(bundle, [...args, "--config", world.configPath], { caCertFile: world.emulator.caCertFile });

  it("once starts the other group's evicted VM, then exits 4 naming the group and the fix", async () => {
    const once = await cli("once", "--json");
    assert.equal(once.code, 4, once.stderr);
    assert.equal((await world.control.vm(resourceGroup, "backup"))?.startRequests, 1);
    assert.ok(once.stderr.includes(`spot-restarter: ${expected}\n`), once.stderr);
    const summary = JSON.parse(once.stdout) as {
      resourceGroups: Array<{ name: string; error: string | null }>;
    };
    assert.deepEqual(
      summary.resourceGroups.map((g) => [g.name, g.error]),
      [
        [resourceGroup, null],
        ["no-such-group", "gone: ResourceGroupNotFound"],
      ],
    );
    const dry = await cli("once", "--dry-run");
    assert.equal(dry.code, 4, dry.stderr);
  });

  it("status prints the report, then exits 4 naming it", async () => {
    const json = await cli("status", "--json");
    assert.equal(json.code, 4, json.stderr);
    const report = JSON.parse(json.stdout) as {
      vms: Array<{ name: string }>;
      errors: string[];
      missingResourceGroups: Array<{ resourceGroup: string; code: string }>;
    };
    assert.deepEqual(
      report.vms.map((v) => v.name),
      ["backup"],
    );
    assert.deepEqual(report.errors, [expected]);
    assert.deepEqual(report.missingResourceGroups, [
      { resourceGroup: "no-such-group", code: "ResourceGroupNotFound" },
    ]);
    assert.ok(json.stderr.includes(expected), json.stderr);
    const table = await cli("status");
    assert.equal(table.code, 4);
    assert.ok(table.stdout.includes(`warning: ${expected}\n`), table.stdout);
  });

  it("run says it once (log and notification) over many cycles, and again when the group lists again", async () => {
    // The `once` runs above sent it already; the repeat gate (one an hour, across processes) remembers.
    assert.equal(receiver.requests.filter((r) => r.body.includes('"resource-group-missing"')).length, 1);
    rmSync(join(world.stateDir, "notifications.json"));
    receiver.requests.length = 0;
    const running = spawnCli(bundle, ["run", "--config", world.configPath, "--log-level", "debug"], {
      caCertFile: world.emulator.caCertFile,
    });
    const count = (pattern: RegExp) =>
      running
        .stderr()
        .split("\n")
        .filter((l) => pattern.test(l)).length;
    const waitUntil = async (what: string, condition: () => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${running.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      await running.waitFor(/resource-group-missing/, 60_000);
      await waitUntil("4 cycles", () => count(/cycle-done/) >= 4);
      assert.equal(count(/resource-group-missing/), 1, running.stderr());
      const [notice] = await receiver.waitFor(1, 30_000);
      const body = JSON.parse(notice?.body ?? "{}") as Record<string, unknown>;
      assert.equal(body.event, "resource-group-missing");
      assert.equal(body.resourceGroup, "no-such-group");
      assert.equal(body.message, expected);

      // The group appears (a VM put into it creates it in the emulator): said once, then quiet again.
      await world.control.putVm(
        "no-such-group",
        "later",
        spotVm("later", { resourceGroup: "no-such-group" }),
      );
      await running.waitFor(/resource-group-found/, 60_000);
      const cyclesAtFound = count(/cycle-done/);
      await waitUntil("3 more cycles", () => count(/cycle-done/) >= cyclesAtFound + 3);
      assert.equal(count(/resource-group-found/), 1);
      assert.equal(count(/resource-group-missing/), 1);
      assert.equal(receiver.requests.filter((r) => r.body.includes('"resource-group-missing"')).length, 1);
    } finally {
      await running.stop();
    }
  });
});
