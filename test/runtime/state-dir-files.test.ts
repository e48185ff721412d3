// The state directory's files: state.json (the loop's) and pauses.json (pause/resume, while `run` holds
// the lock) are written through one hardened writer (state.ts writeStateDirFile), read never through a symlink.
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { addPause, pauseFileName, readPauses, removePause } from "../../runtime/src/state/pause";
import { createFileStateStore, stateFileName } from "../../runtime/src/state/state";
import { removeTempDirs, tempDir } from "../installer/fixtures";

after(removeTempDirs);

describe("state directory files", () => {
  test("pause then resume: the file is 0600, holds the pauses, and no temporary file is left", async () => {
    const dir = join(tempDir("pause"), "state");
    await addPause(dir, { name: "vm-a", resourceGroup: "rg", until: 2_000, at: 1_000 }, 1_000);
    await addPause(dir, { name: "vm-b", at: 1_000 }, 1_000);
    const path = join(dir, pauseFileName);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(
      (await readPauses(dir)).map((p) => p.name),
      ["vm-a", "vm-b"],
    );
    assert.equal(await removePause(dir, "VM-A", undefined), 1);
    assert.deepEqual(JSON.parse(readFileSync(path, "utf8")), {
      version: 1,
      pauses: [{ name: "vm-b", at: 1_000 }],
    });
    assert.deepEqual(readdirSync(dir), [pauseFileName]);
  });

  test("an expired pause is dropped when another is added", async () => {
    const dir = tempDir("pause");
    await addPause(dir, { name: "old", until: 5_000, at: 1_000 }, 1_000);
    await addPause(dir, { name: "new", at: 6_000 }, 6_000);
    assert.deepEqual(
      (await readPauses(dir)).map((p) => p.name),
      ["new"],
    );
  });

  test("a pauses.json that is a symlink is not read", async () => {
    const dir = tempDir("pause");
    const elsewhere = join(tempDir("elsewhere"), "pauses.json");
    writeFileSync(elsewhere, JSON.stringify({ version: 1, pauses: [{ name: "planted", at: 0 }] }));
    symlinkSync(elsewhere, join(dir, pauseFileName));
    await assert.rejects(readPauses(dir), { code: "ELOOP" });
  });

  test("a state directory other users may write is refused, and nothing is written there", async () => {
    const dir = tempDir("pause");
    chmodSync(dir, 0o777);
    await assert.rejects(addPause(dir, { name: "vm", at: 0 }, 0), /another user could plant or swap/);
    assert.deepEqual(readdirSync(dir), []);
  });

  test("a write that cannot replace the file leaves no temporary file beside it", async () => {
    const dir = tempDir("state");
    // A directory with something in it where state.json belongs: the rename fails.
    mkdirSync(join(dir, stateFileName, "x"), { recursive: true });
    await assert.rejects(createFileStateStore(dir).save({ vms: {} }));
    assert.deepEqual(readdirSync(dir), [stateFileName]);
  });
});
