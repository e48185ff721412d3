// Self-signed certificates with real RSA-2048 keys for tests: a service principal's credential (one PEM,
// certificate then PKCS#8 key, as the stack output certificatePem), an expired or not-yet-valid one, a
// TLS server's. The emulator makes its own principals (emulator/principal.ts): it stands for Azure and
// depends on nothing of ours.
import { randomUUID, webcrypto } from "node:crypto";
import "reflect-metadata"; // @peculiar/x509 2.x resolves its services through tsyringe
import * as x509 from "@peculiar/x509";

export interface TestCertificate {
  certificatePem: string;
  /** PKCS#8 private key PEM. Never print it. */
  privateKeyPem: string;
  /** Certificate then PKCS#8 key: what certificatePath holds and Pulumi's certificatePem output is. */
  pem: string;
  /** Base64 lines of the private key: none may ever appear in output. */
  keyLines: string[];
  notBefore: Date;
  notAfter: Date;
}

const rsa = {
  name: "RSASSA-PKCS1-v1_5",
  hash: "SHA-256",
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

/** Valid from a minute ago for a year unless told otherwise. */
export async function createTestCertificate(
  options: { notBefore?: Date; notAfter?: Date; commonName?: string; dnsNames?: string[] } = {},
): Promise<TestCertificate> {
  const keys = (await webcrypto.subtle.generateKey(rsa, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomUUID()
        .replaceAll("-", "")
        .replace(/^[89a-f]/, "1"),
      name: `CN=${options.commonName ?? "spot-restarter-test"}`,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: rsa,
      extensions: options.dnsNames
        ? [
            new x509.SubjectAlternativeNameExtension(
              options.dnsNames.map((value) => ({ type: "dns" as const, value })),
            ),
          ]
        : [],
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
  const keyLines = pkcs8.match(/.{1,64}/g) ?? [];
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${keyLines.join("\n")}\n-----END PRIVATE KEY-----\n`;
  const certificatePem = `${certificate.toString("pem")}\n`;
  return {
    certificatePem,
    privateKeyPem,
    pem: `${certificatePem}${privateKeyPem}`,
    keyLines,
    notBefore,
    notAfter,
  };
}
