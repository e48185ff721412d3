// Errors that end a command, each with its exit code. One top-level handler in cli.ts prints the
// message (and the causes' messages) and exits with the code; nothing else calls process.exit.

export const exitCodes = {
  ok: 0,
  /** Unexpected failure: a bug or an environment problem not classified below. */
  failure: 1,
  /** Bad command line or bad config file. */
  usage: 2,
  /** Could not authenticate (tenant, client id, certificate, endpoint/CA). */
  auth: 3,
  /** Authenticated, but the principal lacks a permission, or a configured resource group is missing or unreadable. */
  permission: 4,
  /** `run` found another instance holding the lock. */
  locked: 5,
} as const;

export class RuntimeError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

export class UsageError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, exitCodes.usage, options);
  }
}

export class ConfigError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, exitCodes.usage, options);
  }
}

export type AuthCause = "tenant" | "client-id" | "certificate" | "endpoint" | "ca" | "audience" | "unknown";

export class AuthError extends RuntimeError {
  readonly authCause: AuthCause;
  /** Entra ID unavailable (5xx, 429, unreachable): worth retrying, unlike a wrong tenant or certificate. */
  readonly transient: boolean;
  constructor(message: string, authCause: AuthCause, options?: ErrorOptions & { transient?: boolean }) {
    super(message, exitCodes.auth, options);
    this.authCause = authCause;
    this.transient = options?.transient ?? false;
  }
}

export class PermissionError extends RuntimeError {
  readonly permission: string;
  constructor(message: string, permission: string, options?: ErrorOptions) {
    super(message, exitCodes.permission, options);
    this.permission = permission;
  }
}

/**
 * A configured resource group that ARM says does not exist (`once` and `status` exit 4 on it, as doctor
 * fails; issue 23, item 3). `messages` name each group and the fix.
 */
export class ResourceGroupError extends RuntimeError {
  constructor(readonly messages: readonly string[]) {
    super(messages.join("; "), exitCodes.permission);
  }
}

export class LockHeldError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, exitCodes.locked, options);
  }
}

/**
 * The one way a missing permission becomes an error: names the action (by its full name), what it
 * was needed for (`target`: "on resource group rg", "needed to start rg/vm"), Azure's code, and the fix.
 */
export function permissionError(
  denied: { readonly permission: string; readonly code: string },
  target: string,
  cause?: unknown,
): PermissionError {
  return new PermissionError(
    `the service principal lacks the permission ${denied.permission} ${target} (${denied.code}); grant it (the Contributor role, or the least-privilege role of the Pulumi program) and try again`,
    denied.permission,
    cause === undefined ? undefined : { cause },
  );
}

/** An error's message followed by its causes' (at most four deep), for one log line. */
export function messageChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": caused by: ");
}
