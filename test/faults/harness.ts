// The fault matrix's set-up: an emulator world, a runtime config, and the real bundle in `run` mode as
// a child process whose JSON log lines are parsed as they arrive. Every row reads its counts from the
// emulator's request log (what Azure saw), not from the runtime's own account of itself.
import "reflect-metadata";
import type { ChildProcess } from "node:child_process";
import { after } from "node:test";
import type { EmulatorSeed, SeedVirtualMachine } from "../../emulator/index";
import type { LoggedRequest } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { killLiveChildren, spawnProcess } from "../../support/process";
import { assertNoSecrets } from "../../support/secrets";
// The same world-building vocabulary as the runtime's own emulator tests.
import { resourceGroup, spotVm } from "../../support/world";
import { startWorld, type World } from "../runtime/harness";

export { resourceGroup, spotVm };

export interface Row extends World {
  /** ARM requests (not token, not control) made by this row's principal, oldest first. */
  armRequests(): Promise<LoggedRequest[]>;
  /** Token-endpoint requests. */
  tokenRequests(): Promise<LoggedRequest[]>;
  startRequests(vm: string): Promise<number[]>;
  waitForVm(vm: string, powerState: string, timeoutMs?: number): Promise<number>;
  /** Every output of every process this row ran, for the secret scan. */
  outputs: string[];
  /** Processes to kill if the row fails before stopping them (close() does). */
  children: ChildProcess[];
  /** Settle when those processes have closed and their output is in `outputs`. */
  exits: Promise<unknown>[];
  /** Runs a one-shot command of the bundle (async: the emulator lives in this process). */
  cli(
    args: string[],
    env?: NodeJS.ProcessEnv,
  ): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
  close(): Promise<void>;
}

/** Rows not closed yet. */
const openRows = new Set<Row>();

// A row whose test fails or forgets close() must not outlive its file: its runtime child (and emulator)
// would hold the test file's process open for ever, and `npm test` would wait for it until its timeout.
// Rows run concurrently, so one failing row cannot tell which children are its own; when every test of
// the file has run, the rows still open are closed and any child still alive is killed.
after(async () => {
  await Promise.allSettled([...openRows].map((row) => row.close()));
  await killLiveChildren();
});

export async function startRow(
  vms: SeedVirtualMachine[],
  options: {
    startSeconds?: number;
    timing?: EmulatorSeed["timing"];
    config?: Record<string, unknown>;
    role?: "contributor" | "reader" | "least-privilege" | "none";
    /** The custom role's actions with role `least-privilege`. */
    actions?: readonly string[];
    stateDir?: string;
    /** More seed fields (e.g. `rateLimits`). */
    seed?: Partial<EmulatorSeed>;
  } = {},
): Promise<Row> {
  const world = await startWorld(vms, {
    // annotationDelaySeconds 0: an eviction is explained at once unless a row is about a late signal.
    startSeconds: options.startSeconds ?? 0.5,
    timing: options.timing,
    role: options.role,
    actions: options.actions,
    stateDir: options.stateDir,
    seed: options.seed,
    dirPrefix: "fault",
    config: { backoff: { initialSeconds: 2, maxSeconds: 8 }, startTimeoutSeconds: 30, ...options.config },
  });
  const t = world;
  const { configFile } = world;
  const outputs: string[] = [];
  const children: ChildProcess[] = [];
  const exits: Promise<unknown>[] = [];
  const rowPart: Omit<Row, keyof World> = {
    outputs,
    children,
    exits,
    async cli(args, env = {}) {
      const running = spawnProcess(process.execPath, [await buildRuntimeBundle(), ...args], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: t.emulator.caCertFile, ...env },
        timeoutMs: 30_000,
      });
      children.push(running.child);
      exits.push(running.done);
      const { code, stdout, stderr, ms } = await running.done;
      outputs.push(stdout, stderr);
      return { code, stdout, stderr, ms };
    },
    async armRequests() {
      return (await t.control.requests()).filter(
        (r) => r.path.startsWith("/subscriptions/") && r.clientId === t.principal.clientId,
      );
    },
    async tokenRequests() {
      return (await t.control.requests()).filter((r) => /\/oauth2\/(v2\.0\/)?token$/i.test(r.path));
    },
    async startRequests(vm) {
      return (await row.armRequests())
        .filter((r) => r.method === "POST" && r.path.toLowerCase().endsWith(`/${vm.toLowerCase()}/start`))
        .map((r) => Date.parse(r.time));
    },
    async waitForVm(vm, powerState, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = await t.control.vm(resourceGroup, vm);
        if (found?.powerState === powerState) return Date.now();
        if (Date.now() > deadline) {
          throw new Error(
            `${vm} is ${found?.powerState ?? "gone"}, not ${powerState}, after ${timeoutMs} ms`,
          );
        }
        await sleep(100);
      }
    },
    async close() {
      if (!openRows.delete(row)) return;
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      // Their output is scanned too: wait until every child has closed and handed it over.
      await Promise.allSettled(exits);
      const notificationUrls = ((configFile.notifications ?? []) as Array<{ url: string }>).map((c) => c.url);
      for (const output of outputs) assertNoSecrets(output, { ...t.principal, notificationUrls });
      await t.emulator.stop();
    },
  };
  const row: Row = Object.assign(world, rowPart);
  openRows.add(row);
  return row;
}

