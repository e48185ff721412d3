// A throwaway certificate authority and the HTTPS server certificate it signs, made fresh for every
// emulator. Clients trust the CA explicitly (NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE or
// tls.setDefaultCACertificates), never the system store.
import { webcrypto } from "node:crypto";
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect polyfill first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

export interface EmulatorTlsMaterial {
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

// ECDSA P-256: key generation is instant (RSA-2048 takes ~100 ms per key) and every TLS client of
// interest (Node, Python requests/OpenSSL) accepts it.
const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export async function createTlsMaterial(hostnames: {
  ips: string[];
  dns: string[];
}): Promise<EmulatorTlsMaterial> {
  const crypto = webcrypto;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 7 * 24 * 3600_000);

  const caKeys = (await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: "CN=spot-restarter Azure emulator CA, O=spot-restarter tests",
      notBefore,
      notAfter,
      signingAlgorithm: algorithm,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const serverKeys = (await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const serverCert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: `CN=${hostnames.ips[0] ?? hostnames.dns[0]}`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: algorithm,
      publicKey: serverKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...hostnames.ips.map((value) => ({ type: "ip" as const, value })),
          ...hostnames.dns.map((value) => ({ type: "dns" as const, value })),
        ]),
        // Python 3.13's ssl (VERIFY_X509_STRICT) refuses a leaf without an authority key identifier.
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const serverKeyDer = await crypto.subtle.exportKey("pkcs8", serverKeys.privateKey);
  return {
    caCertPem: caCert.toString("pem"),
    serverCertPem: serverCert.toString("pem"),
    serverKeyPem: x509.PemConverter.encode(serverKeyDer, "PRIVATE KEY"),
  };
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(12));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString("hex");
}
