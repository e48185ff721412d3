// A custom role without Microsoft.Compute/locations/operations/read: ARM accepts the start (the VM does
// start), then refuses the status poll with 403. The runtime must say so once, clearly, naming that action
// by its full name and that the start itself went through; not leave the user guessing why `once` failed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LEAST_PRIVILEGE_ACTIONS } from "../../runtime/src/azure/roleActions";
import { type Row, spotVm, startRow } from "../faults/harness";

const OPERATIONS_READ = "Microsoft.Compute/locations/operations/read";

describe("a role that cannot follow its own starts", () => {
  let row: Row;
  before(async () => {
    row = await startRow([spotVm("evicted")], {
      role: "least-privilege",
      actions: LEAST_PRIVILEGE_ACTIONS.filter((action) => action !== OPERATIONS_READ),
      startSeconds: 0.3,
    });
  });
  after(() => row.close());

  it("starts the VM, then reports the missing action once and exits with the permission code", async () => {
    const once = await row.cli(["once", "--config", row.configPath]);
    assert.equal(once.code, 4, once.stderr);
    const output = once.stdout + once.stderr;
    const mentions = output.split("\n").filter((line) => line.includes(OPERATIONS_READ));
    assert.ok(mentions.length >= 1, output);
    // One log line for the event and the final error: never one per poll.
    assert.ok(mentions.length <= 2, `reported ${mentions.length} times:\n${output}`);
    assert.match(output, /ARM accepted the start/);
    // The final error says what was refused: following the start, not the start.
    assert.match(
      once.stderr,
      /lacks the permission Microsoft\.Compute\/locations\/operations\/read needed to follow the start of personal-network\/evicted to its outcome \(ARM accepted the start: the VM is starting\)/,
    );
    assert.equal((await row.startRequests("evicted")).length, 1, "the start was sent once");
    await row.waitForVm("evicted", "running", 10_000);
    const denied = (await row.armRequests()).filter((request) => request.status === 403);
    assert.equal(denied.length, 1, "exactly one poll was refused");
    assert.match(denied[0]?.path ?? "", /\/providers\/Microsoft\.Compute\/locations\/[^/]+\/operations\//);
  });
});
