// `spot-restarter doctor`: the pure rules (effective actions, restartable VMs) with plain data, and the
// command itself, the real bundle against the emulator: each check pass/fail with its fix, exit 1 when one
// fails, a missing action named by its full name.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { READER_ROLE_ID } from "../../emulator/testing";
import { createArmVmApi } from "../../runtime/src/azure/azure";
import { actionsFor, LEAST_PRIVILEGE_ACTIONS } from "../../runtime/src/azure/roleActions";
import {
  actionPatternMatches,
  missingActions,
  probeEndpoint,
  runDoctor,
  unrestartableReason,
} from "../../runtime/src/cli/doctor";
import { loadConfig } from "../../runtime/src/config/config";
import type { DoctorCheck } from "../../runtime/src/install/doctorReport";
import { type Row, spotVm, startRow } from "../faults/harness";

const OPERATIONS_READ = "Microsoft.Compute/locations/operations/read";

describe("doctor rules", () => {
  it("matches Azure action patterns case-insensitively, * across segments", () => {
    assert.ok(actionPatternMatches("*", OPERATIONS_READ));
    assert.ok(actionPatternMatches("Microsoft.Compute/*/read", OPERATIONS_READ));
    assert.ok(actionPatternMatches("microsoft.compute/LOCATIONS/operations/read", OPERATIONS_READ));
    assert.ok(!actionPatternMatches("Microsoft.Compute/virtualMachines/*", OPERATIONS_READ));
  });

  it("finds what each needed action lacks; notActions subtract only within their own role", () => {
    const needed = actionsFor(["restart", "doctor"]);
    // Contributor (actions *, notActions Microsoft.Authorization/*/Write …) grants everything needed.
    assert.deepEqual(
      missingActions(needed, [{ actions: ["*"], notActions: ["Microsoft.Authorization/*/Write"] }]),
      [],
    );
    const lacking = missingActions(needed, [
      { actions: LEAST_PRIVILEGE_ACTIONS.filter((action) => action !== OPERATIONS_READ) },
    ]);
    assert.deepEqual(
      lacking.map((entry) => entry.action),
      [OPERATIONS_READ],
    );
    // A role that excludes compute writes does not cancel another role's grant.
    assert.deepEqual(
      missingActions(needed, [
        { actions: ["*/read"], notActions: ["Microsoft.Compute/*"] },
        { actions: ["Microsoft.Compute/*"] },
      ]),
      [],
    );
    assert.equal(missingActions(needed, []).length, needed.length);
  });

  it("a tagged VM must be Spot with eviction policy Deallocate", () => {
    assert.equal(unrestartableReason({ priority: "Spot", evictionPolicy: "Deallocate" }), undefined);
    assert.equal(unrestartableReason({ priority: "SpotPlus", evictionPolicy: undefined }), undefined);
    assert.match(unrestartableReason({ priority: undefined, evictionPolicy: undefined }) ?? "", /Regular/);
    assert.match(unrestartableReason({ priority: "Spot", evictionPolicy: "Delete" }) ?? "", /Delete/);
  });
});

