// Self-signed certificates with real RSA-2048 keys for tests: a service principal's credential (one PEM,
// certificate then PKCS#8 key, as the stack output certificatePem), an expired or not-yet-valid one, a
// TLS server's. Made by the emulator's generator (emulator/principal.ts), the one copy of that code: the
// emulator, which depends on nothing of ours, makes its principals with it too.
import { createSelfSignedCertificate, type SelfSignedCertificate } from "../emulator/principal";

export type TestCertificate = SelfSignedCertificate;

/** Valid from a minute ago for a year unless told otherwise; CN=spot-restarter-test by default. */
export function createTestCertificate(
  options: { notBefore?: Date; notAfter?: Date; commonName?: string; dnsNames?: string[] } = {},
): Promise<TestCertificate> {
  return createSelfSignedCertificate({
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * 86_400_000),
    commonName: options.commonName ?? "spot-restarter-test",
    dnsNames: options.dnsNames,
  });
}
