// Issue 23, item 2: pause and resume check the name. A typo (`ubuntu-backup-sever-spot`) used to print
// "paused" and exit 0 while the real VM was restarted during maintenance. Now a name that is no tagged
// Spot VM is refused (exit 2, listing the known ones: Azure's list, or the state file's VMs when Azure
// does not answer); --force pauses a VM not seen yet; a second pause says what it replaced; and root
// pauses in the cron layout, whose state directory belongs to the service user.
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pauseFileName } from "../../runtime/src/state/pause";
import { buildRuntimeBundle } from "../../support/bundle";
import { spawnProcess } from "../../support/process";
import { resourceGroup, runCli, spotVm, startWorld, type World } from "./harness";

const NOBODY = 65534;

let bundle: string;
let w: World;
before(async () => {
  bundle = await buildRuntimeBundle();
  w = await startWorld(
    [
      spotVm("ubuntu-backup-server-spot"),
      spotVm("build-box", { powerState: "running" }),
      spotVm("untagged", { tags: {} }),
      spotVm("regular", { priority: "Regular" }),
    ],
    { config: { armMaxRetries: 0 } },
  );
});
after(() => w.emulator.stop());
const cli = (...args: string[]) =>
  runCli(bundle, [...args, "--config", w.configPath], { caCertFile: w.emulator.caCertFile });
const pausesFile = () => join(w.stateDir, pauseFileName);
const pauses = () =>
  (JSON.parse(readFileSync(pausesFile(), "utf8")) as { pauses: Array<{ name: string; until?: number }> })
    .pauses;

describe("pause and resume check the name against the tagged Spot VMs", () => {
  it("a typo exits 2 listing the tagged Spot VMs from Azure, and writes no pause", async () => {
    const result = await cli("pause", "--vm", "ubuntu-backup-sever-spot", "--for", "2h");
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /no tagged Spot VM named ubuntu-backup-sever-spot/);
    assert.match(
      result.stderr,
      new RegExp(
        `the tagged Spot VMs are: ${resourceGroup}/build-box, ${resourceGroup}/ubuntu-backup-server-spot;`,
      ),
    );
    assert.match(result.stderr, /--force/);
    assert.doesNotMatch(result.stderr, /untagged|regular/, "only tagged Spot VMs are listed");
    assert.equal(existsSync(pausesFile()), false);
    assert.equal((await cli("resume", "--vm", "ubuntu-backup-sever-spot")).code, 2);
  });

  it("a known name is paused under Azure's spelling; a second pause says what it replaced", async () => {
    const first = await cli("pause", "--vm", "UBUNTU-backup-server-spot", "--for", "2h");
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /replaces/);
    assert.deepEqual(
      pauses().map((p) => p.name),
      ["ubuntu-backup-server-spot"],
    );
    const firstUntil = new Date(pauses()[0]?.until ?? 0).toISOString();
    const second = await cli("pause", "--vm", "ubuntu-backup-server-spot");
    assert.equal(second.code, 0, second.stderr);
    assert.ok(
      second.stderr.includes(`replaces the pause set at `) && second.stderr.includes(`until ${firstUntil}`),
      second.stderr,
    );
    assert.equal(pauses().length, 1);
    assert.equal(pauses()[0]?.until, undefined, "until resume now");
    const resumed = await cli("resume", "--vm", "ubuntu-backup-server-spot");
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed/);
    assert.deepEqual(pauses(), []);
  });

  it("--force pauses a name not seen yet, and resume ends that pause", async () => {
    const forced = await cli("pause", "--vm", "not-created-yet", "--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      pauses().map((p) => p.name),
      ["not-created-yet"],
    );
    const resumed = await cli("resume", "--vm", "not-created-yet");
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(pauses(), []);
  });

  it("when Azure does not answer, the names come from the state file", async () => {
    const once = await cli("once");
    assert.equal(once.code, 0, once.stderr);
    // The connection dropped on every VM list: no answer at all (armMaxRetries 0: no SDK retries).
    await w.control.addFaults({ method: "GET", pathPattern: "/virtualMachines$", dropConnection: true });
    try {
      const typo = await cli("pause", "--vm", "ubuntu-backup-sever-spot");
      assert.equal(typo.code, 2, typo.stderr);
      assert.match(typo.stderr, /from the state file: Azure did not answer/);
      assert.match(typo.stderr, /ubuntu-backup-server-spot/);
      const known = await cli("pause", "--vm", "ubuntu-backup-server-spot", "--for", "1h");
      assert.equal(known.code, 0, known.stderr);
    } finally {
      await w.control.clearFaults();
    }
    assert.equal((await cli("resume", "--vm", "ubuntu-backup-server-spot")).code, 0);
  });
});

