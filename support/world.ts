// The project's test world in one place: the Spot VM a seed starts from, the runtime config file the
// tests, the demo-like checks and the host tests write for an emulator, and the stack outputs
// `pulumi stack output --json --show-secrets` prints. Field names are the contracts of docs/architecture.md.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SeedVirtualMachine } from "../emulator/index";

/** The blog's resource group, used by every world. */
export const resourceGroup = "personal-network";
export const restartTag = { name: "AttemptRestartAfterEviction", value: "true" } as const;

/** A deallocated, tagged Spot VM (evictionPolicy Deallocate, maxPrice -1) in `resourceGroup`. */
export function spotVm(name: string, overrides: Partial<SeedVirtualMachine> = {}): SeedVirtualMachine {
  return {
    resourceGroup,
    name,
    location: "eastus",
    vmSize: "Standard_B2s",
    zone: null,
    priority: "Spot",
    evictionPolicy: "Deallocate",
    maxPrice: -1,
    powerState: "deallocated",
    tags: { [restartTag.name]: restartTag.value },
    ...overrides,
  } as SeedVirtualMachine;
}

/** What a runtime config needs to know of an emulator and its principal (a TestEmulator has both). */
export interface EmulatorIdentity {
  emulator: { tenantId: string; subscriptionId: string; authorityHost: string; armEndpoint: string };
  principal: { clientId: string; pem: string };
}

/**
 * The runtime config (file form) that reaches `t`'s emulator as its principal, with the key at
 * `sp.pem` beside it; `overrides` replace or add fields.
 */
export function runtimeConfigFor(
  t: EmulatorIdentity,
  stateDir: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    tenantId: t.emulator.tenantId,
    clientId: t.principal.clientId,
    subscriptionId: t.emulator.subscriptionId,
    certificatePath: "sp.pem",
    resourceGroups: [resourceGroup],
    tag: { ...restartTag },
    stateDir,
    cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint },
    ...overrides,
  };
}

export interface RuntimeFiles {
  pemPath: string;
  configPath: string;
  stateDir: string;
  configFile: Record<string, unknown>;
}

/** Writes `dir/sp.pem` (0600 from creation) and `dir/config.json` from runtimeConfigFor. */
export function writeRuntimeFiles(
  t: EmulatorIdentity,
  dir: string,
  options: { stateDir?: string; config?: Record<string, unknown> } = {},
): RuntimeFiles {
  const pemPath = join(dir, "sp.pem");
  writeFileSync(pemPath, t.principal.pem, { mode: 0o600 });
  const stateDir = options.stateDir ?? join(dir, "state");
  const configPath = join(dir, "config.json");
  const configFile = runtimeConfigFor(t, stateDir, options.config);
  writeFileSync(configPath, JSON.stringify(configFile, null, 2));
  return { pemPath, configPath, stateDir, configFile };
}

/** The stack outputs `pulumi stack output --json --show-secrets` prints; `extra` replaces or adds outputs. */
export function stackOutputs(
  identity: {
    tenantId: string;
    subscriptionId: string;
    clientId: string;
    /** Certificate then key, one PEM. */
    certificatePem: string;
    certificateExpiresOn: Date;
    restartableVms?: readonly string[];
  },
  extra: Record<string, unknown> = {},
) {
  return {
    tenantId: identity.tenantId,
    subscriptionId: identity.subscriptionId,
    clientId: identity.clientId,
    resourceGroupName: resourceGroup,
    restartTag: { ...restartTag },
    restartableVms: [...(identity.restartableVms ?? ["ubuntu-backup-server-spot"])],
    certificatePem: identity.certificatePem,
    certificateExpiresOn: identity.certificateExpiresOn.toISOString(),
    installCommand:
      "pulumi stack output --json --show-secrets | ssh HOST sudo node spot-restarter.cjs install --stack-outputs -",
    ...extra,
  };
}
