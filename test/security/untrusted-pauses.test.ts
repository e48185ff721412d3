// Issue 25, item 3 (test/security/README.md): a pauses file in a state directory anyone may write. Root's
// `once` already refused such a directory's state.json but obeyed its pauses.json, so a local user could
// plant a pause and keep an evicted VM down. Pauses now pass the same trust rules as the state: from a
// directory that fails them they are ignored, with a warning naming the directory and the fix.
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pauseFileName, readPauses } from "../../runtime/src/state/pause";
import { buildRuntimeBundle } from "../../support/bundle";
import { resourceGroup, runCli, spotVm, startWorld, type World } from "../runtime/harness";

const NOBODY = 65534;

describe("issue 25, item 3: pauses from an untrusted state directory", () => {
  let bundle: string;
  let w: World;
  let stateDir: string;
  before(async () => {
    bundle = await buildRuntimeBundle();
    w = await startWorld([spotVm("evicted")]);
    stateDir = join(w.dir, "shared-state");
    mkdirSync(stateDir);
    chmodSync(stateDir, 0o777); // world-writable, not sticky: anyone may plant or swap files here
    w.writeConfig({ stateDir });
    // The attacker's pause: the evicted VM, until resumed.
    const planted = join(stateDir, pauseFileName);
    writeFileSync(planted, JSON.stringify({ version: 1, pauses: [{ name: "evicted", at: Date.now() }] }), {
      mode: 0o644,
    });
    if (process.getuid?.() === 0) chownSync(planted, NOBODY, NOBODY);
  });
  after(() => w.emulator.stop());

  it("readPauses refuses the directory, naming it and the fix", async () => {
    await assert.rejects(readPauses(stateDir), (error: Error) => {
      assert.match(error.message, /is writable by others \(mode 0777\)/);
      assert.match(error.message, /ignoring its pauses\.json/);
      return true;
    });
  });

  it("root's once starts the evicted VM despite the planted pause, and warns", async () => {
    const once = await runCli(bundle, ["once", "--config", w.configPath], {
      caCertFile: w.emulator.caCertFile,
    });
    assert.equal(once.code, 0, once.stderr);
    assert.equal((await w.control.vm(resourceGroup, "evicted"))?.startRequests, 1);
    assert.match(once.stderr, /pauses-unreadable\b.*writable by others.*ignoring its pauses\.json/);
    assert.doesNotMatch(once.stderr, /vm-left-alone/);
  });
});
