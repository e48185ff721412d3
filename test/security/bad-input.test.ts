// The bad-input catalogue, for every entry point: the runtime config file, CLI flags, the installer's
// stack outputs, and the emulator seed. Wrong types, missing fields, huge values, non-UTF-8, path
// traversal: each gets a clear error (exit code, a message that names the field), never a stack trace,
// never the content of a file it should not have read, and nothing written half-way.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTestPrincipal } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { assertNoSecrets } from "../../support/secrets";
import { type Row, spotVm, startRow } from "../faults/harness";

const repo = join(__dirname, "..", "..");

/** A message a person can act on: one or a few lines, no stack frames, no raw control characters. */
function assertClearError(stderr: string, field: RegExp, what: string): void {
  assert.match(stderr, field, `${what}: the message names the problem:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at .+:\d+:\d+\)?$/m, `${what}: no stack trace:\n${stderr}`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  assert.doesNotMatch(stderr, /[\u0000-\u0008\u000b-\u001f\u007f]/, `${what}: no raw control characters`);
  assert.ok(stderr.length < 4_000, `${what}: a short message (${stderr.length} chars)`);
}

function run(
  command: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, command, {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
      cwd: repo,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? "");
  });
}

describe("bad input: runtime config file", { concurrency: 4 }, () => {
  let row: Row;
  let bundle: string;
  let n = 0;
  before(async () => {
    row = await startRow([spotVm("evicted")]);
    bundle = await buildRuntimeBundle();
  });
  after(() => row.close());

  /** Writes the base config with `change` applied (or raw bytes), runs once, asserts the refusal. */
  async function refuse(
    what: string,
    change: ((base: Record<string, unknown>) => unknown) | Buffer,
    expected: { code: number; field: RegExp; notIn?: RegExp },
  ) {
    const dir = join(row.dir, `case-${++n}`);
    mkdirSync(dir);
    const stateDir = join(dir, "state");
    const base = { ...row.configFile, certificatePath: row.pemPath, stateDir };
    const path = join(dir, "config.json");
    const content = Buffer.isBuffer(change) ? change : change(base);
    writeFileSync(
      path,
      Buffer.isBuffer(content) || typeof content === "string" ? content : JSON.stringify(content),
    );
    const result = await run([bundle, "once", "--config", path, "--json"], {
      env: { NODE_EXTRA_CA_CERTS: row.emulator.caCertFile },
    });
    assert.equal(result.code, expected.code, `${what}: exit code (stderr: ${result.stderr})`);
    assertClearError(result.stderr, expected.field, what);
    if (expected.notIn) assert.doesNotMatch(result.stderr, expected.notIn, `${what}: leaks what it read`);
    assert.equal(result.stdout, "", `${what}: no half summary on stdout`);
    assert.equal(existsSync(stateDir), false, `${what}: nothing written (the state dir was created)`);
    assertNoSecrets(result.stdout + result.stderr, row.principal, what);
  }

  const cases: Array<
    [
      string,
      ((base: Record<string, unknown>) => unknown) | Buffer,
      { code: number; field: RegExp; notIn?: RegExp },
    ]
  > = [
    ["not JSON", Buffer.from('{"tenantId": '), { code: 2, field: /not valid JSON \(it ends too early\)/ }],
    [
      "--config at the PEM by mistake",
      () => "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
      { code: 2, field: /not valid JSON at line 1, column \d+$/m, notIn: /BEGIN|MIIE/ },
    ],
    ["a top-level array", () => [1, 2], { code: 2, field: /top level/ }],
    ["missing tenantId", ({ tenantId: _, ...rest }) => rest, { code: 2, field: /"tenantId".*missing/ }],
    ["clientId a number", (b) => ({ ...b, clientId: 42 }), { code: 2, field: /"clientId"/ }],
    [
      "resourceGroups a string",
      (b) => ({ ...b, resourceGroups: "personal-network" }),
      { code: 2, field: /"resourceGroups"/ },
    ],
    [
      "resourceGroups empty",
      (b) => ({ ...b, resourceGroups: [] }),
      { code: 2, field: /"resourceGroups".*at least one/ },
    ],
    [
      "resourceGroups traversal",
      (b) => ({ ...b, resourceGroups: ["../../providers/Microsoft.Authorization"] }),
      { code: 2, field: /"resourceGroups\.0"/ },
    ],
    [
      "a 1 MB resource group name",
      (b) => ({ ...b, resourceGroups: ["a".repeat(1_000_000)] }),
      { code: 2, field: /"resourceGroups\.0"/ },
    ],
    [
      "intervalSeconds 1e12",
      (b) => ({ ...b, intervalSeconds: 1e12 }),
      { code: 2, field: /"intervalSeconds"/ },
    ],
    [
      "intervalSeconds a string",
      (b) => ({ ...b, intervalSeconds: "30" }),
      { code: 2, field: /"intervalSeconds"/ },
    ],
    [
      "intervalSeconds negative",
      (b) => ({ ...b, intervalSeconds: -1 }),
      { code: 2, field: /"intervalSeconds"/ },
    ],
    [
      "backoff max below initial",
      (b) => ({ ...b, backoff: { initialSeconds: 60, maxSeconds: 1 } }),
      { code: 2, field: /backoff/ },
    ],
    ["tag a string", (b) => ({ ...b, tag: "AttemptRestartAfterEviction" }), { code: 2, field: /"tag"/ }],
    [
      "armEndpoint http",
      (b) => ({ ...b, cloud: { ...(b.cloud as object), armEndpoint: "http://127.0.0.1:1" } }),
      { code: 2, field: /armEndpoint/ },
    ],
    [
      "armEndpoint file:",
      (b) => ({ ...b, cloud: { ...(b.cloud as object), armEndpoint: "file:///etc/passwd" } }),
      { code: 2, field: /armEndpoint/ },
    ],
    [
      "control characters in tenantId",
      (b) => ({ ...b, tenantId: "\u001b[31mred\u001b[0m" }),
      { code: 2, field: /"tenantId"/ },
    ],
    [
      "non-UTF-8 bytes in a field",
      Buffer.concat([Buffer.from('{"tenantId":"'), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from('"}')]),
      { code: 2, field: /"tenantId"/ },
    ],
    [
      "a UTF-16 file",
      Buffer.from('\ufeff{"tenantId": "x"}', "utf16le"),
      { code: 2, field: /not valid JSON.*UTF-16/ },
    ],
    [
      "deeply nested JSON",
      Buffer.from(`${"[".repeat(200_000)}${"]".repeat(200_000)}`),
      { code: 2, field: /top level|not valid JSON/ },
    ],
    [
      "certificatePath traversal to /etc/passwd",
      (b) => ({ ...b, certificatePath: "../../../../../../../../etc/passwd" }),
      { code: 3, field: /certificate file \/etc\/passwd/, notIn: /root:x:0:0/ },
    ],
    [
      "certificatePath a directory",
      (b) => ({ ...b, certificatePath: "/etc" }),
      { code: 3, field: /certificate file \/etc/ },
    ],
    [
      "certificatePath missing",
      (b) => ({ ...b, certificatePath: "/nonexistent/sp.pem" }),
      { code: 3, field: /does not exist/ },
    ],
  ];
  for (const [what, change, expected] of cases) {
    it(what, () => refuse(what, change, expected));
  }

  it("the state directory is a file: a clear error, exit code, nothing else written", async () => {
    const file = join(row.dir, "state-is-a-file");
    writeFileSync(file, "");
    const result = await run([bundle, "once", "--config", row.configPath, "--state-dir", file], {
      env: { NODE_EXTRA_CA_CERTS: row.emulator.caCertFile },
    });
    assert.notEqual(result.code, 0);
    assertClearError(result.stderr, /state-is-a-file/, "state dir is a file");
  });
});

describe("bad input: CLI flags", { concurrency: 4 }, () => {
  let row: Row;
  let bundle: string;
  before(async () => {
    row = await startRow([spotVm("evicted", { powerState: "running" })]);
    bundle = await buildRuntimeBundle();
  });
  after(() => row.close());

  const cli = (args: string[]) =>
    run([bundle, ...args], { env: { NODE_EXTRA_CA_CERTS: row.emulator.caCertFile } }).then((r) => {
      row.outputs.push(r.stdout, r.stderr);
      return r;
    });
  const flagCases: Array<[string, () => string[], number, RegExp]> = [
    ["an unknown command", () => ["restart"], 2, /unknown command "restart"/],
    ["an unknown flag", () => ["once", "--config", row.configPath, "--bogus"], 2, /bogus/],
    [
      "--interval-seconds abc",
      () => ["run", "--config", row.configPath, "--interval-seconds", "abc"],
      2,
      /--interval-seconds/,
    ],
    [
      "--interval-seconds 0",
      () => ["run", "--config", row.configPath, "--interval-seconds", "0"],
      2,
      /--interval-seconds/,
    ],
    [
      "--interval-seconds 1e9",
      () => ["run", "--config", row.configPath, "--interval-seconds", "1e9"],
      2,
      /--interval-seconds/,
    ],
    [
      "--log-level loud",
      () => ["once", "--config", row.configPath, "--log-level", "loud"],
      2,
      /--log-level|logLevel/,
    ],
    [
      "--log-format xml",
      () => ["once", "--config", row.configPath, "--log-format", "xml"],
      2,
      /--log-format|logFormat/,
    ],
    ["--config missing", () => ["once", "--config", "/nonexistent/config.json"], 2, /does not exist/],
    ["--config a directory", () => ["once", "--config", "/etc"], 2, /config file \/etc/],
    ["simulate-eviction without --vm", () => ["simulate-eviction", "--config", row.configPath], 2, /--vm/],
    ["a value for a boolean flag", () => ["once", "--config", row.configPath, "--dry-run=yes"], 2, /dry-run/],
    ["a positional argument", () => ["once", "extra", "--config", row.configPath], 2, /extra|positional/i],
  ];
  for (const [what, args, code, message] of flagCases) {
    it(what, async () => {
      const result = await cli(args());
      assert.equal(result.code, code, `${what}: ${result.stderr}`);
      assertClearError(result.stderr, message, what);
    });
  }

  it("simulate-eviction --vm with path traversal reaches no other resource", async () => {
    await row.control.clearRequests();
    for (const vm of [
      "../../../providers/Microsoft.Authorization/roleAssignments/x",
      "..",
      "a/../../evicted",
    ]) {
      const result = await cli(["simulate-eviction", "--config", row.configPath, "--vm", vm]);
      assert.equal(result.code, 2, `--vm ${vm}: ${result.stderr}`);
      assertClearError(result.stderr, /not found|--vm expects a VM name/, `--vm ${vm}`);
    }
    const arm = await row.armRequests();
    for (const request of arm) {
      assert.match(
        request.path,
        /\/providers\/Microsoft\.Compute\/virtualMachines\/[^/]+\/simulateEviction$/i,
        request.path,
      );
    }
    assert.equal((await row.control.vm("personal-network", "evicted"))?.evictions, 0);
  });

  it("a 100 kB --vm value: a clear error", async () => {
    const result = await cli(["simulate-eviction", "--config", row.configPath, "--vm", "v".repeat(100_000)]);
    assert.equal(result.code, 2);
    assertClearError(result.stderr, /--vm expects a VM name.*100000 characters/, "huge --vm");
    assert.ok(result.stderr.length < 4_000, `${result.stderr.length} chars`);
    assert.doesNotMatch(result.stderr, /^\s+at .+:\d+:\d+\)?$/m);
  });
});

describe("bad input: installer stack outputs", { concurrency: 4 }, () => {
  let bundle: string;
  let good: Record<string, unknown>;
  let principal: { privateKeyPem: string };
  let n = 0;
  before(async () => {
    bundle = await buildRuntimeBundle();
    const made = await createTestPrincipal();
    principal = made;
    good = {
      tenantId: "72f988bf-0000-4000-8000-00000000e1a0",
      subscriptionId: "5f1c3a52-0000-4000-8000-00000000e1a0",
      clientId: made.clientId,
      resourceGroupName: "personal-network",
      restartTag: { name: "AttemptRestartAfterEviction", value: "true" },
      restartableVms: ["ubuntu-backup-server-spot"],
      certificatePem: made.pem,
      certificateExpiresOn: new Date(Date.now() + 300 * 86_400_000).toISOString(),
      installCommand:
        "pulumi stack output --json --show-secrets | sudo node spot-restarter.cjs install --stack-outputs -",
    };
  });

  async function refuse(what: string, outputs: string | Buffer, field: RegExp) {
    const root = mkdtempSync(join(tmpdir(), `spot-restarter-badinput-${++n}-`));
    const file = join(root, "..", `${root.split("/").at(-1)}.outputs.json`);
    writeFileSync(file, outputs, { mode: 0o600 });
    const result = await run([bundle, "install", "--stack-outputs", file, "--root", root, "--no-verify"]);
    assert.equal(result.code, 2, `${what}: exit code (stderr: ${result.stderr})`);
    assertClearError(result.stderr, field, what);
    assert.deepEqual(readdirSync(root), [], `${what}: nothing written under --root`);
    assertNoSecrets(result.stdout + result.stderr, principal, what);
  }

  it("not JSON, with the key in it: refused without quoting the key", async () => {
    const text = JSON.stringify(good, null, 2).replace('"tenantId"', "tenantId");
    await refuse("not JSON", text, /JSON/);
  });
  it("missing clientId", () => {
    const { clientId: _, ...rest } = good;
    return refuse("missing clientId", JSON.stringify(rest), /clientId/);
  });
  it("tenantId a number", () =>
    refuse("tenantId a number", JSON.stringify({ ...good, tenantId: 7 }), /tenantId/));
  it("certificatePem [secret]", () =>
    refuse("[secret]", JSON.stringify({ ...good, certificatePem: "[secret]" }), /show-secrets/));
  it("restartableVms not an array", () =>
    refuse("restartableVms", JSON.stringify({ ...good, restartableVms: "vm" }), /restartableVms/));
  it("non-UTF-8 bytes", () =>
    refuse(
      "non-UTF-8",
      Buffer.concat([Buffer.from('{"tenantId":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
      /tenantId|clientId/,
    ));
  it("a 2 MB resource group name", () =>
    refuse(
      "huge resourceGroupName",
      JSON.stringify({ ...good, resourceGroupName: "r".repeat(2_000_000) }),
      /resourceGroupName/,
    ));
  it("resource group name with path traversal", () =>
    refuse(
      "resourceGroupName traversal",
      JSON.stringify({ ...good, resourceGroupName: "../../etc" }),
      /resourceGroupName/,
    ));
});

describe("bad input: emulator seed", { concurrency: 4 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-badseed-"));
  let n = 0;
  const base = {
    tenantId: "72f988bf-0000-4000-8000-00000000e1a0",
    subscriptionId: "5f1c3a52-0000-4000-8000-00000000e1a0",
    virtualMachines: [{ resourceGroup: "rg", name: "vm", priority: "Spot", powerState: "deallocated" }],
  };
  async function refuse(what: string, seed: string | Buffer, field: RegExp, notIn?: RegExp) {
    const path = join(dir, `seed-${++n}.json`);
    writeFileSync(path, seed);
    const result = await run(["--import", "tsx", "emulator/cli.ts", "--seed", path]);
    assert.notEqual(result.code, 0, `${what}: the emulator started`);
    assert.doesNotMatch(result.stdout, /"ready"/, `${what}: no ready line`);
    assertClearError(result.stderr, field, what);
    if (notIn) assert.doesNotMatch(result.stderr, notIn, `${what}: quotes the file`);
  }
  it("not JSON", () => refuse("not JSON", "{", /seed/));
  it("missing tenantId", () =>
    refuse("missing tenantId", JSON.stringify({ ...base, tenantId: undefined }), /tenantId/));
  it("a bad power state", () =>
    refuse(
      "bad powerState",
      JSON.stringify({ ...base, virtualMachines: [{ ...base.virtualMachines[0], powerState: "exploded" }] }),
      /powerState/,
    ));
  it("priority a number", () =>
    refuse(
      "priority a number",
      JSON.stringify({ ...base, virtualMachines: [{ ...base.virtualMachines[0], priority: 5 }] }),
      /priority/,
    ));
  it("a fault with an invalid regular expression", () =>
    refuse(
      "bad regex",
      JSON.stringify({ ...base, faults: [{ pathPattern: "(", status: 500 }] }),
      /pathPattern/,
    ));
  it("a fault without an effect", () =>
    refuse("no effect", JSON.stringify({ ...base, faults: [{ method: "GET" }] }), /effect/));
  it("non-UTF-8", () => refuse("non-UTF-8", Buffer.from([0xff, 0xfe, 0x7b]), /seed/));
  it("path traversal to /etc/shadow: refused without quoting it", () => {
    const path = "../../../../../../../../etc/shadow";
    return run(["--import", "tsx", "emulator/cli.ts", "--seed", path]).then((result) => {
      assert.notEqual(result.code, 0);
      assertClearError(result.stderr, /seed/, "seed traversal");
      assert.doesNotMatch(result.stderr, /root:/, "the file's content is not echoed");
    });
  });
});
