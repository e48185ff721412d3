// `spot-restarter install` / `uninstall`: from `pulumi stack output` to a running, hardened service.
// Order matters: everything is read and validated before the first byte is written, so bad stack
// outputs leave the host as it was.
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { cloudEndpointsProblem } from "../clouds";
import { type DoctorCheck, formatDoctorReport } from "../doctor";
import { MINIMUM_NODE_MAJOR, nodeTooOld } from "../nodeVersion";
import {
  applyEntry,
  type EntryResult,
  exists,
  inspectEntry,
  removeDirectoryIfEmpty,
  removeFile,
  removeLeftoverTempFiles,
  removeTree,
  type ServiceIds,
  underRoot,
} from "./files";
import {
  type InstalledProgram,
  PATHS,
  type PlannedEntry,
  planInstall,
  type Scheduler,
  SERVICE_NAME,
  SERVICE_USER,
  STATE_DIR_ENV,
  shellQuote,
} from "./layout";
import {
  type InstallSource,
  runningAsSingleExecutable,
  sourceForExecutable,
  staleProgramFiles,
} from "./self";
import {
  type CertificateSummary,
  type CloudEndpoints,
  checkCertificatePem,
  parseStackOutputs,
  type StackOutputs,
  StackOutputsError,
} from "./stackOutputs";
import { checkInstallTree, checkTrustedNode, writePrivateCopy } from "./trust";

export type { CloudEndpoints, StackOutputs } from "./stackOutputs";
export { parseStackOutputs, StackOutputsError } from "./stackOutputs";

export interface InstallOptions {
  /** Path of the stack outputs JSON, or "-" for standard input. */
  stackOutputs: string;
  /** Root of the file tree to install into ("/" = this host, which also runs systemctl). */
  root: string;
  scheduler: "systemd" | "cron";
  dryRun: boolean;
  verify: boolean;
  /**
   * How long verification waits for a new service principal, certificate or role assignment to replicate
   * (--verify-wait-seconds; default DEFAULT_VERIFY_WAIT_SECONDS).
   */
  verifyWaitSeconds?: number;
  /**
   * Endpoints of a sovereign cloud or the emulator; overrides a `cloud` object in the stack outputs.
   * Neither given: Azure public cloud (no `cloud` in config.json).
   */
  cloud?: CloudEndpoints;
  /**
   * A PEM bundle of extra CA certificates for the runtime (--extra-ca-certs): copied to
   * /etc/spot-restarter/extra-ca.pem and handed to the service and the cron job as NODE_EXTRA_CA_CERTS.
   */
  extraCaCerts?: string;
}

export interface UninstallOptions {
  root: string;
  keepState: boolean;
  dryRun: boolean;
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

interface Writer {
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
  /** Whether this process may write anywhere (uid 0) — only checked for the real root. */
  isRoot?: boolean;
  /** Run systemctl (default: only when root is "/"). */
  manageServices?: boolean;
  /** Whether systemd is the running init (default: /run/systemd/system exists, sd_booted(3)). */
  systemdRunning?: boolean;
  now?: () => Date;
}

const VERIFY_TIMEOUT_MS = 120_000;
/**
 * Role assignments usually apply within minutes ("up to 10 minutes" for ARM's cache, Azure RBAC
 * troubleshooting); a new principal or credential in Entra ID within a few.
 */
export const DEFAULT_VERIFY_WAIT_SECONDS = 300;

/** An expected failure: its message is the whole story, printed without a stack trace. */
class InstallerError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "InstallerError";
  }
}

const defaultRunCommand: RunCommand = (command, args, options = {}) =>
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

interface Context {
  out(line: string): void;
  err(line: string): void;
  run: RunCommand;
  env: NodeJS.ProcessEnv;
  root: string;
  dryRun: boolean;
  manageServices: boolean;
}

function makeContext(root: string, dryRun: boolean, host: InstallerHost): Context {
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

function checkRoot(root: string): string {
  if (!isAbsolute(root)) throw new InstallerError(`--root must be an absolute path, not ${root}`, 2);
  return resolve(root);
}

function checkPrivileges(context: Context, host: InstallerHost): void {
  const isRoot = host.isRoot ?? process.getuid?.() === 0;
  if (context.root === "/" && !context.dryRun && !isRoot) {
    throw new InstallerError(
      "writing to /etc, /usr/local and /var/lib needs root: run it with sudo (or use --dry-run, or --root DIR)",
    );
  }
}

function mode(value: number): string {
  return `0${value.toString(8).padStart(3, "0")}`;
}

function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(shellQuote).join(" ");
}

