// Debian tools the tests drive for real (az, systemd-analyze, qemu, lintian, unshare …). .ci/run
// installs them, fails when it cannot, and runs the tests with CI=true.
import { existsSync } from "node:fs";
import { chromiumPath } from "../../support/browser";

/**
 * A skip reason for a test that needs a tool, or false to run it. Under CI (`CI=true`) a missing tool
 * is never a skip: the test runs and fails, since CI promised the tool. On a developer's machine the
 * test is skipped with the install command, so `npm ci && npm test` still passes there (README's test
 * command).
 */
export function skipUnlessTool(present: boolean, install: string): string | false {
  if (present || process.env.CI === "true") return false;
  return `needs ${install} (.ci/run installs it; under CI=true its absence fails this test)`;
}

/** A skip reason when Debian's chromium is missing (never under CI=true, where its absence fails the test). */
export const skipUnlessChromium = () => skipUnlessTool(existsSync(chromiumPath), "Debian's chromium package");
