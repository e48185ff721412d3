// Authentication: the service principal's certificate (certificate + private key, one PEM) and a
// ClientCertificateCredential for the configured cloud. Failures become one AuthError that says
// which of tenant, client id, certificate or endpoint/CA is the likely cause.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { request } from "node:https";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { ClientCertificateCredential } from "@azure/identity";
import type { RuntimeConfig } from "./config";
import { AuthError } from "./errors";

export interface LoadedCertificate {
  /** Certificate + private key; passed to @azure/identity, never logged. */
  readonly pem: string;
  readonly path: string;
  readonly subject: string;
  readonly thumbprintSha256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export const expiryWarningDays = 30;
const dayMs = 86_400_000;

/**
 * Reads and checks the PEM: private (no group/other access), holds a certificate and its private
 * key, and is currently valid. The key material stays in memory only for the credential.
 */
export async function loadCertificate(path: string, now: Date): Promise<LoadedCertificate> {
  let mode: number;
  let pem: string;
  try {
    mode = (await stat(path)).mode & 0o777;
    pem = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : code;
    throw new AuthError(`certificate file ${path} ${why} (config field "certificatePath")`, "certificate", {
      cause: error,
    });
  }
  if (mode & 0o077) {
    throw new AuthError(
      `certificate file ${path} holds a private key but is readable by group or others (mode ${mode.toString(8).padStart(4, "0")}): run chmod 600 ${path}`,
      "certificate",
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (error) {
    throw new AuthError(
      `certificate file ${path} holds no readable X.509 certificate (PEM expected)`,
      "certificate",
      {
        cause: error,
      },
    );
  }
  try {
    const key = createPrivateKey(pem);
    if (!certificate.checkPrivateKey(key)) {
      throw new AuthError(
        `certificate file ${path}: the private key does not belong to the certificate`,
        "certificate",
      );
    }
  } catch (error) {
    if (error instanceof AuthError) throw error;
    throw new AuthError(
      `certificate file ${path} holds no private key: it must hold the certificate and its private key (PKCS#8 or PKCS#1) in one PEM`,
      "certificate",
      { cause: error },
    );
  }
  const loaded: LoadedCertificate = {
    pem,
    path,
    subject: certificate.subject,
    thumbprintSha256: certificate.fingerprint256.replaceAll(":", ""),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
  };
  const expiry = certificateExpiry(loaded, now);
  if (expiry.expired) {
    throw new AuthError(
      `certificate in ${path} expired on ${loaded.notAfter.toISOString()}: run \`pulumi up\` to issue a new one and reinstall`,
      "certificate",
    );
  }
  if (loaded.notBefore.getTime() > now.getTime()) {
    throw new AuthError(
      `certificate in ${path} is not valid before ${loaded.notBefore.toISOString()} (check this host's clock)`,
      "certificate",
    );
  }
  return loaded;
}

export function certificateExpiry(
  certificate: Pick<LoadedCertificate, "notAfter">,
  now: Date,
): { expired: boolean; daysLeft: number; expiresSoon: boolean } {
  const msLeft = certificate.notAfter.getTime() - now.getTime();
  const daysLeft = Math.floor(msLeft / dayMs);
  return { expired: msLeft <= 0, daysLeft, expiresSoon: msLeft > 0 && msLeft < expiryWarningDays * dayMs };
}

export function createCredential(config: RuntimeConfig, certificate: LoadedCertificate): TokenCredential {
  return new RecoveringCredential(
    (watcher) =>
      new ClientCertificateCredential(
        config.tenantId,
        config.clientId,
        { certificate: certificate.pem },
        {
          authorityHost: config.cloud.authorityHost,
          // The authority is configured explicitly; instance discovery would call the public cloud's
          // discovery endpoint, which a sovereign cloud or the emulator does not answer.
          disableInstanceDiscovery: true,
          // One retry absorbs a blip; the loop itself retries every cycle, and a longer outage should
          // be logged within seconds rather than hidden behind the pipeline's 3 retries.
          retryOptions: { maxRetries: 1 },
          additionalPolicies: [{ policy: watcher.policy, position: "perRetry" }],
        },
      ),
  );
}

/** Notes the status and Retry-After of the token endpoint's last throttling or 5xx answer. */
interface TokenResponseWatcher {
  readonly policy: PipelinePolicy;
  last?: { status: number; retryAfterMs: number | undefined; at: number };
}

function createTokenResponseWatcher(): TokenResponseWatcher {
  const watcher: TokenResponseWatcher = {
    policy: {
      name: "spotRestarterTokenResponseWatcher",
      async sendRequest(request, next) {
        const response = await next(request);
        if (response.status === 429 || response.status >= 500) {
          const header = response.headers.get("retry-after");
          const seconds = header === undefined ? Number.NaN : Number(header);
          watcher.last = {
            status: response.status,
            retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined,
            at: Date.now(),
          };
        }
        return response;
      },
    },
  };
  return watcher;
}

/** Thrown instead of MSAL's remembered failure while Entra ID is unavailable. */
export class TokenUnavailableError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokenUnavailableError";
    this.status = status;
  }
}

/**
 * A credential that recovers from an Entra ID outage as soon as Entra ID does. MSAL remembers a 429
 * or 5xx from the token endpoint and, until its Retry-After has passed (60 s when there was none:
 * msal-common ThrottlingUtils), answers every token request from that memory with an empty error.
 * So after such an answer this wrapper builds a fresh credential once the Retry-After Entra ID
 * actually sent has passed (at once when it sent none: the loop's interval paces the retries).
 */
class RecoveringCredential implements TokenCredential {
  private inner: TokenCredential;
  private watcher: TokenResponseWatcher;
  private renewAt: number | undefined;
  private lastFailure: { message: string; status: number } | undefined;

