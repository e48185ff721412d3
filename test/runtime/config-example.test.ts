// runtime/examples/config.json is a complete example: every field the schema knows (nested ones too), each
// value valid, and the runtime's own parser accepts it without a warning. A new config field fails this test
// until the example shows it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfig } from "../../runtime/src/config/config";
import { configSchema } from "../../runtime/src/config/configSchema";

const EXAMPLE = join(__dirname, "../../runtime/examples/config.json");

/** Every object key of a zod schema, nested ones as `a.b`, through defaults, optionals and refinements. */
function schemaKeys(schema: unknown, prefix = ""): string[] {
  // zod 4 keeps the wrapped schema in def.innerType (default, optional) or def.in (pipe); objects expose shape.
  const def = (schema as { def?: Record<string, unknown> }).def ?? {};
  const inner = def.innerType ?? def.in;
  if (inner) return schemaKeys(inner, prefix);
  if (def.type === "array") return schemaKeys(def.element, `${prefix}[]`);
  const shape = (schema as { shape?: Record<string, unknown> }).shape;
  if (def.type !== "object" || !shape) return [];
  return Object.entries(shape).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return [path, ...schemaKeys(value, path)];
  });
}

/** Top-level fields whose keys are data, not field names (a record: `fallbackSizes`' "<group>/<vm>" keys). */
const RECORD_FIELDS = new Set(
  Object.entries(configSchema.shape).flatMap(([key, value]) => {
    let def = (value as unknown as { def?: Record<string, unknown> }).def ?? {};
    while (def.innerType ?? def.in) def = ((def.innerType ?? def.in) as { def: Record<string, unknown> }).def;
    return def.type === "record" ? [key] : [];
  }),
);

function exampleKeys(value: unknown, prefix = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => exampleKeys(item, `${prefix}[]`));
  if (typeof value !== "object" || value === null || RECORD_FIELDS.has(prefix)) return [];
  return Object.entries(value).flatMap(([key, inner]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return [path, ...exampleKeys(inner, path)];
  });
}

describe("the complete example config", () => {
  const example = JSON.parse(readFileSync(EXAMPLE, "utf8")) as Record<string, unknown>;

  it("is accepted by the runtime as it is, without a warning", () => {
    const { warnings, config } = parseConfig(example, "/etc/spot-restarter/config.json");
    assert.deepEqual(warnings, []);
    assert.equal(config.certificatePath, "/etc/spot-restarter/sp.pem");
  });

  it("shows every field of the schema, nested ones included", () => {
    const known = [...new Set(schemaKeys(configSchema))].sort();
    assert.ok(
      known.includes("tenantId") && known.includes("cloud.audience") && known.includes("metrics.textfile"),
    );
    assert.deepEqual([...new Set(exampleKeys(example))].sort(), known);
  });

  it("is linked from the runtime's README", () => {
    const readme = readFileSync(join(__dirname, "../../runtime/README.md"), "utf8");
    assert.match(readme, /\]\(examples\/config\.json\)/);
  });
});
