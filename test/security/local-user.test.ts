// Issue 17, items 1 and 2 (test/security/README.md): a local user who may write the Node.js that root
// runs, or part of the tree `install --root` writes into, must not get root or the key.
// These run as root with `nobody` as the attacker (runuser), as the review did; elsewhere they skip.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  promises as fs,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { install, uninstall } from "../../runtime/src/install/index";
import { checkTrustedNode } from "../../runtime/src/install/trust";
import { fixHint } from "../../runtime/src/state/fsSafe";
import {
  createTestCertificate,
  ensureServiceUser,
  fakeBundle,
  installOptions,
  recordingHost,
  removeTempDirs,
  stackOutputsFor,
  tempDir,
  walkTree,
  writeStackOutputs,
} from "../installer/fixtures";

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const skip = !asRoot && "needs root (the attack is another local user against root)";

/** Runs a shell command as `nobody`; returns its exit status. */
function asNobody(script: string): number | null {
  return spawnSync("runuser", ["-u", "nobody", "--", "sh", "-c", script], { stdio: "ignore" }).status;
}

// The Node.js check accepts no writable directory on the way, not even a sticky /tmp (a tmp cleaner
// may remove root's directory there and let another user recreate it), so these live under /opt.
const trustedBases: string[] = [];
function trustedDir(prefix: string): string {
  mkdirSync("/opt", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join("/opt", `spot-restarter-test-${prefix}-`));
  execFileSync("chmod", ["0755", dir]);
  trustedBases.push(dir);
  return dir;
}

/** A fresh directory that `nobody` owns (and may therefore rewrite), as /opt/<user> or a home directory. */
function nobodysDirectory(prefix: string): string {
  const parent = trustedDir(prefix);
  const dir = join(parent, "owned-by-nobody");
  mkdirSync(dir, { mode: 0o755 });
  chownSync(dir, NOBODY, NOBODY);
  return dir;
}

let outputsFile: string;
let bundlePath: string;

before(async () => {
  outputsFile = await writeStackOutputs(stackOutputsFor(await createTestCertificate()));
  bundlePath = await fakeBundle();
});
after(() => {
  removeTempDirs();
  for (const dir of trustedBases) rmSync(dir, { recursive: true, force: true });
});

describe("item 1: the Node.js that runs as root must be root's alone", { skip }, () => {
  test("a Node.js in a directory another user owns is refused, for systemd and cron", async () => {
    const dir = nobodysDirectory("node");
    const nodePath = join(dir, "node");
    symlinkSync(process.execPath, nodePath);
    // The attack: nobody may replace what root would exec every minute.
    assert.equal(asNobody(`ln -sf /bin/sh ${nodePath}.swap && mv -f ${nodePath}.swap ${nodePath}`), 0);
    for (const scheduler of ["systemd", "cron"] as const) {
      // A dry run into "/": on the code before the fix it reported success and would have installed.
      const host = recordingHost({ bundlePath, nodePath });
      const code = await install(installOptions("/", outputsFile, { scheduler, dryRun: true }), host);
      assert.equal(code, 1, `${scheduler}: ${host.stdoutText()}`);
      assert.match(
        host.stderrText(),
        new RegExp(
          `Node\\.js at ${nodePath} is not safe to run as root: ${dir} is owned by uid 65534, not root.*Install Node\\.js system-wide, root-owned`,
        ),
      );
      assert.doesNotMatch(host.stdoutText(), /would create/, "refused before planning any file");
    }
  });

  test("a group-writable directory on the way is refused too, with the chmod that fixes it", async () => {
    const parent = trustedDir("node-group");
    const dir = join(parent, "shared");
    mkdirSync(dir);
    execFileSync("chmod", ["0775", dir]);
    symlinkSync(process.execPath, join(dir, "node"));
    const problem = await checkTrustedNode(join(dir, "node"));
    assert.match(problem ?? "", new RegExp(`${dir} is writable by its group \\(mode 0775\\)`));
    assert.match(problem ?? "", new RegExp(`chown root ${dir} && chmod go-w ${dir}`));
  });

  test("a symlink is followed hop by hop: where it leads must be root's alone as well", async () => {
    const dir = nobodysDirectory("node-target");
    const target = join(dir, "node");
    symlinkSync(process.execPath, target);
    const parent = trustedDir("node-link");
    symlinkSync(target, join(parent, "node"));
    assert.match((await checkTrustedNode(join(parent, "node"))) ?? "", /owned by uid 65534/);
  });

  test("a root-owned system binary passes (through the merged-/usr symlink /bin -> usr/bin)", async () => {
    assert.equal(await checkTrustedNode("/bin/sh"), undefined);
  });

  test("under --root (a tree for another host) it is a warning, not a refusal", async () => {
    const dir = nobodysDirectory("node-root");
    const nodePath = join(dir, "node");
    symlinkSync(process.execPath, nodePath);
    const host = recordingHost({ bundlePath, nodePath });
    assert.equal(await install(installOptions(tempDir("root"), outputsFile), host), 0, host.stderrText());
    assert.match(host.stderrText(), /warning: Node\.js at .* is not safe to run as root/);
  });
});

