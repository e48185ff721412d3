// `npm run emulator -- --seed FILE [--port N]`: starts the emulator, prints one JSON "ready" line,
// runs until SIGTERM or SIGINT.
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadSeedFile, startEmulator } from "./index";
import { createTestPrincipal } from "./principal";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      port: { type: "string", default: "0" },
      "principal-out": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help || !values.seed) {
    process.stderr.write(
      [
        "usage: npm run emulator -- --seed FILE [--port N] [--principal-out PEM]",
        "  --port N            TCP port on 127.0.0.1 (0 = any free port, the default)",
        "  --principal-out PEM also register a fresh service principal with Contributor on the",
        "                      subscription and write its certificate + private key to PEM (mode 0600)",
        "",
      ].join("\n"),
    );
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: expected 0..65535, got '${values.port}'`);

  const seed = loadSeedFile(values.seed);
  let principal: { clientId: string; objectId: string; pemFile: string } | undefined;
  if (values["principal-out"]) {
    const made = await createTestPrincipal();
    // flag "wx": never overwrite (or follow a link to) an existing file; the key is born 0600.
    writeFileSync(values["principal-out"], made.pem, { mode: 0o600, flag: "wx" });
    principal = {
      clientId: made.clientId,
      objectId: made.objectId,
      pemFile: resolve(values["principal-out"]),
    };
    seed.principals.push({
      clientId: made.clientId,
      objectId: made.objectId,
      certificatePem: made.certificatePem,
    });
    seed.roleAssignments.push({
      principalId: made.objectId,
      principalType: "ServicePrincipal",
      roleDefinitionId: `/subscriptions/${seed.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c`,
      scope: `/subscriptions/${seed.subscriptionId}`,
    });
  }
  const emulator = await startEmulator(seed, { port });
  const shutdown = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => shutdown.abort(signal));
  process.stdout.write(
    `${JSON.stringify({
      event: "ready",
      armEndpoint: emulator.armEndpoint,
      authorityHost: emulator.authorityHost,
      caCertFile: emulator.caCertFile,
      tenantId: emulator.tenantId,
      subscriptionId: emulator.subscriptionId,
      ...(principal ? { principal } : {}),
    })}\n`,
  );
  await new Promise((done) => shutdown.signal.addEventListener("abort", done, { once: true }));
  await emulator.stop();
  process.stdout.write(`${JSON.stringify({ event: "stopped", signal: String(shutdown.signal.reason) })}\n`);
}

main().catch((error: unknown) => {
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
  process.stderr.write(`emulator: ${error instanceof Error ? error.message : String(error)}${cause}\n`);
  process.exitCode = 1;
});
