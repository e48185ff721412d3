// `npm run demo|bench|soak -- --help` prints the usage and exits 0 without starting anything; a flag the
// tool does not know is one line naming it, the usage, and exit 2 (it used to be node's stack trace).
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runProcess } from "../../support/process";

const root = join(__dirname, "..", "..");
const tools = [
  { name: "demo", script: "demo/demo.ts", flags: ["--role-mode", "--interval-seconds", "--keep"] },
  { name: "bench", script: "bench/bench.ts", flags: ["--quick", "--sizes", "--outage-only", "--time-scale"] },
  { name: "soak", script: "soak/soak.ts", flags: ["--minutes", "--vms", "--seed", "--json"] },
];

const tsx = (script: string, args: string[]) =>
  runProcess(process.execPath, ["--import", "tsx", join(root, script), ...args], { cwd: root });

describe("demo, bench and soak --help", () => {
  for (const tool of tools) {
    it(`${tool.name} --help: usage on stdout, exit 0, nothing started`, async () => {
      const result = await tsx(tool.script, ["--help"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^npm run ${tool.name}: `));
      assert.match(result.stdout, new RegExp(`^Usage: npm run ${tool.name}`, "m"));
      for (const flag of tool.flags) assert.match(result.stdout, new RegExp(`^ +${flag}\\b`, "m"));
      assert.equal(result.stderr, "", "nothing ran: no progress, no warning");
    });

    it(`${tool.name} --bogus: one line naming the flag, the usage, exit 2`, async () => {
      const result = await tsx(tool.script, ["--bogus"]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^${tool.name}: Unknown option '--bogus'`));
      assert.doesNotMatch(result.stderr, /ERR_PARSE_ARGS|\n\s+at /, "no stack trace");
    });
  }
});
