// The real az CLI (Debian's azure-cli 2.45) against the emulator: cloud register, service-principal
// login with a certificate, vm list -d, vm start, vm simulate-eviction. Without az: skipped visibly, or a failure under CI=true.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { skipUnlessTool } from "../helpers/tools";

const run = promisify(execFile);

function azVersion(): string | undefined {
  try {
    return execFileSync("az", ["version", "--query", '"azure-cli"', "-o", "tsv"], {
      encoding: "utf8",
      env: { ...process.env, AZURE_CORE_COLLECT_TELEMETRY: "false" },
    }).trim();
  } catch {
    return undefined;
  }
}

const version = azVersion();
const skip = skipUnlessTool(
  version !== undefined,
  "apt-get install azure-cli (the az recipe is not verified)",
);
if (skip) process.stderr.write(`# SKIP emulator az test: ${skip}\n`);

describe(`emulator: the real az CLI ${version ?? "(missing)"}`, { skip }, () => {
  let t: TestEmulator;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const az = async (...args: string[]) => (await run("az", args, { env, timeout: 60_000 })).stdout.trim();

  before(async () => {
    t = await startTestEmulator({ timing: { startSeconds: 0.5 } });
    dir = mkdtempSync(join(tmpdir(), "emulator-az-"));
    const pemFile = join(dir, "sp.pem");
    writeFileSync(pemFile, t.principal.pem, { mode: 0o600 });
    env = {
      ...process.env,
      AZURE_CONFIG_DIR: join(dir, "azure"),
      REQUESTS_CA_BUNDLE: t.emulator.caCertFile,
      AZURE_CORE_COLLECT_TELEMETRY: "false",
      AZURE_CORE_ONLY_SHOW_ERRORS: "true",
      AZURE_CORE_NO_COLOR: "true",
    };
    // Debian's az ships older azure-mgmt-* packages than its "latest" profile expects, so the cloud
    // uses the 2020-09-01-hybrid profile. The rest comes from {arm}/metadata/endpoints.
    await az(
      "cloud",
      "register",
      "-n",
      "SpotRestarterEmulator",
      "--endpoint-resource-manager",
      `${t.emulator.armEndpoint}/`,
      "--profile",
      "2020-09-01-hybrid",
    );
    await az("cloud", "set", "-n", "SpotRestarterEmulator");
    await az(
      "login",
      "--service-principal",
      "-u",
      t.principal.clientId,
      "--password",
      pemFile,
      "--tenant",
      t.emulator.tenantId,
      "-o",
      "none",
    );
  });
  after(async () => {
    await t?.emulator.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("logged in with the certificate and sees the subscription", async () => {
    const account = JSON.parse(await az("account", "show", "-o", "json")) as {
      id: string;
      tenantId: string;
      user: { name: string };
    };
    assert.equal(account.id, t.emulator.subscriptionId);
    assert.equal(account.tenantId, t.emulator.tenantId);
    assert.equal(account.user.name, t.principal.clientId);
    const tokenRequests = (await t.control.requests()).filter((r) => r.path === "/adfs/oauth2/token");
    assert.ok(tokenRequests.length >= 1);
    assert.equal(tokenRequests[0]?.clientId, t.principal.clientId);
  });

  it("az vm list -d shows power states and addresses", async () => {
    const vms = JSON.parse(
      await az(
        "vm",
        "list",
        "-d",
        "-g",
        t.resourceGroup,
        "--query",
        "[].{name:name,power:powerState,ip:publicIps}",
        "-o",
        "json",
      ),
    ) as Array<{ name: string; power: string; ip: string }>;
    const byName = Object.fromEntries(vms.map((vm) => [vm.name, vm]));
    assert.equal(byName["ubuntu-backup-server-spot"]?.power, "VM deallocated");
    assert.equal(byName["vpn-gateway-vm"]?.power, "VM running");
    assert.match(byName["vpn-gateway-vm"]?.ip ?? "", /^192\.0\.2\.\d+$/);
  });

  it("az vm start follows the operation to running; simulate-eviction deallocates it", async () => {
    await az("vm", "start", "-g", t.resourceGroup, "-n", "ubuntu-backup-server-spot");
    assert.equal((await t.control.vm(t.resourceGroup, "ubuntu-backup-server-spot"))?.powerState, "running");
    await az("vm", "simulate-eviction", "-g", t.resourceGroup, "-n", "ubuntu-backup-server-spot");
    const power = await az(
      "vm",
      "get-instance-view",
      "-g",
      t.resourceGroup,
      "-n",
      "ubuntu-backup-server-spot",
      "--query",
      "instanceView.statuses[?starts_with(code,'PowerState/')].code | [0]",
      "-o",
      "tsv",
    );
    assert.equal(power, "PowerState/deallocated");
  });
});