export interface LogLine {
  time: string;
  level: string;
  event: string;
  msg: string;
  at: number;
  [field: string]: unknown;
}

export interface RuntimeProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  stdout(): string;
  stderr(): string;
  /** Resolves with the first log line (already seen or future) with this event matching `where`. */
  waitFor(event: string, where?: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  events(event: string): LogLine[];
  /** SIGTERM and the exit; asserts nothing. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the bundle (`run` by default) with JSON logs. */
export async function spawnRuntime(
  row: Row,
  args: string[] = ["run"],
  options: {
    env?: NodeJS.ProcessEnv;
    /** Rewrites the command line, e.g. to run the runtime inside namespaces (`unshare … node bundle …`). */
    wrap?: (argv: string[]) => string[];
  } = {},
): Promise<RuntimeProcess> {
  const bundle = await buildRuntimeBundle();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_EXTRA_CA_CERTS: row.emulator.caCertFile,
    ...options.env,
  };
  const lines: LogLine[] = [];
  const waiters: Array<{ event: string; where: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  const argv = [process.execPath, bundle, ...args, "--config", row.configPath, "--log-format", "json"];
  const [command, ...commandArgs] = options.wrap ? options.wrap(argv) : argv;
  const running = spawnProcess(command as string, commandArgs, {
    env,
    onStderrLine(raw) {
      if (!raw.startsWith("{")) return;
      try {
        const parsed = JSON.parse(raw) as LogLine;
        parsed.at = Date.parse(parsed.time);
        lines.push(parsed);
        for (const waiter of [...waiters]) {
          if (waiter.event === parsed.event && waiter.where(parsed)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(parsed);
          }
        }
      } catch {
        // not a log line (a crash trace): kept in stderr()
      }
    },
  });
  const { child } = running;
  // row.close() kills it too, should the row fail before stopping it.
  row.children.push(child);
  const exited = running.done.then(({ code, signal, stdout, stderr }) => {
    row.outputs.push(stdout, stderr);
    return { code, signal };
  });
  row.exits.push(exited);
  const err = () => running.stderr();
  const proc: RuntimeProcess = {
    child,
    lines,
    exited,
    stdout: running.stdout,
    stderr: running.stderr,
    events: (event) => lines.filter((l) => l.event === event),
    waitFor(event, where = () => true, timeoutMs = 15_000) {
      const seen = lines.find((l) => l.event === event && where(l));
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no "${event}" log line within ${timeoutMs} ms; stderr:\n${err().slice(-4000)}`),
            ),
          timeoutMs,
        );
        const waiter = {
          event,
          where,
          resolve: (l: LogLine) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.push(waiter);
        void exited.then(() => {
          clearTimeout(timer);
          if (waiters.includes(waiter)) {
            reject(
              new Error(`the runtime exited before a "${event}" log line; stderr:\n${err().slice(-4000)}`),
            );
          }
        });
      });
    },
    async stop() {
      await running.stop("SIGTERM", 10_000);
      return exited;
    },
  };
  return proc;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a truthy value. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Figures rows print so that RELIABILITY.md can quote them (`# figure: …` lines in the test output). */
export function figure(row: string, text: string): void {
  process.stdout.write(`# figure [${row}]: ${text}\n`);
}
