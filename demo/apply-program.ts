// `pulumi up` against the emulator: runs the real program (index.ts) under pulumi.runtime.setMocks with
// mocks that do in the emulator what the providers do in Azure (demo/emulator-provider.ts), and yields
// the stack outputs, as `pulumi stack output --json --show-secrets` would print them.
//
// The program runs in a child process of its own (this file is also that child's entry point): Pulumi
// keeps its runtime state per process and reports a failed program through unhandled rejections, so
// each apply gets a fresh process and its failures come back as a non-zero exit with the messages.
//
//   applyProgram({ emulator, config, outputsFile })   // from a test or the demo
//   node --import tsx demo/apply-program.ts REQUEST.json  // the child: REQUEST as in ApplyRequest
import "reflect-metadata"; // @peculiar/x509 (key material, test principals) needs it loaded first
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type * as Pulumi from "@pulumi/pulumi";
import { STACK_OUTPUT_NAMES } from "../runtime/src/core/stackOutputNames";
// The stack outputs of docs/architecture.md, as `pulumi stack output --json --show-secrets` prints them: the
// installer's own definition, so the harness cannot drift from what install accepts.
import type { StackOutputs } from "../runtime/src/install/stackOutputs";
import { runProcess } from "../support/process";
import type { AppliedResource, Mutations } from "./emulator-provider";

export type { StackOutputs };

/** Program config as `pulumi config` holds it (arrays as JSON text, like Pulumi hands them over). */
export interface ProgramConfig {
  resourceGroupName: string;
  restartableVms: string[];
  roleMode?: "contributor" | "least-privilege";
  certificateValidityDays?: number;
  certificateRenewalDays?: number;
  principalName?: string;
  /** Secret (URLs carry tokens), as `pulumi config set --secret --path 'notifications[0].url'` leaves it. */
  notifications?: Array<{ type: string; url: string; events?: string[] }>;
  /** Opt-in: VM name -> fallback sizes (`pulumi config set --path 'fallbackSizes.<vm>[0]' <size>`). */
  fallbackSizes?: Record<string, string[]>;
  /** Seconds of capacity failures before a fallback size (`pulumi config set fallbackAfterSeconds 2`). */
  fallbackAfterSeconds?: number;
  /** Opt-in: the least-privilege role may evict (`pulumi config set allowSimulateEviction true`). */
  allowSimulateEviction?: boolean;
}

export interface EmulatorEndpoints {
  armEndpoint: string;
  authorityHost: string;
  tenantId: string;
  subscriptionId: string;
  /** PEM file of the emulator's CA (the child trusts it through NODE_EXTRA_CA_CERTS). */
  caCertFile: string;
}

interface ApplyRequest {
  emulator: Omit<EmulatorEndpoints, "caCertFile">;
  stack: string;
  config: ProgramConfig;
  mutations: Mutations;
  outputsFile: string;
  /** Built-in role GUIDs the deployer holds at the resource group (default: the README's least rights). */
  deployerRoles?: string[];
}

/** What the child reports on stdout (no secrets). */
export interface ApplyReport {
  event: "applied";
  resources: AppliedResource[];
  servicePrincipalObjectId: string;
  applicationObjectId: string;
  certificatePemIsSecret: boolean;
  notificationsIsSecret: boolean;
  deployerClientId: string;
  durationMs: number;
}

export interface AppliedStack {
  /** Where the outputs JSON was written (mode 0600): the installer's `--stack-outputs` file. */
  outputsFile: string;
  outputs: StackOutputs;
  report: ApplyReport;
}

export class ApplyError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const REPO = resolve(__dirname, "..");

/**
 * Applies the program to the emulator in a child process and returns the stack outputs. `outputsFile`
 * (created 0600) receives them as JSON; it must not exist yet.
 */
export async function applyProgram(options: {
  emulator: EmulatorEndpoints;
  config: ProgramConfig;
  outputsFile: string;
  stack?: string;
  mutations?: Mutations;
  signal?: AbortSignal;
  /** Role GUIDs the deployer holds at the resource group instead of the README's least rights. */
  deployerRoles?: string[];
}): Promise<AppliedStack> {
  const { caCertFile, ...emulator } = options.emulator;
  const request: ApplyRequest = {
    emulator,
    stack: options.stack ?? "e2e",
    config: options.config,
    mutations: options.mutations ?? {},
    outputsFile: options.outputsFile,
    deployerRoles: options.deployerRoles,
  };
  const requestDir = mkdtempSync(join(tmpdir(), "spot-restarter-apply-"));
  const requestFile = join(requestDir, "request.json");
  writeFileSync(requestFile, JSON.stringify(request), { mode: 0o600 });
  try {
    const { code, stdout, stderr } = await runProcess(
      process.execPath,
      ["--import", "tsx", join(REPO, "demo/apply-program.ts"), requestFile],
      {
        cwd: REPO,
        env: { ...process.env, NODE_EXTRA_CA_CERTS: caCertFile },
        signal: options.signal,
      },
    );
    if (code !== 0) {
      throw new ApplyError(
        `applying the program to the emulator failed (exit code ${code}):\n${stderr.trim()}`,
        stderr,
      );
    }
    const line = stdout.split("\n").find((l) => l.startsWith('{"event":"applied"'));
    if (!line) throw new ApplyError(`the apply step reported nothing:\n${stdout}\n${stderr}`, stderr);
    const outputs = JSON.parse(readFileSync(options.outputsFile, "utf8")) as StackOutputs;
    return { outputsFile: options.outputsFile, outputs, report: JSON.parse(line) as ApplyReport };
  } finally {
    rmSync(requestDir, { recursive: true, force: true });
  }
}

