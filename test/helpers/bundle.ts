// Builds the runtime bundle for tests that must run the real single-file artefact
// (installer, end-to-end). Each test process builds its own copy in a temporary folder,
// so test files running in parallel never read a half-written bundle.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let built: Promise<string> | undefined;

/** Path of a freshly built `spot-restarter.cjs`, built at most once per test process. */
export function buildRuntimeBundle(): Promise<string> {
  built ??= (async () => {
    const { bundleRuntime } = (await import("../../runtime/build.mjs")) as {
      bundleRuntime(outfile: string): Promise<string>;
    };
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-bundle-"));
    return bundleRuntime(join(dir, "spot-restarter.cjs"));
  })();
  return built;
}
