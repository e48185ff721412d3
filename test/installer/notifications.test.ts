// Notification channels from the stack outputs to the host: the installer writes them into
// config.json, which then holds a secret (the URLs carry tokens): 0600 from creation, its contents
// never printed, no URL in any message; the service still reads it through LoadCredential=.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadConfig, parseConfig } from "../../runtime/src/config/config";
import { install } from "../../runtime/src/install/index";
import { renderRuntimeConfig, renderSystemdUnit } from "../../runtime/src/install/layout";
import { parseStackOutputs, StackOutputsError } from "../../runtime/src/install/stackOutputs";
import {
  installOptions,
  recordingHost,
  tempDir,
  useInstallerFixture,
  walkTree,
  writeStackOutputs,
} from "./fixtures";

const channels = [
  {
    type: "ntfy",
    url: "https://ntfy.sh/spot-restarter-SECRET-topic",
    events: ["vm-evicted", "vm-restarted"],
  },
  { type: "slack", url: "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxSECRET" },
];

const fixture = useInstallerFixture();

describe("installer: notification channels", () => {
  test("config.json carries the channels, is 0600, and the runtime's loader accepts it", async () => {
    const root = tempDir("root");
    const file = await writeStackOutputs(fixture.outputs({ notifications: channels }));
    const host = recordingHost({ bundlePath: fixture.bundlePath });
    assert.equal(await install(installOptions(root, file), host), 0, host.stderrText());
    const tree = await walkTree(root);
    assert.equal(tree.get("/etc/spot-restarter/config.json")?.mode.toString(8), "600");
    const configPath = join(root, "etc/spot-restarter/config.json");
    const written = JSON.parse(await fs.readFile(configPath, "utf8"));
    assert.deepEqual(written.notifications, channels);
    assert.deepEqual((await loadConfig(configPath)).config.notifications, channels);
    const printed = host.stdoutText() + host.stderrText();
    assert.ok(!printed.includes("SECRET"), printed);
    // The service gets config.json through LoadCredential=, readable by its DynamicUser alone.
    assert.match(
      renderSystemdUnit({ extraCaCerts: false }),
      /^LoadCredential=config\.json:\/etc\/spot-restarter\/config\.json$/m,
    );
  });

  test("--dry-run lists config.json without its contents", async () => {
    const root = tempDir("root");
    const file = await writeStackOutputs(fixture.outputs({ notifications: channels }));
    const host = recordingHost({ bundlePath: fixture.bundlePath });
    assert.equal(await install(installOptions(root, file, { dryRun: true }), host), 0, host.stderrText());
    const printed = host.stdoutText() + host.stderrText();
    assert.match(printed, /config\.json/);
    assert.ok(!printed.includes("SECRET"), printed);
    assert.ok(!printed.includes("hooks.slack.com/services"), printed);
  });

  test("without channels config.json stays as before (0644, no notifications field)", async () => {
    const root = tempDir("root");
    const file = await writeStackOutputs(fixture.outputs({ notifications: [] }));
    const host = recordingHost({ bundlePath: fixture.bundlePath });
    assert.equal(await install(installOptions(root, file), host), 0, host.stderrText());
    assert.equal((await walkTree(root)).get("/etc/spot-restarter/config.json")?.mode.toString(8), "644");
    const written = JSON.parse(await fs.readFile(join(root, "etc/spot-restarter/config.json"), "utf8"));
    assert.equal(written.notifications, undefined);
  });

  test("the unit allows the metrics listener and nothing more: no capability, so the config refuses ports < 1024", async () => {
    const unit = renderSystemdUnit({ extraCaCerts: false }).split("\n");
    assert.ok(unit.includes("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"));
    assert.ok(unit.includes("CapabilityBoundingSet="), "no CAP_NET_BIND_SERVICE");
    assert.ok(
      unit.includes("SystemCallFilter=@system-service"),
      "bind(2) and listen(2) are in @system-service",
    );
    assert.ok(!unit.some((line) => /^(PrivateNetwork=yes|IPAddressDeny=)/.test(line)));
    const base = JSON.parse(renderRuntimeConfig(fixture.outputs() as never, undefined));
    assert.throws(
      () => parseConfig({ ...base, metrics: { listen: "0.0.0.0:443" } }, "/etc/spot-restarter/config.json"),
      /CAP_NET_BIND_SERVICE/,
    );
    assert.equal(
      parseConfig({ ...base, metrics: { listen: "127.0.0.1:9464" } }, "/etc/spot-restarter/config.json")
        .config.metrics?.listen,
      "127.0.0.1:9464",
    );
  });

  test("bad or hidden channels are reported without the URL", () => {
    const problems = (extra: Record<string, unknown>) => {
      try {
        parseStackOutputs(JSON.stringify(fixture.outputs(extra)), "outputs.json");
      } catch (error) {
        assert.ok(error instanceof StackOutputsError);
        return error.message;
      }
      assert.fail("expected a StackOutputsError");
    };
    assert.match(problems({ notifications: "[secret]" }), /notifications reads \[secret\]: .*--show-secrets/);
    const badUrl = problems({
      notifications: [{ type: "slack", url: "ftp://hooks.slack.com/services/T0SECRET/x" }],
    });
    assert.match(badUrl, /notifications\.0\.url is not valid: expected a list of channels/);
    assert.ok(!badUrl.includes("SECRET"), badUrl);
    assert.match(
      problems({ notifications: [{ type: "email", url: channels[1].url }] }),
      /notifications\.0\.type/,
    );
  });
});
