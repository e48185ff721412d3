// Certificate checks, the authority probe and the mapping of authentication failures to a cause.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type AuthorityProbe,
  certificateExpiry,
  classifyEntraMessage,
  explainAuthFailure,
  loadCertificate,
  probeAuthority,
  tokenObjectId,
} from "../../runtime/src/azure/auth";
import { withCallerHint } from "../../runtime/src/cli/wiring";
import { parseConfig } from "../../runtime/src/config/config";
import { AuthError, PermissionError } from "../../runtime/src/core/errors";
import { createTestCertificate as makeCertificate } from "../../support/certificates";

const day = 86_400_000;
const now = new Date();
const dir = mkdtempSync(join(tmpdir(), "spot-restarter-auth-"));

function writePem(name: string, pem: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, pem, { mode });
  return path;
}

describe("loadCertificate", () => {
  it("loads a private PEM holding certificate and key", async () => {
    const cert = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + 365 * day),
    });
    const loaded = await loadCertificate(writePem("ok.pem", cert.pem), now);
    assert.equal(loaded.subject, "CN=spot-restarter-test");
    assert.equal(certificateExpiry(loaded, now).expiresSoon, false);
  });
  it("refuses a PEM readable by group or others, with the chmod that fixes it", async () => {
    const cert = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + 365 * day),
    });
    const path = writePem("open.pem", cert.pem, 0o644);
    await assert.rejects(loadCertificate(path, now), (error: Error) => {
      assert.ok(error instanceof AuthError);
      assert.equal(error.authCause, "certificate");
      assert.match(error.message, new RegExp(`mode 0644\\): run chmod 600 ${path}`));
      assert.doesNotMatch(error.message, /PRIVATE KEY/);
      return true;
    });
  });
  it("refuses an expired certificate", async () => {
    const cert = await makeCertificate({
      notBefore: new Date(now.getTime() - 10 * day),
      notAfter: new Date(now.getTime() - day),
    });
    await assert.rejects(loadCertificate(writePem("expired.pem", cert.pem), now), /expired on .*pulumi up/);
  });
  it("flags a certificate that expires within 30 days", async () => {
    const cert = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + 10 * day + 60_000),
    });
    const loaded = await loadCertificate(writePem("soon.pem", cert.pem), now);
    assert.deepEqual(certificateExpiry(loaded, now), { expired: false, daysLeft: 10, expiresSoon: true });
  });
  it("refuses a PEM without the private key, or with someone else's", async () => {
    const a = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + day * 90),
    });
    const b = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + day * 90),
    });
    await assert.rejects(
      loadCertificate(writePem("nokey.pem", a.certificatePem), now),
      /holds no private key/,
    );
    await assert.rejects(
      loadCertificate(writePem("mismatch.pem", `${a.certificatePem}\n${b.privateKeyPem}`), now),
      /does not belong to the certificate/,
    );
  });
  it("names a missing file and the config field", async () => {
    await assert.rejects(
      loadCertificate(join(dir, "none.pem"), now),
      /does not exist \(config field "certificatePath"\)/,
    );
  });
});

