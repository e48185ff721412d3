// Bad config files: every field missing, of the wrong type, out of range, with messages naming
// the file, the field and the expectation. Also the layering defaults <- file <- env <- flags.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../../runtime/src/cli";
import {
  describeConfig,
  loadConfig,
  overridesFromEnv,
  overridesFromFlags,
  parseConfig,
} from "../../runtime/src/config/config";
import { describeConfigFields, overridableFields } from "../../runtime/src/config/configFields";
import { ConfigError } from "../../runtime/src/core/errors";

const valid = {
  tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  clientId: "11111111-2222-3333-4444-555555555555",
  subscriptionId: "00000000-0000-0000-0000-000000000001",
  certificatePath: "/etc/spot-restarter/sp.pem",
  resourceGroups: ["personal-network"],
  tag: { name: "AttemptRestartAfterEviction", value: "true" },
  intervalSeconds: 30,
  stateDir: "/var/lib/spot-restarter",
  cloud: { authorityHost: "https://login.microsoftonline.com", armEndpoint: "https://management.azure.com" },
};

const path = "/etc/spot-restarter/config.json";

function errorFor(value: unknown): string {
  try {
    parseConfig(value, path);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail("expected a ConfigError");
}

const without = (key: string) => Object.fromEntries(Object.entries(valid).filter(([k]) => k !== key));

describe("config: resourceGroups entries (issue 28)", () => {
  const other = "44444444-4444-4444-8444-444444444444";
  it("takes a name (in subscriptionId) or a group id, which may be in another subscription of the tenant", () => {
    const lab = `/subscriptions/${other}/resourceGroups/lab`;
    const { config, warnings } = parseConfig({ ...valid, resourceGroups: ["personal-network", lab] }, path);
    assert.deepEqual(config.resourceGroups, ["personal-network", lab]);
    assert.deepEqual(warnings, []);
  });
  it("keeps one spelling per group: an id in the config's own subscription is its name", () => {
    const own = `/subscriptions/${valid.subscriptionId.toUpperCase()}/resourceGroups/build-rg`;
    const { config } = parseConfig({ ...valid, resourceGroups: ["personal-network", own] }, path);
    assert.deepEqual(config.resourceGroups, ["personal-network", "build-rg"]);
  });
});

describe("config: a valid file", () => {
  it("parses, fills defaults, and keeps the public-cloud audience", () => {
    const { config, warnings } = parseConfig(without("cloud"), path);
    assert.equal(config.intervalSeconds, 30);
    assert.equal(config.maxConcurrentStarts, 10);
    assert.deepEqual(config.backoff, { initialSeconds: 60, maxSeconds: 1800 });
    assert.equal(config.cloud.audience, "https://management.azure.com");
    assert.equal(config.cloud.authorityHost, "https://login.microsoftonline.com");
    assert.deepEqual(warnings, []);
  });
  it("resolves a relative certificatePath against the config file's folder", () => {
    const { config } = parseConfig({ ...valid, certificatePath: "sp.pem" }, "/x/y/config.json");
    assert.equal(config.certificatePath, "/x/y/sp.pem");
  });
  it("warns below 10 s and on unknown fields, but accepts them", () => {
    const { warnings } = parseConfig({ ...valid, intervalSeconds: 1, intervalSecond: 5 }, path);
    assert.equal(warnings.length, 2);
    assert.match(warnings.join("\n"), /intervalSecond"/);
    assert.match(warnings.join("\n"), /below 10/);
  });
  it("layers environment over the file and flags over the environment, naming the source on error", () => {
    const { config } = parseConfig(
      valid,
      path,
      { intervalSeconds: "5", stateDir: "/env" },
      { intervalSeconds: "7" },
    );
    assert.equal(config.intervalSeconds, 7);
    assert.equal(config.stateDir, "/env");
    assert.match(
      errorFor2(() => parseConfig(valid, path, { intervalSeconds: "0" })),
      /environment variable SPOT_RESTARTER_INTERVAL_SECONDS: field "intervalSeconds"/,
    );
    assert.match(
      errorFor2(() => parseConfig(valid, path, {}, { intervalSeconds: "abc" })),
      /flag --interval-seconds: field "intervalSeconds".*got "abc"/,
    );
  });
});

function errorFor2(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail("expected an error");
}

describe("config: each required field missing", () => {
  for (const field of ["tenantId", "clientId", "subscriptionId", "certificatePath", "resourceGroups"]) {
    it(`names ${field} when it is missing`, () => {
      const message = errorFor(without(field));
      assert.match(
        message,
        new RegExp(`^config file ${path}: field "${field}": expected .*; it is missing$`),
      );
    });
  }
});

const badValues: Array<[string, unknown, RegExp]> = [
  ["tenantId", 42, /field "tenantId": expected the Entra ID tenant id/],
  ["tenantId", "has spaces", /field "tenantId": expected .*GUID or a domain/],
  ["clientId", "not-a-guid", /field "clientId": expected the application \(client\) id .*GUID/],
  ["clientId", 7, /field "clientId"/],
  ["subscriptionId", ["x"], /field "subscriptionId": expected the subscription id/],
  ["certificatePath", "", /field "certificatePath": expected .*non-empty/],
  ["certificatePath", false, /field "certificatePath"/],
  ["resourceGroups", "personal-network", /field "resourceGroups": expected a list of resource group names/],
  ["resourceGroups", [], /field "resourceGroups": expected at least one/],
  ["resourceGroups", ["bad name!"], /field "resourceGroups.0": expected a resource group name/],
  ["resourceGroups", [3], /field "resourceGroups.0"/],
  [
    "resourceGroups",
    ["/subscriptions/not-a-guid/resourceGroups/lab"],
    /field "resourceGroups.0": expected a resource group name \(1-90 .*\) or id \/subscriptions\/<subscription-id>\/resourceGroups\/<name>; got "\/subscriptions\/not-a-guid/,
  ],
  ["tag", "AttemptRestartAfterEviction", /field "tag": expected an object/],
  ["tag", { name: "", value: "true" }, /field "tag.name": expected the tag name/],
  ["tag", { name: "x", value: 1 }, /field "tag.value": expected the tag value/],
  [
    "intervalSeconds",
    "30",
    /field "intervalSeconds": expected seconds between cycles: an integer from 1 to 86400; got "30"/,
  ],
  ["intervalSeconds", 0, /field "intervalSeconds": expected .*from 1 to 86400; got 0/],
  ["intervalSeconds", 1.5, /field "intervalSeconds": expected .*integer/],
  ["intervalSeconds", 100_000, /field "intervalSeconds".*got 100000/],
  ["stateDir", 5, /field "stateDir": expected the state directory/],
  ["cloud", "azure", /field "cloud": expected an object/],
  [
    "cloud",
    { authorityHost: "http://login", armEndpoint: "https://arm" },
    /field "cloud.authorityHost": expected .*https:\/\//,
  ],
  ["cloud", { authorityHost: "https://login", armEndpoint: "nope" }, /field "cloud.armEndpoint"/],
  ["cloud", { authorityHost: "https://a", armEndpoint: "https://b", audience: 5 }, /field "cloud.audience"/],
  [
    "maxConcurrentStarts",
    0,
    /field "maxConcurrentStarts": expected start requests in flight at once: an integer from 1 to 100/,
  ],
  ["maxConcurrentStarts", "ten", /field "maxConcurrentStarts"/],
  [
    "backoff",
    { initialSeconds: 0, maxSeconds: 10 },
    /field "backoff.initialSeconds": expected .*from 0.1 to 3600/,
  ],
  [
    "backoff",
    { initialSeconds: 60, maxSeconds: 30 },
    /field "backoff": expected backoff.maxSeconds to be at least/,
  ],
  ["backoff", 60, /field "backoff": expected an object/],
  ["startTimeoutSeconds", -1, /field "startTimeoutSeconds"/],
  ["armMaxRetries", 11, /field "armMaxRetries": expected .*from 0 to 10/],
  ["logFormat", "xml", /field "logFormat": expected "text" or "json"/],
  ["logLevel", "verbose", /field "logLevel": expected "debug", "info", "warn" or "error"/],
];

describe("config: wrong types and out-of-range values", () => {
  for (const [field, value, pattern] of badValues) {
    it(`rejects ${field} = ${JSON.stringify(value)}`, () => {
      const message = errorFor({ ...valid, [field]: value });
      assert.match(message, new RegExp(`^config file ${path}: `));
      assert.match(message, pattern);
    });
  }
  it("rejects a top level that is not an object", () => {
    assert.match(errorFor([valid]), /expected a JSON object at the top level/);
  });
});

describe("config: the file itself", () => {
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-config-"));
  it("names a missing file", async () => {
    await assert.rejects(loadConfig(join(dir, "none.json")), /config file .*none.json does not exist/);
  });
  it("names a file that is not JSON", async () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, "{ not json");
    await assert.rejects(loadConfig(file), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /bad.json is not valid JSON/);
      return true;
    });
  });
});

