// Authentication and permission failures through the real bundle, against the emulator: each exits
// with its code and a message naming the likely cause (tenant, client id, certificate, CA, endpoint,
// audience) or the missing permission.
import "reflect-metadata";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { createTestPrincipal } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { resourceGroup, runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

let bundle: string;
before(async () => {
  bundle = await buildRuntimeBundle();
});

describe("authentication failures", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("a")]);
  });
  after(() => world.emulator.stop());

  const onceWith = async (overrides: Record<string, unknown>, options: { trustCa?: boolean } = {}) => {
    world.writeConfig(overrides);
    try {
      return await runCli(bundle, ["once", "--config", world.configPath], {
        caCertFile: options.trustCa === false ? undefined : world.emulator.caCertFile,
      });
    } finally {
      world.writeConfig({});
    }
  };

  it("an unknown tenant names tenantId", async () => {
    const result = await onceWith({ tenantId: "00000000-0000-4000-8000-0000000000ff" });
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /tenant "00000000-0000-4000-8000-0000000000ff" (was not found|is not known).*check tenantId/,
    );
  });

  it("an unknown client id names clientId", async () => {
    const result = await onceWith({ clientId: "99999999-9999-4999-8999-999999999999" });
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /application "99999999-9999-4999-8999-999999999999" was not found .*clientId/,
    );
  });

  it("a certificate not registered on the application names the certificate", async () => {
    const stranger = await createTestPrincipal();
    const { writeFileSync } = await import("node:fs");
    const strangerPem = `${world.dir}/stranger.pem`;
    writeFileSync(strangerPem, stranger.pem, { mode: 0o600 });
    const result = await onceWith({ certificatePath: "stranger.pem" });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /rejected the certificate in .*stranger\.pem \(AADSTS\d+\)/);
    assert.doesNotMatch(result.stderr, /PRIVATE KEY|eyJ/);
  });

  it("an untrusted CA is told apart from an unreachable authority", async () => {
    const untrusted = await onceWith({}, { trustCa: false });
    assert.equal(untrusted.code, 3, untrusted.stderr);
    assert.match(
      untrusted.stderr,
      /TLS certificate of the authority .* is not trusted \([A-Z_]+\).*NODE_EXTRA_CA_CERTS/,
    );

    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const unreachable = await onceWith({
      cloud: { authorityHost: `https://127.0.0.1:${port}`, armEndpoint: world.emulator.armEndpoint },
    });
    assert.equal(unreachable.code, 3, unreachable.stderr);
    assert.match(unreachable.stderr, /authority https:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\)/);
  });

  it("a wrong audience points at cloud.audience", async () => {
    const result = await onceWith({
      cloud: {
        authorityHost: world.emulator.authorityHost,
        armEndpoint: world.emulator.armEndpoint,
        audience: "https://graph.microsoft.com",
      },
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /cloud\.audience/);
  });

  it("a PEM readable by others is refused with the chmod that fixes it", async () => {
    chmodSync(world.pemPath, 0o640);
    try {
      const result = await onceWith({});
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, new RegExp(`run chmod 600 ${world.pemPath}`));
    } finally {
      chmodSync(world.pemPath, 0o600);
    }
  });
});

describe("Entra ID unavailable", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("a")]);
  });
  after(() => world.emulator.stop());

  it("once: exit 3 naming the token endpoint's HTTP status", async () => {
    await world.control.addFaults({ pathPattern: "/oauth2/v2.0/token$", status: 503 });
    try {
      const result = await runCli(bundle, ["once", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /the Entra ID token endpoint answered HTTP 503 \(ServiceUnavailable/);
      assert.doesNotMatch(result.stderr, /\[object Object\]/);
    } finally {
      await world.control.clearFaults();
    }
  });

  it("run: logs it once, keeps going, and starts the VM as soon as Entra ID answers again", async () => {
    await world.control.addFaults({ pathPattern: "/oauth2/v2.0/token$", status: 503 });
    const running = spawnCli(bundle, ["run", "--config", world.configPath, "--log-format", "json"], {
      caCertFile: world.emulator.caCertFile,
    });
    try {
      await running.waitFor(/"event":"run-started"/);
      await running.waitFor(/"event":"token-unavailable".*HTTP 503/);
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(running.child.exitCode, null, "still running");
      await world.control.clearFaults();
      const cleared = Date.now();
      await running.waitFor(/"event":"started"/, 10_000);
      process.stdout.write(`# VM started ${Date.now() - cleared} ms after Entra ID came back\n`);
    } finally {
      await world.control.clearFaults();
      running.child.kill("SIGTERM");
    }
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    const unavailable = result.stderr.split("\n").filter((l) => l.includes('"event":"token-unavailable"'));
    assert.ok(unavailable.length <= 2, `one line per change, not per cycle:\n${unavailable.join("\n")}`);
    assert.match(result.stderr, /"event":"token-available"/);
  });
});

describe("permission failures", () => {
  it("no role at all: exit 4 naming Microsoft.Compute/virtualMachines/read", async () => {
    const world = await startWorld([spotVm("a")], { role: "none" });
    try {
      const result = await runCli(bundle, ["once", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(result.code, 4, result.stderr);
      assert.match(
        result.stderr,
        /lacks the permission Microsoft\.Compute\/virtualMachines\/read on resource group personal-network/,
      );
    } finally {
      await world.emulator.stop();
    }
  });

  it("Reader: the cycle reads, the start is refused: exit 4 naming start/action", async () => {
    const world = await startWorld([spotVm("a")], { role: "reader" });
    try {
      const result = await runCli(bundle, ["once", "--json", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(result.code, 4, result.stderr);
      assert.match(
        result.stderr,
        /lacks the permission Microsoft\.Compute\/virtualMachines\/start\/action needed to start personal-network\/a/,
      );
      const summary = JSON.parse(result.stdout);
      assert.equal(summary.vms[0].start.outcome, "forbidden");
      assert.match(summary.error, /start\/action/);
      assert.equal((await world.control.vm(resourceGroup, "a"))?.powerState, "deallocated");
    } finally {
      await world.emulator.stop();
    }
  });

  it("least privilege is enough for a full cycle", async () => {
    const world = await startWorld([spotVm("a")], { role: "least-privilege" });
    try {
      const result = await runCli(bundle, ["once", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await world.control.vm(resourceGroup, "a"))?.powerState, "running");
    } finally {
      await world.emulator.stop();
    }
  });
});
