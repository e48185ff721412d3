// Helpers for every test suite of the project: test principals with real certificates, trusting the
// emulator's CA in-process, a typed client for the control API, and a one-call emulator with a
// principal already registered.

import { readFileSync } from "node:fs";
import { request } from "node:https";
import * as tls from "node:tls";
import { ClientCertificateCredential } from "@azure/identity";
import { LEAST_PRIVILEGE_ACTIONS as RUNTIME_ROLE_ACTIONS } from "../runtime/src/azure/roleActions";
import type { RequestLogEntry } from "./control";
import { type EmulatorSeed, type FaultRule, type RunningEmulator, startEmulator } from "./index";
import { knownCas } from "./known-cas";
import { createTestPrincipal, type TestPrincipal } from "./principal";
import type { VmHistoryEntry } from "./state";

export { createTestPrincipal, type TestPrincipal };

export const CONTRIBUTOR_ROLE_ID = "b24988ac-6180-42a0-ab88-20f7382dd24c";
export const READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
export const OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
export const USER_ACCESS_ADMINISTRATOR_ROLE_ID = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
export const TAG_CONTRIBUTOR_ROLE_ID = "4a9ae827-6dc8-4573-8ac7-8239d42aa03f";
export const RBAC_ADMINISTRATOR_ROLE_ID = "f58310d9-a9f6-439a-9e8d-f62e7b41a168";
/** What the runtime needs and nothing more: the runtime's own list (runtime/src/azure/roleActions.ts). */
export const LEAST_PRIVILEGE_ACTIONS: string[] = [...RUNTIME_ROLE_ACTIONS];
/** Where the example seed lives (the blog's "personal-network" resource group). */
export const EXAMPLE_SEED_FILE = `${__dirname}/examples/personal-network.json`;

const trusted = new Set<string>();

/**
 * Makes this process trust the emulator CA for every later TLS connection (https, fetch, the Azure
 * SDK), via tls.setDefaultCACertificates (Node >= 22.19 / 24.5). Child processes need
 * NODE_EXTRA_CA_CERTS=<caCertFile> instead.
 */
export function trustEmulatorCa(caCertPem: string): void {
  if (trusted.has(caCertPem)) return;
  tls.setDefaultCACertificates([...tls.getCACertificates("default"), caCertPem]);
  trusted.add(caCertPem);
}

export interface ControlVm {
  resourceGroup: string;
  name: string;
  powerState: string;
  provisioningState: string;
  startRequests: number;
  evictions: number;
  lastEvictedAt: string | null;
  /** Power events in order (evicted, deallocated-by-owner, start-accepted/-succeeded/-failed/-preempted). */
  vmSize: string;
  history: VmHistoryEntry[];
  tags: Record<string, string>;
  priority: string;
  evictionPolicy: string;
  location: string;
}

/** One entry of the emulator's request log (`GET /_emulator/requests`), as control.ts records it. */
export type LoggedRequest = RequestLogEntry;

