// Bundles the runtime into one CommonJS file that runs with `node` >= 22 and no node_modules.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("./src/cli.ts", import.meta.url).pathname],
  outfile: new URL("./dist/spot-restarter.cjs", import.meta.url).pathname,
  bundle: true,
  platform: "node",
  target: "node22",
  format: "cjs",
  banner: { js: "#!/usr/bin/env node" },
  legalComments: "none",
  logLevel: "warning",
});
