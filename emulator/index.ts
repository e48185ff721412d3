// The local Azure emulator (Entra ID + Resource Manager subset). See README.md in this folder.
// It must never import the runtime or the Pulumi program: it stands for Azure, not for us.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { warmResourceGraph } from "./arm/kusto";
import { createTlsMaterial } from "./ca";
import { EntraEmulator } from "./entra";
import { knownCas } from "./known-cas";
import { type EmulatorSeed, loadSeedFile, parseSeed } from "./seed";
import { startServer } from "./server";
import { World } from "./state";

export type { RequestLogEntry } from "./control";
export type {
  EmulatorSeed,
  EmulatorTiming,
  FaultRule,
  PowerState,
  ResolvedSeed,
  SeedPrincipal,
  SeedResourceGroup,
  SeedRoleAssignment,
  SeedRoleDefinition,
  SeedVirtualMachine,
} from "./seed";
export { loadSeedFile, parseSeed } from "./seed";

export interface RunningEmulator {
  /** Resource Manager base URL, e.g. `https://127.0.0.1:PORT` (ARM is served at the root). */
  armEndpoint: string;
  /** Entra authority host (same origin): tenant paths `/{tenant}/oauth2/v2.0/token` beneath it, and `/adfs` for az. */
  authorityHost: string;
  /** Path of the PEM file of the CA that signed the server certificate (in a temporary folder removed by stop()). */
  caCertFile: string;
  caCertPem: string;
  tenantId: string;
  subscriptionId: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
}

export async function startEmulator(
  seed: EmulatorSeed | string,
  options: StartOptions = {},
): Promise<RunningEmulator> {
  const resolved = typeof seed === "string" ? loadSeedFile(seed) : parseSeed(seed);
  // Once per process: the Kusto parser behind Resource Graph takes seconds to load (arm/kusto.ts).
  warmResourceGraph();
  const world = new World(resolved);
  const host = "127.0.0.1";
  const [tls, entra] = await Promise.all([
    createTlsMaterial({ ips: [host, "::1"], dns: ["localhost"] }),
    EntraEmulator.create(world),
  ]);
  const dir = mkdtempSync(join(tmpdir(), "azure-emulator-"));
  const caCertFile = join(dir, "ca.pem");
  writeFileSync(caCertFile, tls.caCertPem, { mode: 0o644 });

  let info: Record<string, unknown> = {};
  const { server, origin } = await startServer({
    world,
    entra,
    tls: { key: tls.serverKeyPem, cert: tls.serverCertPem },
    port: options.port ?? 0,
    host,
    info: () => info,
  });
  knownCas.set(origin, tls.caCertPem);
  info = {
    armEndpoint: origin,
    authorityHost: origin,
    caCertFile,
    tenantId: world.tenantId,
    subscriptionId: world.subscriptionId,
  };

  let stopped: Promise<void> | undefined;
  return {
    armEndpoint: origin,
    authorityHost: origin,
    caCertFile,
    caCertPem: tls.caCertPem,
    tenantId: world.tenantId,
    subscriptionId: world.subscriptionId,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).finally(() => {
        knownCas.delete(origin);
        rmSync(dir, { recursive: true, force: true });
      });
      return stopped;
    },
  };
}
