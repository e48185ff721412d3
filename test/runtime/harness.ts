// Shared set-up for the runtime's tests against the emulator: a world of VMs, a config file and a
// private PEM in a temp folder, and a way to run the real bundle as a subprocess.
import "reflect-metadata";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EmulatorSeed, SeedVirtualMachine } from "../../emulator/index";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { parseConfig, type RuntimeConfig } from "../../runtime/src/config";

export const resourceGroup = "personal-network";

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
    tags: { AttemptRestartAfterEviction: "true" },
    ...overrides,
  } as SeedVirtualMachine;
}

export interface World extends TestEmulator {
  dir: string;
  configPath: string;
  pemPath: string;
  stateDir: string;
  /** The config object written to configPath (file form). */
  configFile: Record<string, unknown>;
  /** The same, parsed (defaults, absolute paths). */
  config: RuntimeConfig;
  /** Rewrites config.json with these fields changed. */
  writeConfig(overrides: Record<string, unknown>): void;
}

export async function startWorld(
  vms: SeedVirtualMachine[],
  options: {
    startSeconds?: number;
    /**
     * When an eviction's Resource Health annotation becomes visible (default 0 here: the tests that are
     * not about a late signal see an eviction explained at once; the emulator's own default is 1 s).
     */
    annotationDelaySeconds?: number;
    role?: "contributor" | "reader" | "least-privilege" | "none";
    /** The custom role's actions with role `least-privilege` (default: the program's role without opt-ins). */
    actions?: readonly string[];
    config?: Record<string, unknown>;
    /** More seed fields (e.g. `rateLimits`). */
    seed?: Partial<EmulatorSeed>;
  } = {},
): Promise<World> {
  const t = await startTestEmulator(
    {
      virtualMachines: vms,
      timing: {
        startSeconds: options.startSeconds ?? 0.3,
        evictionDelaySeconds: 0,
        annotationDelaySeconds: options.annotationDelaySeconds ?? 0,
      },
      ...options.seed,
    },
    { role: options.role ?? "contributor", ...(options.actions ? { actions: options.actions } : {}) },
  );
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-it-"));
  const pemPath = join(dir, "sp.pem");
  writeFileSync(pemPath, t.principal.pem, { mode: 0o600 });
  const stateDir = join(dir, "state");
  const configPath = join(dir, "config.json");
  const configFile: Record<string, unknown> = {
    tenantId: t.emulator.tenantId,
    clientId: t.principal.clientId,
    subscriptionId: t.emulator.subscriptionId,
    certificatePath: "sp.pem",
    resourceGroups: [resourceGroup],
    tag: { name: "AttemptRestartAfterEviction", value: "true" },
    intervalSeconds: 1,
    stateDir,
    cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint },
    ...options.config,
  };
  const world: World = {
    ...t,
    dir,
    configPath,
    pemPath,
    stateDir,
    configFile,
    config: parseConfig(configFile, configPath).config,
    writeConfig(overrides) {
      const next = { ...configFile, ...overrides };
      writeFileSync(configPath, JSON.stringify(next, null, 2));
      world.config = parseConfig(next, configPath).config;
    },
  };
  world.writeConfig({});
  return world;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunningCli {
  readonly child: ReturnType<typeof spawn>;
  /** Resolves when stderr has printed a line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  done: Promise<CliResult>;
}

export function spawnCli(
  bundle: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; caCertFile?: string; cwd?: string } = {},
): RunningCli {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.caCertFile) env.NODE_EXTRA_CA_CERTS = options.caCertFile;
  else delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, [bundle, ...args], {
    env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const watchers: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const watcher of [...watchers]) {
      const line = stderr.split("\n").find((l) => watcher.pattern.test(l));
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(watcher), 1);
        watcher.resolve(line);
      }
    }
  });
  const done = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return {
    child,
    done,
    waitFor(pattern, timeoutMs = 15_000) {
      const line = stderr.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no stderr line matching ${pattern} in ${timeoutMs} ms:\n${stderr}`)),
          timeoutMs,
        );
        watchers.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void done.then(() => {
          clearTimeout(timer);
          reject(new Error(`process ended before a stderr line matched ${pattern}:\n${stderr}`));
        });
      });
    },
  };
}

export function runCli(
  bundle: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; caCertFile?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const running = spawnCli(bundle, args, options);
  const timer = setTimeout(() => running.child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  return running.done.finally(() => clearTimeout(timer));
}
