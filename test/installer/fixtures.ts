// Test material for the installer: real certificate + key pairs, stack outputs, temp roots,
// and a host whose stdout/stderr are captured (so every test can assert the key never leaks).
import { execFileSync, spawnSync } from "node:child_process";
import { promises as fs, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { after, before } from "node:test";
import {
  type CommandResult,
  type InstallerHost,
  type InstallOptions,
  install,
  type RunCommand,
} from "../../runtime/src/install/index";
import { createTestCertificate, type TestCertificate } from "../../support/certificates";
import { type ProcessResult, runNode } from "../../support/process";
import { stackOutputs } from "../../support/world";

export { createTestCertificate, type TestCertificate };

/** Stack outputs for `certificate` in a fixed (made-up) tenant and subscription; `extra` replaces or adds. */
export function stackOutputsFor(
  certificate: Pick<TestCertificate, "pem" | "notAfter">,
  extra: Record<string, unknown> = {},
) {
  return stackOutputs(
    {
      tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
      subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
      clientId: "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d",
      certificatePem: certificate.pem,
      certificateExpiresOn: certificate.notAfter,
    },
    extra,
  );
}

const tempDirs: string[] = [];

/** A fresh, empty directory under the system temp dir; removeTempDirs() deletes them all. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `spot-restarter-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes JSON (or raw text) stack outputs to a file in a fresh temp dir. */
export async function writeStackOutputs(value: unknown): Promise<string> {
  const path = join(tempDir("outputs"), "outputs.json");
  await fs.writeFile(path, typeof value === "string" ? value : JSON.stringify(value, null, 2), {
    mode: 0o600,
  });
  return path;
}

/** A stand-in bundle: install copies whatever .cjs file it runs from. */
export async function fakeBundle(
  content = "#!/usr/bin/env node\nconsole.log('spot-restarter');\n",
): Promise<string> {
  const path = join(tempDir("fakebundle"), "spot-restarter.cjs");
  await fs.writeFile(path, content, { mode: 0o755 });
  return path;
}

/** Everything printed by every host in this test process, to check no key ever leaks. */
export const allOutput: string[] = [];

export interface RecordingHost extends InstallerHost {
  stdoutText(): string;
  stderrText(): string;
  commands: { command: string; args: readonly string[]; env?: NodeJS.ProcessEnv }[];
}

export function recordingHost(
  overrides: InstallerHost & { results?: (command: string, args: readonly string[]) => CommandResult } = {},
): RecordingHost {
  let stdout = "";
  let stderr = "";
  const commands: RecordingHost["commands"] = [];
  const runCommand: RunCommand = async (command, args, options) => {
    commands.push({ command, args, env: options?.env });
    return overrides.results?.(command, args) ?? { code: 0, stdout: "", stderr: "" };
  };
  return {
    runCommand,
    nodePath: "/usr/bin/node",
    nodeVersion: "24.21.0",
    systemdRunning: true,
    env: {},
    // Not root: the verification runs the command itself, not through setpriv as the scheduler's user
    // (scheduled-run.test.ts runs that for real).
    isRoot: false,
    ...overrides,
    stdout: {
      write(text: string) {
        stdout += text;
        allOutput.push(text);
      },
    },
    stderr: {
      write(text: string) {
        stderr += text;
        allOutput.push(text);
      },
    },
    stdoutText: () => stdout,
    stderrText: () => stderr,
    commands,
  };
}

export function stdinOf(text: string): InstallerHost["stdin"] {
  return Readable.from([Buffer.from(text)]);
}

export function installOptions(
  root: string,
  stackOutputs: string,
  extra: Partial<InstallOptions> = {},
): InstallOptions {
  return { stackOutputs, root, scheduler: "systemd", dryRun: false, verify: false, ...extra };
}

export interface TreeEntry {
  type: "file" | "directory" | "symlink";
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  ino: number;
}

/** Every path under root (relative, with a leading "/"), with its type, mode, owner and mtime. */
export async function walkTree(root: string): Promise<Map<string, TreeEntry>> {
  const tree = new Map<string, TreeEntry>();
  async function walk(directory: string): Promise<void> {
    for (const name of await fs.readdir(directory)) {
      const path = join(directory, name);
      const stat = await fs.lstat(path);
      const type = stat.isSymbolicLink() ? "symlink" : stat.isDirectory() ? "directory" : "file";
      tree.set(`/${relative(root, path)}`, {
        type,
        mode: stat.mode & 0o7777,
        uid: stat.uid,
        gid: stat.gid,
        mtimeMs: stat.mtimeMs,
        ino: stat.ino,
      });
      if (type === "directory") await walk(path);
    }
  }
  await walk(root);
  return tree;
}

export type RunResult = ProcessResult;

/** Runs the bundle with Node 24 (the one running the tests), feeding `stdin`. */
export function runBundle(
  bundle: string,
  args: string[],
  options: { stdin?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return runNode(bundle, args, { ...options, stdin: options.stdin ?? "" });
}

export interface InstallerFixture {
  /** A fresh certificate + key (made in `before`). */
  readonly certificate: TestCertificate;
  /** A stand-in bundle for install to copy. */
  readonly bundlePath: string;
  /** A file holding stackOutputsFor(certificate). */
  readonly outputsFile: string;
  /** stackOutputsFor(certificate, extra). */
  outputs(extra?: Record<string, unknown>): ReturnType<typeof stackOutputsFor>;
  /** Installs these stack outputs into a fresh root with a recording host; what it printed and wrote. */
  installOutputs(
    outputs: Record<string, unknown>,
    extra?: Partial<InstallOptions>,
    host?: Parameters<typeof recordingHost>[0],
  ): Promise<{ code: number; root: string; stdout: string; stderr: string; written: string[] }>;
}

/**
 * The set-up most installer tests share: a certificate, a stand-in bundle and a stack-outputs file made
 * in `before`, every temp dir removed in `after`. Call it at the top of a test file.
 */
export function useInstallerFixture(): InstallerFixture {
  let made: { certificate: TestCertificate; bundlePath: string; outputsFile: string } | undefined;
  const ready = () => {
    if (!made) throw new Error("useInstallerFixture(): used before its `before` hook ran");
    return made;
  };
  before(async () => {
    const certificate = await createTestCertificate();
    made = {
      certificate,
      bundlePath: await fakeBundle(),
      outputsFile: await writeStackOutputs(stackOutputsFor(certificate)),
    };
  });
  after(removeTempDirs);
  return {
    get certificate() {
      return ready().certificate;
    },
    get bundlePath() {
      return ready().bundlePath;
    },
    get outputsFile() {
      return ready().outputsFile;
    },
    outputs: (extra = {}) => stackOutputsFor(ready().certificate, extra),
    async installOutputs(outputs, extra = {}, hostOptions = {}) {
      const root = tempDir("root");
      const host = recordingHost({ bundlePath: ready().bundlePath, ...hostOptions });
      const code = await install(installOptions(root, await writeStackOutputs(outputs), extra), host);
      return {
        code,
        root,
        stdout: host.stdoutText(),
        stderr: host.stderrText(),
        written: [...(await walkTree(root)).keys()],
      };
    },
  };
}

/**
 * The cron job's system user on this host, created as install creates it (checks.ts USERADD_ARGS) when
 * missing; its ids. Never deleted afterwards: test files run in parallel, and one removing the user
 * while another runs a job as it would fail that one (a system user with no home and no shell is
 * harmless). Needs root.
 */
export function ensureServiceUser(): { uid: number; gid: number } {
  const lookUp = () => spawnSync("getent", ["passwd", "spot-restarter"], { encoding: "utf8" });
  if (lookUp().status !== 0) {
    // Two test files may race to create it; the loser's useradd fails and the user exists all the same.
    spawnSync("useradd", [
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      "spot-restarter",
    ]);
  }
  const fields = execFileSync("getent", ["passwd", "spot-restarter"], { encoding: "utf8" }).split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
