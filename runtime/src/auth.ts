// Authentication: the service principal's certificate (certificate + private key, one PEM) and a
// ClientCertificateCredential for the configured cloud. Failures become one AuthError that says
// which of tenant, client id, certificate or endpoint/CA is the likely cause.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { request } from "node:https";
import type { TokenCredential } from "@azure/core-auth";
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
  return new ClientCertificateCredential(
    config.tenantId,
    config.clientId,
    { certificate: certificate.pem },
    {
      authorityHost: config.cloud.authorityHost,
      // The authority is configured explicitly; instance discovery would call the public cloud's
      // discovery endpoint, which a sovereign cloud or the emulator does not answer.
      disableInstanceDiscovery: true,
    },
  );
}

export function tokenScope(config: RuntimeConfig): string {
  return `${config.cloud.audience}/.default`;
}

/** Gets a token once, so that authentication problems surface with a clear message up front. */
export async function verifyAuthentication(
  credential: TokenCredential,
  config: RuntimeConfig,
  signal?: AbortSignal,
): Promise<void> {
  try {
    // enableCae as the SDK's bearer-token policy asks, so both share one MSAL client and its cache.
    const token = await credential.getToken(tokenScope(config), { abortSignal: signal, enableCae: true });
    if (!token) throw new Error("no token returned");
  } catch (error) {
    if (signal?.aborted) throw error;
    throw await explainAuthFailure(error, config);
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
  const fromEntra = classifyEntraMessage(text, config);
  if (fromEntra) return new AuthError(fromEntra.message, fromEntra.cause, { cause: error });
  const result = await probe(config.cloud.authorityHost, config.tenantId);
  const host = config.cloud.authorityHost;
  switch (result.kind) {
    case "tls":
      return new AuthError(
        `cannot authenticate: the TLS certificate of the authority ${host} is not trusted (${result.code}); if it uses a private CA, point NODE_EXTRA_CA_CERTS at that CA's PEM, otherwise check cloud.authorityHost`,
        "ca",
        { cause: error },
      );
    case "unreachable":
      return new AuthError(
        `cannot authenticate: the authority ${host} is unreachable (${result.code}); check cloud.authorityHost in the config and this host's network/DNS`,
        "endpoint",
        { cause: error },
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
        { cause: error },
      );
    }
    case "ok":
      return new AuthError(`cannot authenticate with Entra ID: ${firstLine(text)}`, "unknown", {
        cause: error,
      });
  }
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
