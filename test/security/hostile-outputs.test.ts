// Issue 17, items 4, 5 and 6 (test/security/README.md): what a hostile or mistaken stack output, config
// file or --extra-ca-certs file may not do: send a Microsoft ARM token to another host, print control
// characters to the admin's terminal, make install write a config the runtime refuses, or copy a private
// key into a world-readable file.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadConfig, parseConfig } from "../../runtime/src/config/config";
import { MICROSOFT_CLOUDS, microsoftCloudOf } from "../../runtime/src/core/clouds";
import { install } from "../../runtime/src/install/index";
import { renderRuntimeConfig } from "../../runtime/src/install/layout";
import {
  installOptions,
  recordingHost,
  tempDir,
  useInstallerFixture,
  writeStackOutputs,
} from "../installer/fixtures";

const fixture = useInstallerFixture();

const runtimeConfig = (extra: Record<string, unknown>) => ({
  tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  clientId: "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d",
  subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
  certificatePath: "sp.pem",
  resourceGroups: ["personal-network"],
  ...extra,
});

/** Installs these stack outputs into a fresh root; returns the exit code, stderr and what was written. */
const installOutputs = (outputs: Record<string, unknown>, extra = {}) =>
  fixture.installOutputs(outputs, extra, { nodePath: "/bin/sh" });

