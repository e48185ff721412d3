// The notification repeat gate's file (stateDir/notifications.json) is written without following a link
// planted beside it: it used a fixed temporary name, `notifications.json.<pid>.tmp`, that another local
// user could create first as a symlink to a file of root's choosing.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createRepeatGate } from "../../runtime/src/signals/notify/gate";

const dir = mkdtempSync(join(tmpdir(), "gate-link-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a symlink at the old temporary name is not written through; the gate file is private", () => {
  const stateDir = join(dir, "state");
  const victim = join(dir, "victim");
  writeFileSync(victim, "root's file\n");
  const gate = createRepeatGate(stateDir);
  // The directory exists after the first write; plant the link where the old code wrote, then write again.
  const event = { type: "auth-failing", at: Date.now(), message: "m" } as unknown as Parameters<
    typeof gate
  >[0];
  assert.equal(gate(event), true);
  symlinkSync(victim, join(stateDir, `notifications.json.${process.pid}.tmp`));
  const later = { ...event, at: (event as { at: number }).at + 2 * 3600_000 } as typeof event;
  assert.equal(gate(later), true, "an hour later the alarm passes again");
  assert.equal(readFileSync(victim, "utf8"), "root's file\n", "the planted link's target is untouched");
  const gateFile = join(stateDir, "notifications.json");
  assert.ok(existsSync(gateFile));
  assert.equal(statSync(gateFile).mode & 0o777, 0o600);
  assert.equal(Object.keys(JSON.parse(readFileSync(gateFile, "utf8"))).length, 1);
});