/** Runs a systemctl (or other) command, or only prints it in a dry run. */
async function runStep(context: Context, command: string, args: readonly string[]): Promise<CommandResult> {
  const line = commandLine(command, args);
  if (context.dryRun) {
    context.out(`  would run  ${line}`);
    return { code: 0, stdout: "", stderr: "" };
  }
  context.out(`  run        ${line}`);
  const result = await context.run(command, args);
  for (const text of [result.stdout, result.stderr]) {
    for (const outputLine of text.split("\n").filter((l) => l.trim() !== ""))
      context.out(`             | ${outputLine}`);
  }
  return result;
}

async function readStackOutputsText(
  source: string,
  host: InstallerHost,
): Promise<{ text: string; name: string }> {
  if (source === "-") {
    const stdin = host.stdin ?? process.stdin;
    if (stdin.isTTY) {
      throw new InstallerError(
        "--stack-outputs - reads standard input, which is a terminal: pipe the outputs in, e.g. `pulumi stack output --json --show-secrets | sudo node spot-restarter.cjs install --stack-outputs -`",
        2,
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    return { text: Buffer.concat(chunks).toString("utf8"), name: "standard input" };
  }
  try {
    return { text: await fs.readFile(source, "utf8"), name: source };
  } catch (error) {
    throw new InstallerError(
      `cannot read the stack outputs from ${source} (${(error as NodeJS.ErrnoException).code ?? error}): write them with \`pulumi stack output --json --show-secrets > FILE\`, or pass - to read standard input`,
      2,
      { cause: error },
    );
  }
}

function checkNodeVersion(version: string): void {
  const tooOld = nodeTooOld(version, "run the installer with it");
  if (tooOld) throw new InstallerError(tooOld);
}

async function readBundle(bundlePath: string): Promise<Buffer> {
  if (!bundlePath.endsWith(".cjs")) {
    throw new InstallerError(
      `install copies the running bundle, but this is ${bundlePath}: build it with \`npm run bundle\` and run \`node runtime/dist/spot-restarter.cjs install …\``,
    );
  }
  try {
    return await fs.readFile(bundlePath);
  } catch (error) {
    throw new InstallerError(`cannot read the bundle ${bundlePath}: ${(error as Error).message}`, 1, {
      cause: error,
    });
  }
}

async function readProgram(source: InstallSource): Promise<InstalledProgram> {
  if (source.kind === "bundle") {
    return { kind: "bundle", bundle: await readBundle(source.path), nodePath: source.nodePath };
  }
  if (source.kind === "packaged") return { kind: "packaged", command: source.path };
  try {
    return { kind: "executable", executable: await fs.readFile(source.path) };
  } catch (error) {
    throw new InstallerError(
      `cannot read the running executable ${source.path}: ${(error as Error).message}`,
      1,
      {
        cause: error,
      },
    );
  }
}

async function readExtraCaCerts(path: string | undefined): Promise<Buffer | undefined> {
  if (!path) return undefined;
  let content: Buffer;
  try {
    content = await fs.readFile(path);
  } catch (error) {
    throw new InstallerError(
      `cannot read the extra CA certificates ${path} (--extra-ca-certs): ${(error as Error).message}`,
      2,
      { cause: error },
    );
  }
  return extraCaCertificates(content, path);
}

/**
 * Only certificates go into the world-readable extra-ca.pem (issue 17, item 6): a bundle that also
 * holds a private key (a server's cert+key PEM picked by mistake) is refused, never copied, and
 * anything else in the file (comments, other blocks) is dropped. Each certificate must parse.
 */
export function extraCaCertificates(content: Buffer, path: string): Buffer {
  const text = content.toString("utf8");
  const source = `${path} (--extra-ca-certs)`;
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    throw new InstallerError(
      `${source} holds a PRIVATE KEY block: it would be copied into a world-readable file; pass a file with the CA certificates only (e.g. \`openssl x509 -in FILE -out ca.pem\`)`,
      2,
    );
  }
  const certificates = [
    ...text.matchAll(/-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g),
  ].map((match) => match[0].replaceAll("\r\n", "\n"));
  if (certificates.length === 0) throw new InstallerError(`${source} holds no PEM certificate`, 2);
  certificates.forEach((pem, index) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw new InstallerError(`${source}: certificate ${index + 1} cannot be parsed`, 2);
    }
  });
  return Buffer.from(`${certificates.join("\n")}\n`);
}

