// Shared set-up for the runtime's tests against the emulator: a world of VMs, a config file and a
// private PEM in a temp folder, and a way to run the real bundle as a subprocess.
import "reflect-metadata";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EmulatorSeed, SeedVirtualMachine } from "../../emulator/index";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { parseConfig, type RuntimeConfig } from "../../runtime/src/config/config";
import { type ProcessResult, type RunningProcess, spawnProcess } from "../../support/process";
import { resourceGroup, spotVm, writeRuntimeFiles } from "../../support/world";

export { resourceGroup, spotVm };

export interface World extends TestEmulator {
  dir: string;
  configPath: string;
  pemPath: string;
  stateDir: string;
  /** The config object written to configPath (file form). */
  configFile: Record<string, unknown>;
  /** The config file as last written, parsed (defaults, absolute paths). */
  readonly config: RuntimeConfig;
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
    /** More of the seed's timing (overrides the two above). */
    timing?: EmulatorSeed["timing"];
    role?: "contributor" | "reader" | "least-privilege" | "none";
    /** The custom role's actions with role `least-privilege` (default: the program's role without opt-ins). */
    actions?: readonly string[];
    config?: Record<string, unknown>;
    /** More seed fields (e.g. `rateLimits`). */
    seed?: Partial<EmulatorSeed>;
    stateDir?: string;
    /** The temp folder's name: spot-restarter-<prefix>-XXXXXX. */
    dirPrefix?: string;
    /** The role on every group holding a VM (default: the first VM's group only). */
    everyGroup?: boolean;
  } = {},
): Promise<World> {
  const t = await startTestEmulator(
    {
      virtualMachines: vms,
      timing: {
        startSeconds: options.startSeconds ?? 0.3,
        evictionDelaySeconds: 0,
        annotationDelaySeconds: options.annotationDelaySeconds ?? 0,
        ...options.timing,
      },
      ...options.seed,
    },
    {
      role: options.role ?? "contributor",
      ...(options.actions ? { actions: options.actions } : {}),
      ...(options.everyGroup ? { everyGroup: true } : {}),
    },
  );
  const dir = mkdtempSync(join(tmpdir(), `spot-restarter-${options.dirPrefix ?? "it"}-`));
  const { pemPath, configPath, stateDir, configFile } = writeRuntimeFiles(t, dir, {
    stateDir: options.stateDir,
    config: { intervalSeconds: 1, ...options.config },
  });
  let current = configFile;
  const world: World = {
    ...t,
    dir,
    configPath,
    pemPath,
    stateDir,
    configFile,
    // Parsed when asked: a test may write a config the runtime is meant to refuse.
    get config() {
      return parseConfig(current, configPath).config;
    },
    writeConfig(overrides) {
      current = { ...configFile, ...overrides };
      writeFileSync(configPath, JSON.stringify(current, null, 2));
    },
  };
  return world;
}

export type CliResult = ProcessResult;
export type RunningCli = RunningProcess;

/** Runs the bundle; the CA to trust is `caCertFile` and nothing else (NODE_EXTRA_CA_CERTS is replaced). */
export function spawnCli(
  bundle: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; caCertFile?: string; cwd?: string; timeoutMs?: number } = {},
): RunningCli {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.caCertFile) env.NODE_EXTRA_CA_CERTS = options.caCertFile;
  else delete env.NODE_EXTRA_CA_CERTS;
  return spawnProcess(process.execPath, [bundle, ...args], {
    env,
    cwd: options.cwd,
    timeoutMs: options.timeoutMs,
  });
}

export function runCli(
  bundle: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; caCertFile?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return spawnCli(bundle, args, { ...options, timeoutMs: options.timeoutMs ?? 30_000 }).done;
}

/** A TCP port free on 127.0.0.1 now (for a listener the config must name, such as metrics.listen). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` every 100 ms until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * When the runtime's cycle had surely seen what happened at `at`: the time the emulator logged the second
 * resource-group list after `at` (a list begins each cycle; the first may have been on its way already).
 * Tests bound "within one loop interval" by this order, not by a wall-clock margin (wait for it with waitUntil).
 */
export async function secondListAfter(
  world: Pick<World, "control">,
  at: number,
): Promise<number | undefined> {
  const lists = (await world.control.requests())
    .filter((r) => r.method === "GET" && /\/virtualMachines$/i.test(r.path) && Date.parse(r.time) > at)
    .map((r) => Date.parse(r.time));
  return lists[1];
}

/**
 * The same instant as the emulator tells it twice: its VM history and its Resource Health annotation read
 * its clock one after the other (emulator/state.ts evict, deallocate), a millisecond or so apart.
 */
export function sameEmulatorInstant(a: number, b: number): boolean {
  return Math.abs(a - b) < 1000;
}

/** One line of stateDir/history.jsonl as the file holds it (runtime/src/state/historyRecords.ts). */
export interface HistoryLine {
  readonly kind: string;
  readonly vm: string;
  readonly at: string;
  readonly by?: string;
  readonly cause?: string;
  readonly occurredAt?: string;
}

/** The eviction history the runtime wrote in `world`'s state directory so far (none yet: empty). */
export function historyLines(world: Pick<World, "stateDir">): HistoryLine[] {
  const path = join(world.stateDir, "history.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as HistoryLine);
}