describe("doctor against the emulator", () => {
  let lacking: Row;
  let healthy: Row;
  before(async () => {
    [lacking, healthy] = await Promise.all([
      startRow(
        [
          spotVm("backup"),
          spotVm("regular-box", { priority: "Regular", evictionPolicy: undefined }),
          spotVm("deleted-on-eviction", { evictionPolicy: "Delete" }),
        ],
        { role: "least-privilege", actions: LEAST_PRIVILEGE_ACTIONS.filter((a) => a !== OPERATIONS_READ) },
      ),
      startRow([spotVm("backup")], { role: "least-privilege" }),
    ]);
  });
  after(async () => {
    await Promise.all([lacking.close(), healthy.close()]);
  });

  it("passes every check for the least-privilege role and a Spot VM (exit 0)", async () => {
    const result = await healthy.cli(["doctor", "--config", healthy.configPath]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    for (const name of [
      "endpoint: Entra ID",
      "endpoint: Resource Manager",
      "clock",
      "certificate",
      "token",
    ]) {
      assert.match(result.stdout, new RegExp(`^ok   ${name}: `, "m"), name);
    }
    assert.match(result.stdout, /^ok {3}permissions on personal-network: has all 7 actions/m);
    assert.match(result.stdout, /^ok {3}VM personal-network\/backup: Spot, eviction policy Deallocate/m);
  });

  it("names the missing action in full, and each unrestartable tagged VM, with fixes (exit 1)", async () => {
    const result = await lacking.cli(["doctor", "--config", lacking.configPath]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /^FAIL permissions on personal-network: missing Microsoft\.Compute\/locations\/operations\/read \(restart: follow a start's operation to its outcome\)\n {5}fix: grant them to service principal object id [0-9a-f-]{36} at \/subscriptions\/[^/]+\/resourceGroups\/personal-network/m,
    );
    assert.match(
      result.stdout,
      /^FAIL VM personal-network\/regular-box: tagged for restart, but priority Regular/m,
    );
    assert.match(
      result.stdout,
      /^FAIL VM personal-network\/deleted-on-eviction: tagged for restart, but eviction policy Delete/m,
    );
    assert.match(result.stdout, /^ok {3}VM personal-network\/backup/m);
  });

  it("with fallbackSizes, checks the resize actions too: the role without them fails, naming both", async () => {
    const configPath = `${healthy.dir}/fallbacks.json`;
    writeFileSync(
      configPath,
      JSON.stringify({
        ...healthy.configFile,
        fallbackSizes: { "personal-network/backup": ["Standard_B2ms"] },
      }),
    );
    const result = await healthy.cli(["doctor", "--config", configPath]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /^FAIL permissions on personal-network: missing Microsoft\.Compute\/virtualMachines\/vmSizes\/read \(fallback-size: [^)]*\), Microsoft\.Compute\/virtualMachines\/write \(fallback-size: /m,
    );
    assert.match(result.stdout, /the fallback-size ones only while spot-restarter:fallbackSizes is set/);
  });

  it("with a role on one group only, says another group may not exist (ARM checks access first), never 'ok'", async () => {
    const configPath = `${healthy.dir}/missing-group.json`;
    writeFileSync(configPath, JSON.stringify({ ...healthy.configFile, resourceGroups: ["no-such-group"] }));
    const result = await healthy.cli(["doctor", "--config", configPath, "--json"]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const report = JSON.parse(result.stdout) as { passed: boolean; checks: DoctorCheck[] };
    assert.equal(report.passed, false);
    const group = report.checks.find((check) => check.name === "permissions on no-such-group");
    assert.equal(group?.status, "fail");
    assert.match(group?.detail ?? "", /or the group does not exist: ARM checks access before existence/);
    assert.match(group?.fix ?? "", /check "resourceGroups" in the config/);
    assert.ok(
      !report.checks.some((check) => check.name.includes("no-such-group") && check.status === "pass"),
    );
  });

  it("says the resource group does not exist when a role above it lets ARM look (ResourceGroupNotFound)", async () => {
    const reader = await startRow([spotVm("backup")], { role: "least-privilege" });
    try {
      // Reader on the whole subscription: ARM may then look for the group, and answers 404.
      await reader.control.addRoleAssignment({
        principalId: reader.principal.objectId,
        principalType: "ServicePrincipal",
        roleDefinitionId: `/subscriptions/${reader.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${READER_ROLE_ID}`,
        scope: `/subscriptions/${reader.emulator.subscriptionId}`,
      });
      const configPath = `${reader.dir}/missing-group.json`;
      writeFileSync(configPath, JSON.stringify({ ...reader.configFile, resourceGroups: ["no-such-group"] }));
      const result = await reader.cli(["doctor", "--config", configPath, "--json"]);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      const report = JSON.parse(result.stdout) as { checks: DoctorCheck[] };
      const group = report.checks.find((check) => check.name === "resource group no-such-group");
      assert.equal(group?.status, "fail");
      assert.match(group?.detail ?? "", /does not exist in subscription .* \(ResourceGroupNotFound\)/);
      assert.ok(group?.fix);
    } finally {
      await reader.close();
    }
  });

  it("fails the clock check when this host is more than 5 minutes off Azure's Date", async () => {
    const { config } = await loadConfig(healthy.configPath, {}, {});
    // This process trusts the emulator CA already (startTestEmulator).
    const checks = await runDoctor(config, AbortSignal.timeout(20_000), {
      now: () => new Date(Date.now() + 7 * 60_000),
      probe: probeEndpoint,
      vmApi: (credential) => createArmVmApi(config, credential),
    });
    const clock = checks.find((check) => check.name === "clock");
    assert.equal(clock?.status, "fail");
    assert.match(clock?.detail ?? "", /4\d\d s ahead of Azure's/);
    assert.match(clock?.fix ?? "", /timedatectl set-ntp true/);
  });
});

describe("doctor with no role at all", () => {
  let none: Row;
  before(async () => {
    none = await startRow([spotVm("backup")], { role: "none" });
  });
  after(() => none.close());

  it("names the action its own Permissions API call needs, and says no role grants it", async () => {
    const result = await none.cli(["doctor", "--config", none.configPath]);
    assert.equal(result.code, 1);
    // ARM refuses Permissions_ListForResourceGroup without Microsoft.Authorization/permissions/read
    // (roleActions.ts names Microsoft's page), so nothing else can be checked from there.
    assert.match(
      result.stdout,
      /FAIL permissions on personal-network: missing Microsoft\.Authorization\/permissions\/read \(doctor: .*\), so the other \d+ actions cannot be checked; no role assigned to this principal at or above the group grants it/,
    );
    // The VM list answers for itself.
    assert.match(result.stdout, /FAIL VMs in personal-network: cannot list the group's VMs: .*403/);
  });

  it("with a role lacking only permissions/read, says that one action is missing", async () => {
    const without = await startRow([spotVm("backup")], {
      role: "least-privilege",
      actions: LEAST_PRIVILEGE_ACTIONS.filter((a) => a !== "Microsoft.Authorization/permissions/read"),
    });
    try {
      const result = await without.cli(["doctor", "--config", without.configPath]);
      assert.equal(result.code, 1);
      assert.match(
        result.stdout,
        /FAIL permissions on personal-network: missing Microsoft\.Authorization\/permissions\/read/,
      );
      assert.match(result.stdout, /ok {3}VM personal-network\/backup: /);
    } finally {
      await without.close();
    }
  });
});