function describeOutputs(outputs: StackOutputs, certificate: CertificateSummary, now: Date): string[] {
  const days = Math.floor((certificate.notAfter.getTime() - now.getTime()) / 86_400_000);
  // Quoted: these come from outside (control characters are refused already; quotes show the edges).
  const vms =
    outputs.restartableVms.length === 0
      ? "none"
      : outputs.restartableVms.map((vm) => JSON.stringify(vm)).join(", ");
  return [
    `  tenant ${outputs.tenantId}, subscription ${outputs.subscriptionId}, client ${outputs.clientId}`,
    `  resource group ${outputs.resourceGroupName}; tag ${JSON.stringify(outputs.restartTag.name)}=${JSON.stringify(outputs.restartTag.value)}; VMs tagged by Pulumi: ${vms}`,
    `  certificate SHA-256 ${certificate.thumbprintSha256.slice(0, 23)}…, expires ${certificate.notAfter.toISOString()} (in ${days} days)`,
  ];
}

function describeEntry(result: EntryResult, dryRun: boolean): string {
  const { entry, change } = result;
  const verb = dryRun
    ? { created: "would create", updated: "would update", unchanged: "unchanged" }[change]
    : change;
  const kind = entry.kind === "directory" ? "directory" : entry.description;
  const details = [mode(entry.mode), kind];
  if (entry.kind === "file")
    details.push(entry.secret ? "contents not shown" : `${entry.content.length} bytes`);
  if (result.reasons.length > 0) details.push(`changed: ${result.reasons.join(", ")}`);
  return `  ${verb.padEnd(12)} ${entry.path} (${details.join(", ")})`;
}

/** What the verification runs: the installed command, or a private copy of the program it installed. */
interface InstalledCommand {
  command: string;
  args: string[];
  privateCopy?: { content: Buffer; name: string; as: "command" | "firstArgument" };
}

/**
 * A failed doctor check that a new service principal, certificate credential or role assignment causes while
 * it replicates through Entra ID and Azure Resource Manager (seconds to minutes after `pulumi up`):
 * AADSTS700016 (application not found in the directory) and AADSTS700027 (the certificate's key is not
 * registered on the application) from Entra ID, and actions missing at the group (a role assignment ARM
 * does not see yet). Waiting can fix these; nothing else doctor reports goes away by waiting.
 * https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-changes-are-not-being-detected
 */
export function replicationPending(check: DoctorCheck): string | undefined {
  if (check.status !== "fail") return undefined;
  if (check.name === "token") {
    const code = /AADSTS(700016|700027)\b/.exec(check.detail)?.[1];
    if (code === "700016") return "Entra ID to know the new service principal (AADSTS700016)";
    if (code === "700027") return "Entra ID to accept the new certificate (AADSTS700027)";
    return undefined;
  }
  if (check.name.startsWith("permissions on ") || check.name.startsWith("VMs in ")) {
    return `Azure Resource Manager to apply the new role assignment (${check.name})`;
  }
  return undefined;
}

/**
 * One phrase per thing waited for, the checks it holds back together: "Azure Resource Manager to apply the
 * new role assignment (permissions on rg, VMs in rg)", not the same words once per check.
 */
export function describeWaits(reasons: readonly string[]): string {
  const byWhat = new Map<string, string[]>();
  for (const reason of reasons) {
    const [, what = reason, detail] = /^(.*?) \((.*)\)$/.exec(reason) ?? [];
    const details = byWhat.get(what) ?? [];
    if (detail !== undefined && !details.includes(detail)) details.push(detail);
    byWhat.set(what, details);
  }
  return [...byWhat]
    .map(([what, details]) => (details.length > 0 ? `${what} (${details.join(", ")})` : what))
    .join("; ");
}

/** The doctor's JSON report (`doctor --json`), or undefined when the output is not one. */
function parseDoctorReport(stdout: string): { passed: boolean; checks: DoctorCheck[] } | undefined {
  try {
    const parsed = JSON.parse(stdout) as { passed?: unknown; checks?: unknown };
    if (typeof parsed.passed !== "boolean" || !Array.isArray(parsed.checks)) return undefined;
    return { passed: parsed.passed, checks: parsed.checks as DoctorCheck[] };
  } catch {
    return undefined;
  }
}

/**
 * Runs `doctor` with the freshly written config through the installed command (bundle or executable). While
 * its only failures are ones replication causes, it waits (a progress line per attempt, bounded by
 * `verifyWaitSeconds`); any other failure ends the install at once with doctor's own findings and fixes.
 */