// ---- the child ------------------------------------------------------------------------------------

async function child(requestFile: string): Promise<void> {
  const started = Date.now();
  const request = JSON.parse(readFileSync(requestFile, "utf8")) as ApplyRequest;
  const failures: string[] = [];
  const record = (reason: unknown) => {
    failures.push(reason instanceof Error ? reason.message : String(reason));
  };
  process.on("unhandledRejection", record);

  // Loaded here, not at the top: the parent side of this file must stay light (no Pulumi, no SDK).
  // require (the project is CommonJS): a relative import() would need ESM file extensions.
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const { ClientCertificateCredential } = require("@azure/identity") as typeof import("@azure/identity");
  const {
    createTestPrincipal,
    emulatorControl,
    ARM_SCOPE,
    USER_ACCESS_ADMINISTRATOR_ROLE_ID,
    TAG_CONTRIBUTOR_ROLE_ID,
  } = require("../emulator/testing") as typeof import("../emulator/testing");
  const { EmulatorProvider } = require("./emulator-provider") as typeof import("./emulator-provider");

  const { emulator } = request;
  const control = emulatorControl(emulator.armEndpoint);
  // The deploying identity: `az login` as someone with exactly the rights README "Prerequisites" lists, at
  // the resource group: User Access Administrator (role assignments and definitions, and */read for the VM
  // lookups) and Tag Contributor (Microsoft.Resources/tags/write, which neither UAA nor RBAC Administrator
  // has). Not subscription Owner: that would hide a missing right.
  const deployer = await createTestPrincipal();
  await control.addPrincipal({
    clientId: deployer.clientId,
    objectId: deployer.objectId,
    certificatePem: deployer.certificatePem,
    displayName: "deployer (pulumi up)",
  });
  const roleId = (guid: string) =>
    `/subscriptions/${emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
  for (const role of request.deployerRoles ?? [USER_ACCESS_ADMINISTRATOR_ROLE_ID, TAG_CONTRIBUTOR_ROLE_ID]) {
    await control.addRoleAssignment({
      principalId: deployer.objectId,
      roleDefinitionId: roleId(role),
      scope: `/subscriptions/${emulator.subscriptionId}/resourceGroups/${request.config.resourceGroupName}`,
    });
  }
  // The planted "role at another scope" bug needs a deployer who may assign roles there.
  if (request.mutations.roleScope) {
    await control.addRoleAssignment({
      principalId: deployer.objectId,
      roleDefinitionId: roleId(USER_ACCESS_ADMINISTRATOR_ROLE_ID),
      scope: request.mutations.roleScope,
    });
  }
  const credential = new ClientCertificateCredential(
    emulator.tenantId,
    deployer.clientId,
    { certificate: deployer.pem },
    { authorityHost: emulator.authorityHost, disableInstanceDiscovery: true },
  );
  const provider = new EmulatorProvider(
    {
      armEndpoint: emulator.armEndpoint,
      tenantId: emulator.tenantId,
      subscriptionId: emulator.subscriptionId,
      deployer,
      token: async () => {
        const token = await credential.getToken(ARM_SCOPE);
        if (!token) throw new Error("the deployer got no ARM token from the emulator");
        return token.token;
      },
    },
    control,
    request.mutations,
  );

  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.config)) {
    if (value === undefined) continue;
    config[`spot-restarter:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
  }
  pulumi.runtime.setAllConfig(config);
  await pulumi.runtime.setMocks(provider.mocks, "spot-restarter", request.stack, false);

  let program: Record<string, unknown> = {};
  try {
    // require, not import(): the program is CommonJS, as `pulumi` loads it.
    program = require("../index");
  } catch (error) {
    record(error);
  }
  // biome-ignore lint/suspicious/noExplicitAny: waitForRPCs is exported at runtime but marked @internal.
  await (pulumi.runtime as any).waitForRPCs();

  const names = STACK_OUTPUT_NAMES;
  const outputs: Record<string, unknown> = {};
  if (failures.length === 0) {
    for (const name of names) {
      const output = program[name] as Pulumi.Output<unknown> | undefined;
      if (!output) {
        failures.push(`the program exports no ${name}`);
        continue;
      }
      try {
        // biome-ignore lint/suspicious/noExplicitAny: Output.promise is internal but stable; apply() swallows rejections.
        outputs[name] = await (output as any).promise();
      } catch (error) {
        record(error);
      }
    }
  }
  await new Promise((r) => setTimeout(r, 20)); // late rejections from resource registrations
  if (failures.length > 0) {
    for (const message of new Set(failures)) process.stderr.write(`${message}\n`);
    process.exitCode = 1;
    return;
  }
  const certificatePemIsSecret = await pulumi.isSecret(program.certificatePem as Pulumi.Output<string>);
  const notificationsIsSecret = await pulumi.isSecret(program.notifications as Pulumi.Output<unknown>);

  // 0600 from creation; "wx": never write the key over a file someone else prepared.
  const fd = openSync(request.outputsFile, "wx", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(outputs, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  const idOf = (type: string) =>
    provider.applied
      .find((resource) => resource.type === type)
      ?.id.split("/")
      .pop() ?? "";
  const report: ApplyReport = {
    event: "applied",
    resources: provider.applied,
    servicePrincipalObjectId: idOf("azuread:index/servicePrincipal:ServicePrincipal"),
    applicationObjectId: idOf("azuread:index/application:Application"),
    certificatePemIsSecret,
    notificationsIsSecret,
    deployerClientId: deployer.clientId,
    durationMs: Date.now() - started,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node --import tsx demo/apply-program.ts REQUEST.json\n");
    process.exitCode = 2;
  } else {
    child(file).catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    });
  }
}