/** Typed client of the control API (`/_emulator/…`). Trusts the CA of emulators started in this process. */
export function emulatorControl(armEndpoint: string, options: { caCertPem?: string } = {}) {
  const origin = new URL(armEndpoint).origin;
  const call = <T>(method: string, path: string, body?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const ca = options.caCertPem ?? knownCas.get(origin);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        `${origin}/_emulator/${path}`,
        {
          method,
          ...(ca ? { ca } : {}),
          headers: payload
            ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if ((res.statusCode ?? 500) >= 400) {
              reject(new Error(`emulator control ${method} ${path}: HTTP ${res.statusCode} ${text}`));
            } else {
              resolve((text ? JSON.parse(text) : undefined) as T);
            }
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  const segment = encodeURIComponent;
  return {
    vms: () => call<ControlVm[]>("GET", "vms"),
    vm: async (resourceGroup: string, name: string) =>
      (await call<ControlVm[]>("GET", "vms")).find(
        (vm) =>
          vm.resourceGroup.toLowerCase() === resourceGroup.toLowerCase() &&
          vm.name.toLowerCase() === name.toLowerCase(),
      ),
    evict: (resourceGroup: string, name: string) =>
      call<void>("POST", `vms/${segment(resourceGroup)}/${segment(name)}/evict`),
    /** The owner deallocates the VM (Resource Health: VirtualMachineDeallocationInitiated; Activity Log: the caller). */
    deallocate: (resourceGroup: string, name: string, caller?: string) =>
      call<void>(
        "POST",
        `vms/${segment(resourceGroup)}/${segment(name)}/deallocate`,
        caller === undefined ? undefined : { caller },
      ),
    /** Every Resource Health annotation recorded, visible or not yet. */
    annotations: () =>
      call<
        Array<{
          resourceGroup: string;
          vmName: string;
          annotationName: string;
          context: string;
          occurredTime: string;
          visibleAt: string;
        }>
      >("GET", "annotations"),
    /** Sets a VM's state directly (no operation, no request counted). */
    setVm: (
      resourceGroup: string,
      name: string,
      patch: { powerState?: string; tags?: Record<string, string> },
    ) => call<ControlVm>("PATCH", `vms/${segment(resourceGroup)}/${segment(name)}`, patch),
    /** Adds or replaces a VM (seed format, resourceGroup/name from the arguments). */
    putVm: (resourceGroup: string, name: string, vm: Record<string, unknown>) =>
      call<ControlVm>("PUT", `vms/${segment(resourceGroup)}/${segment(name)}`, vm),
    deleteVm: (resourceGroup: string, name: string) =>
      call<void>("DELETE", `vms/${segment(resourceGroup)}/${segment(name)}`),
    addFaults: (...rules: FaultRule[]) => call<void>("POST", "faults", rules),
    faults: () => call<Array<FaultRule & { remaining?: number }>>("GET", "faults"),
    clearFaults: () => call<void>("DELETE", "faults"),
    requests: () => call<LoggedRequest[]>("GET", "requests"),
    clearRequests: () => call<void>("DELETE", "requests"),
    /** The registered service principals (client id and the service principal's object id). */
    principals: () => call<Array<{ clientId: string; objectId: string }>>("GET", "principals"),
    /** Registers an application + service principal with certificate(s); adds certificates if it exists. */
    addPrincipal: (principal: {
      clientId: string;
      objectId: string;
      certificatePem: string | string[];
      displayName?: string;
    }) => call<{ clientId: string; objectId: string }>("POST", "principals", principal),
    removePrincipal: (clientId: string) => call<void>("DELETE", `principals/${segment(clientId)}`),
    addRoleDefinition: (definition: {
      id: string;
      roleName?: string;
      actions: string[];
      notActions?: string[];
      assignableScopes?: string[];
    }) => call<void>("POST", "roleDefinitions", definition),
    addRoleAssignment: (assignment: {
      name?: string;
      principalId: string;
      roleDefinitionId: string;
      scope: string;
      principalType?: string;
    }) => call<Record<string, unknown>>("POST", "roleAssignments", assignment),
  };
}
export type EmulatorControl = ReturnType<typeof emulatorControl>;

/** A ClientCertificateCredential wired to the emulator the way the runtime must wire it for a custom cloud. */
export function emulatorCredential(
  emulator: RunningEmulator,
  principal: Pick<TestPrincipal, "clientId" | "pem">,
) {
  return new ClientCertificateCredential(
    emulator.tenantId,
    principal.clientId,
    { certificate: principal.pem },
    { authorityHost: emulator.authorityHost, disableInstanceDiscovery: true },
  );
}

/** The token scope ARM expects (the Azure SDK does not derive it from a custom endpoint). */
export const ARM_SCOPE = "https://management.azure.com/.default";

export interface TestEmulator {
  emulator: RunningEmulator;
  principal: TestPrincipal;
  control: EmulatorControl;
  credential: ClientCertificateCredential;
  resourceGroup: string;
}

/**
 * Starts an emulator with the example world (resource group `personal-network`) or the given seed
 * overrides, registers a fresh principal with `role` at the resource group (Contributor by default),
 * and trusts the CA in this process. Remember `await t.emulator.stop()`.
 */
export async function startTestEmulator(
  overrides: Partial<EmulatorSeed> = {},
  opts: {
    role?: "contributor" | "reader" | "least-privilege" | "none";
    port?: number;
    /** The custom role's actions with role `least-privilege` (default LEAST_PRIVILEGE_ACTIONS). */
    actions?: readonly string[];
    /**
     * The role on every group that holds a seeded VM (as the Pulumi program assigns it, issue 28), not only
     * on the first VM's group.
     */
    everyGroup?: boolean;
  } = {},
): Promise<TestEmulator> {
  const base = JSON.parse(readFileSync(EXAMPLE_SEED_FILE, "utf8")) as EmulatorSeed;
  const principal = await createTestPrincipal();
  const seed: EmulatorSeed = { ...base, ...overrides };
  const resourceGroup = seed.virtualMachines?.[0]?.resourceGroup ?? "personal-network";
  const scope = `/subscriptions/${seed.subscriptionId}/resourceGroups/${resourceGroup}`;
  const groupScopes = opts.everyGroup
    ? [
        ...new Map(
          (seed.virtualMachines ?? []).map((vm) => {
            const id = `/subscriptions/${vm.subscriptionId ?? seed.subscriptionId}/resourceGroups/${vm.resourceGroup}`;
            return [id.toLowerCase(), id] as const;
          }),
        ).values(),
      ]
    : [scope];
  const customRoleId = `/subscriptions/${seed.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/4f1d7ac3-5d0e-4c7e-9a59-1c1b6d0a8e21`;
  const role = opts.role ?? "contributor";
  seed.principals = [
    ...(seed.principals ?? []),
    { clientId: principal.clientId, objectId: principal.objectId, certificatePem: principal.certificatePem },
  ];
  if (role === "least-privilege") {
    seed.roleDefinitions = [
      ...(seed.roleDefinitions ?? []),
      {
        id: customRoleId,
        roleName: "spot-restarter-test",
        actions: [...(opts.actions ?? LEAST_PRIVILEGE_ACTIONS)],
        assignableScopes: groupScopes,
      },
    ];
  }
  if (role !== "none") {
    const roleDefinitionId =
      role === "least-privilege"
        ? customRoleId
        : `/subscriptions/${seed.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${role === "reader" ? READER_ROLE_ID : CONTRIBUTOR_ROLE_ID}`;
    seed.roleAssignments = [
      ...(seed.roleAssignments ?? []),
      ...groupScopes.map((groupScope) => ({
        principalId: principal.objectId,
        roleDefinitionId,
        scope: groupScope,
      })),
    ];
  }
  const emulator = await startEmulator(seed, { port: opts.port ?? 0 });
  trustEmulatorCa(emulator.caCertPem);
  return {
    emulator,
    principal,
    control: emulatorControl(emulator.armEndpoint),
    credential: emulatorCredential(emulator, principal),
    resourceGroup,
  };
}
