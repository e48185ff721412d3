// Placeholder signatures so the CLI can be wired before the installer lands (issue 5).
export interface InstallOptions {
  /** Path of the stack outputs JSON, or "-" for standard input. */
  stackOutputs: string;
  /** Root of the file tree to install into ("/" = this host, which also runs systemctl). */
  root: string;
  scheduler: "systemd" | "cron";
  dryRun: boolean;
  verify: boolean;
}

export interface UninstallOptions {
  root: string;
  keepState: boolean;
  dryRun: boolean;
}

/** Returns the process exit code. */
export async function install(_options: InstallOptions): Promise<number> {
  throw new Error("install is not implemented yet");
}

/** Returns the process exit code. */
export async function uninstall(_options: UninstallOptions): Promise<number> {
  throw new Error("uninstall is not implemented yet");
}