  constructor(private readonly create: (watcher: TokenResponseWatcher) => TokenCredential) {
    this.watcher = createTokenResponseWatcher();
    this.inner = create(this.watcher);
  }

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    if (this.renewAt !== undefined && Date.now() >= this.renewAt) {
      this.watcher = createTokenResponseWatcher();
      this.inner = this.create(this.watcher);
      this.renewAt = undefined;
    }
    const before = this.watcher.last;
    try {
      const token = await this.inner.getToken(scopes, options);
      this.lastFailure = undefined;
      return token;
    } catch (error) {
      const seen = this.watcher.last !== before ? this.watcher.last : undefined;
      if (seen) {
        // A fresh 429/5xx from the token endpoint: remember it, and when to ask again.
        this.renewAt = seen.at + (seen.retryAfterMs ?? 0);
        const described = describeTokenFailure(error);
        this.lastFailure = {
          status: seen.status,
          message:
            described.status === seen.status
              ? described.message
              : `the Entra ID token endpoint answered HTTP ${seen.status}`,
        };
        throw new TokenUnavailableError(this.lastFailure.message, seen.status, { cause: error });
      }
      if (this.lastFailure && !/AADSTS/.test(errorChainText(error))) {
        // MSAL answered from its memory of the last failure (no request was sent): say what it was.
        throw new TokenUnavailableError(this.lastFailure.message, this.lastFailure.status, { cause: error });
      }
      throw error;
    }
  }
}

export function tokenScope(config: RuntimeConfig): string {
  return `${config.cloud.audience}/.default`;
}

/** Gets a token once, so that authentication problems surface with a clear message up front. */
/** Gets a token once, to fail early with a clear message; returns the service principal's object id. */
export async function verifyAuthentication(
  credential: TokenCredential,
  config: RuntimeConfig,
  signal?: AbortSignal,
): Promise<string | undefined> {
  let token: string;
  try {
    // enableCae as the SDK's bearer-token policy asks, so both share one MSAL client and its cache.
    const accessToken = await credential.getToken(tokenScope(config), {
      abortSignal: signal,
      enableCae: true,
    });
    if (!accessToken) throw new Error("no token returned");
    token = accessToken.token;
  } catch (error) {
    if (signal?.aborted) throw error;
    throw await explainAuthFailure(error, config);
  }
  return tokenObjectId(token);
}

/**
 * The `oid` claim of an Entra access token: for an app-only token, the service principal's object id.
 * Only that claim is read; the token itself is never logged or returned.
 */
