// Bad stack outputs: each case names the key and the fix, exits 2, writes nothing and never
// prints the key.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { install, parseStackOutputs, StackOutputsError } from "../../runtime/src/install/index";
import {
  allOutput,
  createTestCertificate,
  fakeBundle,
  installOptions,
  recordingHost,
  removeTempDirs,
  stackOutputsFor,
  stdinOf,
  type TestCertificate,
  tempDir,
  walkTree,
  writeStackOutputs,
} from "./fixtures";

const KEYS = [
  "tenantId",
  "subscriptionId",
  "clientId",
  "resourceGroupName",
  "restartTag",
  "restartableVms",
  "certificatePem",
  "certificateExpiresOn",
] as const; // not installCommand: the installer never reads it (test/program/contracts.test.ts)

let certificate: TestCertificate;
let other: TestCertificate;
let expired: TestCertificate;
let bundlePath: string;

before(async () => {
  [certificate, other, expired] = await Promise.all([
    createTestCertificate(),
    createTestCertificate(),
    createTestCertificate({
      notBefore: new Date(Date.now() - 400 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    }),
  ]);
  bundlePath = await fakeBundle();
});

after(() => {
  const printed = allOutput.join("");
  for (const material of [certificate, other, expired]) {
    for (const line of material.keyLines)
      assert.ok(!printed.includes(line), "private key material was printed");
  }
  removeTempDirs();
});

/** Installs from `text` (piped on stdin) into an empty root; asserts exit 2 and an empty root. */
async function rejects(text: string, expected: RegExp): Promise<string> {
  const root = tempDir("root");
  const host = recordingHost({ bundlePath, stdin: stdinOf(text) });
  const code = await install(installOptions(root, "-", { verify: true }), host);
  const stderr = host.stderrText();
  assert.equal(code, 2, `exit code 2 for bad stack outputs; stderr:\n${stderr}`);
  assert.match(stderr, expected);
  assert.match(stderr, /nothing was written/);
  assert.deepEqual([...(await walkTree(root)).keys()], [], "nothing was written under the root");
  assert.equal(host.commands.length, 0, "nothing was run");
  return stderr;
}

function without(key: string): Record<string, unknown> {
  const outputs: Record<string, unknown> = stackOutputsFor(certificate);
  delete outputs[key];
  return outputs;
}

describe("a missing key is named, with where the outputs come from", () => {
  for (const key of KEYS) {
    test(key, async () => {
      await rejects(
        JSON.stringify(without(key)),
        new RegExp(`- ${key} is missing: expected .*pulumi stack output --json --show-secrets`),
      );
    });
  }
});

test("certificatePem [secret] (outputs printed without --show-secrets) asks for --show-secrets", async () => {
  const stderr = await rejects(
    JSON.stringify(stackOutputsFor(certificate, { certificatePem: "[secret]" })),
    /certificatePem reads \[secret\]: .*add --show-secrets: `pulumi stack output --json --show-secrets`/,
  );
  assert.equal(stderr.match(/certificatePem/g)?.length, 1, "one message for certificatePem, not two");
});

describe("wrong types and formats name the key and what was expected", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "tenantId a number",
      { tenantId: 42 },
      /tenantId is a number: expected the Entra ID tenant id \(a GUID\)/,
    ],
    ["tenantId not a GUID", { tenantId: "contoso" }, /tenantId is not valid \("contoso"\): expected .*GUID/],
    ["clientId null", { clientId: null }, /clientId is null: expected the application \(client\) id/],
    ["subscriptionId an array", { subscriptionId: [] }, /subscriptionId is an array: expected/],
    ["resourceGroupName empty", { resourceGroupName: "" }, /resourceGroupName is not valid \(""\)/],
    [
      "resourceGroups a name, not an id",
      { resourceGroups: ["personal-network"] },
      /resourceGroups\.0 is not valid \("personal-network"\): expected a list of resource group ids like \/subscriptions\/<subscription-id>\/resourceGroups\/<name>/,
    ],
    [
      "resourceGroups empty",
      { resourceGroups: [] },
      /resourceGroups is not valid: expected a list of resource group ids/,
    ],
    [
      "restartTag a string",
      { restartTag: "AttemptRestartAfterEviction=true" },
      /restartTag is a string: expected an object/,
    ],
    [
      "restartTag.name missing",
      { restartTag: { value: "true" } },
      /restartTag\.name is missing: restartTag must be/,
    ],
    [
      "restartableVms a string",
      { restartableVms: "vm1" },
      /restartableVms is a string: expected an array of VM names/,
    ],
    [
      "restartableVms of numbers",
      { restartableVms: [1] },
      /restartableVms\.0 is a number: expected an array of VM names/,
    ],
    ["certificatePem a number", { certificatePem: 7 }, /certificatePem is a number: expected one PEM/],
    [
      "certificateExpiresOn not a date",
      { certificateExpiresOn: "next year" },
      /certificateExpiresOn is not valid \("next year"\): expected .*RFC 3339/,
    ],
    ["installCommand an object", { installCommand: {} }, /installCommand is an object: expected a string/],
    [
      "fallbackAfterSeconds as text",
      { fallbackAfterSeconds: "600" },
      /fallbackAfterSeconds is a string: expected a whole number of seconds from 0 to 86400 \(pulumi config spot-restarter:fallbackAfterSeconds\)/,
    ],
    [
      "fallbackAfterSeconds above a day",
      { fallbackAfterSeconds: 86_401 },
      /fallbackAfterSeconds is not valid \(86401\): expected a whole number of seconds from 0 to 86400/,
    ],
    [
      "fallbackAfterSeconds a fraction",
      { fallbackAfterSeconds: 1.5 },
      /fallbackAfterSeconds is not valid \(1\.5\): expected a whole number of seconds/,
    ],
    [
      "cloud with http",
      { cloud: { authorityHost: "http://x", armEndpoint: "https://y" } },
      /cloud\.authorityHost is not valid/,
    ],
  ];
  for (const [name, change, expected] of cases) {
    test(name, async () => {
      await rejects(JSON.stringify(stackOutputsFor(certificate, change)), expected);
    });
  }

  test("every problem is listed at once", async () => {
    const stderr = await rejects(
      JSON.stringify({ ...without("tenantId"), clientId: 1 }),
      /tenantId is missing/,
    );
    assert.match(stderr, /clientId is a number/);
  });
});

