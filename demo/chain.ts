// The host half of the chain, as a user runs it: build the single-file bundle, `install` it into a root
// from the stack outputs, then run the *installed* runtime with the installed config.json and sp.pem.
// Shared by the end-to-end test, the demo and the benchmark.
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { type ProcessResult, runNode } from "../support/process";
import type { EmulatorEndpoints } from "./apply-program";

// One implementation of each, in support/ (the demo, the benchmark and the tests share them).
export { buildBundle } from "../support/bundle";
export { type ProcessResult, runNode } from "../support/process";

export interface InstallOptions {
  bundle: string;
  outputsFile: string;
  root: string;
  emulator: EmulatorEndpoints;
  scheduler?: "systemd" | "cron";
  /** Run the installer's own verification (`doctor` of the installed bundle). Default false. */
  verify?: boolean;
  signal?: AbortSignal;
}

/**
 * `spot-restarter install --stack-outputs F --root DIR` with the emulator's endpoints and CA, the way
 * runtime/src/install/README.md says to reach a non-public cloud.
 */
export function install(options: InstallOptions): Promise<ProcessResult> {
  return runNode(
    options.bundle,
    [
      "install",
      "--stack-outputs",
      options.outputsFile,
      "--root",
      options.root,
      "--scheduler",
      options.scheduler ?? "systemd",
      "--authority-host",
      options.emulator.authorityHost,
      "--arm-endpoint",
      options.emulator.armEndpoint,
      "--extra-ca-certs",
      options.emulator.caCertFile,
      ...(options.verify ? [] : ["--no-verify"]),
    ],
    { signal: options.signal },
  );
}

/** The runtime as install left it under `root`: its bundle, config and the environment the unit gives it. */
export interface InstalledRuntime {
  root: string;
  bundle: string;
  config: string;
  key: string;
  env: NodeJS.ProcessEnv;
}

export function installedRuntime(root: string, extraEnv: NodeJS.ProcessEnv = {}): InstalledRuntime {
  return {
    root,
    bundle: join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs"),
    config: join(root, "etc/spot-restarter/config.json"),
    key: join(root, "etc/spot-restarter/sp.pem"),
    env: {
      ...process.env,
      // What the systemd unit sets (NODE_EXTRA_CA_CERTS=%d/extra-ca.pem); the state directory is the
      // root's, since config.json names the host path /var/lib/spot-restarter.
      NODE_EXTRA_CA_CERTS: join(root, "etc/spot-restarter/extra-ca.pem"),
      SPOT_RESTARTER_STATE_DIR: join(root, "var/lib/spot-restarter"),
      ...extraEnv,
    },
  };
}

/** `spot-restarter <command> --config <installed config> args…`, to completion. */
export function runInstalled(
  runtime: InstalledRuntime,
  command: string,
  args: readonly string[] = [],
  options: { signal?: AbortSignal } = {},
): Promise<ProcessResult> {
  return runNode(runtime.bundle, [command, "--config", runtime.config, ...args], {
    env: runtime.env,
    signal: options.signal,
  });
}

export type RuntimeProcess = ChildProcessByStdio<null, Readable, Readable>;

/** Starts `spot-restarter run --config <installed config> args…` (the systemd service's command). */
export function startInstalledLoop(runtime: InstalledRuntime, args: readonly string[] = []): RuntimeProcess {
  return spawn(process.execPath, [runtime.bundle, "run", "--config", runtime.config, ...args], {
    env: runtime.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Resolves with the exit code and signal once `child` has exited (immediately if it already has). */
export function exited(
  child: RuntimeProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((done) => child.once("exit", (code, signal) => done({ code, signal })));
}

export interface EmulatorProcess {
  ready: EmulatorEndpoints;
  /** SIGTERM, then waits for the exit (the emulator removes its CA folder on the way out). */
  stop(): Promise<void>;
}

/**
 * `npm run emulator -- --seed FILE --port 0` as a child process, resolved on its `ready` line
 * (docs/architecture.md). A separate process, so that what the demo or the benchmark measures does not share an
 * event loop (or CPU accounting) with the emulator.
 */
export async function startEmulatorProcess(
  seedFile: string,
  options: { signal?: AbortSignal } = {},
): Promise<EmulatorProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", resolve(__dirname, "../emulator/cli.ts"), "--seed", seedFile, "--port", "0"],
    { cwd: resolve(__dirname, ".."), stdio: ["ignore", "pipe", "pipe"] },
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await gone;
    }
  };
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  try {
    const ready = await new Promise<EmulatorEndpoints>((done, fail) => {
      let buffer = "";
      const onData = (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        const line = lines.find((l) => l.startsWith('{"event":"ready"'));
        if (line) {
          child.stdout.off("data", onData);
          child.stdout.resume();
          done(JSON.parse(line) as EmulatorEndpoints);
        }
      };
      child.stdout.setEncoding("utf8").on("data", onData);
      child.once("exit", (code) => fail(new Error(`the emulator exited (code ${code}):\n${stderr}`)));
      options.signal?.addEventListener("abort", () => fail(options.signal?.reason), { once: true });
    });
    return { ready, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
