// docs/runtime-config.md is rendered from the runtime's config schema: the committed file must be what
// `npm run docs:config` renders now (modulo the table padding Biome adds), and every top-level schema
// field must appear in it with a description.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { renderConfigReference } from "../../runtime/src/config/configDocs";
import { describeConfigFields } from "../../runtime/src/config/configFields";
import { configSchema } from "../../runtime/src/config/configSchema";

/** Table cells trimmed and separator rows shortened, as Biome's formatting pads them. */
const normalise = (text: string) =>
  text
    .split("\n")
    .map((line) =>
      line.startsWith("|")
        ? line
            .split("|")
            .map((cell) => cell.trim().replace(/^-{3,}$/, "---"))
            .join("|")
        : line.trimEnd(),
    )
    .join("\n")
    .trim();

it("docs/runtime-config.md is what the schema renders (run npm run docs:config after a schema change)", () => {
  const committed = readFileSync(join(__dirname, "..", "..", "docs", "runtime-config.md"), "utf8");
  assert.equal(normalise(committed), normalise(renderConfigReference()));
});

it("every top-level config field is in the reference with a description", () => {
  const fields = describeConfigFields();
  for (const name of Object.keys(configSchema.shape)) {
    const row = fields.find((f) => f.field === name);
    assert.ok(row, `${name} is missing`);
    assert.notEqual(row.description, "", `${name} has no description in the schema (.meta({ description }))`);
  }
});
