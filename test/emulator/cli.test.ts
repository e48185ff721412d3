// The CLI: ready line, a working origin, a clean exit on SIGTERM and SIGINT; the files for a hand run
// of the runtime; stopping with the npm that started it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { EXAMPLE_SEED_FILE, emulatorControl } from "../../emulator/testing";
import { parseConfig } from "../../runtime/src/config/config";
import { parseStackOutputs } from "../../runtime/src/install/stackOutputs";
import { buildRuntimeBundle } from "../../support/bundle";

const CLI = join(__dirname, "../../emulator/cli.ts");

async function startCli(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = createInterface({ input: child.stdout });
  const [first] = (await once(lines, "line")) as [string];
  return {
    child,
    lines,
    ready: JSON.parse(first) as Record<string, unknown> & { armEndpoint: string; caCertFile: string },
  };
}

/** The example seed, then each output flag with its file in `out`: `{ "principal-out": "sp.pem" }`. */
function outputArgs(out: string, files: Record<string, string>): string[] {
  return [
    "--seed",
    EXAMPLE_SEED_FILE,
    ...Object.entries(files).flatMap(([flag, file]) => [`--${flag}`, join(out, file)]),
  ];
}

describe("emulator: CLI", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`prints the ready line, serves, and stops cleanly on ${signal}`, async () => {
      const { child, lines, ready } = await startCli(["--seed", EXAMPLE_SEED_FILE, "--port", "0"]);
      assert.equal(ready.event, "ready");
      assert.match(ready.armEndpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(ready.authorityHost, ready.armEndpoint);
      assert.equal(ready.tenantId, "72f988bf-0000-4000-8000-00000000e1a0");
      assert.ok(existsSync(ready.caCertFile));
      const vms = await emulatorControl(ready.armEndpoint, {
        caCertPem: readFileSync(ready.caCertFile, "utf8"),
      }).vms();
      assert.equal(vms.length, 3);
      const closing = once(child, "exit");
      const stopped = once(lines, "line");
      child.kill(signal);
      assert.deepEqual(JSON.parse(((await stopped) as [string])[0]), { event: "stopped", signal });
      assert.deepEqual(await closing, [0, null]);
      assert.ok(!existsSync(ready.caCertFile), "the temporary CA folder is removed");
    });
  }

  it("writes a principal PEM with mode 0600 when asked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    try {
      const pemFile = join(dir, "sp.pem");
      const { child, ready } = await startCli(["--seed", EXAMPLE_SEED_FILE, "--principal-out", pemFile]);
      const principal = ready.principal as { clientId: string; pemFile: string };
      assert.equal(principal.pemFile, pemFile);
      assert.equal(statSync(pemFile).mode & 0o777, 0o600);
      child.kill("SIGTERM");
      await once(child, "exit");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails with a message naming the field for an invalid seed", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", CLI, "--seed", join(__dirname, "../../package.json")],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 1);
    assert.match(stderr, /invalid emulator seed \(.*package\.json\)/);
    assert.match(stderr, /tenantId/);
  });
});

