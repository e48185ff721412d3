// What counts as leaked key material in an output: the private key's PEM armour or any 24-character
// piece of its base64 body (however the output wraps lines), and anything shaped like a JWT (access
// tokens and client assertions are both JWTs: `eyJ<header>.<payload>.<signature>`), and the secret
// part of a notification URL (its path and query: a Slack/Discord/Teams token, an ntfy topic).
import assert from "node:assert/strict";

/** A base64url JSON object header, a dot, a payload: access tokens and client assertions. */
export const JWT_SHAPE = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.?[A-Za-z0-9_-]*/;

const windowSize = 24;

export function keyFragments(privateKeyPem: string): string[] {
  const body = privateKeyPem.replace(/-----(BEGIN|END)[^-]+-----/g, "").replace(/\s+/g, "");
  const fragments: string[] = [];
  for (let i = 0; i + windowSize <= body.length; i += windowSize)
    fragments.push(body.slice(i, i + windowSize));
  return fragments;
}

/** What a notification URL must never show: its path (whole, and each long segment) and its query. */
export function urlSecretParts(url: string): string[] {
  const parsed = new URL(url);
  const parts = parsed.pathname.split("/").filter((segment) => segment.length >= 8);
  if (parsed.search.length > 1) parts.push(parsed.search.slice(1));
  return parts;
}

export interface Secrets {
  privateKeyPem: string;
  /** Notification channel URLs of the config (scheme and host may show, nothing else). */
  notificationUrls?: readonly string[];
}

/** Every way the secret could show: returns a description of the first leak found, or undefined. */
export function findSecret(output: string, principal: Secrets): string | undefined {
  if (/PRIVATE KEY-----/.test(output)) return "a PEM private key armour line";
  for (const url of principal.notificationUrls ?? []) {
    if (urlSecretParts(url).some((part) => output.includes(part)))
      return "a notification URL's path or query";
  }
  const jwt = JWT_SHAPE.exec(output);
  if (jwt) return `a JWT-shaped string (${jwt[0].slice(0, 12)}…)`;
  const flat = output.replace(/\s+|\\n|\\r/g, "");
  const asBase64url = flat.replace(/-/g, "+").replace(/_/g, "/");
  for (const fragment of keyFragments(principal.privateKeyPem)) {
    if (flat.includes(fragment) || asBase64url.includes(fragment))
      return "a piece of the private key's base64 body";
  }
  return undefined;
}

export function assertNoSecrets(output: string, principal: Secrets, where = "output"): void {
  const leak = findSecret(output, principal);
  // Never print the output itself: it might hold the very secret.
  assert.equal(leak, undefined, `${where} contains ${leak}`);
}