describe("config: notifications and metrics", () => {
  const secretUrl = "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxsecrettoken";
  it("accepts every channel type, http:// for a LAN receiver, and an events filter", () => {
    const { config } = parseConfig(
      {
        ...valid,
        notifications: [
          { type: "slack", url: secretUrl },
          { type: "webhook", url: "http://192.168.1.10:8080/hook", events: ["vm-evicted", "vm-restarted"] },
          { type: "ntfy", url: "https://ntfy.sh/my-secret-topic" },
          { type: "discord", url: "https://discord.com/api/webhooks/1/abc" },
          {
            type: "teams",
            url: "https://prod-00.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=s",
          },
        ],
        metrics: { listen: "127.0.0.1:9464", textfile: "metrics/spot-restarter.prom" },
      },
      "/x/config.json",
    );
    assert.equal(config.notifications.length, 5);
    assert.deepEqual(config.notifications[1].events, ["vm-evicted", "vm-restarted"]);
    assert.deepEqual(config.metrics, {
      listen: "127.0.0.1:9464",
      textfile: "/x/metrics/spot-restarter.prom",
    });
    assert.deepEqual(parseConfig(valid, path).config.notifications, []);
    assert.equal(parseConfig(valid, path).config.metrics, undefined);
  });
  it("refuses a bad channel naming the field, and never quotes the URL", () => {
    const messages = [
      errorFor({ ...valid, notifications: [{ type: "email", url: secretUrl }] }),
      errorFor({ ...valid, notifications: [{ type: "slack", url: secretUrl.replace("https", "ftp") }] }),
      errorFor({
        ...valid,
        notifications: [{ type: "slack", url: "hooks.slack.com/services/T0SECRET/B0SECRET/x" }],
      }),
      errorFor({ ...valid, notifications: [{ type: "slack", url: secretUrl, events: ["vm-exploded"] }] }),
      errorFor({ ...valid, notifications: { type: "slack", url: secretUrl } }),
    ];
    assert.match(
      messages[0],
      /field "notifications.0.type": expected the channel type: webhook, ntfy, slack, discord, teams; got "email"/,
    );
    assert.match(
      messages[1],
      /field "notifications.0.url": expected the channel's URL \(https:\/\/ or http:\/\/\); got a URL \(ftp:\/\/hooks.slack.com\/…\)/,
    );
    assert.match(messages[2], /field "notifications.0.url".*got a string of \d+ characters/);
    assert.match(
      messages[3],
      /field "notifications.0.events.0": expected an event name: vm-evicted, vm-restarted, .*; got "vm-exploded"/,
    );
    assert.match(messages[4], /field "notifications": expected a list of channels/);
    for (const message of messages) assert.ok(!message.includes("SECRET"), message);
  });
  it("refuses a privileged or malformed metrics port and an empty metrics object", () => {
    assert.match(
      errorFor({ ...valid, metrics: { listen: "0.0.0.0:80" } }),
      /field "metrics.listen": expected a port from 1024 to 65535/,
    );
    assert.match(errorFor({ ...valid, metrics: { listen: "9464" } }), /expected "host:port"/);
    assert.match(
      errorFor({ ...valid, metrics: {} }),
      /field "metrics": expected "listen", "textfile" or both/,
    );
    assert.match(errorFor({ ...valid, metrics: { textfile: "/tmp/x.txt" } }), /ending in .prom/);
    assert.equal(
      parseConfig({ ...valid, metrics: { listen: "[::1]:9464" } }, path).config.metrics?.listen,
      "[::1]:9464",
    );
  });
  it("describeConfig (--print-config) redacts every notification URL", async () => {
    const { config } = parseConfig({ ...valid, notifications: [{ type: "slack", url: secretUrl }] }, path);
    const printed = JSON.stringify(describeConfig(config));
    assert.ok(!printed.includes("SECRET"));
    assert.match(printed, /"url":"https:\/\/hooks.slack.com\/…"/);
  });
});

