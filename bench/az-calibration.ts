// Checks the re-enactment (bench/original.ts) against the real thing: the original script run with the
// real az CLI against the emulator, in a small world. Compares what each sent (per kind of request, as
// the emulator logged it) and measures what az itself adds per invocation (Python start-up, login cache,
// output formatting), which the re-enactment leaves out. Skipped when `az` is not installed.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { EmulatorEndpoints } from "../demo/apply-program";
import type { EmulatorControl, LoggedRequest, TestPrincipal } from "../emulator/testing";
import type { OriginalRequests } from "./original";

const exec = promisify(execFile);

export interface AzCalibration {
  azVersion: string;
  /** Requests per kind the real az sent for one cycle (list -d, then az vm start per match). */
  az: OriginalRequests & { other: number };
  /** The same world, the re-enactment. */
  reenactment: OriginalRequests;
  /** Same counts for every kind but polls; polls may differ by one (timing). */
  sameRequests: boolean;
  azListSeconds: number;
  reenactmentListSeconds: number;
  azStartSeconds: number;
  reenactmentStartSeconds: number;
  /** What an `az` invocation adds on top of its requests (mean of list and start). */
  azOverheadSecondsPerInvocation: number;
}

export function azVersion(): string | undefined {
  try {
    return execFileSync("az", ["version", "--query", '"azure-cli"', "-o", "tsv"], {
      encoding: "utf8",
      env: { ...process.env, AZURE_CORE_COLLECT_TELEMETRY: "false" },
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

export function kindOf(request: Pick<LoggedRequest, "method" | "path">): keyof OriginalRequests | "other" {
  const path = request.path.toLowerCase();
  if (request.method === "POST" && path.endsWith("/start")) return "start";
  if (path.includes("/operations/")) return "poll";
  if (path.endsWith("/providers/microsoft.compute/virtualmachines")) return "list";
  if (path.includes("/networkinterfaces/")) return "nic";
  if (path.includes("/publicipaddresses/")) return "publicIp";
  if (/\/virtualmachines\/[^/]+$/.test(path)) return "vmGet";
  return "other";
}

/**
 * Runs the original script with the real az as `principal` (registered with Contributor on the group),
 * then `reenact()` in the same state of the world. The caller evicts before each (`evict`).
 */
export async function calibrateAgainstAz(options: {
  version: string;
  emulator: EmulatorEndpoints;
  control: EmulatorControl;
  principal: TestPrincipal;
  resourceGroup: string;
  workDir: string;
  evict: () => Promise<unknown>;
  reenact: () => Promise<{ requests: OriginalRequests; listSeconds: number; startSeconds: number }>;
}): Promise<AzCalibration> {
  const dir = mkdtempSync(join(options.workDir, "az-"));
  try {
    const pem = join(dir, "sp.pem");
    writeFileSync(pem, options.principal.pem, { mode: 0o600 });
    const env = {
      ...process.env,
      AZURE_CONFIG_DIR: join(dir, "azure"),
      REQUESTS_CA_BUNDLE: options.emulator.caCertFile,
      AZURE_CORE_COLLECT_TELEMETRY: "false",
      AZURE_CORE_ONLY_SHOW_ERRORS: "true",
      AZURE_CORE_NO_COLOR: "true",
    };
    const az = async (...args: string[]) => (await exec("az", args, { env, timeout: 120_000 })).stdout.trim();
    // emulator/README.md, "The real az CLI against it".
    await az(
      "cloud",
      "register",
      "-n",
      "SpotRestarterBench",
      "--endpoint-resource-manager",
      `${options.emulator.armEndpoint}/`,
      "--profile",
      "2020-09-01-hybrid",
    );
    await az("cloud", "set", "-n", "SpotRestarterBench");
    await az(
      "login",
      "--service-principal",
      "-u",
      options.principal.clientId,
      "--password",
      pem,
      "--tenant",
      options.emulator.tenantId,
      "-o",
      "none",
    );

    // The original script, command by command.
    await options.evict();
    await options.control.clearRequests();
    const listStarted = Date.now();
    const names = (
      await az(
        "vm",
        "list",
        "-d",
        "-g",
        options.resourceGroup,
        "--query",
        "[?priority=='Spot' && powerState=='VM deallocated' && tags.AttemptRestartAfterEviction=='true'].name",
        "-o",
        "tsv",
      )
    )
      .split("\n")
      .filter(Boolean);
    const azListSeconds = (Date.now() - listStarted) / 1000;
    const startStarted = Date.now();
    for (const name of names) await az("vm", "start", "-g", options.resourceGroup, "-n", name);
    const azStartSeconds = names.length ? (Date.now() - startStarted) / 1000 / names.length : 0;
    const logged = (await options.control.requests()).filter(
      (r) =>
        r.clientId === options.principal.clientId &&
        !r.path.includes("/oauth2/") &&
        !r.path.includes("/adfs"),
    );
    if (process.env.BENCH_DEBUG_AZ) {
      for (const r of logged)
        process.stderr.write(`${r.time} ${r.method} ${r.path}?${r.query} ${r.status}\n`);
    }
    const azCounts = { list: 0, vmGet: 0, nic: 0, publicIp: 0, start: 0, poll: 0, other: 0 };
    for (const request of logged) azCounts[kindOf(request)]++;

    await options.evict();
    const reenacted = await options.reenact();
    const kinds = ["list", "vmGet", "nic", "publicIp", "start"] as const;
    const sameRequests =
      azCounts.other === 0 &&
      kinds.every((kind) => azCounts[kind] === reenacted.requests[kind]) &&
      Math.abs(azCounts.poll - reenacted.requests.poll) <= Math.max(1, names.length);
    const perStartReenacted = names.length ? reenacted.startSeconds / names.length : 0;
    return {
      azVersion: options.version,
      az: azCounts,
      reenactment: reenacted.requests,
      sameRequests,
      azListSeconds,
      reenactmentListSeconds: reenacted.listSeconds,
      azStartSeconds,
      reenactmentStartSeconds: perStartReenacted,
      azOverheadSecondsPerInvocation:
        (azListSeconds - reenacted.listSeconds + (names.length ? azStartSeconds - perStartReenacted : 0)) /
        (names.length ? 2 : 1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
