// The Debian packages (`npm run build:deb`): their control fields, every path and mode they install
// (dpkg-deb -x into a scratch root), the executable inside runs with no Node.js, the unit is the
// installer's and stays inert, the man page comes from --help; dpkg --root installs, removes (a cron
// job install wrote goes with it) and purges (the config install wrote goes too); lintian reports
// nothing that packaging/deb/lintian-overrides does not justify.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { envWithoutNode, executablePath, repoRoot, requireArtefact, runHost, skipUnlessTool } from "./host";

const version = (
  JSON.parse(execFileSync("cat", [join(repoRoot, "runtime", "package.json")], { encoding: "utf8" })) as {
    version: string;
  }
).version;
const debs = {
  amd64: join(repoRoot, "dist", `spot-restarter_${version}_amd64.deb`),
  arm64: join(repoRoot, "dist", `spot-restarter_${version}_arm64.deb`),
} as const;
const scratch: string[] = [];

after(async () => {
  for (const dir of scratch) await fs.rm(dir, { recursive: true, force: true });
});

async function scratchRoot(): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), "spot-restarter-deb-root-"));
  scratch.push(dir);
  return dir;
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256")
    .update(await fs.readFile(path))
    .digest("hex");
}

function dpkgDeb(...args: string[]): string {
  return execFileSync("dpkg-deb", args, { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
}

/** What the packaged files must be: path -> mode (dpkg-deb -c lists them as root/root). */
const EXPECTED_FILES: Record<string, string> = {
  "./usr/bin/spot-restarter": "-rwxr-xr-x",
  "./usr/lib/systemd/system/spot-restarter.service": "-rw-r--r--",
  "./usr/share/man/man1/spot-restarter.1.gz": "-rw-r--r--",
  "./usr/share/doc/spot-restarter/copyright": "-rw-r--r--",
  "./usr/share/doc/spot-restarter/changelog.gz": "-rw-r--r--",
  "./usr/share/lintian/overrides/spot-restarter": "-rw-r--r--",
};

for (const [arch, exeArch] of [
  ["amd64", "x64"],
  ["arm64", "arm64"],
] as const) {
  describe(`spot-restarter_${version}_${arch}.deb`, () => {
    it("has the control fields apt needs, and a prerm that stops and disables the service on remove", async () => {
      const deb = requireArtefact(debs[arch], "npm run build:host && npm run build:deb");
      const field = (name: string) => dpkgDeb("-f", deb, name).trim();
      assert.equal(field("Package"), "spot-restarter");
      assert.equal(field("Version"), version);
      assert.equal(field("Architecture"), arch);
      assert.match(field("Depends"), /^libc6 \(>= 2\.28\), libgcc-s1 \(>= 3\.0\), libstdc\+\+6 \(>= 5\)$/);
      assert.doesNotMatch(field("Depends"), /nodejs/, "no Node.js needed");
      const info = dpkgDeb("-I", deb);
      assert.match(info, /^ +\d+ bytes, +\d+ lines +\* +prerm +#!\/bin\/sh$/m);
      assert.match(info, /^ +\d+ bytes, +\d+ lines +\* +postinst +#!\/bin\/sh$/m);
      assert.match(info, /^ +\d+ bytes, +\d+ lines +\* +postrm +#!\/bin\/sh$/m);
      const control = await scratchRoot();
      dpkgDeb("-e", deb, control);
      const prerm = await fs.readFile(join(control, "prerm"), "utf8");
      const onRemove = prerm.slice(prerm.indexOf('if [ "$1" = remove ]'));
      assert.match(onRemove, /deb-systemd-invoke stop spot-restarter\.service/);
      assert.match(onRemove, /systemctl disable spot-restarter\.service/);
      const check = await runHost("/bin/sh", ["-n", join(control, "prerm")], { env: envWithoutNode() });
      assert.equal(check.code, 0, check.stderr);
    });

    it("holds exactly the expected files, root-owned, with the right modes, nothing under /etc", async () => {
      const deb = requireArtefact(debs[arch], "npm run build:host && npm run build:deb");
      const files = new Map<string, string>();
      for (const line of dpkgDeb("-c", deb).trim().split("\n")) {
        const [mode, owner, , , , path] = line.split(/\s+/);
        assert.equal(owner, "root/root", line);
        if (!mode?.startsWith("d")) files.set(path ?? "", mode ?? "");
      }
      assert.deepEqual(Object.fromEntries(files), EXPECTED_FILES);

      const root = await scratchRoot();
      dpkgDeb("-x", deb, root);
      assert.equal(
        await sha256(join(root, "usr/bin/spot-restarter")),
        await sha256(requireArtefact(executablePath(exeArch), "npm run build:host")),
        "the packaged executable is the one build:host made",
      );
      const unit = await fs.readFile(join(root, "usr/lib/systemd/system/spot-restarter.service"), "utf8");
      assert.match(unit, /^ExecStart=\/usr\/bin\/spot-restarter run --config %d\/config\.json$/m);
      assert.match(unit, /^ConditionPathExists=\/etc\/spot-restarter\/config\.json$/m);
      assert.match(unit, /^DynamicUser=yes$/m);
      const man = gunzipSync(
        await fs.readFile(join(root, "usr/share/man/man1/spot-restarter.1.gz")),
      ).toString();
      assert.match(man, /^\.TH SPOT-RESTARTER 1 /);
      for (const command of ["once", "run", "status", "install", "uninstall"]) {
        assert.match(man, new RegExp(`^ {2}${command} `, "m"), command);
      }
      if (arch === "amd64") {
        const run = await runHost(join(root, "usr/bin/spot-restarter"), ["--version"], {
          env: envWithoutNode(),
        });
        assert.equal(run.stdout, `${version}\n`, run.stderr);
      }
    });
  });
}

describe("dpkg --root with the amd64 package", () => {
  it("installs, removes (with the cron job install wrote) and purges (with the config)", async () => {
    const deb = requireArtefact(debs.amd64, "npm run build:host && npm run build:deb");
    const root = await scratchRoot();
    for (const dir of [
      "var/lib/dpkg/info",
      "var/lib/dpkg/updates",
      "etc/cron.d",
      "etc/spot-restarter",
      "etc/spot-restarter-cron",
    ]) {
      await fs.mkdir(join(root, dir), { recursive: true });
    }
    await fs.writeFile(join(root, "var/lib/dpkg/status"), "");
    // The scratch root has no libc6 in its dpkg database; the scripts run on the host with DPKG_ROOT set.
    const dpkg = (...args: string[]) =>
      execFileSync(
        "dpkg",
        [`--root=${root}`, "--force-depends", "--force-not-root", "--force-script-chrootless", ...args],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
    dpkg("-i", deb);
    assert.match(dpkg("-s", "spot-restarter"), /^Status: install ok installed$/m);
    const stat = await fs.stat(join(root, "usr/bin/spot-restarter"));
    assert.equal(stat.mode & 0o7777, 0o755);
    assert.equal(stat.uid, 0);
    assert.equal(existsSync(join(root, "etc/systemd/system/multi-user.target.wants")), false, "not enabled");

    // What `spot-restarter install --scheduler cron` would have written.
    await fs.writeFile(
      join(root, "etc/cron.d/spot-restarter"),
      "* * * * * spot-restarter /usr/bin/spot-restarter once --config /etc/spot-restarter-cron/config.json\n",
    );
    await fs.writeFile(join(root, "etc/spot-restarter/config.json"), "{}\n");
    // The cron job's copies, its key among them (runtime/src/install/layout.ts PATHS.cronDir).
    await fs.writeFile(join(root, "etc/spot-restarter-cron/config.json"), "{}\n");
    await fs.writeFile(join(root, "etc/spot-restarter-cron/sp.pem"), "not a real key\n", { mode: 0o600 });
    dpkg("-r", "spot-restarter");
    assert.equal(existsSync(join(root, "usr/bin/spot-restarter")), false);
    assert.equal(existsSync(join(root, "etc/cron.d/spot-restarter")), false, "no cron job left to run");
    assert.equal(existsSync(join(root, "etc/spot-restarter/config.json")), true, "remove keeps the config");
    dpkg("-P", "spot-restarter");
    assert.equal(existsSync(join(root, "etc/spot-restarter")), false, "purge removes the config and key");
    assert.equal(
      existsSync(join(root, "etc/spot-restarter-cron")),
      false,
      "purge removes the cron job's copies of the config and key",
    );
  });
});

describe("lintian", {
  skip: skipUnlessTool(existsSync("/usr/bin/lintian"), "apt-get install lintian"),
}, () => {
  it("reports nothing on the amd64 package beyond the justified overrides", () => {
    const deb = requireArtefact(debs.amd64, "npm run build:host && npm run build:deb");
    assert.ok(existsSync("/usr/bin/lintian"), "lintian is missing: apt-get install lintian (.ci/run does)");
    // Exit status 0: no error or warning (overridden tags are counted apart, as O:).
    const output = execFileSync("lintian", ["--tag-display-limit", "0", "--fail-on", "error,warning", deb], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    assert.doesNotMatch(output, /^[EW]: /m, output);
  });
});
