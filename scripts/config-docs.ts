// npm run docs:config: writes docs/runtime-config.md from the runtime's config schema.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderConfigReference } from "../runtime/src/config/configDocs";

const target = join(__dirname, "..", "docs", "runtime-config.md");
writeFileSync(target, renderConfigReference());
process.stdout.write(`wrote ${target}\n`);
