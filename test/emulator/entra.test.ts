// The token endpoint checks client assertions for real, and ARM checks the tokens it issued.
import assert from "node:assert/strict";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ClientCertificateCredential } from "@azure/identity";
import * as jose from "jose";
import {
  ARM_SCOPE,
  createTestPrincipal,
  emulatorCredential,
  startTestEmulator,
  type TestEmulator,
  type TestPrincipal,
} from "../../emulator/testing";
import { armFetch, rgPath } from "./helpers";

interface EntraErrorBody {
  error: string;
  error_description: string;
  error_codes: number[];
}

async function assertion(
  principal: TestPrincipal,
  audience: string,
  opts: {
    alg?: "RS256" | "PS256";
    thumbprint?: "x5t" | "x5t#S256";
    pad?: boolean;
    exp?: number;
    iss?: string;
    signWith?: string;
  } = {},
): Promise<string> {
  const der = new X509Certificate(principal.certificatePem).raw;
  const kind = opts.thumbprint ?? "x5t";
  let thumbprint = createHash(kind === "x5t" ? "sha1" : "sha256")
    .update(der)
    .digest("base64url");
  if (opts.pad)
    thumbprint = createHash(kind === "x5t" ? "sha1" : "sha256")
      .update(der)
      .digest("base64");
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({ jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: opts.alg ?? "RS256", typ: "JWT", [kind]: thumbprint })
    .setIssuer(opts.iss ?? principal.clientId)
    .setSubject(principal.clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(opts.exp ?? now + 600)
    .sign(createPrivateKey(opts.signWith ?? principal.privateKeyPem));
}

async function requestToken(
  t: TestEmulator,
  form: Record<string, string>,
  path = `/${t.emulator.tenantId}/oauth2/v2.0/token`,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(new URL(path, t.emulator.authorityHost), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("emulator: Entra ID token endpoint", () => {
  let t: TestEmulator;
  let tokenUrl: string;
  const form = (principal: TestPrincipal, clientAssertion: string, scope = ARM_SCOPE) => ({
    grant_type: "client_credentials",
    client_id: principal.clientId,
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: clientAssertion,
    scope,
  });

  before(async () => {
    t = await startTestEmulator();
    tokenUrl = `${t.emulator.authorityHost}/${t.emulator.tenantId}/oauth2/v2.0/token`;
  });
  after(() => t.emulator.stop());

  it("issues a token to @azure/identity's ClientCertificateCredential (PS256, x5t#S256) that ARM accepts", async () => {
    const token = await t.credential.getToken(ARM_SCOPE);
    assert.ok(token?.token);
    const claims = jose.decodeJwt(token.token);
    assert.equal(claims.appid, t.principal.clientId);
    assert.equal(claims.oid, t.principal.objectId);
    assert.equal(claims.tid, t.emulator.tenantId);
    const response = await armFetch(t, "GET", `${rgPath(t)}/providers/Microsoft.Compute/virtualMachines`);
    assert.equal(response.status, 200);
  });

  it("accepts an RS256 assertion with an x5t (SHA-1) thumbprint, padded or not, as the az CLI sends", async () => {
    for (const pad of [false, true]) {
      const result = await requestToken(
        t,
        form(t.principal, await assertion(t.principal, tokenUrl, { pad })),
      );
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(result.body.token_type, "Bearer");
    }
  });

  it("serves the v1/ADFS token path with a resource parameter", async () => {
    const adfsUrl = `${t.emulator.authorityHost}/adfs/oauth2/token`;
    const { scope: _scope, ...rest } = form(t.principal, await assertion(t.principal, adfsUrl));
    const result = await requestToken(
      t,
      { ...rest, resource: "https://management.core.windows.net/" },
      "/adfs/oauth2/token",
    );
    assert.equal(result.status, 200, JSON.stringify(result.body));
  });

  const refusals: Array<
    [
      string,
      (p: TestPrincipal, other: TestPrincipal) => Promise<Record<string, string>>,
      number,
      number,
      string,
    ]
  > = [
    [
      "an unknown client id",
      async (_p, other) => form(other, await assertion(other, "x")),
      400,
      700016,
      "unauthorized_client",
    ],
    [
      "a certificate not registered on the app",
      async (p, other) => ({ ...form(p, await assertion(other, "x")), client_id: p.clientId }),
      401,
      700027,
      "invalid_client",
    ],
    [
      "a registered thumbprint but a signature by another key",
      async (p, other) => form(p, await assertion(p, "TOKEN_URL", { signWith: other.privateKeyPem })),
      401,
      700027,
      "invalid_client",
    ],
    [
      "an expired assertion",
      async (p) => form(p, await assertion(p, "TOKEN_URL", { exp: Math.floor(Date.now() / 1000) - 3600 })),
      401,
      700024,
      "invalid_client",
    ],
    [
      "a wrong audience",
      async (p) => form(p, await assertion(p, "https://login.microsoftonline.com/x/oauth2/v2.0/token")),
      401,
      50012,
      "invalid_client",
    ],
    [
      "an issuer that is not the client id",
      async (p) => form(p, await assertion(p, "TOKEN_URL", { iss: "someone-else" })),
      401,
      700021,
      "invalid_client",
    ],
    [
      "a client secret",
      async (p) => ({
        grant_type: "client_credentials",
        client_id: p.clientId,
        client_secret: "s",
        scope: ARM_SCOPE,
      }),
      401,
      7000215,
      "invalid_client",
    ],
    [
      "no assertion",
      async (p) => ({ grant_type: "client_credentials", client_id: p.clientId, scope: ARM_SCOPE }),
      401,
      7000218,
      "invalid_client",
    ],
    [
      "a resource that is not ARM",
      async (p) => form(p, await assertion(p, "TOKEN_URL"), "https://vault.azure.net/.default"),
      400,
      500011,
      "invalid_resource",
    ],
    [
      "a scope without /.default",
      async (p) => form(p, await assertion(p, "TOKEN_URL"), "openid"),
      400,
      1002012,
      "invalid_scope",
    ],
  ];
  for (const [what, build, status, code, error] of refusals) {
    it(`refuses ${what} with AADSTS${code}`, async () => {
      const other = await createTestPrincipal();
      const built = await build(t.principal, other);
      if (built.client_assertion) {
        // Re-sign with the real token URL where the case is not about the audience.
        const claims = jose.decodeJwt(built.client_assertion);
        if (claims.aud === "TOKEN_URL") {
          const header = jose.decodeProtectedHeader(built.client_assertion);
          built.client_assertion = await new jose.SignJWT({ ...claims, aud: tokenUrl })
            .setProtectedHeader(header as jose.JWTHeaderParameters)
            .sign(
              createPrivateKey(
                what.includes("another key") ? other.privateKeyPem : t.principal.privateKeyPem,
              ),
            );
        }
      }
      const result = await requestToken(t, built);
      const body = result.body as unknown as EntraErrorBody;
      assert.equal(result.status, status, JSON.stringify(body));
      assert.equal(body.error, error);
      assert.deepEqual(body.error_codes, [code]);
      assert.match(body.error_description, new RegExp(`^AADSTS${code}: `));
    });
  }

  it("refuses an unknown tenant with AADSTS90002", async () => {
    const result = await requestToken(
      t,
      form(t.principal, "x"),
      "/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
    );
    assert.equal(result.status, 400);
    assert.deepEqual((result.body as unknown as EntraErrorBody).error_codes, [90002]);
  });

  it("refuses an expired certificate (AADSTS700027) and surfaces it through @azure/identity", async () => {
    const expired = await createTestPrincipal({
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      validDays: 1,
    });
    await t.control.addPrincipal({
      clientId: expired.clientId,
      objectId: expired.objectId,
      certificatePem: expired.certificatePem,
    });
    const credential = emulatorCredential(t.emulator, expired);
    await assert.rejects(credential.getToken(ARM_SCOPE), /AADSTS700027: .*The key used is expired/);
  });

  it("lets @azure/identity fail with AADSTS700027 when the app has another certificate", async () => {
    const stranger = await createTestPrincipal({ clientId: t.principal.clientId });
    const credential = new ClientCertificateCredential(
      t.emulator.tenantId,
      t.principal.clientId,
      { certificate: stranger.pem },
      { authorityHost: t.emulator.authorityHost, disableInstanceDiscovery: true },
    );
    await assert.rejects(credential.getToken(ARM_SCOPE), /AADSTS700027/);
  });

  it("accepts either certificate after a rollover adds a second one", async () => {
    const next = await createTestPrincipal({
      clientId: t.principal.clientId,
      objectId: t.principal.objectId,
    });
    await t.control.addPrincipal({
      clientId: next.clientId,
      objectId: next.objectId,
      certificatePem: next.certificatePem,
    });
    assert.ok(await emulatorCredential(t.emulator, next).getToken(ARM_SCOPE));
    assert.ok(await emulatorCredential(t.emulator, t.principal).getToken(ARM_SCOPE));
  });
});

describe("emulator: ARM bearer token checks", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator({ timing: { tokenLifetimeSeconds: 1 } });
  });
  after(() => t.emulator.stop());

  const get = (headers: Record<string, string>) =>
    fetch(
      new URL(
        `${rgPath(t)}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01`,
        t.emulator.armEndpoint,
      ),
      { headers },
    );

  it("answers 401 AuthenticationFailed without a token, with a Bearer challenge", async () => {
    const response = await get({});
    assert.equal(response.status, 401);
    assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer authorization_uri=/);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, "AuthenticationFailed");
  });

  it("answers 401 InvalidAuthenticationToken for a token it did not sign", async () => {
    const forged = await new jose.SignJWT({ appid: "x", oid: "y" })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("not-the-key-not-the-key-not-the-key"));
    const response = await get({ Authorization: `Bearer ${forged}` });
    assert.equal(response.status, 401);
    assert.equal(
      ((await response.json()) as { error: { code: string } }).error.code,
      "InvalidAuthenticationToken",
    );
  });

  it("answers 401 ExpiredAuthenticationToken once the token expired", async () => {
    const { token } = (await t.credential.getToken(ARM_SCOPE)) ?? { token: "" };
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const response = await get({ Authorization: `Bearer ${token}` });
    assert.equal(response.status, 401);
    assert.equal(
      ((await response.json()) as { error: { code: string } }).error.code,
      "ExpiredAuthenticationToken",
    );
  });
});
