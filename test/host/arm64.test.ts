// The linux-arm64 single executable (Raspberry Pi and other arm64 hosts) under qemu user-mode
// emulation: --help, and one `once` cycle against the emulator that starts an evicted VM. Needs the
// Debian packages qemu-user-static, libc6-arm64-cross and libstdc++6-arm64-cross (.ci/run installs
// them); without them this fails under CI and is skipped, visibly, elsewhere.
import "reflect-metadata";
import assert from "node:assert/strict";
import { existsSync, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { spotVm, writeRuntimeFiles } from "../../support/world";
import {
  envWithoutNode,
  executablePath,
  requireArtefact,
  resourceGroup,
  runHost,
  skipUnlessTool,
} from "./host";

const QEMU = "/usr/bin/qemu-aarch64-static";
/** Where libc6-arm64-cross and libstdc++6-arm64-cross put the arm64 loader and libraries. */
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";
const VM = "raspberry-pi-backup-target";

const skip = skipUnlessTool(
  existsSync(QEMU) && existsSync(join(ARM64_SYSROOT, "lib", "ld-linux-aarch64.so.1")),
  "apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross",
);

let exe: string;
let t: TestEmulator;
let dir: string;

before(async () => {
  if (skip) return;
  exe = requireArtefact(executablePath("arm64"), "npm run build:host");
  assert.ok(
    existsSync(QEMU) && existsSync(join(ARM64_SYSROOT, "lib", "ld-linux-aarch64.so.1")),
    `arm64 emulation needs ${QEMU} and ${ARM64_SYSROOT}: apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross`,
  );
  t = await startTestEmulator({
    virtualMachines: [spotVm(VM)],
    timing: { startSeconds: 0.5, evictionDelaySeconds: 0 },
  });
  dir = await fs.mkdtemp(join(tmpdir(), "spot-restarter-arm64-"));
  writeRuntimeFiles(t, dir);
});

after(async () => {
  await t?.emulator.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** `qemu-aarch64-static -L /usr/aarch64-linux-gnu <exe> args…`, with no node on PATH. */
function runArm64(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runHost(QEMU, ["-L", ARM64_SYSROOT, exe, ...args], {
    env: envWithoutNode(env),
    timeoutMs: 180_000,
  });
}

describe("the linux-arm64 single executable, under qemu user-mode emulation", { skip }, () => {
  it("is an arm64 ELF and prints --help", async () => {
    const header = Buffer.alloc(20);
    const handle = await fs.open(exe, "r");
    await handle.read(header, 0, 20, 0);
    await handle.close();
    assert.equal(header.subarray(0, 4).toString("latin1"), "\x7fELF");
    assert.equal(header.readUInt16LE(18), 183, "e_machine EM_AARCH64");
    const help = await runArm64(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^spot-restarter 0\.1\.0: starts evicted Azure Spot VMs again\./);
    assert.equal(help.stderr, "", "no ExperimentalWarning about single executables");
  });

  it("runs a once cycle against the emulator that starts the evicted VM", async () => {
    const started = Date.now();
    const result = await runArm64(["once", "--config", join(dir, "config.json"), "--json"], {
      NODE_EXTRA_CA_CERTS: t.emulator.caCertFile,
    });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { starts: { issued: number; succeeded: number } };
    assert.equal(summary.starts.issued, 1);
    assert.equal(summary.starts.succeeded, 1);
    assert.equal((await t.control.vm(resourceGroup, VM))?.powerState, "running");
    process.stdout.write(`# arm64 once cycle under qemu: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  });
});