export function tokenObjectId(accessToken: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString("utf8"));
    return typeof payload?.oid === "string" && /^[0-9a-f-]{36}$/i.test(payload.oid) ? payload.oid : undefined;
  } catch {
    return undefined;
  }
}

export type AuthorityProbe =
  | { kind: "ok"; status: number }
  | { kind: "http"; status: number; body: string }
  | { kind: "tls"; code: string }
  | { kind: "unreachable"; code: string };

const tlsTrustCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * A plain HTTPS GET of the tenant's OpenID configuration. MSAL reports an untrusted CA, an
 * unreachable host and an unknown tenant all as `endpoints_resolution_error`; the TLS error code
 * or HTTP status of this probe tells them apart.
 */
export function probeAuthority(
  authorityHost: string,
  tenantId: string,
  timeoutMs = 5_000,
): Promise<AuthorityProbe> {
  const url = `${authorityHost}/${encodeURIComponent(tenantId)}/v2.0/.well-known/openid-configuration`;
  return new Promise((resolvePromise) => {
    const req = request(url, { method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < 4_096) body += chunk;
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        resolvePromise(
          status >= 200 && status < 300 ? { kind: "ok", status } : { kind: "http", status, body },
        );
      });
      res.on("error", () => resolvePromise({ kind: "unreachable", code: "ECONNRESET" }));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (error: NodeJS.ErrnoException) => {
      const code = error.code ?? "UNKNOWN";
      resolvePromise(tlsTrustCodes.has(code) ? { kind: "tls", code } : { kind: "unreachable", code });
    });
    req.end();
  });
}

/** Turns whatever getToken threw into an AuthError naming the likely cause. */
export async function explainAuthFailure(
  error: unknown,
  config: RuntimeConfig,
  probe: (host: string, tenant: string) => Promise<AuthorityProbe> = probeAuthority,
): Promise<AuthError> {
  const text = errorChainText(error);
  const host = config.cloud.authorityHost;
  const failure = describeTokenFailure(error);
  // A 5xx or 429 is transient even when its body carries an AADSTS code, as Entra ID's do
  // (AADSTS90033 "a transient error has occurred"): checked before the AADSTS mapping (BUG-10).
  const fromEntra = failure.transient ? undefined : classifyEntraMessage(text, config);
  if (fromEntra) return new AuthError(fromEntra.message, fromEntra.cause, { cause: error });
  if (failure.transient) {
    return new AuthError(`cannot authenticate: ${failure.message} (authority ${host})`, "endpoint", {
      cause: error,
      transient: true,
    });
  }
  const result = await probe(config.cloud.authorityHost, config.tenantId);
  switch (result.kind) {
    case "tls":
      return new AuthError(
        `cannot authenticate: the TLS certificate of the authority ${host} is not trusted (${result.code}); if it uses a private CA, point NODE_EXTRA_CA_CERTS at that CA's PEM, otherwise check cloud.authorityHost`,
        "ca",
        { cause: error },
      );
    case "unreachable":
      // Transient as far as `run` is concerned: at boot the network may not be up yet.
      return new AuthError(
        `cannot authenticate: the authority ${host} is unreachable (${result.code}); check cloud.authorityHost in the config and this host's network/DNS`,
        "endpoint",
        { cause: error, transient: true },
      );
    case "http": {
      const fromBody = classifyEntraMessage(result.body, config);
      if (fromBody) return new AuthError(fromBody.message, fromBody.cause, { cause: error });
      if (result.status === 400 || result.status === 404) {
        return new AuthError(
          `cannot authenticate: tenant "${config.tenantId}" is not known to ${host} (HTTP ${result.status}); check tenantId in the config`,
          "tenant",
          { cause: error },
        );
      }
      return new AuthError(
        `cannot authenticate: the authority ${host} answered HTTP ${result.status}; check cloud.authorityHost`,
        "endpoint",
        { cause: error, transient: result.status >= 500 || result.status === 429 },
      );
    }
    case "ok":
      return new AuthError(`cannot authenticate with Entra ID: ${firstLine(text)}`, "unknown", {
        cause: error,
      });
  }
}

const credentialErrorNames = new Set([
  "TokenUnavailableError",
  "AuthenticationError",
  "AuthenticationRequiredError",
  "CredentialUnavailableError",
  "AggregateAuthenticationError",
]);

