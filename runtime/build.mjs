// Bundles the runtime into one CommonJS file that runs with `node` >= 22 and no node_modules.
// `npm run bundle` writes runtime/dist/spot-restarter.cjs; tests import bundleRuntime() to
// build their own copy of the very same artefact.

import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export async function bundleRuntime(outfile) {
  await build({
    entryPoints: [fileURLToPath(new URL("./src/cli.ts", import.meta.url))],
    outfile,
    bundle: true,
    platform: "node",
    target: "node22",
    format: "cjs",
    banner: { js: "#!/usr/bin/env node" },
    legalComments: "none",
    logLevel: "warning",
  });
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await bundleRuntime(fileURLToPath(new URL("./dist/spot-restarter.cjs", import.meta.url)));
}
