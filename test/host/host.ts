// Shared by the tests of the host artefacts (`npm run build:host`, `npm run build:deb`): where they
// are, a check that they were built from the current source, an environment with no Node.js at all,
// and a child process runner that works for the executables and for qemu.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestPrincipal } from "../../emulator/testing";
import { type ProcessResult, type RunningProcess, spawnProcess } from "../../support/process";
import { resourceGroup, stackOutputs } from "../../support/world";

export const repoRoot = join(__dirname, "..", "..");
export { resourceGroup };

export function executablePath(arch: "x64" | "arm64"): string {
  return join(repoRoot, "dist", `spot-restarter-linux-${arch}`);
}

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * The artefact at `path`, failing (never skipping) when it is missing or older than the runtime's
 * source: CI builds it before the tests, and a stale one would test old code.
 */
export function requireArtefact(path: string, buildCommand: string): string {
  assert.ok(existsSync(path), `${path} is missing: run \`${buildCommand}\` first (.ci/run does)`);
  const sources = [join(repoRoot, "runtime", "src"), join(repoRoot, "runtime", "build-host.mjs")];
  if (path.endsWith(".deb")) sources.push(join(repoRoot, "packaging", "deb"));
  const newest = Math.max(
    ...sources.map((source) =>
      statSync(source).isDirectory() ? newestSourceMtime(source) : statSync(source).mtimeMs,
    ),
  );
  assert.ok(
    statSync(path).mtimeMs >= newest,
    `${path} is older than its sources (${sources.map((s) => s.slice(repoRoot.length + 1)).join(", ")}): run \`${buildCommand}\` again`,
  );
  return path;
}

/**
 * An environment with no Node.js anywhere: PATH is an empty directory (this machine's /usr/bin has
 * its own, older node), so nothing can fall back to a system Node.js.
 */
export function envWithoutNode(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const empty = mkdtempSync(join(tmpdir(), "spot-restarter-nopath-"));
  return { PATH: empty, HOME: empty, LANG: "C.UTF-8", ...extra };
}

export type HostResult = ProcessResult;
export type HostProcess = RunningProcess;

/** Spawns `command args…` by absolute path with exactly `env` (nothing inherited). */
export function spawnHost(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number },
): HostProcess {
  return spawnProcess(command, args, {
    env: options.env,
    stdin: options.stdin ?? "",
    timeoutMs: options.timeoutMs ?? 120_000,
  });
}

export function runHost(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number },
): Promise<HostResult> {
  return spawnHost(command, args, options).done;
}

/** The stack outputs `pulumi stack output --json --show-secrets` would print for this principal. */
export function stackOutputsFor(
  emulator: { tenantId: string; subscriptionId: string },
  principal: TestPrincipal,
  vms: string[],
): Record<string, unknown> {
  return stackOutputs({
    tenantId: emulator.tenantId,
    subscriptionId: emulator.subscriptionId,
    clientId: principal.clientId,
    certificatePem: principal.pem,
    certificateExpiresOn: new Date(Date.now() + 300 * 86_400_000),
    restartableVms: vms,
  });
}

export { skipUnlessTool } from "../helpers/tools";
