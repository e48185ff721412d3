// The lists several parts must agree on are exported once (runtime/src/azure/roleActions.ts,
// runtime/src/core/stackOutputNames.ts); this checks every consumer against them: the installer's parser, the
// runtime's permission names, the emulator's test role and the README. (The program's role and exports are
// checked in components.test.ts and index.test.ts, which need Pulumi mocks.)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { LEAST_PRIVILEGE_ACTIONS as EMULATOR_TEST_ROLE } from "../../emulator/testing";
import {
  actionsFor,
  LEAST_PRIVILEGE_ACTIONS,
  leastPrivilegeActions,
  ROLE_ACTIONS,
  ROLE_FEATURES,
} from "../../runtime/src/azure/roleActions";
import { OPTIONAL_STACK_OUTPUTS, STACK_OUTPUT_NAMES } from "../../runtime/src/core/stackOutputNames";
import { parseStackOutputs, StackOutputsError } from "../../runtime/src/install/stackOutputs";
import { requiredPermission } from "../../runtime/src/loop/decisions";
import { createTestCertificate, stackOutputsFor, type TestCertificate } from "../installer/fixtures";

const ROOT = join(__dirname, "..", "..");

describe("role actions: one list", () => {
  it("names each action once, in full, under a known feature", () => {
    assert.equal(new Set(LEAST_PRIVILEGE_ACTIONS).size, LEAST_PRIVILEGE_ACTIONS.length);
    for (const entry of ROLE_ACTIONS) {
      assert.match(
        entry.action,
        /^Microsoft\.[A-Za-z]+\/[A-Za-z/]+\/(read|write|action|delete)$/,
        entry.action,
      );
      assert.ok(entry.feature in ROLE_FEATURES, `${entry.action}: feature ${entry.feature}`);
      assert.ok(entry.usedFor.length > 5);
    }
  });

  it("includes following a start's operation (its status URL is authorized as locations/operations/read)", () => {
    assert.ok(
      actionsFor(["restart"]).some((entry) => entry.action === "Microsoft.Compute/locations/operations/read"),
    );
  });

  it("is the emulator's least-privilege test role", () => {
    assert.deepEqual(EMULATOR_TEST_ROLE, [...LEAST_PRIVILEGE_ACTIONS]);
  });

  it("covers every permission the runtime names in its errors", () => {
    for (const [operation, action] of Object.entries(requiredPermission)) {
      assert.ok(
        ROLE_ACTIONS.some((entry) => entry.action === action),
        `${operation}: ${action}`,
      );
    }
  });

  it("names Microsoft's page for every action, with Microsoft's words for it", () => {
    for (const entry of ROLE_ACTIONS) {
      assert.match(entry.source, /^learn\.microsoft\.com\/azure\/[a-z/#-]+(: ".+")$/, entry.action);
    }
  });

  it("grants simulateEviction only when the owner opts in (allowSimulateEviction)", () => {
    const evict = "Microsoft.Compute/virtualMachines/simulateEviction/action";
    assert.ok(!LEAST_PRIVILEGE_ACTIONS.includes(evict));
    assert.deepEqual(
      leastPrivilegeActions({ simulateEviction: true }).filter((a) => !LEAST_PRIVILEGE_ACTIONS.includes(a)),
      [evict],
    );
  });

  it("grants writing a VM only with fallback sizes (opt-in)", () => {
    const write = "Microsoft.Compute/virtualMachines/write";
    assert.ok(!LEAST_PRIVILEGE_ACTIONS.includes(write));
    assert.ok(!leastPrivilegeActions({ fallbackSizes: false }).includes(write));
    assert.deepEqual(leastPrivilegeActions({ fallbackSizes: false }), [...LEAST_PRIVILEGE_ACTIONS]);
    assert.deepEqual(
      leastPrivilegeActions({ fallbackSizes: true }).filter((a) => !LEAST_PRIVILEGE_ACTIONS.includes(a)),
      ["Microsoft.Compute/virtualMachines/vmSizes/read", write],
    );
    assert.deepEqual(
      actionsFor(["fallback-size"]).map((entry) => entry.action),
      ["Microsoft.Compute/virtualMachines/vmSizes/read", write],
    );
  });

  it("is docs/security.md's least-privilege table, action for action, with its feature", () => {
    const readme = readFileSync(join(ROOT, "docs", "security.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Least privilege"));
    const block = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    const rows = block
      .trim()
      .split("\n")
      .map((line) => line.trim().split(/\s+/));
    assert.deepEqual(
      rows.map(([action, feature]) => [action, feature?.replace(/:$/, "")]),
      ROLE_ACTIONS.map((entry) => [entry.action, entry.feature]),
    );
  });
});

describe("stack output names: one list", () => {
  let certificate: TestCertificate;
  before(async () => {
    certificate = await createTestCertificate();
  });

  // Every name with a valid value, as the program exports them.
  const allOutputs = () =>
    stackOutputsFor(certificate, {
      notifications: [],
      fallbackSizes: {},
      fallbackAfterSeconds: 600,
      resourceGroups: ["/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/personal-network"],
    }) as Record<string, unknown>;

  it("the installer accepts exactly these outputs", () => {
    const outputs = allOutputs();
    assert.deepEqual(Object.keys(outputs).sort(), [...STACK_OUTPUT_NAMES].sort(), "fixture");
    assert.deepEqual(
      Object.keys(parseStackOutputs(JSON.stringify(outputs), "outputs")).sort(),
      [...STACK_OUTPUT_NAMES].sort(),
    );
  });

  it("the installer refuses outputs lacking a required one, naming it, and accepts older stacks' gaps", () => {
    for (const name of STACK_OUTPUT_NAMES) {
      const outputs = allOutputs();
      delete outputs[name];
      if (OPTIONAL_STACK_OUTPUTS.includes(name)) {
        assert.doesNotThrow(() => parseStackOutputs(JSON.stringify(outputs), "outputs"), name);
        continue;
      }
      assert.throws(
        () => parseStackOutputs(JSON.stringify(outputs), "outputs"),
        (error: unknown) =>
          error instanceof StackOutputsError &&
          error.problems.some((p) => p.startsWith(`${name} is missing`)),
        name,
      );
    }
  });

  it("hand-written outputs may leave out installCommand, which the installer never reads", () => {
    assert.ok(OPTIONAL_STACK_OUTPUTS.includes("installCommand"));
    const outputs: Record<string, unknown> = stackOutputsFor(certificate);
    delete outputs.installCommand;
    const parsed = parseStackOutputs(JSON.stringify(outputs), "outputs");
    assert.equal(parsed.installCommand, undefined);
    assert.equal(parsed.clientId, outputs.clientId);
  });

  it("the stack outputs table in docs/install.md lists them all", () => {
    const readme = readFileSync(join(ROOT, "docs", "install.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Stack outputs"));
    const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| output")));
    const names = [...table.matchAll(/^\| `([A-Za-z]+)`/gm)].map((match) => match[1]);
    assert.deepEqual(names, [...STACK_OUTPUT_NAMES]);
  });
});
