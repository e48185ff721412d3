// Test principals: a real RSA key and a self-signed client-authentication certificate, the way
// `pulumi up` (@pulumi/tls) makes the service principal's credential.
import { randomUUID, webcrypto } from "node:crypto";
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect polyfill first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

export interface TestPrincipal {
  clientId: string;
  objectId: string;
  certificatePem: string;
  /** PKCS#8 private key PEM. Never log it. */
  privateKeyPem: string;
  /** Certificate then private key, one PEM (what ClientCertificateCredential and az take). */
  pem: string;
}

const rsa = {
  name: "RSASSA-PKCS1-v1_5",
  hash: "SHA-256",
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

export interface SelfSignedCertificate {
  certificatePem: string;
  /** PKCS#8 private key PEM. Never log it. */
  privateKeyPem: string;
  /** Certificate then private key, one PEM. */
  pem: string;
  /** The base64 lines of the private key PEM (a leak scan looks for them). */
  keyLines: string[];
  notBefore: Date;
  notAfter: Date;
}

/**
 * A real RSA-2048 key and a self-signed certificate for it: a client-authentication one (what a service
 * principal's credential is) or, with `dnsNames`, one a TLS server can present.
 */
export async function createSelfSignedCertificate(opts: {
  notBefore: Date;
  notAfter: Date;
  commonName: string;
  clientAuth?: boolean;
  dnsNames?: string[];
}): Promise<SelfSignedCertificate> {
  const crypto = webcrypto;
  const keys = (await crypto.subtle.generateKey(rsa, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const extensions: x509.Extension[] = [];
  if (opts.clientAuth) {
    extensions.push(
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    );
  }
  if (opts.dnsNames) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        opts.dnsNames.map((value) => ({ type: "dns" as const, value })),
      ),
    );
  }
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(8)))
        .toString("hex")
        .replace(/^[89a-f]/, "1"),
      name: `CN=${opts.commonName}`,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      signingAlgorithm: rsa,
      keys,
      extensions,
    },
    crypto,
  );
  const certificatePem = `${certificate.toString("pem")}\n`;
  const privateKeyPem = `${x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY")}\n`;
  const keyLines = privateKeyPem.split("\n").filter((line) => line !== "" && !line.startsWith("-----"));
  return {
    certificatePem,
    privateKeyPem,
    pem: certificatePem + privateKeyPem,
    keyLines,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
  };
}

/** A real RSA-2048 key and a self-signed client-authentication certificate for it. */
export async function createTestPrincipal(
  opts: { clientId?: string; objectId?: string; validDays?: number; notBefore?: Date } = {},
): Promise<TestPrincipal> {
  const clientId = opts.clientId ?? randomUUID();
  const objectId = opts.objectId ?? randomUUID();
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + (opts.validDays ?? 365) * 24 * 3600_000);
  const { certificatePem, privateKeyPem, pem } = await createSelfSignedCertificate({
    notBefore,
    notAfter,
    commonName: `spot-restarter-test-${clientId.slice(0, 8)}`,
    clientAuth: true,
  });
  return { clientId, objectId, certificatePem, privateKeyPem, pem };
}