describe("not JSON, or not an object", () => {
  test("bad JSON reports line and column, not the text around it", async () => {
    const text = JSON.stringify(stackOutputsFor(certificate), null, 2).replace(
      '"certificateExpiresOn"',
      "certificateExpiresOn",
    );
    await rejects(text, /standard input is not valid JSON at line \d+, column \d+: run `pulumi stack output/);
  });

  test("cut-off JSON", async () => {
    await rejects(JSON.stringify(stackOutputsFor(certificate)).slice(0, 2000), /not valid JSON/);
  });

  test("the key PEM passed instead of the outputs is not echoed back", async () => {
    const keyOnly = certificate.pem.slice(certificate.pem.indexOf("-----BEGIN PRIVATE KEY-----"));
    const bodyOnly = certificate.keyLines.join("\n");
    for (const text of [certificate.pem, keyOnly, bodyOnly]) {
      const stderr = await rejects(text, /not valid JSON/);
      // V8's own message quotes the first characters ("MIIEvQIBAD"…); ours must not.
      assert.ok(!stderr.includes(bodyOnly.slice(0, 10)), stderr);
    }
  });

  test("a JSON array, a string, null", async () => {
    await rejects("[]", /holds an array, not the JSON object of stack outputs/);
    await rejects('"x"', /holds a string, not the JSON object/);
    await rejects("null", /holds null, not the JSON object/);
  });

  test("empty input says how to pipe the outputs in", async () => {
    await rejects("", /standard input is empty: pipe the outputs in/);
  });

  test("a stack outputs file that does not exist", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(root, "/nonexistent/outputs.json"), host), 2);
    assert.match(
      host.stderrText(),
      /cannot read the stack outputs from \/nonexistent\/outputs\.json \(ENOENT\)/,
    );
    assert.deepEqual([...(await walkTree(root)).keys()], []);
  });
});

describe("the certificate PEM itself", () => {
  const keyOf = (material: TestCertificate) =>
    material.pem.slice(material.pem.indexOf("-----BEGIN PRIVATE KEY-----"));

  test("a key that does not belong to the certificate", async () => {
    await rejects(
      JSON.stringify(
        stackOutputsFor(certificate, { certificatePem: `${certificate.certificatePem}${keyOf(other)}` }),
      ),
      /the private key does not belong to the certificate: run `pulumi up`/,
    );
  });

  test("no private key", async () => {
    await rejects(
      JSON.stringify(stackOutputsFor(certificate, { certificatePem: certificate.certificatePem })),
      /certificatePem has no -----BEGIN PRIVATE KEY----- block/,
    );
  });

  test("no certificate", async () => {
    await rejects(
      JSON.stringify(stackOutputsFor(certificate, { certificatePem: keyOf(certificate) })),
      /certificatePem has no -----BEGIN CERTIFICATE----- block/,
    );
  });

  test("an encrypted key", async () => {
    const encrypted = `${certificate.certificatePem}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n`;
    await rejects(
      JSON.stringify(stackOutputsFor(certificate, { certificatePem: encrypted })),
      /encrypted private key/,
    );
  });

  test("a corrupt key", async () => {
    const corrupt = `${certificate.certificatePem}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`;
    await rejects(
      JSON.stringify(stackOutputsFor(certificate, { certificatePem: corrupt })),
      /the private key cannot be parsed/,
    );
  });

  test("an expired certificate", async () => {
    await rejects(JSON.stringify(stackOutputsFor(expired)), /the certificate expired on .*: run `pulumi up`/);
  });
});

describe("parseStackOutputs (pure)", () => {
  test("returns the outputs, extra keys ignored", async () => {
    const outputs = parseStackOutputs(
      JSON.stringify(stackOutputsFor(certificate, { somethingElse: 1 })),
      "test",
    );
    assert.equal(outputs.resourceGroupName, "personal-network");
    assert.equal(outputs.cloud, undefined);
  });

  test("several missing keys: each named, where they come from said once", () => {
    const outputs = without("clientId");
    delete outputs.tenantId;
    delete outputs.subscriptionId;
    assert.throws(
      () => parseStackOutputs(JSON.stringify(outputs), "outputs.json"),
      (error: unknown) => {
        assert.ok(error instanceof StackOutputsError);
        assert.equal(error.problems.length, 3, error.message);
        assert.equal(error.message.match(/pulumi stack output/g)?.length, 1, error.message);
        assert.match(
          error.problems[2] ?? "",
          /; for all 3 missing keys: run `pulumi stack output --json --show-secrets`/,
        );
        for (const key of ["clientId", "tenantId", "subscriptionId"])
          assert.match(error.message, new RegExp(`- ${key} is missing: expected `));
        return true;
      },
    );
  });

  test("the exact message for a missing key", () => {
    assert.throws(
      () => parseStackOutputs(JSON.stringify(without("clientId")), "outputs.json"),
      (error: unknown) => {
        assert.ok(error instanceof StackOutputsError);
        assert.deepEqual(error.problems, [
          "clientId is missing: expected the application (client) id of the service principal (a GUID); run `pulumi stack output --json --show-secrets` in the spot-restarter project against a stack that `pulumi up` has deployed with this version of the program",
        ]);
        return true;
      },
    );
  });

  test("a file path is named in the JSON error", async () => {
    const file = await writeStackOutputs("{");
    const root = tempDir("root");
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(root, file), host), 2);
    assert.match(host.stderrText(), new RegExp(`the stack outputs file ${file} is not valid JSON`));
  });
});
