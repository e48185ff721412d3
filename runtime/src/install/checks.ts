// What install checks before it writes anything: --root, privileges, the Node.js a bundle runs on, the
// stack outputs' source, the program it installs, extra CA certificates, and the cron job's system user.
// A problem is the runtime's error (errors.ts): exit code 2 for bad input, 1 otherwise.
import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { UsageError } from "../core/errors";
import { nodeTooOld } from "../core/nodeVersion";
import type { ServiceIds } from "./files";
import type { Context, InstallerHost } from "./host";
import { failure, runStep } from "./host";
import { type InstalledProgram, PATHS, SERVICE_USER } from "./layout";
import type { InstallSource } from "./self";

export function checkRoot(root: string): string {
  if (!isAbsolute(root)) throw new UsageError(`--root must be an absolute path, not ${root}`);
  return resolve(root);
}

export function checkPrivileges(context: Context, host: InstallerHost): void {
  const isRoot = host.isRoot ?? process.getuid?.() === 0;
  if (context.root === "/" && !context.dryRun && !isRoot) {
    throw failure(
      "writing to /etc, /usr/local and /var/lib needs root: run it with sudo (or use --dry-run, or --root DIR)",
    );
  }
}

export async function readStackOutputsText(
  source: string,
  host: InstallerHost,
): Promise<{ text: string; name: string }> {
  if (source === "-") {
    const stdin = host.stdin ?? process.stdin;
    if (stdin.isTTY) {
      throw new UsageError(
        "--stack-outputs - reads standard input, which is a terminal: pipe the outputs in, e.g. `pulumi stack output --json --show-secrets | sudo node spot-restarter.cjs install --stack-outputs -`",
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    return { text: Buffer.concat(chunks).toString("utf8"), name: "standard input" };
  }
  try {
    return { text: await fs.readFile(source, "utf8"), name: source };
  } catch (error) {
    throw new UsageError(
      `cannot read the stack outputs from ${source} (${(error as NodeJS.ErrnoException).code ?? error}): write them with \`pulumi stack output --json --show-secrets > FILE\`, or pass - to read standard input`,
      { cause: error },
    );
  }
}

export function checkNodeVersion(version: string): void {
  const tooOld = nodeTooOld(version, "run the installer with it");
  if (tooOld) throw failure(tooOld);
}

async function readBundle(bundlePath: string): Promise<Buffer> {
  if (!bundlePath.endsWith(".cjs")) {
    throw failure(
      `install copies the running bundle, but this is ${bundlePath}: build it with \`npm run bundle\` and run \`node runtime/dist/spot-restarter.cjs install …\``,
    );
  }
  try {
    return await fs.readFile(bundlePath);
  } catch (error) {
    throw failure(`cannot read the bundle ${bundlePath}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export async function readProgram(source: InstallSource): Promise<InstalledProgram> {
  if (source.kind === "bundle") {
    return { kind: "bundle", bundle: await readBundle(source.path), nodePath: source.nodePath };
  }
  if (source.kind === "packaged") return { kind: "packaged", command: source.path };
  try {
    return { kind: "executable", executable: await fs.readFile(source.path) };
  } catch (error) {
    throw failure(`cannot read the running executable ${source.path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export async function readExtraCaCerts(path: string | undefined): Promise<Buffer | undefined> {
  if (!path) return undefined;
  let content: Buffer;
  try {
    content = await fs.readFile(path);
  } catch (error) {
    throw new UsageError(
      `cannot read the extra CA certificates ${path} (--extra-ca-certs): ${(error as Error).message}`,
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
    throw new UsageError(
      `${source} holds a PRIVATE KEY block: it would be copied into a world-readable file; pass a file with the CA certificates only (e.g. \`openssl x509 -in FILE -out ca.pem\`)`,
    );
  }
  const certificates = [
    ...text.matchAll(/-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g),
  ].map((match) => match[0].replaceAll("\r\n", "\n"));
  if (certificates.length === 0) throw new UsageError(`${source} holds no PEM certificate`);
  certificates.forEach((pem, index) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw new UsageError(`${source}: certificate ${index + 1} cannot be parsed`);
    }
  });
  return Buffer.from(`${certificates.join("\n")}\n`);
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
export async function serviceUserIds(context: Context): Promise<ServiceIds | undefined> {
  const existing = await lookUpServiceUser(context);
  if (existing) {
    context.out(`check: cron runs as user ${SERVICE_USER} (uid ${existing.uid})`);
    return existing;
  }
  if (context.root === "/" && !context.dryRun) {
    const created = await runStep(context, "useradd", USERADD_ARGS);
    const ids = created.code === 0 ? await lookUpServiceUser(context) : undefined;
    if (!ids) {
      throw failure(
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

export function homeDirectoryProblem(nodePath: string): boolean {
  return /^\/(root|home)(\/|$)/.test(nodePath);
}
