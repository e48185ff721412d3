// The fault matrix's harness cleans up after a failing row: a row that fails with its runtime child
// running, and is never closed, must not keep its test file's process alive (it did: the runtime
// child held the process open until npm test's timeout, and the runtime went on running after it).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runProcess } from "../../support/process";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("a failing row's runtime child is killed and its test file exits", { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-abandoned-"));
  const pidFile = join(dir, "runtime.pid");
  let pid = Number.NaN;
  try {
    const result = await runProcess(
      process.execPath,
      ["--test", "--test-reporter=tap", "--import", "tsx", join(__dirname, "fixtures/abandoned-row.ts")],
      {
        // Without NODE_TEST_CONTEXT: set for this file by its own runner, it would make the nested
        // `node --test` report to a parent that is not listening.
        env: { ...process.env, NODE_TEST_CONTEXT: undefined, ABANDONED_ROW_PID_FILE: pidFile },
        // Far beyond the fixture's own work (an emulator, a bundle, one cycle): reached only if the
        // file's process is held open, which is the bug.
        timeoutMs: 150_000,
      },
    );
    assert.ok(
      existsSync(pidFile),
      `the fixture did not get as far as its runtime:\n${result.stdout}${result.stderr}`,
    );
    pid = Number(readFileSync(pidFile, "utf8"));
    assert.equal(
      result.signal,
      null,
      `the test file was held open and killed:\n${result.stdout.slice(-2000)}`,
    );
    assert.equal(result.code, 1, `the fixture's test fails, and says so:\n${result.stdout.slice(-2000)}`);
    assert.match(result.stdout, /deliberate failure: this row is never closed/);
    assert.ok(Number.isInteger(pid) && pid > 0, "the fixture recorded its runtime's pid");
    assert.equal(alive(pid), false, `the runtime (pid ${pid}) is still running`);
  } finally {
    if (Number.isInteger(pid) && alive(pid)) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
