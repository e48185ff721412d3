// Running a child process and capturing what it prints: the one implementation the tests, the demo, the
// benchmark and the soak use (there were six hand-written copies). No test framework here: demo/ and
// bench/ import it too, and node:test hooks registered outside a test run would print a test report.
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to close. */
  ms: number;
}

export interface ProcessOptions {
  /** The child's whole environment (nothing else is inherited). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, which is then closed. Without it stdin is /dev/null. */
  stdin?: string;
  /** SIGKILL after this long, so a hung child cannot hang its caller. Default: none. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with each complete line of stderr as it arrives (logs are parsed live). */
  onStderrLine?: (line: string) => void;
}

export interface RunningProcess {
  readonly child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stderr line (already printed or future) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves at close; rejects if the process could not be spawned or `signal` aborted it. */
  readonly done: Promise<ProcessResult>;
  /** SIGTERM (or `signal`) unless it has already exited; SIGKILL after `graceMs`; resolves at close. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessResult>;
}

/** Every child spawned here that has not closed yet (see killLiveChildren). */
const live = new Set<RunningProcess>();

/** Spawns `command args…` with stdout and stderr captured as text. */
export function spawnProcess(
  command: string,
  args: readonly string[],
  options: ProcessOptions = {},
): RunningProcess {
  const started = Date.now();
  // stdout and stderr are pipes by construction; stdin is one only when there is input to write.
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    signal: options.signal,
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let stdout = "";
  let stderr = "";
  let partial = "";
  const watchers = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    partial += chunk;
    const complete = partial.split("\n");
    partial = complete.pop() ?? "";
    for (const line of complete) {
      options.onStderrLine?.(line);
      for (const watcher of [...watchers]) {
        if (watcher.pattern.test(line)) {
          watchers.delete(watcher);
          watcher.resolve(line);
        }
      }
    }
  });
  if (child.stdin) {
    // A child that never reads its input (or exits first) must not fail the caller with EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(options.stdin);
  }
  const killer =
    options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
  const done = new Promise<ProcessResult>((resolve, reject) => {
    // Could not spawn, or `signal` aborted it (an AbortError, as child_process reports it).
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      live.delete(running);
      if (partial !== "") options.onStderrLine?.(partial);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const running: RunningProcess = {
    child,
    done,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor(pattern, timeoutMs = 15_000) {
      const seen = stderr.split("\n").find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const watcher = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          watchers.delete(watcher);
          reject(new Error(`no stderr line matched ${pattern} in ${timeoutMs} ms:\n${stderr.slice(-4000)}`));
        }, timeoutMs);
        watchers.add(watcher);
        void done.finally(() => {
          if (!watchers.delete(watcher)) return;
          clearTimeout(timer);
          reject(
            new Error(`the process ended before a stderr line matched ${pattern}:\n${stderr.slice(-4000)}`),
          );
        });
      });
    },
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (!exited()) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await done;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  live.add(running);
  return running;
}

/** Runs `command args…` to completion. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  return spawnProcess(command, args, options).done;
}

/** Runs `node <script> args…` to completion with the Node.js running this process. */
export function runNode(
  script: string,
  args: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  return runProcess(process.execPath, [script, ...args], options);
}

/**
 * SIGKILLs every child spawned through this module that is still running, and waits for them to close.
 * A test harness calls it when a test fails or its file ends: a child left running keeps its pipes, and
 * with them the test file's process, alive forever.
 */
export async function killLiveChildren(): Promise<number> {
  const running = [...live];
  for (const proc of running) proc.child.kill("SIGKILL");
  await Promise.allSettled(running.map((proc) => proc.done));
  return running.length;
}