async function verifyInstalledConfig(
  context: Context,
  installed: InstalledCommand,
  hasExtraCa: boolean,
  waitSeconds: number,
): Promise<boolean> {
  const { root } = context;
  const args = [...installed.args, "doctor", "--config", underRoot(root, PATHS.config), "--json"];
  let command = installed.command;
  // Root runs its own private copy of what it just checked and wrote, never the file in the target
  // tree: under --root someone else might swap that between the write and this run (issue 17, item 2).
  const placeholder = join(tmpdir(), "spot-restarter-verify-XXXXXX", installed.privateCopy?.name ?? "");
  if (installed.privateCopy?.as === "command") command = placeholder;
  if (installed.privateCopy?.as === "firstArgument") args[0] = placeholder;
  const env: NodeJS.ProcessEnv = { ...context.env };
  if (hasExtraCa) env.NODE_EXTRA_CA_CERTS = underRoot(root, PATHS.extraCaCerts);
  context.out(
    "verify: spot-restarter doctor with the new config (endpoints, clock, certificate, sign-in, resource group, permissions, tagged VMs)",
  );
  // A throwaway state directory: a running service holds the lock on the real one (an upgrade), and
  // files root created there would not be writable by the service's DynamicUser= afterwards.
  const describe = (stateDir: string) =>
    [
      ...Object.keys(env)
        .filter((name) => env[name] !== context.env[name])
        .map((name) => `${name}=${shellQuote(env[name] ?? "")}`),
      `${STATE_DIR_ENV}=${stateDir}`,
      commandLine(command, args),
    ].join(" ");
  if (context.dryRun) {
    context.out(`  would run  ${describe("<temporary directory>")}`);
    return true;
  }
  const startedAt = Date.now();
  const intervalMs = Math.min(10_000, Math.max(1_000, (waitSeconds * 1000) / 10));
  for (let attempt = 1; ; attempt++) {
    // mkdtemp: a fresh 0700 directory with a random name, root's alone.
    const workDir = await fs.mkdtemp(join(tmpdir(), "spot-restarter-verify-"));
    const stateDir = join(workDir, "state");
    let result: CommandResult;
    try {
      await fs.mkdir(stateDir, { mode: 0o700 });
      const copy = installed.privateCopy;
      if (copy) {
        const path = await writePrivateCopy(workDir, copy.name, copy.content);
        if (copy.as === "command") command = path;
        else args[0] = path;
      }
      if (attempt === 1) context.out(`  run        ${describe(stateDir)}`);
      result = await context.run(command, args, {
        env: { ...env, [STATE_DIR_ENV]: stateDir },
        timeoutMs: VERIFY_TIMEOUT_MS,
      });
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
    const report = parseDoctorReport(result.stdout);
    const waitingFor =
      report?.passed === false
        ? report.checks.filter((c) => c.status === "fail").map(replicationPending)
        : [];
    const elapsedSeconds = Math.round((Date.now() - startedAt) / 1000);
    if (
      report &&
      !report.passed &&
      waitingFor.length > 0 &&
      waitingFor.every((reason) => reason !== undefined) &&
      elapsedSeconds + intervalMs / 1000 <= waitSeconds
    ) {
      const what = describeWaits(waitingFor as string[]);
      context.out(
        `  waiting for ${what}: ${elapsedSeconds} s of at most ${waitSeconds} s (attempt ${attempt})`,
      );
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      continue;
    }
    if (report) {
      for (const check of report.checks) {
        context.out(
          `             | ${formatDoctorReport([check]).trimEnd().replaceAll("\n", "\n             | ")}`,
        );
      }
    } else {
      for (const text of [result.stdout, result.stderr]) {
        for (const outputLine of text.split("\n").filter((l) => l.trim() !== ""))
          context.out(`             | ${outputLine}`);
      }
    }
    if (report?.passed && result.code === 0) {
      const tagged = report.checks.filter((c) => c.name.startsWith("VM ") && c.status === "pass").length;
      context.out(
        `  ok: doctor passed: signed in, the resource group exists, every needed action is granted, ${tagged} tagged Spot VM(s) restartable`,
      );
      return true;
    }
    const failed = report?.checks.filter((c) => c.status === "fail") ?? [];
    const why =
      failed.length > 0
        ? `${failed.map((c) => `${c.name}: ${c.detail}`).join("; ")}${
            waitingFor.length > 0 && waitingFor.every((reason) => reason !== undefined)
              ? ` (still so after waiting ${elapsedSeconds} s)`
              : ""
          }`
        : `the runtime's doctor did not run (exit code ${result.code}; see its output above)`;
    context.err(
      `spot-restarter install: verification failed: ${why}. Apply the fix shown above for each failed check, then run the same install again (the files are in place; nothing was enabled or restarted). --no-verify would install a service that fails the same way: keep it for a host that cannot reach Azure yet.`,
    );
    return false;
  }
}

/** uid and gid of the cron job's user from `getent passwd`, or undefined. */
async function lookUpServiceUser(context: Context): Promise<ServiceIds | undefined> {
  const result = await context.run("getent", ["passwd", SERVICE_USER]);
  const fields = result.code === 0 ? result.stdout.trim().split(":") : [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  return fields[0] === SERVICE_USER && Number.isInteger(uid) && Number.isInteger(gid) && uid > 0
    ? { uid, gid }
    : undefined;
}

const USERADD_ARGS = [
  "--system",
  "--user-group",
  "--no-create-home",
  "--home-dir",
  "/nonexistent",
  "--shell",
  "/usr/sbin/nologin",
  "--comment",
  "spot-restarter cron job",
  SERVICE_USER,
];

/**
 * The cron job runs as a dedicated system user (issue 17, item 8): on this host it is created if
 * missing; under --root (another host's tree) or in a dry run the user of this host is used if it
 * exists, otherwise the files stay root's and the fix is printed.
 */
async function serviceUserIds(context: Context): Promise<ServiceIds | undefined> {
  const existing = await lookUpServiceUser(context);
  if (existing) {
    context.out(`check: cron runs as user ${SERVICE_USER} (uid ${existing.uid})`);
    return existing;
  }
  if (context.root === "/" && !context.dryRun) {
    const created = await runStep(context, "useradd", USERADD_ARGS);
    const ids = created.code === 0 ? await lookUpServiceUser(context) : undefined;
    if (!ids) {
      throw new InstallerError(
        `could not create the system user ${SERVICE_USER} for the cron job (useradd exit code ${created.code}): create it with \`useradd ${USERADD_ARGS.join(" ")}\` and re-run`,
      );
    }
    return ids;
  }
  context.err(
    `spot-restarter install: warning: the cron job runs as user ${SERVICE_USER}, which does not exist on this host${context.dryRun ? " yet (install creates it)" : ""}; on the target host: \`useradd ${USERADD_ARGS.join(" ")} && chown ${SERVICE_USER}: ${PATHS.stateDir} && chgrp -R ${SERVICE_USER} ${PATHS.cronDir}\``,
  );
  return undefined;
}

function homeDirectoryProblem(nodePath: string): boolean {
  return /^\/(root|home)(\/|$)/.test(nodePath);
}

async function doInstall(options: InstallOptions, host: InstallerHost, context: Context): Promise<number> {
  const { root, dryRun } = context;
  const scheduler: Scheduler = options.scheduler;
  if (scheduler !== "systemd" && scheduler !== "cron") {
    throw new InstallerError(`--scheduler must be systemd or cron, not ${String(scheduler)}`, 2);
  }
  const now = (host.now ?? (() => new Date()))();
  context.out(
    `spot-restarter install: into ${root}, scheduler ${scheduler}${dryRun ? " (dry run: nothing is written or run)" : ""}`,
  );

  // 1. Everything is read and checked before anything is written.
  const source: InstallSource =
    host.self ??
    (runningAsSingleExecutable()
      ? sourceForExecutable(process.execPath)
      : {
          kind: "bundle",
          path: host.bundlePath ?? resolve(process.argv[1] ?? ""),
          nodePath: host.nodePath ?? process.execPath,
          nodeVersion: host.nodeVersion ?? process.versions.node,
        });
  if (source.kind === "bundle") {
    checkNodeVersion(source.nodeVersion);
    context.out(`check: Node.js ${source.nodeVersion.replace(/^v/, "")} (>= ${MINIMUM_NODE_MAJOR})`);
  } else {
    context.out(
      `check: single executable ${source.path} (Node.js ${process.versions.node} inside: the host needs none)${source.kind === "packaged" ? ", installed by the Debian package: used in place" : ""}`,
    );
  }
  checkPrivileges(context, host);
  const nodePath = source.kind === "bundle" ? source.nodePath : source.path;
  if (source.kind === "bundle" && scheduler === "systemd" && homeDirectoryProblem(nodePath)) {
    const message = `Node.js at ${nodePath} lives in a home directory, which the hardened service cannot see (ProtectHome=yes): install Node.js system-wide (/usr/bin or /usr/local/bin) and run the installer with it, or use --scheduler cron`;
    if (root === "/") throw new InstallerError(message);
    context.err(`spot-restarter install: warning: ${message}`);
  }
  // The single executable carries its own Node.js and installs itself root-owned: no Node.js to trust.
  const nodeProblem = source.kind === "bundle" ? await checkTrustedNode(nodePath) : undefined;
  if (nodeProblem) {
    // Under --root the tree is for another host, whose Node.js this one cannot see: a warning.
    if (root === "/") throw new InstallerError(nodeProblem);
    context.err(
      `spot-restarter install: warning: ${nodeProblem} (on the target host, check ${nodePath} there)`,
    );
  } else if (source.kind === "bundle") {
    context.out(`check: ${nodePath} and every directory on the way are root's alone`);
  }

  if (scheduler === "systemd" && context.manageServices && !dryRun) {
    const running = host.systemdRunning ?? (await exists("/", "/run/systemd/system"));
    if (!running) {
      throw new InstallerError(
        "systemd is not running on this host (no /run/systemd/system): use --scheduler cron, or --root DIR to prepare a tree for another machine",
      );
    }
  }

  const { text, name } = await readStackOutputsText(options.stackOutputs, host);
  const outputs = parseStackOutputs(
    text,
    name === "standard input" ? name : `the stack outputs file ${name}`,
    now,
  );
  const certificate = checkCertificatePem(outputs.certificatePem, now);
  if (typeof certificate === "string") throw new StackOutputsError([certificate]); // parse checked it already
  context.out(`check: stack outputs from ${name} are complete`);
  for (const line of describeOutputs(outputs, certificate, now)) context.out(line);
  if (outputs.restartableVms.length === 0) {
    context.err(
      "spot-restarter install: warning: restartableVms is empty, so no VM carries the restart tag yet: `pulumi config set --path 'restartableVms[0]' VM` and `pulumi up`",
    );
  }
  const daysLeft = (certificate.notAfter.getTime() - now.getTime()) / 86_400_000;
  if (daysLeft < 30) {
    context.err(
      `spot-restarter install: warning: the certificate expires in ${Math.floor(daysLeft)} days: run \`pulumi up\` to renew it, then install again`,
    );
  }
  const cloud = options.cloud ?? outputs.cloud;
  const cloudProblem = cloud && cloudEndpointsProblem(cloud);
  if (cloudProblem) throw new StackOutputsError([cloudProblem]);
  if (cloud) context.out(`  cloud: authority ${cloud.authorityHost}, Resource Manager ${cloud.armEndpoint}`);

  const program = await readProgram(source);
  // Only when asked (--extra-ca-certs): a NODE_EXTRA_CA_CERTS the installer happens to run with is
  // often a workstation's own bundle, and the verification run inherits it anyway.
  const extraCaCertsPath = options.extraCaCerts;
  const extraCaCerts = await readExtraCaCerts(extraCaCertsPath);
  if (extraCaCertsPath) context.out(`  extra CA certificates from ${extraCaCertsPath}`);

  const plan: PlannedEntry[] = planInstall({ outputs, cloud, scheduler, program, extraCaCerts });
  const treeProblem = await checkInstallTree(root, [...plan.map((e) => e.path), ...Object.values(PATHS)]);
  if (treeProblem) throw new InstallerError(treeProblem);
  const results: EntryResult[] = [];
  const serviceIds = scheduler === "cron" ? await serviceUserIds(context) : undefined;
  for (const entry of plan) results.push(await inspectEntry(root, entry, serviceIds));
  const otherScheduler = scheduler === "systemd" ? PATHS.cron : PATHS.unit;
  const replacesOtherScheduler = await exists(root, otherScheduler);
  const dropsExtraCa = !extraCaCerts && (await exists(root, PATHS.extraCaCerts));
  const wasInstalled = (await exists(root, PATHS.bundle)) || (await exists(root, PATHS.config));
  // Switching between bundle, executable and Debian package leaves the other kind's files behind.
  const staleProgram: string[] = [];
  for (const path of staleProgramFiles(source)) if (await exists(root, path)) staleProgram.push(path);

  // 2. Write.
  context.out(dryRun ? "files (nothing is written in a dry run):" : "files:");
  if (replacesOtherScheduler && scheduler === "cron" && context.manageServices) {
    await runStep(context, "systemctl", ["disable", "--now", SERVICE_NAME]);
  }
  for (const result of results) {
    if (!dryRun) await applyEntry(root, result);
    context.out(describeEntry(result, dryRun));
  }
  for (const stale of [
    ...(replacesOtherScheduler ? [otherScheduler] : []),
    ...(dropsExtraCa ? [PATHS.extraCaCerts] : []),
    ...staleProgram,
  ]) {
    if (!dryRun) await removeFile(root, stale);
    context.out(`  ${(dryRun ? "would remove" : "removed").padEnd(12)} ${stale} (no longer used)`);
  }
  if (staleProgram.includes(PATHS.bundle) && !dryRun) await removeDirectoryIfEmpty(root, PATHS.libDir);
  const changed =
    results.some((r) => r.change !== "unchanged") ||
    replacesOtherScheduler ||
    dropsExtraCa ||
    staleProgram.length > 0;
  if (!changed) context.out("  nothing changed");

  // 3. Check the new config really works before anything runs it on a schedule.
  if (options.verify) {
    const installed: InstalledCommand =
      program.kind === "bundle"
        ? {
            command: nodePath,
            args: [underRoot(root, PATHS.bundle)],
            privateCopy: { content: program.bundle, name: "spot-restarter.cjs", as: "firstArgument" },
          }
        : program.kind === "executable"
          ? {
              command: underRoot(root, PATHS.command),
              args: [],
              privateCopy: { content: program.executable, name: "spot-restarter", as: "command" },
            }
          : { command: program.command, args: [] };
    const waitSeconds = options.verifyWaitSeconds ?? DEFAULT_VERIFY_WAIT_SECONDS;
    if (!(await verifyInstalledConfig(context, installed, extraCaCerts !== undefined, waitSeconds))) return 1;
  } else {
    context.out("verify: skipped (--no-verify)");
  }

  if (root !== "/") {
    // The tree is for a host that will boot it (an image) or a look: its config names that host's paths.
    context.out(
      `note: config.json names paths as the target host sees them (stateDir ${PATHS.stateDir}, not ${underRoot(root, PATHS.stateDir)}); to run a command from this tree on this machine, pass both: --config ${underRoot(root, PATHS.config)} --state-dir ${underRoot(root, PATHS.stateDir)}`,
    );
  }

  // 4. Start it.
  if (!context.manageServices) {
    context.out(
      `services: not touched (--root ${root}); on the target host: ${
        scheduler === "systemd"
          ? `systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}`
          : "cron reads /etc/cron.d by itself"
      }`,
    );
  } else if (scheduler === "systemd") {
    context.out("services:");
    const steps: string[][] = [["daemon-reload"]];
    // An upgrade: the running service still has the old bundle, config or key loaded.
    if (wasInstalled && changed) steps.push(["try-restart", SERVICE_NAME]);
    steps.push(["enable", "--now", SERVICE_NAME]);
    for (const args of steps) {
      const result = await runStep(context, "systemctl", args);
      if (result.code !== 0) {
        context.err(
          `spot-restarter install: \`systemctl ${args.join(" ")}\` failed (exit code ${result.code}): is systemd running here? (otherwise use --scheduler cron); see \`journalctl -u spot-restarter\``,
        );
        return 1;
      }
    }
  } else {
    if (replacesOtherScheduler) await runStep(context, "systemctl", ["daemon-reload"]);
    context.out("services: cron picks up /etc/cron.d/spot-restarter within a minute");
  }

  if (dryRun) {
    context.out("dry run: nothing was written or run");
  } else if (scheduler === "systemd") {
    context.out(
      `done: check it with \`systemctl status spot-restarter\` and \`journalctl -u spot-restarter -f\`; test the whole chain with \`sudo spot-restarter simulate-eviction --config ${PATHS.config} --vm NAME\``,
    );
  } else {
    context.out(
      `done: every minute cron runs one cycle; follow it with \`journalctl -t spot-restarter -f\` (or /var/log/syslog); test the whole chain with \`sudo spot-restarter simulate-eviction --config ${PATHS.config} --vm NAME\``,
    );
  }
  return 0;
}

async function doUninstall(options: UninstallOptions, context: Context): Promise<number> {
  const { root, dryRun } = context;
  context.out(
    `spot-restarter uninstall: from ${root}${options.keepState ? ", keeping the state" : ""}${dryRun ? " (dry run: nothing is removed or run)" : ""}`,
  );
  // Nothing is deleted through a symlink or in a directory someone else may write.
  const treeProblem = await checkInstallTree(root, Object.values(PATHS));
  if (treeProblem) throw new InstallerError(`${treeProblem}; nothing was removed`);
  const hadUnit = await exists(root, PATHS.unit);
  if (hadUnit && context.manageServices) {
    context.out("services:");
    const result = await runStep(context, "systemctl", ["disable", "--now", SERVICE_NAME]);
    if (result.code !== 0) {
      context.err(
        `spot-restarter uninstall: warning: \`systemctl disable --now ${SERVICE_NAME}\` failed (exit code ${result.code}); removing the files anyway`,
      );
    }
  }

  context.out("files:");
  let removedAny = false;
  const report = (path: string, what: string) => {
    removedAny = true;
    context.out(`  ${(dryRun ? "would remove" : "removed").padEnd(12)} ${path}${what ? ` (${what})` : ""}`);
  };
  const files: [string, string][] = [
    [PATHS.unit, "systemd service"],
    [PATHS.cron, "cron job"],
    [PATHS.command, "command"],
    [PATHS.bundle, "runtime bundle"],
    [PATHS.config, "runtime config"],
    [PATHS.certificate, "certificate and private key"],
    [PATHS.extraCaCerts, "extra CA certificates"],
    [PATHS.cronConfig, "cron job's copy of the config"],
    [PATHS.cronCertificate, "cron job's copy of the certificate and private key"],
    [PATHS.cronExtraCaCerts, "cron job's copy of the extra CA certificates"],
  ];
  for (const [path, what] of files) {
    if (!(await exists(root, path))) continue;
    if (!dryRun) await removeFile(root, path);
    report(path, what);
  }
  // Leftovers of an interrupted install (a temp copy of the key, for one) go too.
  for (const directory of [
    PATHS.libDir,
    PATHS.configDir,
    PATHS.cronDir,
    "/usr/local/bin",
    "/etc/systemd/system",
    "/etc/cron.d",
  ]) {
    if (dryRun) continue;
    for (const path of await removeLeftoverTempFiles(root, directory))
      report(path, "left by an interrupted install");
  }
  for (const directory of [PATHS.libDir, PATHS.configDir, PATHS.cronDir]) {
    if (dryRun) {
      if (await exists(root, directory)) report(directory, "directory, if empty");
      continue;
    }
    const left = await removeDirectoryIfEmpty(root, directory);
    if (left === "removed") report(directory, "directory");
    else if (Array.isArray(left)) {
      context.err(
        `spot-restarter uninstall: warning: kept ${directory}: it holds files install did not write (${left.join(", ")})`,
      );
    }
  }
  if (options.keepState) {
    if (await exists(root, PATHS.stateDir)) context.out(`  kept         ${PATHS.stateDir} (--keep-state)`);
  } else {
    for (const directory of [PATHS.stateDir, PATHS.privateStateDir]) {
      if (!(await exists(root, directory))) continue;
      if (!dryRun) await removeTree(root, directory);
      report(directory, "state");
    }
  }
  if (!removedAny) context.out(`  nothing to remove: spot-restarter is not installed under ${root}`);

  if (hadUnit && context.manageServices) {
    await runStep(context, "systemctl", ["daemon-reload"]);
    await runStep(context, "systemctl", ["reset-failed", SERVICE_NAME]);
  }
  context.out(dryRun ? "dry run: nothing was removed or run" : "done: spot-restarter is uninstalled");
  return 0;
}

async function withErrorHandling(
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
      return 2;
    }
    if (error instanceof InstallerError) {
      context.err(`spot-restarter ${command}: ${error.message}`);
      return error.exitCode;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      context.err(
        `spot-restarter ${command}: ${(error as Error).message}: run it as root (sudo), or use --root DIR`,
      );
      return 1;
    }
    throw error;
  }
}

/** Returns the process exit code: 0 done, 1 failed, 2 bad input (nothing written). */
export async function install(options: InstallOptions, host: InstallerHost = {}): Promise<number> {
  const root = options.root || "/";
  const context = makeContext(root, options.dryRun, host);
  return withErrorHandling("install", context, () => {
    const checkedRoot = checkRoot(root);
    return doInstall(options, host, { ...context, root: checkedRoot });
  });
}

/** Returns the process exit code: 0 done (also when nothing was installed), 1 failed. */
export async function uninstall(options: UninstallOptions, host: InstallerHost = {}): Promise<number> {
  const root = options.root || "/";
  const context = makeContext(root, options.dryRun, host);
  return withErrorHandling("uninstall", context, async () => {
    const checkedRoot = checkRoot(root);
    const checkedContext = { ...context, root: checkedRoot };
    checkPrivileges(checkedContext, host);
    return doUninstall(options, checkedContext);
  });
}
