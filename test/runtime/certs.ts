// Self-signed certificates for the runtime's unit tests (certificate checks, TLS probe).
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

export interface TestCertificate {
  certificatePem: string;
  privateKeyPem: string;
  /** Certificate then PKCS#8 key: the shape certificatePath holds. */
  pem: string;
}

export async function makeCertificate(options: {
  notBefore: Date;
  notAfter: Date;
  commonName?: string;
  dnsNames?: string[];
}): Promise<TestCertificate> {
  const algorithm = {
    name: "RSASSA-PKCS1-v1_5",
    hash: "SHA-256",
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: "01",
      name: `CN=${options.commonName ?? "spot-restarter-test"}`,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      keys,
      signingAlgorithm: algorithm,
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
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  const privateKeyPem = x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
  const certificatePem = certificate.toString("pem");
  return { certificatePem, privateKeyPem, pem: `${certificatePem}\n${privateKeyPem}\n` };
}
