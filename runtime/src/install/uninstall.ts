// `spot-restarter uninstall`: removes what install wrote (and what an interrupted install left), stops
// the service first; the state directory unless --keep-state.
import { checkPrivileges, checkRoot } from "./checks";
import { exists, removeDirectoryIfEmpty, removeFile, removeLeftoverTempFiles, removeTree } from "./files";
import { type Context, failure, type InstallerHost, makeContext, runStep, withErrorHandling } from "./host";
import { PATHS, SERVICE_NAME } from "./layout";
import { checkInstallTree } from "./trust";

export interface UninstallOptions {
  root: string;
  keepState: boolean;
  dryRun: boolean;
}

async function doUninstall(options: UninstallOptions, context: Context): Promise<number> {
  const { root, dryRun } = context;
  context.out(
    `spot-restarter uninstall: from ${root}${options.keepState ? ", keeping the state" : ""}${dryRun ? " (dry run: nothing is removed or run)" : ""}`,
  );
  // Nothing is deleted through a symlink or in a directory someone else may write.
  const treeProblem = await checkInstallTree(root, Object.values(PATHS));
  if (treeProblem) throw failure(`${treeProblem}; nothing was removed`);
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