describe("item 2: install --root trusts no directory another user may write", { skip }, () => {
  test("a directory below --root owned by another user is refused before anything is written", async () => {
    const root = tempDir("root");
    execFileSync("chmod", ["0755", root]);
    mkdirSync(join(root, "usr"), { mode: 0o755 });
    chownSync(join(root, "usr"), NOBODY, NOBODY);
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(root, outputsFile), host), 1, host.stdoutText());
    assert.match(
      host.stderrText(),
      new RegExp(`${root}/usr \\(under --root ${root}\\) is owned by uid 65534, not root`),
    );
    assert.deepEqual([...(await walkTree(root)).keys()], ["/usr"]);
  });

  test("a --root owned by another user, or writable by others, is refused", async () => {
    const mine = tempDir("root-owner");
    chownSync(mine, NOBODY, NOBODY);
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(mine, outputsFile), host), 1);
    assert.match(
      host.stderrText(),
      new RegExp(`install root ${mine} is not safe: ${mine} is owned by uid 65534`),
    );
    const open = tempDir("root-mode");
    execFileSync("chmod", ["0777", open]);
    const host2 = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(open, outputsFile), host2), 1);
    assert.match(host2.stderrText(), /is writable by others \(mode 0777\)/);
    assert.deepEqual([...(await walkTree(open)).keys()], []);
  });

  test("install never writes through a symlink below --root (mkdir -p followed it)", async () => {
    const root = tempDir("root");
    const elsewhere = tempDir("elsewhere");
    symlinkSync(elsewhere, join(root, "etc"));
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(root, outputsFile), host), 1);
    assert.match(host.stderrText(), new RegExp(`${root}/etc \\(under --root ${root}\\) is a symbolic link`));
    assert.deepEqual([...(await walkTree(elsewhere)).keys()], [], "nothing reached the link's target");
  });

  test("the verification runs a private copy of the bundle, not the file in the target tree", async () => {
    const root = tempDir("root");
    const treeBundle = join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs");
    const outputs: string[] = [];
    // A stand-in for the runtime whose verification (doctor --json) passes.
    const honest = await fakeBundle(
      'console.log(JSON.stringify({ passed: true, checks: [], by: "installed" }));\n',
    );
    const host = recordingHost({
      bundlePath: honest,
      nodePath: process.execPath,
      // The race the review won: the tree's bundle is swapped after the write, before the run.
      runCommand: async (command, args, options) => {
        writeFileSync(treeBundle, "console.log('PWNED as uid', process.getuid());\n");
        const result = spawnSync(command, args, { env: options?.env, encoding: "utf8" });
        outputs.push(result.stdout);
        return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
      },
    });
    assert.equal(
      await install(installOptions(root, outputsFile, { verify: true }), host),
      0,
      host.stderrText(),
    );
    assert.equal(outputs.length, 1);
    assert.doesNotMatch(outputs[0] ?? "", /PWNED/);
    assert.match(outputs[0] ?? "", /"by":"installed"/, "the bundle that install read and wrote ran");
  });

  test("uninstall --root never deletes through a symlink", async () => {
    const root = tempDir("root");
    const elsewhere = tempDir("elsewhere");
    mkdirSync(join(elsewhere, "spot-restarter"));
    writeFileSync(join(elsewhere, "spot-restarter", "state.json"), "{}");
    mkdirSync(join(root, "var"));
    symlinkSync(elsewhere, join(root, "var/lib"));
    mkdirSync(join(root, "etc"));
    const certificateDir = join(elsewhere, "etc-spot-restarter");
    mkdirSync(certificateDir);
    writeFileSync(join(certificateDir, "sp.pem"), "not ours");
    symlinkSync(certificateDir, join(root, "etc/spot-restarter"));
    const host = recordingHost({});
    assert.equal(await uninstall({ root, keepState: false, dryRun: false }, host), 1);
    assert.match(host.stderrText(), /is a symbolic link: .*nothing was removed/);
    assert.ok(existsSync(join(elsewhere, "spot-restarter", "state.json")), "state behind the link kept");
    assert.ok(existsSync(join(certificateDir, "sp.pem")), "file behind the link kept");
    await fs.rm(join(root, "var/lib"));
  });
});

