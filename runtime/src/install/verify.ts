// install's last check before anything runs on a schedule: the runtime's own `doctor` with the freshly
// written config, through the installed command, waiting while only replication is pending.
import { constants, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { escapeControlCharacters } from "../core/text";
import { sharedOrSystemDirectory } from "../state/fsSafe";
import { type DoctorCheck, formatDoctorReport } from "./doctorReport";
import { type ServiceIds, underRoot } from "./files";
import { type CommandResult, type Context, commandLine, failure, relayOutput } from "./host";
import { STATE_DIR_ENV, shellQuote } from "./layout";
import { mapTargetPath, type ScheduledRun } from "./scheduled";
import { writePrivateCopy } from "./trust";

const VERIFY_TIMEOUT_MS = 120_000;
/**
 * Role assignments usually apply within minutes ("up to 10 minutes" for ARM's cache, Azure RBAC
 * troubleshooting); a new principal or credential in Entra ID within a few.
 */
export const DEFAULT_VERIFY_WAIT_SECONDS = 300;

/** What the verification runs: the installed command, or a private copy of the program it installed. */
export interface InstalledCommand {
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

/** Who the verification runs as: the scheduler's user when this process may switch to it. */
interface RunIdentity {
  uid: number;
  gid: number;
  /** cron: the user's groups (initgroups(3), as cron does); DynamicUser=: none. */
  groups: "init" | "clear";
  label: string;
}

/**
 * systemd gives a DynamicUser= service a transient uid without an /etc/passwd entry (systemd.exec(5)
 * "DynamicUser="); `nobody` stands in for it: unprivileged, owning nothing the service reads but its
 * credentials.
 */
const DYNAMIC_USER_STAND_IN = { uid: 65534, gid: 65534 };

/** systemd's default PATH for services (systemd.exec(5) "Environment variables in spawned processes"). */
const SYSTEMD_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

export interface VerifyOptions {
  /** What the scheduler will run, parsed back from the cron file or unit that install wrote. */
  scheduled: ScheduledRun;
  /** The path of the installed command (the scheduled command must be this one). */
  installedCommand: string;
  /** The cron user's ids on this host, when it exists. */
  serviceIds: ServiceIds | undefined;
  /** Whether this process may switch users (root). */
  isRoot: boolean;
  waitSeconds: number;
}

function identityFor(options: VerifyOptions): RunIdentity | undefined {
  if (!options.isRoot) return undefined;
  const { user } = options.scheduled;
  if (user.kind === "dynamic") {
    return {
      ...DYNAMIC_USER_STAND_IN,
      groups: "clear",
      label: "an unprivileged user (nobody), as DynamicUser= runs it",
    };
  }
  if (user.name === "root") return undefined;
  if (!options.serviceIds) return undefined;
  return {
    ...options.serviceIds,
    groups: "init",
    label: `user ${user.name} (uid ${options.serviceIds.uid})`,
  };
}

/**
 * A directory on the way to the tree that the scheduler's user may not enter (a 0700 --root): the job
 * could not read its files there; said before running, with the fix.
 */
async function unreachableFor(path: string): Promise<string | undefined> {
  let current = path;
  const blocked: string[] = [];
  for (;;) {
    const info = await fs.stat(current);
    if ((info.mode & 0o001) === 0) blocked.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return blocked.at(-1);
}

/**
 * Runs what the scheduler will run (issue 23, item 1) with `doctor --json` in place of `once`/`run`: the
 * same program (a private copy of it), the same config and key files (the cron copies; for the unit, the
 * credentials as LoadCredential= hands them: copied into a private directory, $CREDENTIALS_DIRECTORY, %d),
 * the scheduler's environment only (not the installer's), as the scheduler's user. While its only
 * failures are ones replication causes, it waits (a progress line per attempt, bounded by `waitSeconds`);
 * any other failure ends the install at once with doctor's own findings and fixes.
 */
export async function verifyInstalledConfig(
  context: Context,
  installed: InstalledCommand,
  options: VerifyOptions,
): Promise<boolean> {
  const { root } = context;
  const { scheduled, waitSeconds } = options;
  const [subcommand, ...scheduledArgs] = scheduled.args;
  const expected = scheduled.scheduler === "cron" ? "once" : "run";
  if (scheduled.command !== options.installedCommand || subcommand !== expected) {
    throw failure(
      `the ${scheduled.scheduler} job runs \`${[scheduled.command, ...scheduled.args].join(" ")}\`, not \`${options.installedCommand} ${expected} …\`: this installer wrote a schedule it cannot verify (a bug: please report it)`,
    );
  }
  const identity = identityFor(options);
  const toHost = (word: string, credentialsDir: string) =>
    mapTargetPath(word.replaceAll("%d", credentialsDir), (path) => underRoot(root, path));
  const args = [...installed.args, "doctor"];
  let command = installed.command;
  // Root runs its own private copy of what it just checked and wrote, never the file in the target
  // tree: under --root someone else might swap that between the write and this run (issue 17, item 2).
  const placeholderDir = join(tmpdir(), "spot-restarter-verify-XXXXXX");
  const placeholder = join(placeholderDir, installed.privateCopy?.name ?? "");
  if (installed.privateCopy?.as === "command") command = placeholder;
  if (installed.privateCopy?.as === "firstArgument") args[0] = placeholder;
  const planned = (credentialsDir: string) => ({
    args: [...args, ...scheduledArgs.map((word) => toHost(word, credentialsDir)), "--json"],
    env: {
      ...(scheduled.scheduler === "systemd"
        ? { PATH: SYSTEMD_DEFAULT_PATH, CREDENTIALS_DIRECTORY: credentialsDir }
        : scheduled.user.kind === "named"
          ? { LOGNAME: scheduled.user.name, SHELL: "/bin/sh" }
          : {}),
      ...Object.fromEntries(
        Object.entries(scheduled.env).map(([name, value]) => [name, toHost(value, credentialsDir)]),
      ),
    } as Record<string, string>,
  });
  const who = identity
    ? `as ${identity.label}`
    : options.isRoot
      ? scheduled.user.kind === "named" && scheduled.user.name !== "root"
        ? `as root: user ${scheduled.user.name} does not exist on this host, so the run cannot be as that user`
        : "as root"
      : `as this user (uid ${process.getuid?.() ?? "?"}): only root can run it as the ${scheduled.scheduler} job's user`;
  context.out(
    `verify: spot-restarter doctor, run as ${scheduled.scheduler} will run the job (its command, environment and files), ${who}`,
  );
  // A throwaway state directory: a running service holds the lock on the real one (an upgrade), and
  // files root created there would not be writable by the service's user afterwards.
  const describe = (stateDir: string, credentialsDir: string) => {
    const run = planned(credentialsDir);
    return [
      ...Object.entries(run.env).map(([name, value]) => `${name}=${shellQuote(value)}`),
      `${STATE_DIR_ENV}=${stateDir}`,
      commandLine(command, run.args),
    ].join(" ");
  };
  if (context.dryRun) {
    context.out(`  would run  ${describe("<temporary directory>", "<credentials directory>")}`);
    return true;
  }
  if (identity && scheduled.scheduler === "cron" && root !== "/") {
    const blocked = await unreachableFor(root);
    if (blocked) {
      context.err(
        `spot-restarter install: verification failed: the cron job's ${identity.label} cannot enter ${blocked} (no execute bit for others), so the job could not read its files under --root ${root}; ${sharedOrSystemDirectory(blocked) ? `install into a --root the user can enter (never chmod ${blocked}: a shared or system directory)` : `make it 0755 (\`chmod o+x ${blocked}\`)`} and run the same install again, or pass --no-verify`,
      );
      return false;
    }
  }
  const startedAt = Date.now();
  const intervalMs = Math.min(10_000, Math.max(1_000, (waitSeconds * 1000) / 10));
  for (let attempt = 1; ; attempt++) {
    // mkdtemp: a fresh 0700 directory with a random name, root's alone. Entered (never listed) by the
    // job's user when the run switches to it.
    const workDir = await fs.mkdtemp(join(tmpdir(), "spot-restarter-verify-"));
    const stateDir = join(workDir, "state");
    const credentialsDir = join(workDir, "credentials");
    let result: CommandResult;
    try {
      if (identity) await fs.chmod(workDir, 0o711);
      await fs.mkdir(stateDir, { mode: 0o700 });
      if (identity) await fs.chown(stateDir, identity.uid, identity.gid);
      if (scheduled.credentials.length > 0) {
        await writeCredentials(credentialsDir, scheduled.credentials, root, identity);
      }
      const copy = installed.privateCopy;
      if (copy) {
        const path = await writePrivateCopy(workDir, copy.name, copy.content, identity ? 0o555 : 0o500);
        if (copy.as === "command") command = path;
        else args[0] = path;
      }
      const run = planned(credentialsDir);
      if (attempt === 1) context.out(`  run        ${describe(stateDir, credentialsDir)}`);
      const env = { ...run.env, [STATE_DIR_ENV]: stateDir };
      result = identity
        ? await context.run(
            "setpriv",
            [
              `--reuid=${identity.uid}`,
              `--regid=${identity.gid}`,
              identity.groups === "init" ? "--init-groups" : "--clear-groups",
              "--",
              command,
              ...run.args,
            ],
            { env, timeoutMs: VERIFY_TIMEOUT_MS },
          )
        : await context.run(command, run.args, { env, timeoutMs: VERIFY_TIMEOUT_MS });
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
    relayOutput(
      context,
      report ? report.checks.map((check) => formatDoctorReport([check])) : [result.stdout, result.stderr],
    );
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
        ? `${escapeControlCharacters(failed.map((c) => `${c.name}: ${c.detail}`).join("; "))}${
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

/**
 * What systemd does for LoadCredential= (systemd.exec(5) "Credentials"): a private directory holding a
 * copy of each file, read-only, owned by the service's user. Each copy is created 0400 and given to that
 * user while still empty, so the key is never readable by anyone else, not even for a moment.
 */
async function writeCredentials(
  directory: string,
  credentials: ScheduledRun["credentials"],
  root: string,
  identity: RunIdentity | undefined,
): Promise<void> {
  await fs.mkdir(directory, { mode: 0o700 });
  for (const credential of credentials) {
    const content = await fs.readFile(underRoot(root, credential.path));
    const handle = await fs.open(
      join(directory, credential.name),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o400,
    );
    try {
      if (identity) await handle.chown(identity.uid, identity.gid);
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
  }
  if (identity) await fs.chown(directory, identity.uid, identity.gid);
  await fs.chmod(directory, 0o500);
}
