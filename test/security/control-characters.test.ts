// Issue 25, item 4 (test/security/README.md): control characters in object keys reached the terminal. A
// `fallbackSizes` key "\u001b]0;PWN\u0007\u001b[2Jvm" (retitle the terminal, clear the screen) was accepted
// and echoed by install and every runtime command; a state file key with ESC was echoed in "state-rebuilt";
// a corrupt pauses.json was quoted by V8's parse error. Each reproduces the attack and fails on the code
// before the fix.
import "reflect-metadata";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseConfig } from "../../runtime/src/config/config";
import { createLogger } from "../../runtime/src/signals/log";
import { readPauses } from "../../runtime/src/state/pause";
import { buildRuntimeBundle } from "../../support/bundle";
import { useInstallerFixture } from "../installer/fixtures";
import { runCli, spotVm, startWorld, type World } from "../runtime/harness";

const ESC = "\u001b";
const HOSTILE_KEY = `${ESC}]0;PWN\u0007${ESC}[2Jvm`;
// Written apart from runtime/src/core/text.ts: C0 but the newline that ends each line, DEL, C1, bidi.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding raw control characters is the point.
const RAW_CONTROL_CHARACTER = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

const fixture = useInstallerFixture();

const runtimeConfig = (extra: Record<string, unknown>) => ({
  tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  clientId: "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d",
  subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
  certificatePath: "sp.pem",
  resourceGroups: ["personal-network"],
  ...extra,
});

describe("issue 25 item 4: control characters in keys never reach the terminal", () => {
  test("install of stack outputs with a control character in a fallbackSizes key exits 2, no raw ESC, nothing written", async () => {
    const result = await fixture.installOutputs(
      fixture.outputs({ fallbackSizes: { [HOSTILE_KEY]: ["Standard_D2s_v5"] } }),
      {},
      { nodePath: "/bin/sh" },
    );
    assert.equal(result.code, 2, result.stdout);
    assert.match(
      result.stderr,
      /fallbackSizes\.\\u001b\]0;PWN\\u0007\\u001b\[2Jvm: a key contains a control character/,
    );
    assert.doesNotMatch(`${result.stdout}${result.stderr}`, RAW_CONTROL_CHARACTER);
    assert.deepEqual(result.written, []);
  });

  test("the runtime config refuses such a key, naming it escaped", () => {
    assert.throws(
      () =>
        parseConfig(
          runtimeConfig({ fallbackSizes: { [`personal-network/${HOSTILE_KEY}`]: ["Standard_D2s_v5"] } }),
          "/etc/spot-restarter/config.json",
        ),
      (error: Error) => {
        assert.match(
          error.message,
          /field "fallbackSizes\.personal-network\/\\u001b\]0;PWN.*a key contains a control character/,
        );
        assert.doesNotMatch(error.message, RAW_CONTROL_CHARACTER);
        return true;
      },
    );
  });

  test("a corrupt pauses.json is never quoted: the error says where, not what", async () => {
    const dir = join(fixture.outputsFile, "..", "pauses");
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, "pauses.json"), `{"pauses": [${ESC}]0;PWN-secret-looking-text`, { mode: 0o600 });
    await assert.rejects(readPauses(dir), (error: Error) => {
      assert.match(error.message, /pauses\.json is not valid JSON/);
      assert.doesNotMatch(error.message, /PWN|secret-looking/);
      assert.doesNotMatch(error.message, RAW_CONTROL_CHARACTER);
      return true;
    });
    // Valid JSON with a control character in a key or a name: refused, without echoing it.
    writeFileSync(
      join(dir, "pauses.json"),
      JSON.stringify({ version: 1, pauses: [{ name: `vm${ESC}[2J` }] }),
    );
    await assert.rejects(readPauses(dir), (error: Error) => {
      assert.match(
        error.message,
        /does not hold spot-restarter pauses \(pauses\.0\.name: a control character\)/,
      );
      assert.doesNotMatch(error.message, RAW_CONTROL_CHARACTER);
      return true;
    });
  });

  test("install's relay of the verification's output escapes them (doctor's report, or raw output)", async () => {
    for (const stdout of [
      // doctor --json (runtime/src/cli/doctor.ts) quoting a VM name it was given.
      `${JSON.stringify({ passed: false, checks: [{ name: `VM ${HOSTILE_KEY}`, status: "fail", detail: `bad ${ESC}[2J` }] })}\n`,
      `not a report ${HOSTILE_KEY}\n`,
    ]) {
      const result = await fixture.installOutputs(
        fixture.outputs(),
        { verify: true },
        {
          results: () => ({ code: 1, stdout, stderr: `${ESC}]0;PWN\u0007\n` }),
        },
      );
      assert.equal(result.code, 1);
      assert.match(result.stdout, /\| .*\\u001b\]0;PWN/);
      assert.doesNotMatch(`${result.stdout}${result.stderr}`, RAW_CONTROL_CHARACTER);
    }
  });

  test("the logger escapes control characters in messages and metadata, text and JSON", () => {
    for (const format of ["text", "json"] as const) {
      const lines: string[] = [];
      const log = createLogger({ level: "debug", format, write: (line) => lines.push(line) });
      log.warn("state-rebuilt", { vm: HOSTILE_KEY }, `detail ${HOSTILE_KEY}\u009b31m\u202e`);
      assert.equal(lines.length, 1);
      assert.doesNotMatch(lines[0] ?? "", RAW_CONTROL_CHARACTER, format);
      assert.match(lines[0] ?? "", /\\u001b\]0;PWN/);
      if (format === "json") assert.match((JSON.parse(lines[0] ?? "") as { vm: string }).vm, /PWN/);
    }
  });
});

describe("issue 25 item 4: a state file key with ESC, through the real commands", () => {
  let bundle: string;
  let w: World;
  before(async () => {
    bundle = await buildRuntimeBundle();
    w = await startWorld([spotVm("ubuntu-backup-server-spot", { powerState: "running" })], {
      dirPrefix: "control-characters",
    });
    mkdirSync(w.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(w.stateDir, "state.json"),
      JSON.stringify({
        version: 1,
        vms: {
          [`personal-network/${HOSTILE_KEY}`]: {
            resourceGroup: "personal-network",
            name: HOSTILE_KEY,
            startAttempts: 0,
          },
        },
      }),
      { mode: 0o600 },
    );
  });
  after(() => w?.emulator.stop());

  test("status and once print no raw ESC; the state is rebuilt, saying where (escaped)", async () => {
    for (const args of [["status"], ["status", "--json"], ["once"]]) {
      const result = await runCli(bundle, [...args, "--config", w.configPath], {
        caCertFile: w.emulator.caCertFile,
      });
      const said = `${result.stdout}${result.stderr}`;
      assert.doesNotMatch(said, RAW_CONTROL_CHARACTER, `${args.join(" ")}: ${JSON.stringify(said)}`);
      if (args[0] === "once") {
        assert.equal(result.code, 0, said);
        assert.match(result.stderr, /state-rebuilt.*a key holds a control character/);
      }
    }
  });
});
