// The real bundle as a subprocess against the emulator: --help from an empty folder, once --json,
// status, simulate-eviction, two concurrent `once`, SIGTERM during a start, a corrupt state file,
// a bad config file, certificate expiry.
import "reflect-metadata";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTestPrincipal } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { resourceGroup, runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

let bundle: string;
before(async () => {
  bundle = await buildRuntimeBundle();
});

describe("the bundle", () => {
  it("prints a true --help from an empty folder, with no node_modules", async () => {
    const empty = mkdtempSync(join(tmpdir(), "spot-restarter-empty-"));
    copyFileSync(bundle, join(empty, "spot-restarter.cjs"));
    const result = await runCli(join(empty, "spot-restarter.cjs"), ["--help"], { cwd: empty });
    assert.equal(result.code, 0, result.stderr);
    for (const command of ["once", "run", "status", "simulate-eviction", "install", "uninstall"]) {
      assert.match(result.stdout, new RegExp(`\\n  ${command} `));
    }
    for (const flag of [
      "--dry-run",
      "--json",
      "--log-format",
      "--log-level",
      "--vm",
      "--stack-outputs",
      "--no-verify",
      "--keep-state",
    ]) {
      assert.ok(result.stdout.includes(flag), flag);
    }
    const bad = await runCli(join(empty, "spot-restarter.cjs"), ["once", "--bogus"], { cwd: empty });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown option '--bogus'/);
  });
});

