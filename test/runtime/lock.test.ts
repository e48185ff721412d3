// The lock in stateDir: exclusive, taken over once abandoned, released on release().
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { lockFileName, tryAcquireLock } from "../../runtime/src/state/lock";

describe("tryAcquireLock", () => {
  it("cannot be held twice, and can be taken again after release", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-lock-"));
    const first = await tryAcquireLock(dir);
    assert.ok(first);
    assert.equal(await tryAcquireLock(dir), undefined);
    await first.release();
    const again = await tryAcquireLock(dir);
    assert.ok(again);
    await again.release();
  });

  it("takes over a lock its holder abandoned (no refresh for staleMs), e.g. after SIGKILL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-lock-"));
    const lockPath = join(dir, lockFileName);
    mkdirSync(lockPath);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lockPath, old, old);
    const lock = await tryAcquireLock(dir, { staleMs: 10_000 });
    assert.ok(lock, "a lock not refreshed for 60 s is stale");
    await lock.release();
  });

  it("creates the state directory when it does not exist", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "spot-restarter-lock-")), "a", "b");
    const lock = await tryAcquireLock(dir);
    assert.ok(lock);
    await lock.release();
  });
});
