// `npm test`'s pretest: builds the host executables and the .deb packages (test/host/ runs them) only
// when one is missing or older than what it is made from, so `npm ci && npm test` works from a fresh
// clone and costs nothing when .ci/run (or you) built them already.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

function stale(outputs, sources) {
  const source = Math.max(...sources.map((s) => newest(join(repoRoot, s))));
  return outputs.some((output) => !existsSync(output) || statSync(output).mtimeMs < source);
}

const { version } = JSON.parse(readFileSync(join(repoRoot, "runtime", "package.json"), "utf8"));
const dist = join(repoRoot, "dist");
const hostSources = ["runtime/src", "runtime/build-host.mjs", "package-lock.json"];
const executables = ["x64", "arm64"].map((arch) => join(dist, `spot-restarter-linux-${arch}`));
const debs = ["amd64", "arm64"].map((arch) => join(dist, `spot-restarter_${version}_${arch}.deb`));
const npm = (script) => execFileSync("npm", ["run", "-s", script], { cwd: repoRoot, stdio: "inherit" });

if (stale(executables, hostSources)) npm("build:host");
if (stale(debs, [...hostSources, "packaging/deb", ...executables.map((e) => e.slice(repoRoot.length))])) {
  npm("build:deb");
}