describe("item 4: a Microsoft authority's token goes only to that cloud's Resource Manager", () => {
  // Each pair from Azure CLI's azure/cli/core/cloud.py (active_directory -> resource_manager).
  const pairs = [
    ["https://login.microsoftonline.com", "https://management.azure.com"],
    ["https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn"],
    ["https://login.microsoftonline.us", "https://management.usgovcloudapi.net/"],
    ["https://login.microsoftonline.de", "https://management.microsoftazure.de"],
  ] as const;

  test("each cloud's own pair is accepted; another host, or another cloud's ARM, is refused", () => {
    for (const [authorityHost, armEndpoint] of pairs) {
      assert.doesNotThrow(() =>
        parseConfig(runtimeConfig({ cloud: { authorityHost, armEndpoint } }), "/c.json"),
      );
      for (const elsewhere of ["https://management.azure.com.attacker.example", "https://attacker.example"]) {
        assert.throws(
          () => parseConfig(runtimeConfig({ cloud: { authorityHost, armEndpoint: elsewhere } }), "/c.json"),
          (error: Error) => {
            assert.match(
              error.message,
              /field "cloud\.armEndpoint": armEndpoint "https:\/\/.*" is not the Resource Manager of/,
            );
            assert.match(error.message, /whatever the audience\. Use https:\/\/management\./);
            return true;
          },
          `${authorityHost} -> ${elsewhere}`,
        );
      }
    }
    // Public authority, US Government's ARM: the wrong cloud is refused as well.
    assert.throws(() =>
      parseConfig(
        runtimeConfig({
          cloud: {
            authorityHost: "https://login.microsoftonline.com",
            armEndpoint: "https://management.usgovcloudapi.net",
          },
        }),
        "/c.json",
      ),
    );
  });

  test("an alias of a Microsoft authority (login.windows.net) is Microsoft's too; a port or http is refused", () => {
    const cloud = (armEndpoint: string) => ({ authorityHost: "https://LOGIN.windows.net/", armEndpoint });
    assert.doesNotThrow(() =>
      parseConfig(runtimeConfig({ cloud: cloud("https://eastus.management.azure.com") }), "/c"),
    );
    assert.throws(() =>
      parseConfig(runtimeConfig({ cloud: cloud("https://management.azure.com:8443") }), "/c"),
    );
    assert.throws(() =>
      parseConfig(runtimeConfig({ cloud: cloud("https://user@management.azure.com") }), "/c"),
    );
  });

  test("a private authority (the emulator) is not Microsoft's: its endpoints are not checked", () => {
    assert.doesNotThrow(() =>
      parseConfig(
        runtimeConfig({
          cloud: { authorityHost: "https://127.0.0.1:8443", armEndpoint: "https://127.0.0.1:8443" },
        }),
        "/c.json",
      ),
    );
  });

  test("sovereign authorities without a published Resource Manager need an explicit audience", () => {
    const sovereign = MICROSOFT_CLOUDS.filter((c) => c.armHost === undefined).flatMap(
      (c) => c.authorityHosts,
    );
    assert.ok(sovereign.includes("login.sovcloud-identity.fr"));
    for (const host of sovereign) {
      const cloud = { authorityHost: `https://${host}`, armEndpoint: "https://management.example" };
      assert.throws(() => parseConfig(runtimeConfig({ cloud }), "/c.json"), /Set cloud\.audience explicitly/);
      assert.doesNotThrow(() =>
        parseConfig(
          runtimeConfig({ cloud: { ...cloud, audience: "https://management.example" } }),
          "/c.json",
        ),
      );
    }
  });

  // Issue 25, item 1: `audience` switched the guard off, in the config and in the stack outputs.
  const audienceAttack = {
    authorityHost: "https://login.microsoftonline.com",
    armEndpoint: "https://127.0.0.1:9443",
    audience: "https://management.azure.com",
  };

  test("issue 25.1: an audience does not lift the guard: a foreign Resource Manager is refused whatever it says", () => {
    assert.throws(
      () => parseConfig(runtimeConfig({ cloud: audienceAttack }), "/c.json"),
      /armEndpoint "https:\/\/127\.0\.0\.1:9443" is not the Resource Manager of Azure public cloud .*whatever the audience/,
    );
    // A Microsoft alternative audience for the real Resource Manager stays possible.
    assert.doesNotThrow(() =>
      parseConfig(
        runtimeConfig({
          cloud: {
            ...audienceAttack,
            armEndpoint: "https://management.azure.com",
            audience: "https://management.core.windows.net/",
          },
        }),
        "/c.json",
      ),
    );
  });

  test("issue 25.1: install of stack outputs with that audience exits 2 and writes nothing", async () => {
    const result = await installOutputs(fixture.outputs({ cloud: audienceAttack }));
    assert.equal(result.code, 2, result.stdout);
    assert.match(
      result.stderr,
      /cloud\.audience "https:\/\/management\.azure\.com" comes from the stack outputs, which are not trusted/,
    );
    assert.match(result.stderr, /nothing was written/);
    assert.deepEqual(result.written, []);
    // Even for a sovereign cloud whose Resource Manager needs one, the audience comes only from --audience.
    const sovereign = {
      authorityHost: "https://login.sovcloud-identity.fr",
      armEndpoint: "https://arm.example.fr",
      audience: "https://arm.example.fr",
    };
    const fromOutputs = await installOutputs(fixture.outputs({ cloud: sovereign }));
    assert.equal(fromOutputs.code, 2, fromOutputs.stdout);
    assert.deepEqual(fromOutputs.written, []);
    const byFlag = await installOutputs(fixture.outputs(), { cloud: sovereign });
    assert.equal(byFlag.code, 0, byFlag.stderr);
  });

  test("issue 25.1: Microsoft authorities are matched by their domains, not one exact list", () => {
    // Hosts under Microsoft's authority domains that the exact alias list did not hold (the China STS
    // host, a tenant-specific name, a trailing-dot form): each is guarded like its cloud.
    for (const [authorityHost, armHost] of [
      ["https://sts.chinacloudapi.cn", "management.chinacloudapi.cn"],
      ["https://contoso.login.microsoftonline.com", "management.azure.com"],
      ["https://login.microsoftonline.us.", "management.usgovcloudapi.net"],
    ] as const) {
      assert.throws(
        () =>
          parseConfig(
            runtimeConfig({ cloud: { authorityHost, armEndpoint: "https://attacker.example" } }),
            "/c",
          ),
        /is not the Resource Manager of/,
        authorityHost,
      );
      assert.doesNotThrow(
        () =>
          parseConfig(runtimeConfig({ cloud: { authorityHost, armEndpoint: `https://${armHost}` } }), "/c"),
        authorityHost,
      );
    }
    // A look-alike outside those domains is not Microsoft's (and gets no Microsoft token either).
    assert.equal(microsoftCloudOf("https://login.microsoftonline.com.attacker.example"), undefined);
    assert.equal(microsoftCloudOf("https://evilmicrosoftonline.com"), undefined);
  });

  test("install refuses a hostile cloud object in the stack outputs, and the same by flag, writing nothing", async () => {
    const hostile = {
      authorityHost: "https://login.microsoftonline.com",
      armEndpoint: "https://attacker.example",
    };
    const fromOutputs = await installOutputs(fixture.outputs({ cloud: hostile }));
    assert.equal(fromOutputs.code, 2, fromOutputs.stdout);
    assert.match(
      fromOutputs.stderr,
      /armEndpoint "https:\/\/attacker\.example" is not the Resource Manager of Azure public cloud/,
    );
    assert.match(fromOutputs.stderr, /nothing was written/);
    assert.deepEqual(fromOutputs.written, []);
    const byFlag = await installOutputs(fixture.outputs(), { cloud: hostile });
    assert.equal(byFlag.code, 2);
    assert.deepEqual(byFlag.written, []);
  });
});

// Written apart from runtime/src/core/text.ts: C0 but the newline that ends each line, DEL, C1, bidi.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding raw control characters is the point.
const RAW_CONTROL_CHARACTER = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

