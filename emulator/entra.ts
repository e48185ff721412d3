// Entra ID (Azure AD), the client-credentials flow with a certificate, as msal-node (PS256,
// `x5t#S256`) and MSAL Python under the az CLI (RS256, `x5t`) use it; plus verification of the access
// tokens it issues, on every Resource Manager request.
// Assertion format: https://learn.microsoft.com/entra/identity-platform/certificate-credentials
// Error codes: https://learn.microsoft.com/entra/identity-platform/reference-error-codes
import { randomUUID, type webcrypto } from "node:crypto";
import * as jose from "jose";
import { defaultErrorCode } from "./faults";
import { type Caller, HttpError, type RequestContext, sendJson } from "./http";
import { normalizeThumbprint, type Principal, type RegisteredCertificate, type World } from "./state";

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** Resource identifiers ARM accepts tokens for (plus the emulator's own origin). */
const ARM_AUDIENCES = ["https://management.azure.com", "https://management.core.windows.net"];

/** An Entra token-endpoint error: `{"error","error_description":"AADSTSnnn: …","error_codes":[nnn],…}`. */
class EntraError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly aadsts: number,
    message: string,
  ) {
    super(`AADSTS${aadsts}: ${message}`);
  }
}

export class EntraEmulator {
  private constructor(
    private readonly world: World,
    private readonly signingKey: webcrypto.CryptoKey,
    private readonly verifyingKey: webcrypto.CryptoKey,
    private readonly publicJwk: jose.JWK,
    private readonly keyId: string,
  ) {}

  static async create(world: World): Promise<EntraEmulator> {
    const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
    const keyId = randomUUID().replace(/-/g, "").slice(0, 20);
    const publicJwk = { ...(await jose.exportJWK(publicKey)), kid: keyId, use: "sig", alg: "RS256" };
    return new EntraEmulator(world, privateKey, publicKey, publicJwk, keyId);
  }

  /** The issuer of access tokens, as Entra's v1 tokens (which ARM receives) carry it. */
  get issuer(): string {
    return `https://sts.windows.net/${this.world.tenantId}/`;
  }

  /** Handles Entra paths; returns false for anything else. */
  async handle(ctx: RequestContext): Promise<boolean> {
    const first = ctx.segments[0];
    if (first === undefined || ctx.segments.length < 2) return false;
    const isAdfs = first.toLowerCase() === "adfs";
    const tail = ctx.segments.slice(1).join("/").toLowerCase();
    const known = [
      "v2.0/.well-known/openid-configuration",
      ".well-known/openid-configuration",
      "discovery/v2.0/keys",
      "discovery/keys",
      "oauth2/v2.0/token",
      "oauth2/token",
    ];
    if (!known.includes(tail)) return false;
    const tenantOk = isAdfs || first.toLowerCase() === this.world.tenantId.toLowerCase();
    const tenantSegment = isAdfs ? "adfs" : this.world.tenantId;

    if (tail.endsWith("openid-configuration") || tail.includes("keys")) {
      if (ctx.method !== "GET") return false;
      if (!tenantOk) {
        this.sendError(ctx, new EntraError(400, "invalid_tenant", 90002, tenantNotFound(first)));
        return true;
      }
      if (tail.includes("keys")) sendJson(ctx, 200, { keys: [this.publicJwk] });
      else
        sendJson(
          ctx,
          200,
          this.openIdConfiguration(ctx.origin, tenantSegment, tail.startsWith("v2.0") && !isAdfs),
        );
      return true;
    }

    if (ctx.method !== "POST") return false;
    const form = new URLSearchParams(ctx.body.toString("utf8"));
    ctx.logClientId = form.get("client_id") ?? undefined;
    try {
      if (!tenantOk) throw new EntraError(400, "invalid_request", 90002, tenantNotFound(first));
      const tokenUrl = `${ctx.origin}${ctx.path}`;
      const body = await this.issueToken(form, tokenUrl, ctx.origin, tail === "oauth2/v2.0/token");
      sendJson(ctx, 200, body, { "Cache-Control": "no-store, no-cache", Pragma: "no-cache" });
    } catch (error) {
      if (!(error instanceof EntraError)) throw error;
      this.sendError(ctx, error);
    }
    return true;
  }

