// The installer through the real single-file bundle: `node spot-restarter.cjs install …`, as a host
// runs it after `pulumi stack output --json --show-secrets | ssh HOST sudo node spot-restarter.cjs install --stack-outputs -`.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildRuntimeBundle } from "../../support/bundle";
import {
  createTestCertificate,
  type RunResult,
  removeTempDirs,
  runBundle,
  stackOutputsFor,
  type TestCertificate,
  tempDir,
  walkTree,
} from "./fixtures";

let bundle: string;
let certificate: TestCertificate;
const printed: string[] = [];

before(async () => {
  [bundle, certificate] = await Promise.all([buildRuntimeBundle(), createTestCertificate()]);
});

after(() => {
  const all = printed.join("");
  for (const line of certificate.keyLines) assert.ok(!all.includes(line), "private key material was printed");
  removeTempDirs();
});

async function run(args: string[], stdin?: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  const result = await runBundle(bundle, args, { stdin, env });
  printed.push(result.stdout, result.stderr);
  return result;
}

test("install from standard input into --root, then uninstall with the installed bundle", async () => {
  const root = tempDir("root");
  const outputs = JSON.stringify(stackOutputsFor(certificate));
  const installed = await run(["install", "--stack-outputs", "-", "--root", root, "--no-verify"], outputs);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /created\s+\/etc\/spot-restarter\/sp\.pem \(0600/);
  assert.match(installed.stdout, /services: not touched \(--root /);
  // config.json keeps the target host's stateDir, and install says so with the flags for a run from the tree.
  const config = JSON.parse(await fs.readFile(join(root, "etc/spot-restarter/config.json"), "utf8"));
  assert.equal(config.stateDir, "/var/lib/spot-restarter");
  assert.ok(
    installed.stdout.includes(
      `note: config.json names paths as the target host sees them (stateDir /var/lib/spot-restarter, not ${join(root, "var/lib/spot-restarter")}); to run a command from this tree on this machine, pass both: --config ${join(root, "etc/spot-restarter/config.json")} --state-dir ${join(root, "var/lib/spot-restarter")}`,
    ),
    installed.stdout,
  );
  assert.ok((await fs.stat(join(root, "var/lib/spot-restarter"))).isDirectory());
  // The bundle copied itself.
  const copy = join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs");
  assert.deepEqual(await fs.readFile(copy), await fs.readFile(bundle));
  const tree = await walkTree(root);
  assert.equal(tree.get("/usr/local/lib/spot-restarter/spot-restarter.cjs")?.mode.toString(8), "755");
  assert.equal(tree.get("/etc/spot-restarter/sp.pem")?.mode.toString(8), "600");

  const again = await run(["install", "--stack-outputs", "-", "--root", root, "--no-verify"], outputs);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing changed/);

  // The installed copy runs and removes everything, itself included.
  const removed = await runBundle(copy, ["uninstall", "--root", root]);
  printed.push(removed.stdout, removed.stderr);
  assert.equal(removed.code, 0, removed.stderr);
  const left = [...(await walkTree(root))].filter(([, e]) => e.type !== "directory");
  assert.deepEqual(left, []);
});

test("bad stack outputs through the CLI: exit 2, the fix, nothing written", async () => {
  const root = tempDir("root");
  const result = await run(
    ["install", "--stack-outputs", "-", "--root", root],
    JSON.stringify(stackOutputsFor(certificate, { certificatePem: "[secret]" })),
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--show-secrets/);
  assert.deepEqual([...(await walkTree(root)).keys()], []);
});

test("--dry-run through the CLI writes nothing", async () => {
  const root = tempDir("root");
  const result = await run(
    ["install", "--stack-outputs", "-", "--root", root, "--dry-run", "--scheduler", "cron"],
    JSON.stringify(stackOutputsFor(certificate)),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /would create\s+\/etc\/cron\.d\/spot-restarter \(0644/);
  assert.deepEqual([...(await walkTree(root)).keys()], []);
});
