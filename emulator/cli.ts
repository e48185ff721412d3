// `npm run emulator -- --seed FILE [--port N] [outputs]`: starts the emulator, prints one JSON "ready"
// line, runs until SIGTERM, SIGINT or SIGHUP, or until the process that started it is gone.
import "reflect-metadata"; // before @peculiar/x509: it resolves its algorithms through tsyringe
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as x509 from "@peculiar/x509";
import { loadSeedFile, type ResolvedSeed, type RunningEmulator, startEmulator } from "./index";
import { createTestPrincipal } from "./principal";

const usage = `usage: npm run -s emulator -- --seed FILE [--port N] [--principal-out PEM]
         [--runtime-config-out JSON] [--stack-outputs-out JSON] [--ca-cert-out PEM] [--ready-file JSON]

  --seed FILE                the world to serve (example: emulator/examples/personal-network.json)
  --port N                   TCP port on 127.0.0.1 (0 = any free port, the default)
  --principal-out PEM        also register a fresh service principal with Contributor on the
                             subscription; write its certificate + private key to PEM (mode 0600)
  --runtime-config-out JSON  write a spot-restarter config for that principal (needs --principal-out):
                             this emulator's endpoints, every resource group of the seed, state beside it
  --stack-outputs-out JSON   write stack outputs for that principal (needs --principal-out), as
                             \`pulumi stack output --json --show-secrets\` prints them, with \`cloud\` set to
                             this emulator: \`install --stack-outputs JSON --extra-ca-certs CA\` takes them
  --ca-cert-out PEM          copy the emulator's CA certificate here (for NODE_EXTRA_CA_CERTS)
  --ready-file JSON          also write the ready line to this file once everything is ready

Output files are created (with missing folders) only when ready, never overwrite an existing file,
and are removed when the emulator stops: they describe this run only.
Stops on SIGTERM, SIGINT (Ctrl-C), SIGHUP, or when the process that started it (npm) is gone.
-s keeps npm's banner off stdout, so stdout is the ready line alone.

example (then, in another terminal:
  NODE_EXTRA_CA_CERTS=/tmp/spot-restarter-emulator/ca.pem npm run -s spot-restarter -- once --config /tmp/spot-restarter-emulator/config.json):
  npm run -s emulator -- --seed emulator/examples/personal-network.json \\
    --principal-out /tmp/spot-restarter-emulator/sp.pem --ca-cert-out /tmp/spot-restarter-emulator/ca.pem \\
    --runtime-config-out /tmp/spot-restarter-emulator/config.json
`;

