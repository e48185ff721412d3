// `spot-restarter install` / `uninstall`: from `pulumi stack output` to a running, hardened service.
// Order matters: everything is read and validated before the first byte is written, so bad stack
// outputs leave the host as it was.
import { resolve } from "node:path";
import { cloudEndpointsProblem } from "../core/clouds";
import { UsageError } from "../core/errors";
import { MINIMUM_NODE_MAJOR } from "../core/nodeVersion";
import {
  checkNodeVersion,
  checkPrivileges,
  checkRoot,
  homeDirectoryProblem,
  readExtraCaCerts,
  readProgram,
  readStackOutputsText,
  serviceUserIds,
} from "./checks";
import {
  applyEntry,
  type EntryResult,
  exists,
  inspectEntry,
  removeDirectoryIfEmpty,
  removeFile,
  underRoot,
} from "./files";
import { type Context, failure, type InstallerHost, makeContext, runStep, withErrorHandling } from "./host";
import {
  installedCommandPath,
  PATHS,
  type PlannedEntry,
  planInstall,
  type Scheduler,
  SERVICE_NAME,
} from "./layout";
import { parseCronFile, parseSystemdUnit } from "./scheduled";
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
import { checkInstallTree, checkTrustedNode, claimRoot, snapshotRoot } from "./trust";
import { DEFAULT_VERIFY_WAIT_SECONDS, type InstalledCommand, verifyInstalledConfig } from "./verify";

// The installer's parts, for the CLI and tests: host.ts (commands, output, errors), checks.ts, verify.ts,
// uninstall.ts; files.ts, layout.ts, stackOutputs.ts, trust.ts, self.ts.
export type { CommandResult, InstallerHost, RunCommand } from "./host";
export type { CloudEndpoints, StackOutputs } from "./stackOutputs";
export { parseStackOutputs, StackOutputsError } from "./stackOutputs";
export { type UninstallOptions, uninstall } from "./uninstall";

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

function mode(value: number): string {
  return `0${value.toString(8).padStart(3, "0")}`;
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

async function doInstall(options: InstallOptions, host: InstallerHost, context: Context): Promise<number> {
  const { root, dryRun } = context;
  const scheduler: Scheduler = options.scheduler;
  if (scheduler !== "systemd" && scheduler !== "cron") {
    throw new UsageError(`--scheduler must be systemd or cron, not ${String(scheduler)}`);
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
    if (root === "/") throw failure(message);
    context.err(`spot-restarter install: warning: ${message}`);
  }
  // The single executable carries its own Node.js and installs itself root-owned: no Node.js to trust.
  const nodeProblem = source.kind === "bundle" ? await checkTrustedNode(nodePath) : undefined;
  if (nodeProblem) {
    // Under --root the tree is for another host, whose Node.js this one cannot see: a warning.
    if (root === "/") throw failure(nodeProblem);
    context.err(
      `spot-restarter install: warning: ${nodeProblem} (on the target host, check ${nodePath} there)`,
    );
  } else if (source.kind === "bundle") {
    context.out(`check: ${nodePath} and every directory on the way are root's alone`);
  }

  if (scheduler === "systemd" && context.manageServices && !dryRun) {
    const running = host.systemdRunning ?? (await exists("/", "/run/systemd/system"));
    if (!running) {
      throw failure(
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
  // A `cloud` from the stack outputs is untrusted input: its audience never lifts the token guard.
  const cloudProblem =
    cloud && cloudEndpointsProblem(cloud, { audienceTrusted: options.cloud !== undefined });
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
  if (treeProblem) throw failure(treeProblem);
  const rootSnapshot = await snapshotRoot(root);
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
  if (!dryRun) {
    const rootProblem = await claimRoot(root, rootSnapshot);
    if (rootProblem) throw failure(rootProblem);
  }
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
    // What the scheduler will run, read back from the very file written for it (the plan's content).
    const schedule = plan.find((entry) => entry.path === (scheduler === "cron" ? PATHS.cron : PATHS.unit));
    const text = schedule?.kind === "file" ? schedule.content.toString("utf8") : "";
    const verified = await verifyInstalledConfig(context, installed, {
      scheduled: scheduler === "cron" ? parseCronFile(text) : parseSystemdUnit(text),
      installedCommand: installedCommandPath(program),
      serviceIds,
      isRoot: host.isRoot ?? process.getuid?.() === 0,
      waitSeconds: options.verifyWaitSeconds ?? DEFAULT_VERIFY_WAIT_SECONDS,
    });
    if (!verified) return 1;
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

/** Returns the process exit code: 0 done, 1 failed, 2 bad input (nothing written). */
export async function install(options: InstallOptions, host: InstallerHost = {}): Promise<number> {
  const root = options.root || "/";
  const context = makeContext(root, options.dryRun, host);
  return withErrorHandling("install", context, () => {
    const checkedRoot = checkRoot(root);
    return doInstall(options, host, { ...context, root: checkedRoot });
  });
}