describe("emulator: CLI outputs for a hand run, and its lifecycle", () => {
  it("writes a runtime config the runtime accepts, the CA and the ready file; removes them on stop", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    try {
      const out = join(dir, "new-folder");
      const { child, ready } = await startCli(
        outputArgs(out, {
          "principal-out": "sp.pem",
          "ca-cert-out": "ca.pem",
          "runtime-config-out": "config.json",
          "ready-file": "ready.json",
        }),
      );
      const principal = ready.principal as { clientId: string; pemFile: string };
      assert.equal(readFileSync(join(out, "ready.json"), "utf8"), `${JSON.stringify(ready)}\n`);
      assert.equal(statSync(join(out, "sp.pem")).mode & 0o777, 0o600);
      assert.equal(statSync(out).mode & 0o777, 0o700, "the folder it created is private");
      assert.equal(readFileSync(join(out, "ca.pem"), "utf8"), readFileSync(ready.caCertFile, "utf8"));
      // The runtime's own parser is the oracle for "ready to use".
      const { config, warnings } = parseConfig(
        JSON.parse(readFileSync(join(out, "config.json"), "utf8")),
        join(out, "config.json"),
      );
      assert.deepEqual(warnings, []);
      assert.equal(config.clientId, principal.clientId);
      assert.equal(config.tenantId, ready.tenantId);
      assert.equal(config.subscriptionId, ready.subscriptionId);
      assert.equal(config.certificatePath, join(out, "sp.pem"));
      assert.deepEqual(config.resourceGroups, ["personal-network"]);
      assert.deepEqual(config.cloud, {
        authorityHost: ready.authorityHost,
        armEndpoint: ready.armEndpoint,
        audience: "https://management.azure.com",
      });
      assert.equal(config.stateDir, join(out, "state"));

      child.kill("SIGTERM");
      await once(child, "exit");
      assert.deepEqual(readdirSync(out), [], "every output of the run is removed on stop");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("after a SIGKILL the same command works again: the killed run's files, state and temp folder are replaced", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    const out = join(dir, "hand-run");
    const args = outputArgs(out, {
      "principal-out": "sp.pem",
      "ca-cert-out": "ca.pem",
      "runtime-config-out": "config.json",
    });
    try {
      const first = await startCli(args);
      const firstClient = (first.ready.principal as { clientId: string }).clientId;
      // The runtime's state for this world (as a `once` leaves it), then a kill that allows no clean-up.
      mkdirSync(join(out, "state"));
      writeFileSync(join(out, "state", "state.json"), "{}");
      first.child.kill("SIGKILL");
      await once(first.child, "exit");
      assert.ok(existsSync(join(out, "sp.pem")) && existsSync(first.ready.caCertFile), "SIGKILL left them");

      const second = await startCli(args);
      try {
        assert.notEqual((second.ready.principal as { clientId: string }).clientId, firstClient);
        assert.equal(
          JSON.parse(readFileSync(join(out, "config.json"), "utf8")).clientId,
          (second.ready.principal as { clientId: string }).clientId,
        );
        assert.ok(!existsSync(dirname(first.ready.caCertFile)), "the killed run's temporary folder is gone");
        assert.ok(!existsSync(join(out, "state")), "the killed world's state is gone with it");
      } finally {
        second.child.kill("SIGTERM");
        await once(second.child, "exit");
      }
      assert.deepEqual(readdirSync(out), [], "a clean stop leaves nothing, state included");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--stack-outputs-out: outputs (with cloud) that install --root takes as they are", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    const out = join(dir, "outputs");
    try {
      const { child, ready } = await startCli(
        outputArgs(out, {
          "principal-out": "sp.pem",
          "ca-cert-out": "ca.pem",
          "stack-outputs-out": "stack-outputs.json",
        }),
      );
      try {
        const file = join(out, "stack-outputs.json");
        assert.equal(ready.stackOutputsFile, file);
        assert.equal(statSync(file).mode & 0o777, 0o600, "it holds the private key");
        // The installer's own parser is the oracle.
        const outputs = parseStackOutputs(readFileSync(file, "utf8"), file);
        assert.equal(outputs.clientId, (ready.principal as { clientId: string }).clientId);
        assert.deepEqual(outputs.cloud, {
          authorityHost: ready.authorityHost,
          armEndpoint: ready.armEndpoint,
        });
        assert.deepEqual(outputs.restartableVms, ["ubuntu-backup-server-spot"]);
        // And the installer itself (the bundle, as on a host), into a temporary root, with the emulator's CA.
        const root = join(dir, "root");
        const install = spawn(
          process.execPath,
          [
            await buildRuntimeBundle(),
            "install",
            "--root",
            root,
            "--stack-outputs",
            file,
            "--extra-ca-certs",
            join(out, "ca.pem"),
            "--dry-run",
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        let text = "";
        install.stdout.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
        });
        install.stderr.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
        });
        const [code] = (await once(install, "exit")) as [number];
        assert.equal(code, 0, text);
        assert.match(text, /config\.json/);
      } finally {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses --runtime-config-out without --principal-out, and never overwrites a file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    try {
      const alone = await runCli(["--seed", EXAMPLE_SEED_FILE, "--runtime-config-out", join(dir, "c.json")]);
      assert.equal(alone.code, 2);
      assert.match(alone.stderr, /--runtime-config-out needs --principal-out/);
      writeFileSync(join(dir, "sp.pem"), "mine");
      const taken = await runCli(["--seed", EXAMPLE_SEED_FILE, "--principal-out", join(dir, "sp.pem")]);
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, /EEXIST/);
      assert.equal(readFileSync(join(dir, "sp.pem"), "utf8"), "mine", "the existing file is untouched");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops and cleans up when the npm that started it is killed (SIGTERM to npm alone)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emulator-cli-"));
    try {
      const readyFile = join(dir, "ready.json");
      const npm = spawn(
        "npm",
        ["run", "-s", "emulator", "--", "--seed", EXAMPLE_SEED_FILE, "--ready-file", readyFile],
        {
          cwd: join(__dirname, "../.."),
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      const npmExit = once(npm, "exit");
      const deadline = Date.now() + 60_000;
      while (!existsSync(readyFile)) {
        assert.ok(Date.now() < deadline && npm.exitCode === null, "the emulator became ready under npm");
        await new Promise((r) => setTimeout(r, 100));
      }
      const ready = JSON.parse(readFileSync(readyFile, "utf8")) as { pid: number; caCertFile: string };
      assert.notEqual(ready.pid, npm.pid, "npm runs the emulator as a child (through sh -c)");
      npm.kill("SIGTERM");
      await npmExit;
      while (isAlive(ready.pid)) {
        assert.ok(Date.now() < deadline, "the emulator outlived the npm that started it");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(!existsSync(ready.caCertFile), "its temporary folder is removed");
      assert.ok(!existsSync(readyFile), "its ready file is removed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stderr };
}