describe("commands against the emulator", () => {
  let world: World;
  before(async () => {
    world = await startWorld(
      [
        spotVm("backup"),
        spotVm("builder", { powerState: "running" }),
        spotVm("other", { tags: {} }),
        // A Regular VM (no priority, as Azure leaves it out), running: simulate-eviction refuses it.
        spotVm("regular-box", { powerState: "running", priority: "Regular", tags: {} }),
      ],
      {
        startSeconds: 0.3,
      },
    );
  });
  after(() => world.emulator.stop());
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runCli(bundle, [...args, "--config", world.configPath], { caCertFile: world.emulator.caCertFile, env });

  it("once --dry-run --json decides and starts nothing", async () => {
    const result = await cli(["once", "--dry-run", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.dryRun, true);
    assert.deepEqual(
      summary.vms.map((v: { name: string; decision: string }) => [v.name, v.decision]),
      [
        ["backup", "start"],
        ["builder", "skip"],
        ["other", "skip"],
        ["regular-box", "skip"],
      ],
    );
    assert.equal(summary.starts.issued, 0);
    assert.deepEqual(
      { list: summary.armRequests.list, instanceView: summary.armRequests.instanceView },
      { list: 1, instanceView: 2 },
    );
    assert.equal((await world.control.vm(resourceGroup, "backup"))?.startRequests, 0);
    assert.equal(existsSync(join(world.stateDir, "state.json")), false, "a dry run writes no state");
  });

  it("once --json starts the evicted VM and waits for it; status shows it; logs are text lines on stderr", async () => {
    const result = await cli(["once", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.starts.succeeded, 1);
    assert.equal((await world.control.vm(resourceGroup, "backup"))?.powerState, "running");
    assert.match(result.stderr, /^INFO {2}start-issued vm=personal-network\/backup attempt=1: /m);
    assert.match(result.stderr, /^INFO {2}started vm=personal-network\/backup /m);

    const status = await cli(["status", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout);
    const backup = report.vms.find((v: { name: string }) => v.name === "backup");
    assert.equal(backup.powerState, "running");
    assert.ok(backup.lastStartAt);
    assert.equal(backup.lastResult, "started");
    // Its size as listed (the seed's), and no original size: it was never resized.
    assert.equal(backup.vmSize, "Standard_B2s");
    assert.equal(backup.originalVmSize, null);
    // The default table: within 120 columns, one resource group so names alone, times relative to now.
    const table = await cli(["status"]);
    assert.match(table.stdout, /^VM +STATE +DOWN AT +LAST START +RESULT +ATTEMPTS +BACKOFF +SIZE$/m);
    assert.match(
      table.stdout,
      /^backup +running +(-|\d+ (s|min) ago) +\d+ (s|min) ago +started +\d+ +- +Standard_B2s$/m,
    );
    for (const line of table.stdout.split("\n").filter((l) => !l.startsWith("Lowest"))) {
      assert.ok(line.length <= 120, `${line.length} columns: ${line}`);
    }
    // --wide keeps every column, with ISO times.
    const wide = await cli(["status", "--wide"]);
    assert.match(
      wide.stdout,
      /^VM +POWER STATE +LAST DEALLOCATION SEEN.* PAUSED UNTIL {2}SIZE +EVICTION RATE {2}SPOT \$\/H$/m,
    );
    assert.match(
      wide.stdout,
      /^personal-network\/backup +running +(-|\d{4}-\S+) +\d{4}-\d\d-\d\dT[\d:.]+Z +started .* Standard_B2s +\S+ +\S+$/m,
    );
    // The lowest budget Azure reported to status's own reads (the emulator counts them down: budgets.ts); status
    // reads Resource Graph too (the Spot market query), whose quota is 15 per 5 s.
    assert.match(
      table.stdout,
      /^Lowest Azure budget left: (Microsoft\.Compute\/\w+|subscription-reads|resource-graph-quota) \d+ of \d+ \(\d+%\)$/m,
    );
    assert.match(
      report.lowestBudget.policy,
      /^(Microsoft\.Compute\/(HighCostGet|LowCostGet)|subscription-reads|resource-graph-quota)/,
    );
  });

  it("simulate-eviction evicts, and the next once brings the VM back (JSON logs)", async () => {
    const evict = await cli(["simulate-eviction", "--vm", "builder"]);
    assert.equal(evict.code, 0, evict.stderr);
    const deadline = Date.now() + 5_000;
    while (
      (await world.control.vm(resourceGroup, "builder"))?.powerState !== "deallocated" &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    // Evicting it again while it is deallocated: Azure refuses (409 OperationNotAllowed), and the CLI says
    // what to do instead, as a usage problem (exit 2), not as an unexpected failure (exit 1).
    const again = await cli(["simulate-eviction", "--vm", "builder"]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(
      again.stderr,
      /personal-network\/builder is already deallocated; `once`\/`run` will start it/,
    );
    const result = await cli(["once", "--log-format", "json"]);
    assert.equal(result.code, 0, result.stderr);
    const events = result.stderr
      .trim()
      .split("\n")
      .map(
        (line) =>
          JSON.parse(line) as { event: string; vm?: string; level: string; time: string; msg: string },
      );
    const seen = events.find((e) => e.event === "deallocated-vm-seen");
    assert.equal(seen?.vm, "personal-network/builder");
    assert.ok(events.some((e) => e.event === "started" && e.vm === "personal-network/builder"));
    assert.equal((await world.control.vm(resourceGroup, "builder"))?.powerState, "running");
    const unknown = await cli(["simulate-eviction", "--vm", "nope"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /personal-network\/nope was not found/);
    // A Regular VM: Azure answers 409 OperationNotAllowed ("… since it is not an Azure Spot VM"); bad input.
    const regular = await cli(["simulate-eviction", "--vm", "regular-box"]);
    assert.equal(regular.code, 2, regular.stderr);
    assert.match(regular.stderr, /personal-network\/regular-box is not a Spot VM \(priority Regular\)/);
  });

  it("two concurrent once: one starts, the other exits 0 saying another run holds the lock", async () => {
    await world.control.evict(resourceGroup, "backup");
    await world.control.clearRequests();
    world.writeConfig({ startTimeoutSeconds: 30 });
    const [a, b] = await Promise.all([cli(["once", "--json"]), cli(["once", "--json"])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const summaries = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    const ran = summaries.filter((s) => s.skipped === null);
    const locked = summaries.filter((s) => s.skipped === "locked");
    assert.equal(ran.length, 1);
    assert.equal(locked.length, 1);
    // The holder records its pid just after taking the lock: a loser that looks in between cannot name it.
    assert.match(
      a.stderr + b.stderr,
      /another spot-restarter (\(pid \d+, holding it for \d+ s\) )?holds the lock/,
    );
    const starts = (await world.control.requests()).filter(
      (r) => r.method === "POST" && r.path.endsWith("/start"),
    );
    assert.equal(starts.length, 1);
  });

  it("a corrupt state file is reported and rebuilt", async () => {
    writeFileSync(join(world.stateDir, "state.json"), '{"version": 1, "vms": [oops');
    const result = await cli(["once"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /WARN {2}state-rebuilt .*not valid JSON/);
    const state = JSON.parse(readFileSync(join(world.stateDir, "state.json"), "utf8"));
    assert.equal(state.version, 1);
    assert.ok(state.vms["personal-network/backup"]);
  });

  it("a bad config file exits 2 naming the file, the field and the expectation", async () => {
    const badPath = join(world.dir, "bad.json");
    writeFileSync(badPath, JSON.stringify({ ...world.configFile, intervalSeconds: 0, clientId: "nope" }));
    const result = await runCli(bundle, ["once", "--config", badPath], {
      caCertFile: world.emulator.caCertFile,
    });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      new RegExp(`config file ${badPath}: field "clientId": expected the application \\(client\\) id`),
    );
    assert.match(
      result.stderr,
      /field "intervalSeconds": expected seconds between cycles: an integer from 1 to 86400; got 0/,
    );
  });
});

const SLOW_START_SECONDS = 30;

describe("run and signals", () => {
  let world: World;
  before(async () => {
    // Starts take 30 s: SIGTERM arrives while one is in flight.
    world = await startWorld([spotVm("slow")], { startSeconds: SLOW_START_SECONDS });
  });
  after(() => world.emulator.stop());

  it("SIGTERM during a start ends `run` within seconds, state consistent, lock released", async () => {
    const running = spawnCli(bundle, ["run", "--config", world.configPath, "--log-format", "json"], {
      caCertFile: world.emulator.caCertFile,
    });
    await running.waitFor(/"event":"start-issued"/);
    await new Promise((r) => setTimeout(r, 300));
    const sent = Date.now();
    running.child.kill("SIGTERM");
    const result = await running.done;
    const ms = Date.now() - sent;
    assert.equal(result.code, 0, result.stderr);
    // Against the wrong behaviour, not a wall-clock budget: a `run` that waited for its start in flight
    // would take the rest of that start (about 30 s); half of it separates the two whatever the load.
    assert.ok(ms < (SLOW_START_SECONDS * 1000) / 2, `took ${ms} ms to stop`);
    assert.match(result.stderr, /"event":"start-interrupted"/);
    assert.match(result.stderr, /"event":"run-stopped"/);
    const state = JSON.parse(readFileSync(join(world.stateDir, "state.json"), "utf8"));
    assert.equal(state.vms["personal-network/slow"].lastResult.outcome, "interrupted");
    assert.ok(!existsSync(join(world.stateDir, "spot-restarter.lock")), "lock released");
    process.stdout.write(`# run stopped ${ms} ms after SIGTERM\n`);
  });

  it("`run` refuses to start while another instance holds the lock (exit 5)", async () => {
    const first = spawnCli(bundle, ["run", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
    });
    try {
      await first.waitFor(/run-started/);
      const second = await runCli(bundle, ["run", "--config", world.configPath], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(second.code, 5);
      assert.match(second.stderr, /another spot-restarter \(pid \d+, holding it for \d+ s\) holds the lock/);
    } finally {
      first.child.kill("SIGINT");
      await first.done;
    }
  });
});

describe("certificate expiry", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("a", { powerState: "running" })]);
  });
  after(() => world.emulator.stop());

  it("warns when the certificate expires within 30 days, and refuses an expired one", async () => {
    const soon = await createTestPrincipal({ clientId: world.principal.clientId, validDays: 12 });
    await world.control.addPrincipal({
      clientId: world.principal.clientId,
      objectId: world.principal.objectId,
      certificatePem: soon.certificatePem,
    });
    writeFileSync(world.pemPath, soon.pem, { mode: 0o600 });
    const warned = await runCli(bundle, ["once", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
    });
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /WARN {2}certificate-expires-soon .*daysLeft=1[01]/);

    const expired = await createTestPrincipal({
      validDays: 1,
      notBefore: new Date(Date.now() - 3 * 86_400_000),
    });
    writeFileSync(world.pemPath, expired.pem, { mode: 0o600 });
    const refused = await runCli(bundle, ["once", "--config", world.configPath], {
      caCertFile: world.emulator.caCertFile,
    });
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /certificate in .*sp\.pem expired on/);
  });
});
