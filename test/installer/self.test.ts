// install from a single executable (and from the Debian package's copy of it), into temporary roots:
// what it copies, what the unit and cron line run, upgrades between the bundle and the executable,
// and what the verification step runs. The real executables are exercised in test/host/.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { install, uninstall } from "../../runtime/src/install/index";
import {
  fakeBundle,
  installOptions,
  recordingHost,
  tempDir,
  useInstallerFixture,
  walkTree,
} from "./fixtures";

const fixture = useInstallerFixture();
let executable: string;
const EXECUTABLE_BYTES = Buffer.from("\x7fELF stand-in for a Node single executable\n");

before(async () => {
  executable = join(tempDir("sea"), "spot-restarter");
  await fs.writeFile(executable, EXECUTABLE_BYTES, { mode: 0o755 });
});

/** A passing `doctor --json` report (runtime/src/cli/doctor.ts), what the verification reads. */
const doctorPassed = () => ({
  code: 0,
  stdout: `${JSON.stringify({ passed: true, checks: [{ name: "token", status: "pass", detail: "signed in" }] })}\n`,
  stderr: "",
});

describe("install from a single executable", () => {
  test("copies itself to /usr/local/bin/spot-restarter (0755), no bundle, no wrapper, no Node.js check", async () => {
    const root = tempDir("root");
    // nodeVersion 18 would fail the bundle's check: the executable brings its own Node.js.
    const host = recordingHost({ self: { kind: "executable", path: executable }, nodeVersion: "18.19.1" });
    assert.equal(await install(installOptions(root, fixture.outputsFile), host), 0, host.stderrText());
    const tree = await walkTree(root);
    assert.equal(tree.get("/usr/local/bin/spot-restarter")?.mode, 0o755);
    assert.deepEqual(await fs.readFile(join(root, "usr/local/bin/spot-restarter")), EXECUTABLE_BYTES);
    assert.equal(tree.has("/usr/local/lib/spot-restarter"), false, "no bundle directory");
    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/spot-restarter run --config %d\/config\.json$/m);
    assert.doesNotMatch(host.stdoutText(), /check: Node\.js/);
    assert.match(host.stdoutText(), /single executable .* the host needs none/);
  });

  test("the cron line runs the executable directly", async () => {
    const root = tempDir("root");
    const host = recordingHost({ self: { kind: "executable", path: executable } });
    assert.equal(await install(installOptions(root, fixture.outputsFile, { scheduler: "cron" }), host), 0);
    const cron = await fs.readFile(join(root, "etc/cron.d/spot-restarter"), "utf8");
    assert.match(cron, /^\* \* \* \* \* spot-restarter \/usr\/local\/bin\/spot-restarter once --config /m);
  });

  test("verification runs a private copy of the installed executable, not node", async () => {
    const root = tempDir("root");
    const host = recordingHost({ self: { kind: "executable", path: executable }, results: doctorPassed });
    assert.equal(
      await install(installOptions(root, fixture.outputsFile, { verify: true }), host),
      0,
      host.stderrText(),
    );
    const verify = host.commands.find((c) => c.args.includes("doctor"));
    // Never the file in the target tree, which someone might swap before the run (issue 17, item 2).
    assert.match(verify?.command ?? "", /\/spot-restarter-verify-[^/]+\/spot-restarter$/);
    assert.ok(!(verify?.command ?? "").startsWith(root));
    // The unit's command, with the config LoadCredential= hands over (%d = $CREDENTIALS_DIRECTORY).
    const credentials = verify?.env?.CREDENTIALS_DIRECTORY ?? "";
    assert.match(credentials, /\/spot-restarter-verify-[^/]+\/credentials$/);
    assert.deepEqual(verify?.args, ["doctor", "--config", join(credentials, "config.json"), "--json"]);
  });

  test("re-install changes nothing; a new executable is swapped in by rename (new inode)", async () => {
    const root = tempDir("root");
    const first = recordingHost({ self: { kind: "executable", path: executable } });
    assert.equal(await install(installOptions(root, fixture.outputsFile), first), 0);
    const before = await walkTree(root);
    const again = recordingHost({ self: { kind: "executable", path: executable } });
    assert.equal(await install(installOptions(root, fixture.outputsFile), again), 0);
    assert.match(again.stdoutText(), /nothing changed/);
    assert.deepEqual(await walkTree(root), before);

    const newer = join(tempDir("sea2"), "spot-restarter");
    await fs.writeFile(newer, Buffer.from("\x7fELF version 2\n"), { mode: 0o755 });
    const upgrade = recordingHost({ self: { kind: "executable", path: newer } });
    assert.equal(await install(installOptions(root, fixture.outputsFile), upgrade), 0);
    assert.match(upgrade.stdoutText(), /updated\s+\/usr\/local\/bin\/spot-restarter .*changed: content/);
    const after = await walkTree(root);
    assert.notEqual(
      after.get("/usr/local/bin/spot-restarter")?.ino,
      before.get("/usr/local/bin/spot-restarter")?.ino,
      "replaced by rename, never rewritten in place (a running copy keeps its file)",
    );
    assert.equal(
      await fs.readFile(join(root, "usr/local/bin/spot-restarter"), "utf8"),
      "\x7fELF version 2\n",
    );
  });

  test("upgrading a bundle install to the executable removes the bundle and the wrapper", async () => {
    const root = tempDir("root");
    const bundle = await fakeBundle();
    assert.equal(
      await install(installOptions(root, fixture.outputsFile), recordingHost({ bundlePath: bundle })),
      0,
    );
    assert.ok((await walkTree(root)).has("/usr/local/lib/spot-restarter/spot-restarter.cjs"));
    const host = recordingHost({ self: { kind: "executable", path: executable }, manageServices: true });
    assert.equal(await install(installOptions(root, fixture.outputsFile), host), 0, host.stderrText());
    const tree = await walkTree(root);
    assert.equal(tree.has("/usr/local/lib/spot-restarter"), false);
    assert.deepEqual(await fs.readFile(join(root, "usr/local/bin/spot-restarter")), EXECUTABLE_BYTES);
    assert.match(host.stdoutText(), /removed\s+\/usr\/local\/lib\/spot-restarter\/spot-restarter\.cjs/);
    // The running service still has the old command loaded.
    assert.ok(host.commands.some((c) => c.args.join(" ") === "try-restart spot-restarter.service"));
  });

  test("uninstall removes the executable", async () => {
    const root = tempDir("root");
    const host = recordingHost({ self: { kind: "executable", path: executable } });
    assert.equal(await install(installOptions(root, fixture.outputsFile), host), 0);
    assert.equal(await uninstall({ root, keepState: false, dryRun: false }, recordingHost()), 0);
    const left = [...(await walkTree(root)).keys()].filter((p) => p.includes("spot-restarter"));
    assert.deepEqual(left, []);
  });
});

describe("install from the Debian package's executable", () => {
  test("uses /usr/bin/spot-restarter in place and removes an earlier /usr/local copy", async () => {
    const root = tempDir("root");
    assert.equal(
      await install(
        installOptions(root, fixture.outputsFile),
        recordingHost({ self: { kind: "executable", path: executable } }),
      ),
      0,
    );
    const host = recordingHost({
      self: { kind: "packaged", path: "/usr/bin/spot-restarter" },
      results: doctorPassed,
    });
    assert.equal(
      await install(installOptions(root, fixture.outputsFile, { verify: true }), host),
      0,
      host.stderrText(),
    );
    const tree = await walkTree(root);
    assert.equal(tree.has("/usr/local/bin/spot-restarter"), false, "would shadow the package's on PATH");
    assert.equal(tree.has("/usr/bin/spot-restarter"), false, "dpkg's file, never written by install");
    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    assert.match(unit, /^ExecStart=\/usr\/bin\/spot-restarter run --config %d\/config\.json$/m);
    assert.equal(host.commands.find((c) => c.args.includes("doctor"))?.command, "/usr/bin/spot-restarter");
  });
});