describe("issue 23 item 6: no hint to chown or chmod a shared or system directory", { skip }, () => {
  test("a Node.js in another user's home: the fix names the binary to move, never a chown of the home", async () => {
    mkdirSync("/home", { recursive: true, mode: 0o755 });
    const home = mkdtempSync("/home/spot-restarter-test-");
    trustedBases.push(home);
    chownSync(home, NOBODY, NOBODY);
    const nodePath = join(home, "node");
    symlinkSync(process.execPath, nodePath);
    const problem = (await checkTrustedNode(nodePath)) ?? "";
    assert.match(problem, new RegExp(`${home} is owned by uid 65534`));
    assert.match(problem, new RegExp(`move ${nodePath} to a directory only root can write`));
    assert.doesNotMatch(problem, /`chown|`chmod/, problem);
  });

  test("/, /tmp, /usr, a home and this user's home are never the object of a chown or chmod hint", () => {
    for (const path of ["/", "/tmp", "/usr", "/usr/local", "/home/alice", "/root", homedir()]) {
      assert.doesNotMatch(fixHint(path, "root", "/opt/x/node"), /`chown|`chmod/, path);
      assert.match(
        fixHint(path, "root", "/opt/x/node"),
        /move \/opt\/x\/node to a directory only root can write/,
      );
    }
    assert.equal(fixHint("/opt/tools"), "`chown root /opt/tools && chmod go-w /opt/tools`");
  });
});

describe("issue 25 item 2: a fresh --root cannot be raced", { skip }, () => {
  /** A host whose getent (install's first child after the tree check) runs `race` first, then for real. */
  const racingHost = (race: () => void) =>
    recordingHost({
      bundlePath,
      runCommand: async (command, args) => {
        if (command === "getent") race();
        const result = spawnSync(command, args, { encoding: "utf8" });
        return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
      },
    });

  test("a root missing at the check and created by another user before the write is refused, nothing written", async () => {
    const root = join(tempDir("fresh-parent"), "root");
    execFileSync("chmod", ["1777", join(root, "..")]); // like /tmp: anyone may create a directory there
    // The review's attack: a loop waiting for the installer's getent child, then `mkdir` of the root.
    const host = racingHost(() => assert.equal(asNobody(`mkdir -m 0755 ${root}`), 0));
    const code = await install(installOptions(root, outputsFile, { scheduler: "cron" }), host);
    assert.equal(code, 1, host.stdoutText());
    assert.match(host.stderrText(), /install root .* did not exist when install checked it, but does now/);
    assert.deepEqual([...(await walkTree(root)).keys()], [], "nothing written into the other user's tree");
  });

  test("an existing root replaced after the check (same path, another directory) is refused", async () => {
    const root = tempDir("root");
    execFileSync("chmod", ["0755", root]);
    const host = racingHost(() => {
      renameSync(root, `${root}-checked`);
      mkdirSync(root, { mode: 0o755 });
      chownSync(root, NOBODY, NOBODY);
    });
    try {
      const code = await install(installOptions(root, outputsFile, { scheduler: "cron" }), host);
      assert.equal(code, 1, host.stdoutText());
      assert.match(host.stderrText(), /install root .* was replaced after install checked it/);
      assert.deepEqual([...(await walkTree(root)).keys()], []);
    } finally {
      rmSync(`${root}-checked`, { recursive: true, force: true });
    }
  });
});