describe("config: one schema is the contract", () => {
  it("describes every field, nested ones too, with its requiredness and default", () => {
    const rows = describeConfigFields();
    const byField = new Map(rows.map((row) => [row.field, row]));
    for (const row of rows) assert.ok(row.description.length > 10, `${row.field} has a description`);
    assert.deepEqual(
      rows.filter((row) => row.required).map((row) => row.field),
      [
        "tenantId",
        "clientId",
        "subscriptionId",
        "certificatePath",
        "resourceGroups",
        "tag.name",
        "tag.value",
      ],
    );
    assert.equal(byField.get("intervalSeconds")?.default, 30);
    assert.equal(byField.get("stateDir")?.default, "/var/lib/spot-restarter");
    assert.equal(byField.get("cloud.audience")?.default, "https://management.azure.com");
    assert.deepEqual(byField.get("backoff")?.default, { initialSeconds: 60, maxSeconds: 1800 });
    assert.equal(byField.get("metrics.textfile")?.required, false);
    assert.ok(byField.has("notifications"));
  });

  it("generates env and flag handling from the schema: these five, with these names", () => {
    assert.deepEqual(overridableFields.map(({ field, env, flag }) => [field, env, flag]).sort(), [
      ["intervalSeconds", "SPOT_RESTARTER_INTERVAL_SECONDS", "interval-seconds"],
      ["logFormat", "SPOT_RESTARTER_LOG_FORMAT", "log-format"],
      ["logLevel", "SPOT_RESTARTER_LOG_LEVEL", "log-level"],
      ["maxConcurrentStarts", "SPOT_RESTARTER_MAX_CONCURRENT_STARTS", "max-concurrent-starts"],
      ["stateDir", "SPOT_RESTARTER_STATE_DIR", "state-dir"],
    ]);
    const env = overridesFromEnv({ SPOT_RESTARTER_MAX_CONCURRENT_STARTS: "4", SPOT_RESTARTER_LOG_LEVEL: "" });
    assert.deepEqual(env, { maxConcurrentStarts: "4" });
    assert.equal(parseConfig(valid, path, env).config.maxConcurrentStarts, 4);
    const flags = overridesFromFlags({ "max-concurrent-starts": "2", "state-dir": "/flag", json: true });
    assert.deepEqual(flags, { maxConcurrentStarts: "2", stateDir: "/flag" });
    assert.equal(parseConfig(valid, path, env, flags).config.maxConcurrentStarts, 2);
  });

  it("the CLI accepts --max-concurrent-starts and SPOT_RESTARTER_MAX_CONCURRENT_STARTS (and names them on error)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-config-"));
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify(valid));
    const signal = new AbortController().signal;
    await assert.rejects(
      main(["once", "--config", file, "--max-concurrent-starts", "0"], {}, signal),
      (error: Error) =>
        error instanceof ConfigError &&
        /flag --max-concurrent-starts: field "maxConcurrentStarts": expected start requests in flight at once: an integer from 1 to 100; got 0/.test(
          error.message,
        ),
    );
    await assert.rejects(
      main(["once", "--config", file], { SPOT_RESTARTER_MAX_CONCURRENT_STARTS: "101" }, signal),
      /environment variable SPOT_RESTARTER_MAX_CONCURRENT_STARTS: field "maxConcurrentStarts"/,
    );
  });

  it("runtime/README.md documents every environment variable and flag", () => {
    const readme = readFileSync(join(__dirname, "../../runtime/README.md"), "utf8");
    for (const { env, flag } of overridableFields) {
      assert.ok(readme.includes(env), env);
      assert.ok(readme.includes(`--${flag}`), flag);
    }
  });

  it("keeps no unknown field in the parsed config, and resolves every path field against the file", () => {
    const { config } = parseConfig(
      { ...valid, certificatePath: "sp.pem", stateDir: "state", intervalSecond: 5 },
      "/x/y/config.json",
    );
    assert.equal("intervalSecond" in config, false);
    assert.equal(config.certificatePath, "/x/y/sp.pem");
    assert.equal(config.stateDir, "/x/y/state");
  });
});