describe("root pauses in the cron layout (the state directory is the service user's)", () => {
  const skip = process.getuid?.() !== 0 && "needs root and a second user";
  let dir: string;
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("root's pause is written for the service user, whose once then leaves the VM alone", {
    skip,
  }, async () => {
    // The service's files as the cron layout has them: its own config and key, its own 0700 state directory.
    dir = mkdtempSync(join(tmpdir(), "spot-restarter-cron-pause-"));
    chmodSync(dir, 0o755);
    const stateDir = join(dir, "state");
    mkdirSync(stateDir, { mode: 0o700 });
    chownSync(stateDir, NOBODY, NOBODY);
    const service = join(dir, "service");
    mkdirSync(service, { mode: 0o700 });
    const copy = (from: string, name: string, mode: number) => {
      copyFileSync(from, join(service, name));
      chmodSync(join(service, name), mode);
      chownSync(join(service, name), NOBODY, NOBODY);
    };
    copy(bundle, "spot-restarter.cjs", 0o500);
    copy(w.pemPath, "sp.pem", 0o600);
    copy(w.emulator.caCertFile, "ca.pem", 0o644);
    writeFileSync(
      join(service, "config.json"),
      JSON.stringify({ ...w.configFile, certificatePath: join(service, "sp.pem"), stateDir }),
    );
    chownSync(join(service, "config.json"), NOBODY, NOBODY);
    chownSync(service, NOBODY, NOBODY);
    // Root's config (the systemd-layout one) names the same state directory.
    const rootConfig = join(dir, "root-config.json");
    writeFileSync(rootConfig, JSON.stringify({ ...w.configFile, certificatePath: w.pemPath, stateDir }));
    await w.control.evict(resourceGroup, "build-box");

    const paused = await runCli(bundle, ["pause", "--vm", "build-box", "--config", rootConfig], {
      caCertFile: w.emulator.caCertFile,
    });
    assert.equal(paused.code, 0, paused.stderr);
    const file = statSync(join(stateDir, pauseFileName));
    assert.deepEqual(
      { uid: file.uid, mode: (file.mode & 0o777).toString(8) },
      { uid: NOBODY, mode: "600" },
      "handed to the directory's owner, private from the start",
    );

    const startsBefore = (await w.control.vm(resourceGroup, "build-box"))?.startRequests;
    const once = await spawnProcess(
      "runuser",
      [
        "-u",
        "nobody",
        "--",
        process.execPath,
        join(service, "spot-restarter.cjs"),
        "once",
        "--config",
        join(service, "config.json"),
      ],
      {
        env: { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: join(service, "ca.pem") },
        timeoutMs: 60_000,
      },
    ).done;
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stderr, /vm-left-alone .*build-box.*paused/);
    assert.equal((await w.control.vm(resourceGroup, "build-box"))?.startRequests, startsBefore);

    const resumed = await runCli(bundle, ["resume", "--vm", "build-box", "--config", rootConfig], {
      caCertFile: w.emulator.caCertFile,
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(statSync(join(stateDir, pauseFileName)).uid, NOBODY);
  });
});
