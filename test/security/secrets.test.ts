// The private key, access tokens and client assertions never appear in any output: logs (text and JSON,
// debug level), `once --json`, `status` (table and --json), `--print-config`, simulate-eviction, error
// messages (refused certificate, refused token, missing permission) and crash output (with
// SPOT_RESTARTER_DEBUG's stack), nor in the state file; nor do the notification URLs of the config (their
// path and query carry tokens), through `notify-test` and the sinks' failures included. The fault matrix runs the same scan over every
// output of every row (harness.ts `close()`); this file covers the commands and failures it does not.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ARM_SCOPE } from "../../emulator/testing";
import { assertNoSecrets, findSecret, keyFragments } from "../../support/secrets";
import { type Row, resourceGroup, spawnRuntime, spotVm, startRow } from "../faults/harness";
import { deadUrl, type Receiver, startReceiver } from "../helpers/receiver";

describe("secrets never reach an output", () => {
  let row: Row;
  const seen: Array<{ what: string; text: string }> = [];
  const record = (what: string, result: { stdout: string; stderr: string }) => {
    seen.push(
      { what: `${what} (stdout)`, text: result.stdout },
      { what: `${what} (stderr)`, text: result.stderr },
    );
  };

  // Receivers that refuse (a closed port) and answer 403: both failures get logged, URLs redacted.
  let notificationUrls: string[] = [];
  let refusing: Receiver;
  before(async () => {
    refusing = await startReceiver({ status: 403 });
    notificationUrls = [
      await deadUrl("/services/T0SECRETTOKEN/B0SECRETTOKEN/xoxSECRETwebhooktoken"),
      `${refusing.origin}/spot-restarter-SECRET-ntfy-topic?auth=SECRETntfyaccesstoken`,
    ];
    row = await startRow([spotVm("evicted"), spotVm("live", { powerState: "running" })], {
      startSeconds: 0.3,
      config: {
        notifications: [
          { type: "slack", url: notificationUrls[0] },
          { type: "ntfy", url: notificationUrls[1] },
        ],
      },
    });
  });
  after(async () => {
    await row.close();
    await refusing.close();
  });

  it("the scanner finds what it looks for (key body, armour, a real access token)", async () => {
    assert.ok(keyFragments(row.principal.privateKeyPem).length > 40);
    assert.ok(findSecret(row.principal.pem, row.principal));
    const body = row.principal.privateKeyPem.split("\n").slice(5, 6).join("");
    assert.ok(findSecret(`noise ${body} noise`, row.principal), "one line of the key body");
    assert.ok(
      findSecret(JSON.stringify({ key: row.principal.privateKeyPem }), row.principal),
      "JSON-escaped key",
    );
    const token = await row.credential.getToken(ARM_SCOPE);
    assert.ok(token);
    assert.ok(findSecret(`Authorization: Bearer ${token.token}`, row.principal), "an issued access token");
    assert.equal(
      findSecret("INFO started vm=personal-network/evicted: VM is running again", row.principal),
      undefined,
    );
    const withUrls = { ...row.principal, notificationUrls };
    assert.ok(findSecret(`posting to ${notificationUrls[0]}`, withUrls), "a whole notification URL");
    assert.ok(findSecret('{"url":"/spot-restarter-SECRET-ntfy-topic"}', withUrls), "an ntfy topic");
    assert.equal(findSecret("channel=notifications[1] (ntfy, http://127.0.0.1:9/…)", withUrls), undefined);
  });

  it("commands at debug level, in text and JSON, print none", async () => {
    const config = ["--config", row.configPath, "--log-level", "debug", "--print-config"];
    for (const format of ["text", "json"]) {
      const more = ["--log-format", format];
      record(
        `once --dry-run --json ${format}`,
        await row.cli(["once", ...config, ...more, "--dry-run", "--json"]),
      );
      record(`once --json ${format}`, await row.cli(["once", ...config, ...more, "--json"]));
      record(`status ${format}`, await row.cli(["status", ...config, ...more]));
      record(`status --json ${format}`, await row.cli(["status", ...config, ...more, "--json"]));
    }
    record("simulate-eviction", await row.cli(["simulate-eviction", ...config, "--vm", "live"]));
    const notifyTest = await row.cli(["notify-test", ...config]);
    assert.equal(notifyTest.code, 1, "both channels fail");
    assert.match(
      notifyTest.stdout,
      /FAILED notifications\[0\] \(slack, http:\/\/127\.0\.0\.1:\d+\/…\): ECONNREFUSED/,
    );
    record("notify-test", notifyTest);
    const runtime = await spawnRuntime(row, ["run", "--log-level", "debug"]);
    await runtime.waitFor("started", () => true, 15_000).catch(() => undefined);
    await runtime.stop();
    record("run --log-level debug", { stdout: runtime.stdout(), stderr: runtime.stderr() });
    assert.ok(
      seen.some((s) => s.text.includes('"command": "once"')),
      "the commands ran",
    );
  });

  it("errors print none: refused certificate, refused token audience, missing permission, crash with stack", async () => {
    const env = { SPOT_RESTARTER_DEBUG: "1" };
    // The certificate is no longer registered (AADSTS700027): the assertion was built and refused.
    const other = await startRow([spotVm("x")]);
    try {
      await other.control.removePrincipal(other.principal.clientId);
      const refused = await other.cli(["once", "--config", other.configPath, "--log-level", "debug"], env);
      assert.equal(refused.code, 3, refused.stderr);
      record("certificate refused", refused);
      assertNoSecrets(refused.stdout + refused.stderr, other.principal, "certificate refused");
    } finally {
      await other.close();
    }
    // A token for the wrong audience: ARM answers 401 to a real bearer token.
    const audience = join(row.dir, "audience.json");
    writeFileSync(
      audience,
      JSON.stringify({
        ...row.configFile,
        cloud: { ...(row.configFile.cloud as object), audience: "https://vault.azure.net" },
      }),
    );
    const wrongAudience = await row.cli(["once", "--config", audience, "--log-level", "debug"], env);
    // The refusal is reported, names its fix, and ends `once` with the authentication exit code even while a
    // notification channel is still retrying (its back-off once let Node exit 0 before the error was reported).
    assert.equal(wrongAudience.code, 3, wrongAudience.stderr);
    assert.match(wrongAudience.stderr, /AADSTS500011.*check cloud\.audience/);
    record("wrong audience", wrongAudience);
    // A crash: the state directory is a file (an unexpected failure, exit 1, stack printed).
    const crashDir = join(row.dir, "not-a-dir");
    writeFileSync(crashDir, "x");
    const crash = await row.cli(["once", "--config", row.configPath, "--state-dir", crashDir], env);
    assert.notEqual(crash.code, 0);
    record("crash with SPOT_RESTARTER_DEBUG", crash);
    // Missing permission (Reader): exit 4, names the action.
    const reader = await startRow([spotVm("y")], { role: "reader" });
    try {
      const denied = await reader.cli(["once", "--config", reader.configPath, "--log-level", "debug"], env);
      assert.equal(denied.code, 4, denied.stderr);
      assert.match(denied.stderr, /start\/action/);
      assertNoSecrets(denied.stdout + denied.stderr, reader.principal, "permission denied");
    } finally {
      await reader.close();
    }
  });

  it("none of the above holds key material or a token; nor does the state directory", () => {
    for (const { what, text } of seen) assertNoSecrets(text, { ...row.principal, notificationUrls }, what);
    for (const name of readdirSync(row.stateDir)) {
      const path = join(row.stateDir, name);
      if (statSync(path).isFile())
        assertNoSecrets(readFileSync(path, "utf8"), row.principal, `state file ${name}`);
    }
    const state = readFileSync(join(row.stateDir, "state.json"), "utf8");
    assert.match(state, new RegExp(`${resourceGroup}/evicted`));
    process.stdout.write(
      `# figure [secrets]: ${seen.length} outputs scanned (plus every fault-matrix output), 0 leaks\n`,
    );
  });
});
