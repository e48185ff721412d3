// The first least-privilege `pulumi up` against an emulator where a new custom role takes a moment to
// replicate (seed timing.roleDefinitionReplicationSeconds: ARM answers 400 RoleDefinitionDoesNotExist "The
// specified role definition with ID '…' does not exist." meanwhile, terraform-provider-azurerm#10442). The
// program waits (time.Sleep, run by the demo's provider at DEMO_TIME_SCALE) before it assigns the role, so
// the run succeeds; with the wait skipped (a planted bug) the same run fails the way users saw it fail.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CUSTOM_ROLE_REPLICATION_DELAY } from "../../components/ResourceGroupAccess";
import { ApplyError, applyProgram } from "../../demo/apply-program";
import { DEMO_TIME_SCALE, goDurationMs } from "../../demo/emulator-provider";
import { type EmulatorSeed, type RunningEmulator, startEmulator } from "../../emulator/index";
import { EXAMPLE_SEED_FILE } from "../../emulator/testing";

const GROUP = "personal-network";
const TAGGED = "ubuntu-backup-server-spot";
// Shorter than the program's wait at the demo's scale (60 s / 30 = 2 s), as a minute is shorter than the
// program's 60 s in most of Azure.
const REPLICATION_SECONDS = 1;

/** The example world, where a custom role created at run time replicates for `seconds`. */
function startReplicating(seconds: number): Promise<RunningEmulator> {
  const seed = JSON.parse(readFileSync(EXAMPLE_SEED_FILE, "utf8")) as EmulatorSeed;
  return startEmulator({ ...seed, timing: { ...seed.timing, roleDefinitionReplicationSeconds: seconds } });
}

describe("a new custom role replicating on the first least-privilege pulumi up", () => {
  let emulator: RunningEmulator;
  // Without the wait, however slow this machine, the assignment comes long before this.
  let slowEmulator: RunningEmulator;
  before(async () => {
    assert.ok(goDurationMs(CUSTOM_ROLE_REPLICATION_DELAY) * DEMO_TIME_SCALE > REPLICATION_SECONDS * 1000);
    [emulator, slowEmulator] = await Promise.all([
      startReplicating(REPLICATION_SECONDS),
      startReplicating(300),
    ]);
  });
  after(async () => {
    await emulator?.stop();
    await slowEmulator?.stop();
  });
  const outputsFile = () => join(mkdtempSync(join(tmpdir(), "spot-restarter-replication-")), "outputs.json");

  it("the program waits for the role before assigning it, and pulumi up succeeds", async () => {
    const applied = await applyProgram({
      emulator,
      config: { resourceGroupName: GROUP, restartableVms: [TAGGED], roleMode: "least-privilege" },
      outputsFile: outputsFile(),
      stack: "replication-wait",
    });
    const order = applied.report.resources.map((resource) => resource.type);
    const role = order.indexOf("azure-native:authorization:RoleDefinition");
    const wait = order.indexOf("time:index/sleep:Sleep");
    const assignment = order.indexOf("azure-native:authorization:RoleAssignment");
    assert.ok(role >= 0 && role < wait && wait < assignment, order.join("\n"));
  });

  it("without the wait (planted bug), ARM refuses the assignment with RoleDefinitionDoesNotExist", async () => {
    await assert.rejects(
      applyProgram({
        emulator: slowEmulator,
        config: { resourceGroupName: GROUP, restartableVms: [TAGGED], roleMode: "least-privilege" },
        outputsFile: outputsFile(),
        stack: "replication-skipped",
        mutations: { skipWaits: true },
      }),
      (error: unknown) => {
        assert.ok(error instanceof ApplyError, String(error));
        assert.match(
          `${error.message}\n${error.stderr}`,
          /RoleDefinitionDoesNotExist|The specified role definition with ID '[0-9a-f-]+' does not exist/,
        );
        return true;
      },
    );
  });
});