describe("item 5: control characters from the stack outputs never reach the terminal", () => {
  const ESC = "\u001b";
  const hostile: [string, Record<string, unknown>][] = [
    ["restartableVms.0", { restartableVms: [`vm${ESC}]0;owned${ESC}\\`] }],
    ["restartTag.name", { restartTag: { name: `Attempt\rRestart`, value: "true" } }],
    [
      "restartTag.value",
      { restartTag: { name: "AttemptRestartAfterEviction", value: `true\n[ok] all good` } },
    ],
    ["installCommand", { installCommand: `pulumi${ESC}[2J` }],
    ["restartableVms.0", { restartableVms: ["vm\u202Egnp.exe"] }],
  ];
  for (const [field, extra] of hostile) {
    test(`${field} with a control character is refused, the value escaped in the message`, async () => {
      const result = await installOutputs(fixture.outputs(extra));
      assert.equal(result.code, 2, result.stdout);
      assert.match(
        result.stderr,
        new RegExp(`${field.replace(".", "\\.")} contains a control character \\(".*\\\\[urn]`),
      );
      for (const text of [result.stdout, result.stderr]) {
        assert.doesNotMatch(text, RAW_CONTROL_CHARACTER, "raw control character printed");
      }
      assert.deepEqual(result.written, []);
    });
  }

  test("the runtime refuses the same in its config file (one schema)", () => {
    assert.throws(
      () => parseConfig(runtimeConfig({ tag: { name: `x${ESC}[31m`, value: "true" } }), "/c.json"),
      /field "tag\.name": expected the tag name without control characters; got "x\\u001b\[31m"/,
    );
  });

  test("a tag name over 512 characters (Azure's limit) is refused by install, as the runtime refuses it", async () => {
    const name = "T".repeat(513);
    const result = await installOutputs(fixture.outputs({ restartTag: { name, value: "true" } }));
    assert.equal(result.code, 2, result.stdout);
    assert.match(
      result.stderr,
      /restartTag\.name is not valid \("T+…" \(513 characters\)\): expected the tag name of at most 512 characters/,
    );
    assert.deepEqual(result.written, []);
    // The runtime's side of the same rule, on the config install would have written.
    const outputs = { ...fixture.outputs(), restartTag: { name, value: "true" } };
    assert.throws(
      () => parseConfig(JSON.parse(renderRuntimeConfig(outputs as never, undefined)), "/c.json"),
      /at most 512 characters/,
    );
    // Exactly 512 passes both.
    const ok = await installOutputs(fixture.outputs({ restartTag: { name: "T".repeat(512), value: "v" } }));
    assert.equal(ok.code, 0, ok.stderr);
  });

  test("values install prints are quoted", async () => {
    const result = await installOutputs(fixture.outputs({ restartableVms: ["a", "b c"] }));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /tag "AttemptRestartAfterEviction"="true"; VMs tagged by Pulumi: "a", "b c"/);
  });

  test("the config file's own values are quoted too", async () => {
    const dir = tempDir("config");
    await fs.writeFile(
      join(dir, "config.json"),
      JSON.stringify(runtimeConfig({ resourceGroups: [`rg${ESC}[2J`] })),
    );
    await assert.rejects(loadConfig(join(dir, "config.json")), (error: Error) => {
      assert.ok(!error.message.includes(ESC));
      assert.match(error.message, /\\u001b\[2J/);
      return true;
    });
  });
});

describe("item 6: --extra-ca-certs copies certificates, never a private key", () => {
  test("a file holding a PRIVATE KEY block is refused and nothing is written", async () => {
    const file = join(tempDir("ca"), "server.pem");
    await fs.writeFile(file, fixture.certificate.pem); // certificate + PKCS#8 key, as a server's PEM would be
    const result = await installOutputs(fixture.outputs(), { extraCaCerts: file });
    assert.equal(result.code, 2, result.stdout);
    assert.match(result.stderr, /holds a PRIVATE KEY block: it would be copied into a world-readable file/);
    assert.deepEqual(result.written, []);
    for (const line of fixture.certificate.keyLines)
      assert.ok(!result.stdout.includes(line) && !result.stderr.includes(line));
  });

  test("an RSA (PKCS#1) or EC key is refused as well", async () => {
    for (const label of ["RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]) {
      const file = join(tempDir("ca"), "ca.pem");
      await fs.writeFile(
        file,
        `${fixture.certificate.certificatePem}-----BEGIN ${label}-----\nAAAA\n-----END ${label}-----\n`,
      );
      const result = await installOutputs(fixture.outputs(), { extraCaCerts: file });
      assert.equal(result.code, 2, label);
    }
  });

  test("only the certificates are copied: comments and other text are dropped", async () => {
    const file = join(tempDir("ca"), "ca.pem");
    await fs.writeFile(
      file,
      `# corporate root\nsubject=CN=Corp\n${fixture.certificate.certificatePem}trailing junk\n`,
    );
    const root = tempDir("root");
    const host = recordingHost({ bundlePath: fixture.bundlePath, nodePath: "/bin/sh" });
    const outputs = await writeStackOutputs(fixture.outputs());
    assert.equal(
      await install(installOptions(root, outputs, { extraCaCerts: file }), host),
      0,
      host.stderrText(),
    );
    assert.equal(
      await fs.readFile(join(root, "etc/spot-restarter/extra-ca.pem"), "utf8"),
      fixture.certificate.certificatePem,
    );
  });
});
