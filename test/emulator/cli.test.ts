// The CLI: ready line, a working origin, a clean exit on SIGTERM and SIGINT.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { EXAMPLE_SEED_FILE, emulatorControl } from "../../emulator/testing";

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
