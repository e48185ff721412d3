// What the installer does to its host apart from files: the commands it runs (systemctl, useradd,
// getent, the verification), where its output goes, and how an expected failure becomes a message and
// an exit code (the runtime's errors, errors.ts). Tests replace any of it through `InstallerHost`.
import { spawn } from "node:child_process";
import { exitCodes, RuntimeError } from "../core/errors";
import { escapeControlCharacters } from "../core/text";
import { shellQuote } from "./layout";
import type { InstallSource } from "./self";
import { StackOutputsError } from "./stackOutputs";

/** An expected failure that is not bad input (exit code 1): its message is the whole story. */
export function failure(message: string, options?: ErrorOptions): RuntimeError {
  return new RuntimeError(message, exitCodes.failure, options);
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type RunCommand = (
  command: string,
  args: readonly string[],
  options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number },
) => Promise<CommandResult>;

export interface Writer {
  write(text: string): unknown;
}

/** What the installer takes from its surroundings; tests replace any of it. */
export interface InstallerHost {
  stdin?: AsyncIterable<Buffer | string> & { isTTY?: boolean };
  stdout?: Writer;
  stderr?: Writer;
  runCommand?: RunCommand;
  /** `process.versions.node` by default. */
  nodeVersion?: string;
  /** The Node.js the installed command and the verification run use; `process.execPath` by default. */
  nodePath?: string;
  /** The bundle to install (the running spot-restarter.cjs by default). */
  bundlePath?: string;
  /**
   * What to install as the command. Default: the running single executable (self.ts), or else the
   * bundle at `bundlePath` run by `nodePath`.
   */
  self?: InstallSource;
  env?: NodeJS.ProcessEnv;
  /**
   * Whether this process is root (uid 0): may write into "/", and may run the verification as the
   * scheduler's user (setpriv).
   */
  isRoot?: boolean;
  /** Run systemctl (default: only when root is "/"). */
  manageServices?: boolean;
  /** Whether systemd is the running init (default: /run/systemd/system exists, sd_booted(3)). */
  systemdRunning?: boolean;
  now?: () => Date;
}

export const defaultRunCommand: RunCommand = (command, args, options = {}) =>
  new Promise((resolvePromise) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      const reason = error.code === "ENOENT" ? `${command} not found` : error.message;
      resolvePromise({ code: 127, stdout, stderr: `${stderr}${reason}\n` });
    });
    child.on("close", (code, signal) => {
      resolvePromise({
        code: code ?? 128,
        stdout,
        stderr: signal ? `${stderr}killed by ${signal}\n` : stderr,
      });
    });
  });

export interface Context {
  out(line: string): void;
  err(line: string): void;
  run: RunCommand;
  env: NodeJS.ProcessEnv;
  root: string;
  dryRun: boolean;
  manageServices: boolean;
}

export function makeContext(root: string, dryRun: boolean, host: InstallerHost): Context {
  const stdout = host.stdout ?? process.stdout;
  const stderr = host.stderr ?? process.stderr;
  return {
    out: (line) => stdout.write(`${line}\n`),
    err: (line) => stderr.write(`${line}\n`),
    run: host.runCommand ?? defaultRunCommand,
    env: host.env ?? process.env,
    root,
    dryRun,
    manageServices: host.manageServices ?? root === "/",
  };
}

export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(shellQuote).join(" ");
}

/** Runs a systemctl (or other) command, or only prints it in a dry run. */
export async function runStep(
  context: Context,
  command: string,
  args: readonly string[],
): Promise<CommandResult> {
  const line = commandLine(command, args);
  if (context.dryRun) {
    context.out(`  would run  ${line}`);
    return { code: 0, stdout: "", stderr: "" };
  }
  context.out(`  run        ${line}`);
  const result = await context.run(command, args);
  relayOutput(context, [result.stdout, result.stderr]);
  return result;
}

/**
 * Shows a command's output under the step that ran it, one "|" line each, control characters escaped
 * (core/text.ts, the logger's function too): what a child prints may quote outside input (issue 25, item 4).
 */
export function relayOutput(context: Pick<Context, "out">, texts: readonly string[]): void {
  for (const text of texts) {
    for (const outputLine of text.split("\n").filter((l) => l.trim() !== ""))
      context.out(`             | ${escapeControlCharacters(outputLine)}`);
  }
}

export async function withErrorHandling(
  command: "install" | "uninstall",
  context: Context,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof StackOutputsError) {
      context.err(`spot-restarter ${command}: ${error.message}`);
      context.err("nothing was written");
      return error.exitCode;
    }
    // The runtime's own errors (errors.ts) carry their exit code: 2 bad input, nothing written; 1 otherwise.
    if (error instanceof RuntimeError) {
      context.err(`spot-restarter ${command}: ${error.message}`);
      return error.exitCode;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      context.err(
        `spot-restarter ${command}: ${(error as Error).message}: run it as root (sudo), or use --root DIR`,
      );
      return exitCodes.failure;
    }
    throw error;
  }
}
