// Pulumi.yaml declares every DESIGN.md config key (type, description, default) and Pulumi.dev.yaml is a
// stack config that passes the program's own validation.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEFAULTS, parseConfig, type RawConfig } from "../../config";

// js-yaml ships with @pulumi/pulumi (a direct dependency of it), which reads these very files.
const yaml = require("js-yaml") as { load(text: string): unknown };
const ROOT = join(__dirname, "..", "..");
const load = (file: string) => yaml.load(readFileSync(join(ROOT, file), "utf8")) as Record<string, unknown>;

describe("Pulumi.yaml", () => {
  const project = load("Pulumi.yaml");
  const config = project.config as Record<string, { type: string; description?: string; default?: unknown }>;

  it("is the nodejs project spot-restarter", () => {
    assert.equal(project.name, "spot-restarter");
    assert.equal((project.runtime as { name: string }).name, "nodejs");
  });

  it("declares exactly the DESIGN.md keys with types, descriptions and defaults", () => {
    assert.deepEqual(Object.keys(config).sort(), [
      "certificateRenewalDays",
      "certificateValidityDays",
      "principalName",
      "resourceGroupName",
      "restartableVms",
      "roleMode",
    ]);
    for (const [key, declaration] of Object.entries(config)) {
      assert.ok(declaration.description && declaration.description.length > 20, `${key} has a description`);
    }
    assert.equal(config.resourceGroupName.type, "string");
    assert.equal(config.resourceGroupName.default, undefined, "required: no default");
    assert.equal(config.restartableVms.type, "array");
    assert.deepEqual(config.restartableVms.default, DEFAULTS.restartableVms);
    assert.equal(config.roleMode.type, "string");
    assert.equal(config.roleMode.default, DEFAULTS.roleMode);
    assert.equal(config.certificateValidityDays.type, "integer");
    assert.equal(config.certificateValidityDays.default, DEFAULTS.certificateValidityDays);
    assert.equal(config.certificateRenewalDays.type, "integer");
    assert.equal(config.certificateRenewalDays.default, DEFAULTS.certificateRenewalDays);
    assert.equal(config.principalName.type, "string");
  });
});

describe("Pulumi.dev.yaml", () => {
  it("is a valid example stack", () => {
    const stack = load("Pulumi.dev.yaml").config as Record<string, unknown>;
    // The program sees every value as a string; structured values as JSON.
    const raw = Object.fromEntries(
      Object.entries(stack).map(([key, value]) => [
        key.replace(/^spot-restarter:/, ""),
        typeof value === "string" ? value : JSON.stringify(value),
      ]),
    ) as RawConfig;
    const parsed = parseConfig(raw, "dev");
    assert.equal(parsed.resourceGroupName, "personal-network");
    assert.ok(parsed.restartableVms.length > 0);
    assert.match(readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8"), /EXAMPLE/);
  });
});
