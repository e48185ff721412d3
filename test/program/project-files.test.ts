// Pulumi.yaml declares every docs/architecture.md config key (type, description, default) and Pulumi.dev.yaml is a
// stack config that passes the program's own validation. The CLI's own rule for project config is applied
// first: a key without a default that the stack does not set stops `pulumi up` before the program runs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEFAULTS, parseConfig, type RawConfig } from "../../config";
import { FALLBACK_AFTER_SECONDS } from "../../runtime/src/core/settings";

// js-yaml ships with @pulumi/pulumi (a direct dependency of it), which reads these very files.
const yaml = require("js-yaml") as { load(text: string): unknown };
const ROOT = join(__dirname, "..", "..");
const load = (file: string) => yaml.load(readFileSync(join(ROOT, file), "utf8")) as Record<string, unknown>;

type ProjectConfig = Record<
  string,
  { type: string; description?: string; default?: unknown; value?: unknown }
>;

/**
 * The CLI's merge of project config into stack config, as pulumi/pulumi's `mergeConfig`
 * (sdk/go/common/workspace/config.go) does it before starting the program: for each key the project declares
 * in its own namespace, a stack value wins; else `value` or `default` is used (YAML `default: ""` counts:
 * the check is `Default != nil`); a key with neither is "missing", and the run stops with
 * "Stack '<stack>' is missing configuration value(s) '<key>'". Primitive values become their text and
 * structured ones JSON (`createConfigValue`), which is how the program then reads them.
 */
function applyProjectConfig(
  project: ProjectConfig,
  projectName: string,
  stackConfig: Record<string, unknown>,
  stackName: string,
): Record<string, string> {
  const merged = new Map<string, unknown>(Object.entries(stackConfig));
  const missing: string[] = [];
  for (const key of Object.keys(project).sort()) {
    const declaration = project[key];
    const fullKey = key.includes(":") ? key : `${projectName}:${key}`;
    if (merged.has(fullKey)) continue;
    const hasDefault = declaration.default !== undefined && declaration.default !== null;
    const hasValue = declaration.value !== undefined && declaration.value !== null;
    if (!hasDefault && !hasValue) {
      if (fullKey.startsWith(`${projectName}:`)) missing.push(key);
      continue;
    }
    merged.set(fullKey, hasDefault ? declaration.default : declaration.value);
  }
  if (missing.length > 0) {
    throw new Error(
      `Stack '${stackName}' is missing configuration value${missing.length > 1 ? "s" : ""} ${formatMissingKeys(missing)}`,
    );
  }
  return Object.fromEntries(
    [...merged].map(([key, value]) => [
      key,
      typeof value === "object" && value !== null ? JSON.stringify(value) : String(value),
    ]),
  );
}

/** `formatMissingKeys` in the same file: 'a', 'b' and 'c'. */
function formatMissingKeys(keys: string[]): string {
  const quoted = [...keys].sort().map((key) => `'${key}'`);
  return quoted.length === 1
    ? quoted[0]
    : `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]}`;
}

/** The stack config the walkthrough's `pulumi config set` lines (docs/install.md) build, as Pulumi.<stack>.yaml holds it. */
function walkthroughStackConfig(): { stack: string; config: Record<string, unknown> } {
  const readme = readFileSync(join(ROOT, "docs", "install.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Walkthrough: `pulumi up`"));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  const stack = /pulumi stack init (\S+)/.exec(block)?.[1];
  assert.ok(stack, "the walkthrough creates a stack");
  const config: Record<string, unknown> = {};
  for (const line of block.split("\n")) {
    const path = /^pulumi config set --path '(\w+)\[(\d+)\]' (\S+)/.exec(line);
    const plain = /^pulumi config set (\w+) (\S+)/.exec(line);
    if (path) {
      const key = `spot-restarter:${path[1]}`;
      const list = (config[key] as string[] | undefined) ?? [];
      list[Number(path[2])] = path[3];
      config[key] = list;
    } else if (plain) {
      config[`spot-restarter:${plain[1]}`] = plain[2];
    }
  }
  assert.ok(Object.keys(config).length >= 2, "the walkthrough sets config");
  return { stack, config };
}

const asRawConfig = (merged: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(merged).map(([key, value]) => [key.replace(/^spot-restarter:/, ""), value]),
  ) as RawConfig;

describe("Pulumi.yaml", () => {
  const project = load("Pulumi.yaml");
  const config = project.config as ProjectConfig;

  it("is the nodejs project spot-restarter", () => {
    assert.equal(project.name, "spot-restarter");
    assert.equal((project.runtime as { name: string }).name, "nodejs");
  });

  it("declares exactly the docs/architecture.md keys with types, descriptions and defaults", () => {
    assert.deepEqual(Object.keys(config).sort(), [
      "allowSimulateEviction",
      "certificateRenewalDays",
      "certificateValidityDays",
      "fallbackAfterSeconds",
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
    assert.equal(config.fallbackAfterSeconds.type, "integer");
    // The runtime's default, its one source: the CLI hands the program this value when the stack sets none.
    assert.equal(config.fallbackAfterSeconds.default, FALLBACK_AFTER_SECONDS);
  });

  it("the CLI runs the README walkthrough's stack, and the program derives the principal name", () => {
    const { stack, config: stackConfig } = walkthroughStackConfig();
    assert.equal(stackConfig["spot-restarter:principalName"], undefined, "the walkthrough never sets it");
    const merged = applyProjectConfig(config, String(project.name), stackConfig, stack);
    const parsed = parseConfig(asRawConfig(merged), stack);
    assert.equal(parsed.principalName, `spot-restarter-${stack}`);
    assert.equal(parsed.resourceGroupName, "personal-network");
    assert.deepEqual(parsed.restartableVms, ["ubuntu-backup-server-spot", "build-box-spot"]);
    assert.equal(parsed.certificateValidityDays, DEFAULTS.certificateValidityDays);
    assert.equal(parsed.fallbackAfterSeconds, FALLBACK_AFTER_SECONDS);
  });

  it("the CLI stops only a stack that lacks resourceGroupName, the one required key", () => {
    assert.throws(
      () => applyProjectConfig(config, String(project.name), {}, "home"),
      new Error("Stack 'home' is missing configuration value 'resourceGroupName'"),
    );
  });
});

describe("Pulumi.dev.yaml", () => {
  it("is a valid example stack, after the CLI applies Pulumi.yaml to it", () => {
    const stack = load("Pulumi.dev.yaml").config as Record<string, unknown>;
    const project = load("Pulumi.yaml");
    const merged = applyProjectConfig(project.config as ProjectConfig, String(project.name), stack, "dev");
    const parsed = parseConfig(asRawConfig(merged), "dev");
    assert.equal(parsed.resourceGroupName, "personal-network");
    assert.ok(parsed.restartableVms.length > 0);
    assert.match(readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8"), /EXAMPLE/);
  });

  it("with principalName removed, still runs and derives the name", () => {
    const stack = { ...(load("Pulumi.dev.yaml").config as Record<string, unknown>) };
    delete stack["spot-restarter:principalName"];
    const project = load("Pulumi.yaml");
    const merged = applyProjectConfig(project.config as ProjectConfig, String(project.name), stack, "dev");
    assert.equal(parseConfig(asRawConfig(merged), "dev").principalName, "spot-restarter-dev");
  });
});
