// The credential: a ClientCertificateCredential for the configured cloud that recovers by itself after
// an Entra ID outage, the token scope (built here only), and one token up front to fail early.
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { ClientCertificateCredential } from "@azure/identity";
import type { RuntimeConfig } from "../config/config";
import { describeTokenFailure, errorChainText, explainAuthFailure } from "./authFailure";
import type { LoadedCertificate } from "./certificate";

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

/** An ARM access token (its raw JWT); rejects with the credential's error, or when none is returned. */
export async function armToken(
  credential: TokenCredential,
  config: RuntimeConfig,
  signal?: AbortSignal,
): Promise<string> {
  // enableCae as the SDK's bearer-token policy asks, so both share one MSAL client and its cache.
  const accessToken = await credential.getToken(tokenScope(config), { abortSignal: signal, enableCae: true });
  if (!accessToken) throw new Error("no token returned");
  return accessToken.token;
}

/** Gets a token once, to fail early with a clear message; returns the service principal's object id. */
export async function verifyAuthentication(
  credential: TokenCredential,
  config: RuntimeConfig,
  signal?: AbortSignal,
): Promise<string | undefined> {
  let token: string;
  try {
    token = await armToken(credential, config, signal);
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
