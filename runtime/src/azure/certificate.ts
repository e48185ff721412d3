// The service principal's certificate: one PEM holding the certificate and its private key (PKCS#8 or
// PKCS#1), private to its owner, currently valid; and how long it has left.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { AuthError } from "../core/errors";

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
