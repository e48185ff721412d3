// The report `doctor` prints and `install` (verify.ts) reads back from `doctor --json`: one shape and one
// rendering for both, so the installer shows a failed check exactly as `doctor` would. It lives with the
// installer because the installer is below the CLI (cli/doctor.ts imports it, never the other way).

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface DoctorCheck {
  /** Short name: `endpoints`, `clock`, `certificate`, `token`, `resource-group rg`, … */
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do about a `fail` or `warn`. */
  readonly fix?: string;
}

const marks: Record<CheckStatus, string> = { pass: "ok  ", warn: "warn", fail: "FAIL", skip: "skip" };

/** True when no check failed (warnings and skips of checks that could not run are not failures). */
export function doctorPassed(checks: readonly DoctorCheck[]): boolean {
  return checks.every((check) => check.status !== "fail");
}

/** One line per check, then its fix indented under it. */
export function formatDoctorReport(checks: readonly DoctorCheck[]): string {
  return checks
    .map(
      (check) =>
        `${marks[check.status]} ${check.name}: ${check.detail}${check.fix && check.status !== "pass" ? `\n     fix: ${check.fix}` : ""}`,
    )
    .join("\n")
    .concat("\n");
}