  private openIdConfiguration(origin: string, tenant: string, v2: boolean): Record<string, unknown> {
    const base = `${origin}/${tenant}`;
    const oauth = v2 ? `${base}/oauth2/v2.0` : `${base}/oauth2`;
    return {
      token_endpoint: `${oauth}/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: v2 ? `${base}/discovery/v2.0/keys` : `${base}/discovery/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: v2 ? `${base}/v2.0` : tenant === "adfs" ? `${origin}/adfs` : this.issuer,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${oauth}/authorize`,
      device_authorization_endpoint: `${oauth}/devicecode`,
      end_session_endpoint: `${oauth}/logout`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
      tenant_region_scope: "NA",
      cloud_instance_name: "emulator.local",
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: "graph.microsoft.com",
    };
  }

  private async issueToken(
    form: URLSearchParams,
    tokenUrl: string,
    origin: string,
    v2: boolean,
  ): Promise<Record<string, unknown>> {
    const grantType = form.get("grant_type");
    if (grantType !== "client_credentials") {
      throw new EntraError(
        400,
        "unsupported_grant_type",
        70003,
        `The app requested an unsupported grant type '${grantType ?? ""}'. The emulator only implements client_credentials.`,
      );
    }
    const clientId = form.get("client_id");
    if (!clientId) {
      throw new EntraError(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      );
    }
    const found = this.world.principals.get(clientId.toLowerCase());
    // Not yet replicated counts as not there (timing.signInReplicationSeconds).
    const principal = found && found.signInFrom <= Date.now() ? found : undefined;
    if (!principal) {
      throw new EntraError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.world.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    if (form.has("client_secret")) {
      throw new EntraError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" +
          clientId +
          "'.",
      );
    }
    const assertion = form.get("client_assertion");
    if (!assertion || form.get("client_assertion_type") !== ASSERTION_TYPE) {
      throw new EntraError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    await this.verifyAssertion(principal, assertion, tokenUrl);
    const resource = requestedResource(form, v2);
    if (!this.isArmAudience(resource, origin)) {
      throw new EntraError(
        400,
        "invalid_resource",
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${this.world.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      );
    }
    const lifetime = this.world.timing.tokenLifetimeSeconds;
    const now = Math.floor(Date.now() / 1000);
    const accessToken = await new jose.SignJWT({
      aud: resource,
      iss: this.issuer,
      iat: now,
      nbf: now,
      exp: now + lifetime,
      appid: principal.clientId,
      appidacr: "2",
      idp: this.issuer,
      idtyp: "app",
      oid: principal.objectId,
      sub: principal.objectId,
      tid: this.world.tenantId,
      uti: randomUUID().replace(/-/g, ""),
      ver: "1.0",
    })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.keyId, x5t: this.keyId })
      .sign(this.signingKey);
    return {
      token_type: "Bearer",
      expires_in: lifetime,
      ext_expires_in: lifetime,
      ...(v2 ? {} : { expires_on: String(now + lifetime), not_before: String(now), resource }),
      access_token: accessToken,
    };
  }

  private async verifyAssertion(principal: Principal, assertion: string, tokenUrl: string): Promise<void> {
    let header: jose.ProtectedHeaderParameters;
    try {
      header = jose.decodeProtectedHeader(assertion);
    } catch {
      throw new EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.");
    }
    const s256 = typeof header["x5t#S256"] === "string" ? normalizeThumbprint(header["x5t#S256"]) : undefined;
    const s1 = typeof header.x5t === "string" ? normalizeThumbprint(header.x5t) : undefined;
    const registered: RegisteredCertificate | undefined = principal.certificates.find(
      (certificate) =>
        (s256 !== undefined && certificate.x5tS256 === s256) || (s1 !== undefined && certificate.x5t === s1),
    );
    const clientThumbprint = s256 ?? s1 ?? "(none)";
    if (!registered || (registered.usableFrom ?? 0) > Date.now()) {
      throw new EntraError(
        401,
        "invalid_client",
        700027,
        `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${clientThumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${principal.clientId}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you're not using the public cloud.]`,
      );
    }
    const validTo = new Date(registered.certificate.validTo).getTime();
    const validFrom = new Date(registered.certificate.validFrom).getTime();
    if (Date.now() > validTo || Date.now() < validFrom) {
      throw new EntraError(
        401,
        "invalid_client",
        700027,
        `Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '${registered.hexThumbprint}', Found key 'Start=${registered.certificate.validFrom}, End=${registered.certificate.validTo}']`,
      );
    }
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(assertion, registered.certificate.publicKey, {
        algorithms: ["PS256", "RS256"],
        requiredClaims: ["exp", "aud", "iss", "sub"],
        clockTolerance: 300,
      }));
    } catch (error) {
      if (error instanceof jose.errors.JWTExpired || error instanceof jose.errors.JWTClaimValidationFailed) {
        const claims = jose.decodeJwt(assertion);
        throw new EntraError(
          401,
          "invalid_client",
          700024,
          `Client assertion is not within its valid time range. Current time: ${new Date().toISOString()}, assertion valid from ${claims.nbf ? new Date(claims.nbf * 1000).toISOString() : "(none)"}, expiry time of assertion ${claims.exp ? new Date(claims.exp * 1000).toISOString() : "(none)"}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .`,
        );
      }
      throw new EntraError(
        401,
        "invalid_client",
        700027,
        `Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '${registered.hexThumbprint}', Found key 'Start=${registered.certificate.validFrom}, End=${registered.certificate.validTo}']`,
      );
    }
    if (payload.iss !== principal.clientId || payload.sub !== principal.clientId) {
      throw new EntraError(
        401,
        "invalid_client",
        700021,
        "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
      );
    }
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((aud) => sameUrl(aud ?? "", tokenUrl))) {
      throw new EntraError(
        401,
        "invalid_client",
        50012,
        "Client assertion audience claim does not match Realm issuer.",
      );
    }
  }

  private isArmAudience(resource: string, origin: string): boolean {
    return [...ARM_AUDIENCES, origin].some((audience) => sameUrl(audience, resource));
  }

  /** Checks the bearer token of an ARM request; throws ARM's own 401 errors. */
  async authenticate(ctx: RequestContext): Promise<Caller> {
    const challenge = {
      "WWW-Authenticate": `Bearer authorization_uri="${ctx.origin}/${this.world.tenantId}", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`,
    };
    const header = ctx.req.headers.authorization;
    if (!header) {
      throw new HttpError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
        challenge,
      );
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      throw new HttpError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        challenge,
      );
    }
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(match[1], this.verifyingKey, {
        algorithms: ["RS256"],
        issuer: this.issuer,
      }));
    } catch (error) {
      if (error instanceof jose.errors.JWTExpired) {
        const exp = jose.decodeJwt(match[1]).exp ?? 0;
        throw new HttpError(
          401,
          "ExpiredAuthenticationToken",
          `The access token expiry UTC time '${new Date(exp * 1000).toUTCString()}' is earlier than current UTC time '${new Date().toUTCString()}'.`,
          challenge,
        );
      }
      throw new HttpError(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge);
    }
    const aud = typeof payload.aud === "string" ? payload.aud : "";
    if (!this.isArmAudience(aud, ctx.origin)) {
      throw new HttpError(
        401,
        "InvalidAuthenticationTokenAudience",
        `The access token has been obtained for wrong audience or resource '${aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.`,
        challenge,
      );
    }
    return { clientId: String(payload.appid), objectId: String(payload.oid) };
  }

  /**
   * A fault rule's status on the token endpoint, answered as Entra ID answers: an OAuth error body
   * with an AADSTS code (90033, "a transient error"), not an ARM error body, which MSAL cannot read.
   * `error` is the rule's errorCode, or the same default code an ARM fault would carry.
   */
  sendFault(
    ctx: RequestContext,
    status: number,
    options: { retryAfterSeconds?: number; errorCode?: string; errorMessage?: string } = {},
  ): void {
    const error = new EntraError(
      status,
      options.errorCode ?? defaultErrorCode(status),
      90033,
      options.errorMessage ?? "A transient error has occurred. Please try again.",
    );
    this.sendError(
      ctx,
      error,
      options.retryAfterSeconds === undefined ? {} : { "Retry-After": String(options.retryAfterSeconds) },
    );
  }

  private sendError(ctx: RequestContext, error: EntraError, headers: Record<string, string> = {}): void {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date()
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d+Z$/, "Z");
    sendJson(
      ctx,
      error.status,
      {
        error: error.error,
        error_description: `${error.message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [error.aadsts],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `${ctx.origin}/error?code=${error.aadsts}`,
      },
      headers,
    );
  }
}

function tenantNotFound(tenant: string): string {
  return `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`;
}

/** The resource a token is requested for: v2 `scope=<resource>/.default`, v1/ADFS `resource=` (or scope). */
function requestedResource(form: URLSearchParams, v2: boolean): string {
  const scopes = (form.get("scope") ?? "").split(/\s+/).filter(Boolean);
  const dotDefault = scopes.find((scope) => scope.endsWith("/.default"));
  if (dotDefault) return dotDefault.slice(0, -"/.default".length);
  const resource = form.get("resource");
  if (!v2 && resource) return resource;
  throw new EntraError(
    400,
    "invalid_scope",
    1002012,
    `The provided value for scope ${scopes.join(" ") || "(none)"} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
  );
}

/** Compares URLs/resource ids ignoring case and trailing slashes (Entra treats them alike). */
function sameUrl(a: string, b: string): boolean {
  const normal = (value: string) => value.trim().replace(/\/+$/, "").toLowerCase();
  return normal(a) === normal(b);
}
