// `npm run emulator -- --seed FILE [--port N]`: starts the emulator, prints one JSON "ready" line,
// runs until SIGTERM or SIGINT.
import { parseArgs } from "node:util";
import { startEmulator } from "./index";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      port: { type: "string", default: "0" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help || !values.seed) {
    process.stderr.write("usage: npm run emulator -- --seed FILE [--port N]   (port 0 = any free port)\n");
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: expected 0..65535, got '${values.port}'`);

  const emulator = await startEmulator(values.seed, { port });
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
    })}\n`,
  );
  await new Promise((resolve) => shutdown.signal.addEventListener("abort", resolve, { once: true }));
  await emulator.stop();
  process.stdout.write(`${JSON.stringify({ event: "stopped", signal: String(shutdown.signal.reason) })}\n`);
}

main().catch((error: unknown) => {
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
  process.stderr.write(`emulator: ${error instanceof Error ? error.message : String(error)}${cause}\n`);
  process.exitCode = 1;
});
