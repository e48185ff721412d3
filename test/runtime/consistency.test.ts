// What a newcomer met as inconsistencies (issue 18, item 7): a missing resource group named in words by
// status as by once; every command refusing an old Node.js the way install does.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { READER_ROLE_ID } from "../../emulator/testing";
import { MINIMUM_NODE_MAJOR, nodeTooOld } from "../../runtime/src/core/nodeVersion";
import { buildRuntimeBundle } from "../../support/bundle";
import { runCli, spotVm, startWorld, type World } from "./harness";

let bundle: string;
before(async () => {
  bundle = await buildRuntimeBundle();
});

describe("a resource group that does not exist", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("backup")]);
    // Reader on the whole subscription, as the emulator's --principal-out principal has Contributor there:
    // ARM checks authorization before existence, so only then is an unknown group a 404
    // ResourceGroupNotFound (with a role on one group only it is 403 AuthorizationFailed, exit 4).
    await world.control.addRoleAssignment({
      principalId: world.principal.objectId,
      principalType: "ServicePrincipal",
      roleDefinitionId: `/subscriptions/${world.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${READER_ROLE_ID}`,
      scope: `/subscriptions/${world.emulator.subscriptionId}`,
    });
    world.writeConfig({ resourceGroups: ["personal-network", "no-such-group"] });
  });
  after(() => world.emulator.stop());
  const cli = (args: string[]) =>
    runCli(bundle, [...args, "--config", world.configPath], { caCertFile: world.emulator.caCertFile });
  const expected =
    "resource group no-such-group not found (ResourceGroupNotFound): check resourceGroups and subscriptionId in the config";

  it("status --json names it in words, not the SDK's 'Pagination failed with unexpected statusCode 404'", async () => {
    const result = await cli(["status", "--json"]);
    assert.equal(result.code, 4, "a missing group is a failure (issue 23, item 3)");
    const report = JSON.parse(result.stdout) as { errors: string[]; vms: Array<{ name: string }> };
    assert.deepEqual(report.errors, [expected]);
    assert.deepEqual(
      report.vms.map((v) => v.name),
      ["backup"],
      "the other group is still reported",
    );
  });

  it("the status table and once say the same", async () => {
    const table = await cli(["status"]);
    assert.ok(table.stdout.includes(`warning: ${expected}\n`), table.stdout);
    const once = await cli(["once", "--dry-run"]);
    assert.equal(once.code, 4, once.stderr);
    assert.ok(once.stderr.includes(expected), once.stderr);
    assert.doesNotMatch(table.stdout + once.stderr, /Pagination failed/);
  });
});

describe("Node.js older than 22", () => {
  it("is refused with the fix, by one rule", () => {
    assert.equal(MINIMUM_NODE_MAJOR, 22, "package.json engines says >=22");
    assert.match(
      nodeTooOld("v20.20.2") ?? "",
      /^Node\.js 20\.20\.2 is too old: spot-restarter needs Node\.js 22 or newer/,
    );
    assert.match(nodeTooOld("18.0.0") ?? "", /install it and run spot-restarter with it$/);
    assert.equal(nodeTooOld("v22.0.0"), undefined);
    assert.equal(nodeTooOld(process.versions.node), undefined);
  });

  // A real old Node.js where the machine has one (Debian's is 20 on this project's CI image).
  const oldNode = ["/usr/bin/node", "/usr/local/bin/node"].find((path) => {
    if (!existsSync(path)) return false;
    const version = spawnSync(path, ["--version"], { encoding: "utf8" }).stdout.trim();
    return Number.parseInt(version.replace(/^v/, ""), 10) < MINIMUM_NODE_MAJOR;
  });
  it("once, run, status, simulate-eviction and doctor refuse it as install does; --help still answers", {
    skip: oldNode ? false : "no Node.js older than 22 on this machine",
  }, () => {
    const version = spawnSync(oldNode as string, ["--version"], { encoding: "utf8" }).stdout.trim();
    for (const args of [
      ["once", "--dry-run"],
      ["run"],
      ["status", "--json"],
      ["simulate-eviction", "--vm", "backup"],
      ["doctor"],
    ]) {
      // No config at all: the version is the first thing said, before any other complaint.
      const result = spawnSync(oldNode as string, [bundle, ...args, "--config", "/nonexistent/config.json"], {
        encoding: "utf8",
      });
      assert.equal(result.status, 1, `${args[0]}: ${result.stderr}`);
      assert.equal(
        result.stderr,
        `spot-restarter: ${nodeTooOld(version)}\n`,
        `${args[0]} says why, and nothing else`,
      );
    }
    const help = spawnSync(oldNode as string, [bundle, "once", "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);
  });
});