describe("item 8: the cron job runs as a dedicated system user, not root", {
  skip: skip || (spawnSync("useradd", ["--help"]).status !== 0 && "useradd not installed"),
}, () => {
  before(() => {
    ensureServiceUser();
  });

  test("the cron line names the user; it owns the state directory and reads its own copy of the key", async () => {
    const root = tempDir("root");
    execFileSync("chmod", ["0755", root]);
    const host = recordingHost({
      bundlePath,
      runCommand: async (command, args) => {
        const result = spawnSync(command, args, { encoding: "utf8" });
        return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
      },
    });
    assert.equal(
      await install(installOptions(root, outputsFile, { scheduler: "cron" }), host),
      0,
      host.stderrText(),
    );
    const ids = execFileSync("getent", ["passwd", "spot-restarter"], { encoding: "utf8" }).split(":");
    const [uid, gid] = [Number(ids[2]), Number(ids[3])];
    const cron = await fs.readFile(join(root, "etc/cron.d/spot-restarter"), "utf8");
    assert.match(
      cron,
      /^\* \* \* \* \* spot-restarter \/usr\/local\/bin\/spot-restarter once --config \/etc\/spot-restarter-cron\/config\.json /m,
    );
    const tree = await walkTree(root);
    assert.deepEqual(
      { ...tree.get("/var/lib/spot-restarter"), mtimeMs: 0, ino: 0 },
      { type: "directory", mode: 0o700, uid, gid, mtimeMs: 0, ino: 0 },
    );
    for (const [path, mode] of [
      ["/etc/spot-restarter-cron", 0o750],
      ["/etc/spot-restarter-cron/config.json", 0o640],
    ] as const) {
      const entry = tree.get(path);
      assert.equal(entry?.mode, mode, `mode of ${path}`);
      assert.equal(entry?.uid, 0, `${path} stays root's: the service user cannot change it`);
      assert.equal(entry?.gid, gid, `${path} is readable by the service group`);
    }
    // The key: the user's own, owner-read only, as the runtime's key-file rule demands (issue 23, item 1).
    const key = tree.get("/etc/spot-restarter-cron/sp.pem");
    assert.deepEqual([key?.mode, key?.uid, key?.gid], [0o400, uid, gid]);
    const asService = (script: string) =>
      spawnSync("runuser", ["-u", "spot-restarter", "--", "sh", "-c", script], { stdio: "ignore" }).status;
    assert.equal(asService(`cat ${root}/etc/spot-restarter-cron/sp.pem > /dev/null`), 0, "reads its copy");
    assert.notEqual(asService(`cat ${root}/etc/spot-restarter/sp.pem`), 0, "not root's own");
    assert.notEqual(asService(`touch ${root}/etc/spot-restarter-cron/x`), 0, "cannot add files beside it");
    assert.notEqual(
      asService(`mv ${root}/etc/spot-restarter-cron/sp.pem ${root}/var/lib/spot-restarter/`),
      0,
      "cannot move its copy away",
    );
    assert.equal(asService(`touch ${root}/var/lib/spot-restarter/state.json`), 0, "writes its state");
    // Uninstall removes the copies as well.
    assert.equal(await uninstall({ root, keepState: false, dryRun: false }, recordingHost({})), 0);
    assert.ok(!existsSync(join(root, "etc/spot-restarter-cron")));
  });
});
