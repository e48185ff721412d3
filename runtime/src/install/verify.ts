// install's last check before anything runs on a schedule: the runtime's own `doctor` with the freshly
// written config, through the installed command, waiting while only replication is pending.
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DoctorCheck, formatDoctorReport } from "../cli/doctor";
import { underRoot } from "./files";
import { type CommandResult, type Context, commandLine } from "./host";
import { PATHS, STATE_DIR_ENV, shellQuote } from "./layout";
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

/**
 * Runs `doctor` with the freshly written config through the installed command (bundle or executable). While
 * its only failures are ones replication causes, it waits (a progress line per attempt, bounded by
 * `verifyWaitSeconds`); any other failure ends the install at once with doctor's own findings and fixes.
 */
export async function verifyInstalledConfig(
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
