// Authentication, by concern: the certificate (certificate.ts), the credential and its token scope
// (credential.ts), and why a sign-in failed (authFailure.ts). This module only gathers them.
export * from "./authFailure";
export * from "./certificate";
export * from "./credential";
