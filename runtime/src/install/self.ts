// What install puts on the host as the `spot-restarter` command, decided by how it is running:
// - a single executable (`npm run build:host`): a copy of itself, /usr/local/bin/spot-restarter;
//   Node.js is inside it, so the host needs none and no Node version check applies;
// - the same executable installed by the Debian package at /usr/bin/spot-restarter: used where it is
//   (dpkg owns that file and upgrades it), nothing copied;
// - the bundle (`node spot-restarter.cjs install`): the bundle plus a wrapper that pins this Node.js.
import { isSea } from "node:sea";
import { PATHS } from "./layout";

/** Where the Debian package (packaging/deb) puts the executable. */
export const PACKAGED_COMMAND = "/usr/bin/spot-restarter";

export type InstallSource =
  | { kind: "executable"; path: string }
  | { kind: "packaged"; path: string }
  | { kind: "bundle"; path: string; nodePath: string; nodeVersion: string };

/** `require("node:sea").isSea()`: true only inside a single executable application. */
export function runningAsSingleExecutable(): boolean {
  return isSea();
}

export function sourceForExecutable(execPath: string): InstallSource {
  return execPath === PACKAGED_COMMAND
    ? { kind: "packaged", path: execPath }
    : { kind: "executable", path: execPath };
}

/** Files an earlier install of another kind wrote that this kind does not (bundle -> executable, …). */
export function staleProgramFiles(source: InstallSource): string[] {
  if (source.kind === "bundle") return [];
  if (source.kind === "executable") return [PATHS.bundle];
  return [PATHS.bundle, PATHS.command];
}
