// Builds the runtime bundle for what must run the real single-file artefact (installer and end-to-end
// tests, the demo, the soak). Each process builds its own copy in a temporary folder, so test files
// running in parallel never read a half-written bundle.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Builds `spot-restarter.cjs` (the artefact `npm run bundle` makes) into `dir`; returns its path. */
export async function buildBundle(dir: string): Promise<string> {
  const { bundleRuntime } = (await import("../runtime/build.mjs")) as {
    bundleRuntime(outfile: string): Promise<string>;
  };
  return bundleRuntime(join(dir, "spot-restarter.cjs"));
}

let built: Promise<string> | undefined;

/** Path of a freshly built `spot-restarter.cjs`, built at most once per process. */
export function buildRuntimeBundle(): Promise<string> {
  built ??= buildBundle(mkdtempSync(join(tmpdir(), "spot-restarter-bundle-")));
  return built;
}