/** Whether an error thrown by an ARM call is really the credential failing to get a token. */
export function isCredentialError(error: unknown): boolean {
  return error instanceof Error && credentialErrorNames.has(error.name);
}

/**
 * What went wrong getting a token, in one readable sentence. @azure/identity wraps MSAL's error,
 * whose message can be empty or "[object Object]: Error(s): Not Available…" when Entra ID answers
 * with an error body MSAL does not expect (a 503, say); the HTTP status and the body's code are
 * on the cause chain.
 */
export function describeTokenFailure(error: unknown): {
  transient: boolean;
  status?: number;
  message: string;
} {
  let status: number | undefined;
  let detail: string | undefined;
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    const record = current as Error & {
      status?: unknown;
      statusCode?: unknown;
      errorCode?: unknown;
      code?: unknown;
    };
    const candidate = typeof record.status === "number" ? record.status : record.statusCode;
    if (status === undefined && typeof candidate === "number" && candidate >= 400) status = candidate;
    const code = record.errorCode;
    if (detail === undefined && code && typeof code === "object") {
      const { code: inner, message } = code as { code?: unknown; message?: unknown };
      detail = [inner, message].filter((part) => typeof part === "string" && part).join(": ") || undefined;
    } else if (detail === undefined && typeof code === "string" && code) {
      detail = code;
    }
    if (detail === undefined && typeof record.code === "string" && /^E[A-Z]+$/.test(record.code))
      detail = record.code;
    current = current.cause;
  }
  const text = errorChainText(error);
  const network = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|socket hang up/.exec(
    text,
  )?.[0];
  const transient = (status !== undefined && (status >= 500 || status === 429)) || network !== undefined;
  const aadsts = /AADSTS\d+[^|]*/.exec(text)?.[0]?.trim();
  const parts = [
    status !== undefined
      ? `the Entra ID token endpoint answered HTTP ${status}`
      : "getting a token from Entra ID failed",
    detail ?? network ?? aadsts,
  ];
  return { transient, status, message: parts[1] ? `${parts[0]} (${parts[1]})` : (parts[0] ?? "") };
}

/** Maps the AADSTS codes Entra ID puts in its error descriptions to the field to fix. */
export function classifyEntraMessage(
  text: string,
  config: Pick<RuntimeConfig, "tenantId" | "clientId" | "certificatePath">,
): { cause: AuthError["authCause"]; message: string } | undefined {
  const code = /AADSTS(\d+)/.exec(text)?.[1];
  if (!code) return undefined;
  const detail = `(AADSTS${code})`;
  if (code === "500011") {
    return {
      cause: "audience",
      message: `cannot authenticate: the token audience is not known to the tenant ${detail}; check cloud.audience in the config`,
    };
  }
  if (["90002", "900023", "90072"].includes(code)) {
    return {
      cause: "tenant",
      message: `cannot authenticate: tenant "${config.tenantId}" was not found ${detail}; check tenantId in the config`,
    };
  }
  if (code === "700016") {
    return {
      cause: "client-id",
      message: `cannot authenticate: application "${config.clientId}" was not found in the tenant ${detail}; check clientId in the config`,
    };
  }
  if (
    [
      "700027",
      "700024",
      "7000274",
      "7000215",
      "7000218",
      "7000222",
      "700021",
      "700023",
      "50012",
      "50027",
    ].includes(code)
  ) {
    return {
      cause: "certificate",
      message: `cannot authenticate: Entra ID rejected the certificate in ${config.certificatePath} ${detail}; it is not (or no longer) registered on application ${config.clientId}: run \`pulumi up\` and reinstall`,
    };
  }
  return { cause: "unknown", message: `cannot authenticate with Entra ID ${detail}: ${firstLine(text)}` };
}

function errorChainText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    if (current instanceof Error) {
      parts.push(current.message);
      const withResponse = current as { errorResponse?: { errorDescription?: string; error?: string } };
      if (withResponse.errorResponse?.errorDescription)
        parts.push(withResponse.errorResponse.errorDescription);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(" | ");
}

function firstLine(text: string): string {
  return text.split("\n")[0]?.slice(0, 300) ?? "";
}
