// Issue 17, item 3 (test/security/README.md): the state directory. Root's runtime (cron, or a custom
// stateDir) must not write through a file another user planted, trust a directory another user may
// write, or echo what a "corrupt" state file holds (it may be a symlink to /etc/shadow).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createFileStateStore } from "../../runtime/src/state/state";
import { removeTempDirs, tempDir } from "../installer/fixtures";

const NOBODY = 65534;
const skip = process.getuid?.() !== 0 && "needs root (the attacker is another local user)";
after(removeTempDirs);

const SHADOW_LINE = "root:$6$8cDRoYV1$QoPkgTr1SRG4lAhUrYfA0d:19700:0:99999:7:::";
const oneVm = {
  vms: {
    "rg/vm": { resourceGroup: "rg", name: "vm", startAttempts: 0 },
  },
};

describe("item 3: the state directory", () => {
  test("save never writes through a symlink planted at a temp file name", async () => {
    const dir = tempDir("state");
    const victim = join(tempDir("victim"), "important");
    writeFileSync(victim, "untouched\n");
    // The name the code before the fix always used for this process.
    symlinkSync(victim, join(dir, `state.json.${process.pid}.tmp`));
    await createFileStateStore(dir).save(oneVm);
    assert.equal(readFileSync(victim, "utf8"), "untouched\n");
    assert.equal(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")).vms["rg/vm"].name, "vm");
  });

  test("a corrupt state file's contents are never echoed", async () => {
    const dir = tempDir("state");
    writeFileSync(join(dir, "state.json"), `${SHADOW_LINE}\n`);
    const loaded = await createFileStateStore(dir).load();
    assert.equal(loaded.problem?.kind, "corrupt");
    assert.match(loaded.problem?.detail ?? "", /state\.json is not valid JSON/);
    assert.doesNotMatch(loaded.problem?.detail ?? "", /8cDRoYV1|root:/);
  });

  test("a state.json that is a symlink is not read", async () => {
    const dir = tempDir("state");
    const secret = join(tempDir("secret"), "shadow");
    writeFileSync(secret, `${SHADOW_LINE}\n`, { mode: 0o600 });
    symlinkSync(secret, join(dir, "state.json"));
    const loaded = await createFileStateStore(dir).load();
    assert.equal(loaded.problem?.kind, "corrupt");
    assert.match(loaded.problem?.detail ?? "", /is a symbolic link/);
    assert.doesNotMatch(loaded.problem?.detail ?? "", /8cDRoYV1/);
  });

  test("a state directory another user owns is refused for writing and its state ignored", {
    skip,
  }, async () => {
    const dir = join(tempDir("state-parent"), "state");
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, ...oneVm }));
    chownSync(dir, NOBODY, NOBODY);
    const store = createFileStateStore(dir);
    await assert.rejects(store.save(oneVm), (error: Error) => {
      assert.match(error.message, new RegExp(`the state directory ${dir} is owned by uid 65534, not root`));
      assert.match(error.message, new RegExp(`chown root ${dir} && chmod go-w ${dir}`));
      return true;
    });
    // Root may read one user's own directory (`sudo spot-restarter status` on the service's).
    assert.deepEqual(Object.keys((await store.load()).state.vms), ["rg/vm"]);
  });

  test("a state directory writable by group or others is refused and its state ignored", async () => {
    const dir = join(tempDir("state-parent"), "state");
    mkdirSync(dir);
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, ...oneVm }));
    execFileSync("chmod", ["0777", dir]);
    const store = createFileStateStore(dir);
    await assert.rejects(store.save(oneVm), /is writable by others \(mode 0777\)/);
    const loaded = await store.load();
    assert.deepEqual(loaded.state.vms, {});
    assert.match(loaded.problem?.detail ?? "", /is writable by others/);
  });
});
