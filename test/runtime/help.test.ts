// `<command> --help` prints that command's own help (its flags, defaults, an example), not the global one;
// and `npm run spot-restarter once --config F` / `npm run emulator --seed F` without `--` say how to fix it.
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { buildRuntimeBundle } from "../../support/bundle";
import { runProcess } from "../../support/process";

const REPO = resolve(__dirname, "../..");

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return runProcess(file, args, { cwd: REPO, env: { ...process.env, ...env } });
}

// Without npm's variables: these tests may themselves run under `npm test`.
const cleanEnv = { npm_lifecycle_event: "" };
let bundle: Promise<string> | undefined;
const cli = async (args: string[]) => {
  // The bundle: the real artefact, and it starts in a fraction of the time tsx needs for the sources.
  bundle ??= buildRuntimeBundle();
  return run(process.execPath, [await bundle, ...args], cleanEnv);
};

// Written from the README's command table, apart from the code: each command's flags.
const flags: Record<string, string[]> = {
  once: ["--config", "--dry-run", "--json", "--state-dir", "--log-format", "--log-level", "--print-config"],
  run: ["--config", "--interval-seconds", "--state-dir", "--log-format", "--log-level"],
  status: ["--config", "--wide", "--json"],
  pause: ["--config", "--vm", "--for", "--resource-group", "--force"],
  resume: ["--config", "--vm", "--resource-group"],
  "simulate-eviction": ["--config", "--vm", "--resource-group"],
  "notify-test": ["--config"],
  doctor: ["--config", "--json"],
  install: [
    "--stack-outputs",
    "--root",
    "--scheduler",
    "--dry-run",
    "--no-verify",
    "--verify-wait-seconds",
    "--authority-host",
    "--arm-endpoint",
    "--audience",
    "--extra-ca-certs",
  ],
  uninstall: ["--root", "--dry-run", "--keep-state"],
};

describe("per-command help", { concurrency: 4 }, () => {
  let global: Promise<string> | undefined;
  const globalHelp = () => {
    global ??= cli(["--help"]).then((r) => r.stdout);
    return global;
  };

  for (const [command, expected] of Object.entries(flags)) {
    it(`${command} --help: its own flags, defaults and an example`, async () => {
      const result = await cli([command, "--help"]);
      assert.equal(result.code, 0, result.stderr);
      assert.notEqual(result.stdout, await globalHelp(), "not the global help");
      assert.ok(result.stdout.startsWith(`spot-restarter ${command}: `), result.stdout);
      assert.match(result.stdout, new RegExp(`\\nUsage: spot-restarter ${command} `));
      for (const flag of expected)
        assert.match(result.stdout, new RegExp(`\\n  ${flag}\\b`), `${command}: ${flag}`);
      assert.match(result.stdout, /default/);
      assert.match(result.stdout, new RegExp(`\\nExample:\\n  .*spot-restarter ${command}( |\\n)`));
      // `help <command>` is the same text.
      assert.equal((await cli(["help", command])).stdout, result.stdout);
    });
  }

  it("commands that run no cycle do not list the loop's flags; once and run do", async () => {
    for (const command of [
      "status",
      "report",
      "doctor",
      "pause",
      "resume",
      "simulate-eviction",
      "notify-test",
    ]) {
      const { stdout } = await cli([command, "--help"]);
      assert.doesNotMatch(stdout, /--interval-seconds|--max-concurrent-starts/, command);
    }
    assert.match((await cli(["run", "--help"])).stdout, /\n {2}--interval-seconds /);
    assert.match((await cli(["once", "--help"])).stdout, /\n {2}--max-concurrent-starts /);
  });

  it("install --help says what the verification runs and how long it waits", async () => {
    const { stdout } = await cli(["install", "--help"]);
    assert.match(stdout, /runs `doctor` as the scheduler will run\s+the job/);
    assert.match(
      stdout,
      /--verify-wait-seconds N +how long the verification waits for replication \(default 300\)/,
    );
    assert.doesNotMatch(stdout, /once --dry-run/);
  });

  it("the global help names the per-command help", async () => {
    assert.match(await globalHelp(), /<command> --help/);
  });
});

describe("forgetting `--` after npm run", { concurrency: 3 }, () => {
  it("spot-restarter: names the flag npm took and the fix (a stray argument)", async () => {
    const result = await run("npm", ["run", "-s", "spot-restarter", "once", "--config", "/tmp/nowhere.json"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /npm took --config for itself: put `--` between the script and its arguments, e.g. `npm run -s spot-restarter -- once --config …`/,
    );
  });

  it("spot-restarter: a swallowed --dry-run refuses instead of running a real cycle", async () => {
    const result = await run("npm", ["run", "-s", "spot-restarter", "once", "--dry-run"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /npm took --dry-run for itself/);
    assert.doesNotMatch(result.stderr, /config file/, "it stops before reading any config");
  });

  it("emulator: names --seed and the fix", async () => {
    const result = await run("npm", [
      "run",
      "-s",
      "emulator",
      "--seed",
      "emulator/examples/personal-network.json",
    ]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /npm took --seed for itself: put `--` before the emulator's arguments/);
    assert.doesNotMatch(result.stdout, /"ready"/);
  });
});
