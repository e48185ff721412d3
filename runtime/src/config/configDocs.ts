// The runtime config reference (docs/runtime-config.md), rendered from the one schema in configSchema.ts so
// that it cannot drift: `npm run docs:config` writes it, test/docs/config-reference.test.ts checks that
// the committed file is what this renders.
import { type ConfigFieldDescription, describeConfigFields } from "./configFields";

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

function shown(value: unknown): string {
  if (value === undefined) return "";
  return `\`${cell(JSON.stringify(value))}\``;
}

export function renderConfigReference(
  fields: readonly ConfigFieldDescription[] = describeConfigFields(),
): string {
  const rows = fields.map((f) =>
    [
      `\`${f.field}\``,
      f.required ? "required" : "optional",
      shown(f.default),
      cell(f.description),
      f.env ? `\`${f.env}\`` : "",
      f.flag ? `\`${f.flag}\`` : "",
    ].join(" | "),
  );
  return [
    "# Runtime config reference",
    "",
    "Generated from the runtime's config schema (`runtime/src/config/configSchema.ts`) by `npm run docs:config`; do not",
    "edit by hand. The file is JSON, by default `/etc/spot-restarter/config.json`; a complete example is",
    "[runtime/examples/config.json](../runtime/examples/config.json). Values layer as defaults ← file ←",
    "environment ← flags. A nested field (`cloud.armEndpoint`) is a member of the object above it.",
    "",
    "| field | | default | meaning | environment | flag |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map((row) => `| ${row} |`),
    "",
  ].join("\n");
}