describe("probeAuthority", () => {
  let server: ReturnType<typeof createServer>;
  let port = 0;
  before(async () => {
    const cert = await makeCertificate({
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + day),
      commonName: "localhost",
      dnsNames: ["localhost"],
    });
    server = createServer({ cert: cert.certificatePem, key: cert.privateKeyPem }, (_req, res) => {
      res.writeHead(200).end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => server.close());

  it("reports an untrusted CA by its TLS error code", async () => {
    const probe = await probeAuthority(`https://localhost:${port}`, "tenant");
    assert.equal(probe.kind, "tls");
    assert.equal(probe.kind === "tls" && probe.code, "DEPTH_ZERO_SELF_SIGNED_CERT");
  });
  it("reports an unreachable authority by its socket error code", async () => {
    const free = createNetServer();
    await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
    const closedPort = (free.address() as { port: number }).port;
    await new Promise((resolve) => free.close(resolve));
    const probe = await probeAuthority(`https://127.0.0.1:${closedPort}`, "tenant");
    assert.deepEqual(probe, { kind: "unreachable", code: "ECONNREFUSED" });
  });
});

describe("explainAuthFailure", () => {
  const { config } = parseConfig(
    {
      tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
      clientId: "11111111-2222-3333-4444-555555555555",
      subscriptionId: "00000000-0000-0000-0000-000000000001",
      certificatePath: "/etc/spot-restarter/sp.pem",
      resourceGroups: ["rg"],
      cloud: { authorityHost: "https://login.example", armEndpoint: "https://arm.example" },
    },
    "/etc/spot-restarter/config.json",
  );
  const probeSays = (result: AuthorityProbe) => async () => result;
  const msal = new Error("endpoints_resolution_error: Endpoints cannot be resolved");

  it("an untrusted CA and an unreachable authority are told apart", async () => {
    const ca = await explainAuthFailure(
      msal,
      config,
      probeSays({ kind: "tls", code: "SELF_SIGNED_CERT_IN_CHAIN" }),
    );
    assert.equal(ca.authCause, "ca");
    assert.match(ca.message, /not trusted \(SELF_SIGNED_CERT_IN_CHAIN\).*NODE_EXTRA_CA_CERTS/);
    const down = await explainAuthFailure(
      msal,
      config,
      probeSays({ kind: "unreachable", code: "ENOTFOUND" }),
    );
    assert.equal(down.authCause, "endpoint");
    assert.match(down.message, /unreachable \(ENOTFOUND\).*cloud\.authorityHost/);
  });
  it("an unknown tenant is named (from the probe's answer)", async () => {
    const error = await explainAuthFailure(
      msal,
      config,
      probeSays({
        kind: "http",
        status: 400,
        body: '{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant not found"}',
      }),
    );
    assert.equal(error.authCause, "tenant");
    assert.match(error.message, /tenant "72f988bf-.*" was not found \(AADSTS90002\); check tenantId/);
  });
  it("client id and certificate are named from Entra's AADSTS codes", async () => {
    const noProbe = async (): Promise<AuthorityProbe> => assert.fail("no probe needed");
    const client = await explainAuthFailure(
      new Error("AADSTS700016: Application not found"),
      config,
      noProbe,
    );
    assert.equal(client.authCause, "client-id");
    assert.match(client.message, /application "11111111-.*" was not found.*clientId/);
    const cert = await explainAuthFailure(
      new Error("AADSTS700027: Client assertion failed signature validation"),
      config,
      noProbe,
    );
    assert.equal(cert.authCause, "certificate");
    assert.match(cert.message, /rejected the certificate in \/etc\/spot-restarter\/sp\.pem/);
  });
  it("AADSTS500011 points at the audience", () => {
    assert.equal(
      classifyEntraMessage("AADSTS500011: resource principal not found", config)?.cause,
      "audience",
    );
  });
});

describe("naming the object id a role assignment must use", () => {
  const jwt = (payload: object) =>
    ["{}", JSON.stringify(payload), "sig"].map((part) => Buffer.from(part).toString("base64url")).join(".");
  const oid = "0b8f4a39-7c3e-4d1a-9f52-6e0c2d7b1a44";

  it("reads the oid claim of an access token, and nothing when it is missing or not a GUID", () => {
    assert.equal(tokenObjectId(jwt({ oid, appid: "x" })), oid);
    assert.equal(tokenObjectId(jwt({ appid: "x" })), undefined);
    assert.equal(tokenObjectId(jwt({ oid: "<script>" })), undefined);
    assert.equal(tokenObjectId("not a token"), undefined);
  });

  it("adds the service principal's object id to a missing-permission error only", () => {
    const denied = new PermissionError(
      "the service principal lacks the permission X on resource group rg",
      "X",
    );
    const hinted = withCallerHint(denied, oid) as PermissionError;
    assert.ok(hinted instanceof PermissionError);
    assert.equal(hinted.permission, "X");
    assert.match(
      hinted.message,
      new RegExp(
        `lacks the permission X on resource group rg; .* object id ${oid} \\(not the application's object id\\)$`,
      ),
    );
    assert.equal(withCallerHint(denied, undefined), denied);
    const other = new Error("boom");
    assert.equal(withCallerHint(other, oid), other);
  });
});
