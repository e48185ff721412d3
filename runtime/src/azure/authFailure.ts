// Why authentication failed, in words: probing the authority (TLS trust, reachability, tenant),
// classifying Entra ID's AADSTS codes and MSAL's errors into one AuthError that names tenant, client id,
// certificate or endpoint/CA, and describing a failed token request for the loop's log.
import { request } from "node:https";
import type { RuntimeConfig } from "../config/config";
import { AuthError } from "../core/errors";

export type AuthorityProbe =
  | { kind: "ok"; status: number }
  | { kind: "http"; status: number; body: string }
  | { kind: "tls"; code: string }
  | { kind: "unreachable"; code: string };

/** Node's TLS error codes that mean the server's certificate is not trusted (a missing CA, not a network fault). */
export const tlsTrustCodes: ReadonlySet<string> = new Set([
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

/** The messages (and Entra ID error descriptions) along an error's cause chain, for matching codes in. */
export function errorChainText(error: unknown): string {
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
