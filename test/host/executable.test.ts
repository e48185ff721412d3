// The linux-x64 single executable (`npm run build:host`) as a host without Node.js runs it: PATH
// holds no node at all. It installs itself from the stack outputs into a root, the installed copy
// runs a `once` cycle and the `run` loop (SIGTERM ends it) against the emulator, re-install changes
// nothing, and uninstall removes it all.
import "reflect-metadata";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { spotVm } from "../../support/world";
import {
  envWithoutNode,
  executablePath,
  type HostResult,
  requireArtefact,
  resourceGroup,
  runHost,
  spawnHost,
  stackOutputsFor,
} from "./host";

const VM = "ubuntu-backup-server-spot";
let exe: string;
let t: TestEmulator;
let root: string;
const printed: string[] = [];

async function sha256(path: string): Promise<string> {
  return createHash("sha256")
    .update(await fs.readFile(path))
    .digest("hex");
}

function record(result: HostResult): HostResult {
  printed.push(result.stdout, result.stderr);
  return result;
}

/** The environment the unit gives the installed command (NODE_EXTRA_CA_CERTS=%d/extra-ca.pem), no node. */
function installedEnv(): NodeJS.ProcessEnv {
  return envWithoutNode({
    NODE_EXTRA_CA_CERTS: join(root, "etc/spot-restarter/extra-ca.pem"),
    SPOT_RESTARTER_STATE_DIR: join(root, "var/lib/spot-restarter"),
  });
}

const installed = () => join(root, "usr/local/bin/spot-restarter");
const config = () => join(root, "etc/spot-restarter/config.json");

function installArgs(): string[] {
  return [
    "install",
    "--stack-outputs",
    "-",
    "--root",
    root,
    "--authority-host",
    t.emulator.authorityHost,
    "--arm-endpoint",
    t.emulator.armEndpoint,
    "--extra-ca-certs",
    t.emulator.caCertFile,
  ];
}

before(async () => {
  exe = requireArtefact(executablePath("x64"), "npm run build:host");
  t = await startTestEmulator({
    virtualMachines: [spotVm(VM)],
    timing: { startSeconds: 0.5, evictionDelaySeconds: 0 },
  });
  root = await fs.mkdtemp(join(tmpdir(), "spot-restarter-sea-root-"));
});

after(async () => {
  await t?.emulator.stop();
  if (root) await fs.rm(root, { recursive: true, force: true });
  const all = printed.join("");
  const keyLines = (t?.principal.privateKeyPem ?? "").split("\n").filter((l) => l.length > 40);
  for (const line of keyLines) assert.ok(!all.includes(line), "private key material was printed");
});

describe("the linux-x64 single executable, with no node on PATH", () => {
  it("PATH really has no node, and the executable answers --version and --help without the SEA warning", async () => {
    const which = await runHost("/bin/sh", ["-c", "command -v node"], { env: envWithoutNode() });
    assert.notEqual(which.code, 0, `node found on PATH: ${which.stdout}`);
    const version = record(await runHost(exe, ["--version"], { env: envWithoutNode() }));
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, "0.1.0\n");
    assert.equal(version.stderr, "", "no ExperimentalWarning about single executables");
    const help = record(await runHost(exe, ["--help"], { env: envWithoutNode() }));
    assert.equal(help.code, 0);
    assert.match(help.stdout, /\n {2}install /);
  });

  it("installs itself from the stack outputs and verifies the config (doctor) against the emulator", async () => {
    const outputs = JSON.stringify(stackOutputsFor(t.emulator, t.principal, [VM]));
    const result = record(await runHost(exe, installArgs(), { env: envWithoutNode(), stdin: outputs }));
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /single executable .*the host needs none/);
    assert.doesNotMatch(result.stdout, /check: Node\.js/);
    assert.match(result.stdout, /ok: doctor passed/);
    const stat = await fs.stat(installed());
    assert.equal(stat.mode & 0o7777, 0o755);
    assert.equal(await sha256(installed()), await sha256(exe), "the installed command is the executable");
    await assert.rejects(fs.stat(join(root, "usr/local/lib/spot-restarter")), { code: "ENOENT" });
    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/spot-restarter run --config %d\/config\.json$/m);
  });

  it("the installed command runs a once cycle that starts the evicted VM", async () => {
    const result = record(
      await runHost(installed(), ["once", "--config", config(), "--json"], { env: installedEnv() }),
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { starts: { issued: number; succeeded: number } };
    assert.deepEqual(
      { issued: summary.starts.issued, succeeded: summary.starts.succeeded },
      { issued: 1, succeeded: 1 },
    );
    assert.equal((await t.control.vm(resourceGroup, VM))?.powerState, "running");
  });

  it("the installed command runs the loop, restarts an eviction, and ends cleanly on SIGTERM", async () => {
    await t.control.evict(resourceGroup, VM);
    const loop = spawnHost(
      installed(),
      ["run", "--config", config(), "--interval-seconds", "1", "--log-format", "json"],
      { env: installedEnv() },
    );
    try {
      await loop.waitFor(/"event":"started"/, 90_000);
      assert.equal((await t.control.vm(resourceGroup, VM))?.powerState, "running");
    } finally {
      loop.child.kill("SIGTERM");
    }
    const sent = Date.now();
    const result = record(await loop.done);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(Date.now() - sent < 10_000, "stopped within seconds");
    assert.match(result.stderr, /"event":"run-stopped"/);
  });

  it("re-install from the installed copy compares and changes nothing", async () => {
    const outputs = JSON.stringify(stackOutputsFor(t.emulator, t.principal, [VM]));
    const before = (await fs.stat(installed())).ino;
    const result = record(
      await runHost(installed(), [...installArgs(), "--no-verify"], {
        env: envWithoutNode(),
        stdin: outputs,
      }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /unchanged\s+\/usr\/local\/bin\/spot-restarter/);
    assert.match(result.stdout, /nothing changed/);
    assert.equal((await fs.stat(installed())).ino, before);
  });

  it("uninstall --root removes everything install wrote", async () => {
    const result = record(
      await runHost(installed(), ["uninstall", "--root", root], { env: envWithoutNode() }),
    );
    assert.equal(result.code, 0, result.stderr);
    for (const path of [
      "usr/local/bin/spot-restarter",
      "etc/spot-restarter",
      "etc/systemd/system/spot-restarter.service",
      "var/lib/spot-restarter",
    ]) {
      await assert.rejects(fs.lstat(join(root, path)), { code: "ENOENT" }, path);
    }
  });
});
