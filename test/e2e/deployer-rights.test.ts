// The rights README "Prerequisites" lists for whoever runs `pulumi up` are enough, and the emulator refuses
// the rest as ARM does: User Access Administrator alone (or RBAC Administrator) cannot tag the VMs, because
// tagging needs Microsoft.Resources/tags/write (Owner, Contributor or Tag Contributor).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ApplyError, applyProgram } from "../../demo/apply-program";
import { type EmulatorSeed, type RunningEmulator, startEmulator } from "../../emulator/index";
import {
  EXAMPLE_SEED_FILE,
  TAG_CONTRIBUTOR_ROLE_ID,
  USER_ACCESS_ADMINISTRATOR_ROLE_ID,
} from "../../emulator/testing";

const GROUP = "personal-network";
const TAGGED = "ubuntu-backup-server-spot";

describe("the deployer's rights", () => {
  let emulator: RunningEmulator;
  before(async () => {
    emulator = await startEmulator(JSON.parse(readFileSync(EXAMPLE_SEED_FILE, "utf8")) as EmulatorSeed);
  });
  after(() => emulator.stop());
  const outputsFile = () => join(mkdtempSync(join(tmpdir(), "spot-restarter-rights-")), "outputs.json");

  it("User Access Administrator + Tag Contributor at the group: pulumi up succeeds in least-privilege mode", async () => {
    const applied = await applyProgram({
      emulator,
      config: { resourceGroupName: GROUP, restartableVms: [TAGGED], roleMode: "least-privilege" },
      outputsFile: outputsFile(),
      stack: "rights-ok",
      deployerRoles: [USER_ACCESS_ADMINISTRATOR_ROLE_ID, TAG_CONTRIBUTOR_ROLE_ID],
    });
    assert.ok(applied.report.resources.some((r) => r.type === "azure-native:resources:TagAtScope"));
  });

  it("User Access Administrator alone: the tag write is refused with 403 naming Microsoft.Resources/tags/write", async () => {
    await assert.rejects(
      applyProgram({
        emulator,
        config: { resourceGroupName: GROUP, restartableVms: [TAGGED], roleMode: "contributor" },
        outputsFile: outputsFile(),
        stack: "rights-uaa",
        deployerRoles: [USER_ACCESS_ADMINISTRATOR_ROLE_ID],
      }),
      (error: unknown) => {
        assert.ok(error instanceof ApplyError, String(error));
        assert.match(
          `${error.message}\n${error.stderr}`,
          /HTTP 403 .*does not have authorization to perform action 'Microsoft\.Resources\/tags\/write'/,
        );
        return true;
      },
    );
  });
});