const options = {
  seed: { type: "string" },
  port: { type: "string", default: "0" },
  "principal-out": { type: "string" },
  "runtime-config-out": { type: "string" },
  "stack-outputs-out": { type: "string" },
  "ca-cert-out": { type: "string" },
  "ready-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

class UsageError extends Error {}

async function main(): Promise<void> {
  let values: ReturnType<typeof parseArgs<{ options: typeof options }>>["values"];
  try {
    ({ values } = parseArgs({ options, strict: true }));
  } catch (error) {
    // `npm run emulator --seed F` (no `--`): npm keeps --seed for itself (npm_config_seed) and passes F on.
    const taken = Object.keys(options).filter(
      (name) => process.env[`npm_config_${name.replaceAll("-", "_")}`],
    );
    const hint =
      process.env.npm_lifecycle_event === "emulator" && taken.length > 0
        ? `npm took ${taken.map((n) => `--${n}`).join(", ")} for itself: put \`--\` before the emulator's arguments, e.g. \`npm run -s emulator -- --seed FILE\``
        : "try --help";
    throw new UsageError(`${(error as Error).message} (${hint})`);
  }
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  if (!values.seed) {
    const npmTook = process.env.npm_lifecycle_event === "emulator" && process.env.npm_config_seed;
    throw new UsageError(
      `--seed FILE is required (${npmTook ? "npm took --seed for itself: put `--` before the emulator's arguments, e.g. `npm run -s emulator -- --seed FILE`" : "try --help"})`,
    );
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port: expected 0..65535, got '${values.port}'`);
  if (values["runtime-config-out"] && !values["principal-out"]) {
    throw new UsageError(
      "--runtime-config-out needs --principal-out PEM: the config names the principal and its key file",
    );
  }
  if (values["stack-outputs-out"] && !values["principal-out"]) {
    throw new UsageError(
      "--stack-outputs-out needs --principal-out PEM: the outputs carry that principal's certificate and key",
    );
  }

  // Watch the parent from the start: a child of `npm run` (through `sh -c`) is orphaned, not
  // signalled, when npm is killed with SIGTERM, and would serve on forever with its temporary folder.
  const shutdown = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(signal, () => shutdown.abort(signal));
  }
  const watch = watchParent(() => shutdown.abort("parent-exited"));

  const seed = loadSeedFile(values.seed);
  // A run killed with SIGKILL could not clean up: its temporary folder, its output files and the runtime's
  // state beside its config are removed now, before this run writes the same names (issue 29).
  removeLeftovers();
  const outputs = new OutputFiles();
  let principal: { clientId: string; objectId: string; pemFile: string; pem: string } | undefined;
  if (values["principal-out"]) {
    const made = await createTestPrincipal();
    principal = {
      clientId: made.clientId,
      objectId: made.objectId,
      pemFile: resolve(values["principal-out"]),
      pem: made.pem,
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
  let emulator: RunningEmulator | undefined;
  try {
    emulator = await startEmulator(seed, { port });
    outputs.recordIn(join(dirname(emulator.caCertFile), RUN_RECORD));
    if (principal) outputs.write(principal.pemFile, principal.pem, 0o600);
    const caCertFile = values["ca-cert-out"] ? resolve(values["ca-cert-out"]) : undefined;
    if (caCertFile) outputs.write(caCertFile, emulator.caCertPem, 0o644);
    const runtimeConfigFile = values["runtime-config-out"]
      ? resolve(values["runtime-config-out"])
      : undefined;
    if (runtimeConfigFile && principal) {
      const config = runtimeConfigFor(seed, emulator, principal, runtimeConfigFile);
      // The runtime's state for this world only: removed with the world, so the next world's `status`
      // never shows this one's times. A folder that was there before is someone else's: left alone.
      if (!existsSync(config.stateDir as string)) outputs.ownStateDir(config.stateDir as string);
      outputs.write(runtimeConfigFile, `${JSON.stringify(config, null, 2)}\n`, 0o644);
    }
    const stackOutputsFile = values["stack-outputs-out"] ? resolve(values["stack-outputs-out"]) : undefined;
    if (stackOutputsFile && principal) {
      const outputsJson = stackOutputsFor(seed, emulator, principal);
      // The private key is inside: created 0600, as --principal-out's PEM.
      outputs.write(stackOutputsFile, `${JSON.stringify(outputsJson, null, 2)}\n`, 0o600);
    }
    const ready = `${JSON.stringify({
      event: "ready",
      armEndpoint: emulator.armEndpoint,
      authorityHost: emulator.authorityHost,
      caCertFile: emulator.caCertFile,
      tenantId: emulator.tenantId,
      subscriptionId: emulator.subscriptionId,
      pid: process.pid,
      ...(principal
        ? {
            principal: {
              clientId: principal.clientId,
              objectId: principal.objectId,
              pemFile: principal.pemFile,
            },
          }
        : {}),
      ...(caCertFile ? { caCertCopy: caCertFile } : {}),
      ...(runtimeConfigFile ? { runtimeConfigFile } : {}),
      ...(stackOutputsFile ? { stackOutputsFile } : {}),
    })}\n`;
    // Last, and atomically: whoever waits for the ready file finds every other output in place.
    if (values["ready-file"]) outputs.write(resolve(values["ready-file"]), ready, 0o644, { atomic: true });
    process.stdout.write(ready);
    if (!shutdown.signal.aborted) {
      await new Promise((done) => shutdown.signal.addEventListener("abort", done, { once: true }));
    }
  } finally {
    clearInterval(watch);
    outputs.removeAll();
    await emulator?.stop();
  }
  process.stdout.write(`${JSON.stringify({ event: "stopped", signal: String(shutdown.signal.reason) })}\n`);
}

/**
 * The runtime's config file (runtime/README.md, "Config") for the principal this run registered: what
 * `spot-restarter once --config FILE` needs against this emulator, with the state beside the file.
 * Written here, not imported from runtime/: the emulator stands for Azure and never depends on the runtime
 * (test/emulator/cli.test.ts checks the result with the runtime's own parser).
 */
export function runtimeConfigFor(
  seed: ResolvedSeed,
  emulator: Pick<RunningEmulator, "tenantId" | "subscriptionId" | "authorityHost" | "armEndpoint">,
  principal: { clientId: string; pemFile: string },
  configFile: string,
): Record<string, unknown> {
  const groups: string[] = [];
  for (const name of [
    ...seed.resourceGroups.map((g) => g.name),
    ...seed.virtualMachines.map((v) => v.resourceGroup),
  ]) {
    if (!groups.some((g) => g.toLowerCase() === name.toLowerCase())) groups.push(name);
  }
  return {
    tenantId: emulator.tenantId,
    clientId: principal.clientId,
    subscriptionId: emulator.subscriptionId,
    certificatePath: principal.pemFile,
    resourceGroups: groups,
    tag: { name: "AttemptRestartAfterEviction", value: "true" },
    intervalSeconds: 10,
    stateDir: join(dirname(configFile), "state"),
    cloud: { authorityHost: emulator.authorityHost, armEndpoint: emulator.armEndpoint },
  };
}

/**
 * The stack outputs `pulumi stack output --json --show-secrets` would print for the principal this run
 * registered (docs/architecture.md "Stack outputs"), plus `cloud` naming this emulator, so that
 * `spot-restarter install --stack-outputs FILE --extra-ca-certs CA` installs against it unchanged. The
 * restartable VMs are the seed's VMs carrying the restart tag. Written here, not imported from runtime/
 * (the emulator never depends on the runtime); test/emulator/cli.test.ts feeds it to the real installer.
 */
export function stackOutputsFor(
  seed: ResolvedSeed,
  emulator: Pick<RunningEmulator, "tenantId" | "subscriptionId" | "authorityHost" | "armEndpoint">,
  principal: { clientId: string; pem: string },
): Record<string, unknown> {
  const tag = { name: "AttemptRestartAfterEviction", value: "true" };
  const groups: string[] = [];
  for (const name of [
    ...seed.resourceGroups.map((g) => g.name),
    ...seed.virtualMachines.map((v) => v.resourceGroup),
  ]) {
    if (!groups.some((g) => g.toLowerCase() === name.toLowerCase())) groups.push(name);
  }
  const tagged = seed.virtualMachines.filter((vm) =>
    Object.entries(vm.tags).some(
      ([k, v]) => k.toLowerCase() === tag.name.toLowerCase() && v.toLowerCase() === "true",
    ),
  );
  const certificate = new x509.X509Certificate(
    principal.pem.slice(0, principal.pem.indexOf("-----END CERTIFICATE-----") + 25),
  );
  return {
    tenantId: emulator.tenantId,
    subscriptionId: emulator.subscriptionId,
    clientId: principal.clientId,
    resourceGroupName: groups[0],
    resourceGroups: groups.map((g) => `/subscriptions/${emulator.subscriptionId}/resourceGroups/${g}`),
    restartTag: tag,
    restartableVms: tagged.map((vm) =>
      vm.resourceGroup.toLowerCase() === groups[0]?.toLowerCase()
        ? vm.name
        : `${vm.resourceGroup}/${vm.name}`,
    ),
    certificatePem: principal.pem,
    certificateExpiresOn: certificate.notAfter.toISOString(),
    installCommand:
      "pulumi stack output --json --show-secrets | ssh HOST sudo ./spot-restarter install --stack-outputs -",
    cloud: { authorityHost: emulator.authorityHost, armEndpoint: emulator.armEndpoint },
  };
}

/** The run record in the emulator's temporary folder: this CLI's pid, its output files and state folder. */
const RUN_RECORD = "cli-run.json";

interface RunRecord {
  readonly pid: number;
  readonly files: string[];
  readonly stateDir?: string;
}

/**
 * Files this run wrote: created exclusively (never over an existing file, never through a link), removed
 * on stop, and listed in the run record so that the next run can remove them if this one is killed.
 */
class OutputFiles {
  private readonly written: string[] = [];
  private stateDir: string | undefined;
  private record: string | undefined;

  recordIn(file: string): void {
    this.record = file;
    this.save();
  }

  ownStateDir(path: string): void {
    this.stateDir = path;
    this.save();
  }

  write(path: string, content: string, mode: number, opts: { atomic?: boolean } = {}): void {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (opts.atomic) {
      // Appears whole (a reader polling for it never sees half a line), and still never replaces a file:
      // link() fails when the name exists, where rename() would replace it.
      const temporary = `${path}.${process.pid}.tmp`;
      writeFileSync(temporary, content, { mode, flag: "wx" });
      try {
        linkSync(temporary, path);
      } finally {
        rmSync(temporary, { force: true });
      }
    } else {
      // flag "wx": never overwrite (or follow a link to) an existing file; a key is born with its mode.
      writeFileSync(path, content, { mode, flag: "wx" });
    }
    this.written.push(path);
    this.save();
  }

  removeAll(): void {
    for (const path of this.written.splice(0).reverse()) rmSync(path, { force: true });
    if (this.stateDir) removeOwnDirectory(this.stateDir);
  }

  private save(): void {
    if (!this.record) return;
    const record: RunRecord = {
      pid: process.pid,
      files: this.written,
      ...(this.stateDir ? { stateDir: this.stateDir } : {}),
    };
    const temporary = `${this.record}.tmp`;
    writeFileSync(temporary, JSON.stringify(record), { mode: 0o600 });
    renameSync(temporary, this.record);
  }
}

/** A regular file (not a link) of this user's: what a run of ours wrote. */
function isOwnFile(path: string): boolean {
  try {
    const stat = lstatSync(path);
    return stat.isFile() && stat.uid === process.getuid?.();
  } catch {
    return false;
  }
}

/** Removes a folder of this user's (never through a link: a link is not a folder to lstat). */
function removeOwnDirectory(path: string): void {
  try {
    const stat = lstatSync(path);
    if (stat.isDirectory() && stat.uid === process.getuid?.()) rmSync(path, { recursive: true, force: true });
  } catch {
    // gone already
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes what CLI runs that were killed left behind: each emulator temporary folder (this user's, with a
 * run record whose process is gone), the output files its record lists (regular files of this user's
 * only: a file or link someone put there since stays, and this run then refuses to write over it), and
 * the state folder it recorded. Folders of in-process emulators (tests) carry no record and are not touched.
 */
export function removeLeftovers(root = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(root).filter((name) => name.startsWith("azure-emulator-"));
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = join(root, name);
    let record: RunRecord;
    try {
      if (!lstatSync(dir).isDirectory() || lstatSync(dir).uid !== process.getuid?.()) continue;
      if (!isOwnFile(join(dir, RUN_RECORD))) continue;
      record = JSON.parse(readFileSync(join(dir, RUN_RECORD), "utf8")) as RunRecord;
    } catch {
      continue;
    }
    if (!Number.isInteger(record.pid) || isAlive(record.pid)) continue;
    for (const file of Array.isArray(record.files) ? record.files : []) {
      if (typeof file === "string" && isOwnFile(file)) {
        rmSync(file, { force: true });
        removed.push(file);
      }
    }
    if (typeof record.stateDir === "string") removeOwnDirectory(record.stateDir);
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/**
 * Calls `onGone` once the process that started us exits. Under `npm run`, the parent is npm's `sh -c`,
 * which may outlive a killed npm, so then the grandparent is watched too (Linux /proc; elsewhere the
 * parent only).
 */
function watchParent(onGone: () => void): NodeJS.Timeout {
  const parent = process.ppid;
  const grandparent = process.env.npm_lifecycle_event ? parentOf(parent) : undefined;
  const timer = setInterval(() => {
    if (process.ppid !== parent || (grandparent !== undefined && parentOf(parent) !== grandparent)) {
      clearInterval(timer);
      onGone();
    }
  }, 500);
  timer.unref();
  return timer;
}

function parentOf(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces or parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
    process.stderr.write(`emulator: ${error instanceof Error ? error.message : String(error)}${cause}\n`);
    // 2 for a wrong command line (as the runtime does), 1 for anything else (a bad seed, a busy port).
    process.exitCode = error instanceof UsageError ? 2 : 1;
  });
}
