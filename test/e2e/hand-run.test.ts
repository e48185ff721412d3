// The README's "three commands" from a fresh clone to a hand-run `once` on the emulator, run exactly as
// written (only their folder moved to a fresh temporary one, and `npm ci` left out: this checkout has
// run it), then the README's stop step: Ctrl-C, that is SIGINT to the whole foreground process group.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { emulatorControl } from "../../emulator/testing";

const REPO = resolve(__dirname, "../..");
const README_FOLDER = "/tmp/spot-restarter-hand-run";

/** The shell commands of the README block marked `<!-- hand-run … -->` (continuation lines joined). */
function handRunCommands(readme: string): string[] {
  const block = /<!-- hand-run:[^>]*-->\s*```bash\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "README.md has the hand-run block");
  return block
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

function bash(command: string): ChildProcess {
  // detached: its own process group, as a terminal's foreground job has, so "Ctrl-C" can reach all of it.
  return spawn("bash", ["-c", command], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], detached: true });
}

function collect(child: ChildProcess): { text: () => string } {
  let text = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    text += chunk;
  });
  return { text: () => text };
}

const folder = mkdtempSync(join(tmpdir(), "spot-restarter-hand-run-"));
after(() => rmSync(folder, { recursive: true, force: true }));

test("README: three commands from a fresh clone to a hand-run once, then Ctrl-C stops the emulator", {
  timeout: 180_000,
}, async () => {
  const commands = handRunCommands(readFileSync(join(REPO, "README.md"), "utf8"));
  assert.equal(commands.length, 3, commands.join("\n"));
  assert.equal(commands[0], "npm ci");
  const [emulatorCommand, onceCommand] = commands
    .slice(1)
    .map((c) => c.replaceAll(README_FOLDER, folder)) as [string, string];
  assert.match(emulatorCommand, /^npm run -s emulator -- /);

  const emulator = bash(emulatorCommand);
  const emulatorErr = collect(emulator);
  const exited = once(emulator, "exit");
  try {
    const lines = createInterface({ input: emulator.stdout as NodeJS.ReadableStream });
    // With -s, the first line on stdout is the ready line itself, not npm's banner.
    const [first] = (await Promise.race([
      once(lines, "line"),
      exited.then(() => assert.fail(`the emulator exited:\n${emulatorErr.text()}`)),
    ])) as [string];
    const ready = JSON.parse(first) as { armEndpoint: string; caCertFile: string; runtimeConfigFile: string };
    assert.equal(ready.runtimeConfigFile, join(folder, "config.json"));

    const runtime = bash(onceCommand);
    let stdout = "";
    runtime.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    const runtimeErr = collect(runtime);
    const [code] = (await once(runtime, "exit")) as [number];
    assert.equal(code, 0, `${stdout}\n${runtimeErr.text()}`);
    assert.match(runtimeErr.text(), /deallocated-vm-seen vm=personal-network\/ubuntu-backup-server-spot/);
    assert.match(runtimeErr.text(), /started vm=personal-network\/ubuntu-backup-server-spot/);
    const control = emulatorControl(ready.armEndpoint, {
      caCertPem: readFileSync(join(folder, "ca.pem"), "utf8"),
    });
    const vm = await control.vm("personal-network", "ubuntu-backup-server-spot");
    assert.equal(vm?.powerState, "running");
    assert.equal(vm?.startRequests, 1);
    assert.equal((await control.vm("personal-network", "scratch-builder-spot"))?.startRequests, 0);

    // The stop step: Ctrl-C in terminal 1.
    process.kill(-(emulator.pid as number), "SIGINT");
    await exited;
    assert.ok(!existsSync(dirname(ready.caCertFile)), "the emulator's temporary folder is removed");
    assert.deepEqual(
      readdirSync(folder).sort(),
      [],
      "the principal, CA copy, config and this world's runtime state are removed: the next world starts fresh",
    );
  } finally {
    if (emulator.exitCode === null && emulator.signalCode === null)
      process.kill(-(emulator.pid as number), "SIGKILL");
  }
});
