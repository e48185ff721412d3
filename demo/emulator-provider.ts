// Pulumi mocks that act like the real providers, against the emulator: what `pulumi up` would do in
// Azure, done in the emulator. azuread resources become a registered application + service principal
// (through the control API: the emulator has no Microsoft Graph), azure-native resources become the
// very ARM requests the provider sends (role definition PUT, role assignment PUT, tags PATCH Merge),
// made as a deployer principal that holds only the README's rights at the resource group. tls resources get real key
// material (delegated to the program tests' mocks, which use @peculiar/x509).
//
// `mutations` plant one deliberate bug each, to prove the end-to-end test notices it.
import { randomUUID } from "node:crypto";
import type { MockCallArgs, MockResourceArgs, MockResourceResult, Mocks } from "@pulumi/pulumi/runtime";
import { createProgramMocks } from "../support/pulumi-mocks";

/** A bug planted on purpose: the e2e test must fail the chain for each one. */
export interface Mutations {
  /** Assign the role to the application's object id instead of the service principal's. */
  readonly roleAssignee?: "application";
  /** Assign the role at this scope instead of the program's (e.g. another resource group). */
  readonly roleScope?: string;
  /** Tag the VMs with this tag name instead of the program's. */
  readonly tagName?: string;
  /** Do not wait where the program asks to (time.Sleep): a custom role is assigned before it replicated. */
  readonly skipWaits?: boolean;
}

/**
 * The demo runs the program's waits (time.Sleep) at this fraction of their length: the emulator's replication
 * delays are seconds (seed `timing.roleDefinitionReplicationSeconds`), Azure's a minute or more.
 */
export const DEMO_TIME_SCALE = 1 / 30;

/** Go's time.ParseDuration for the forms a program writes ("60s", "1m30s", "500ms"), in milliseconds. */
export function goDurationMs(duration: string): number {
  const unit: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 0.001,
    µs: 0.001,
    ns: 1e-6,
  };
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== duration) {
    throw new Error(`not a Go duration: ${JSON.stringify(duration)}`);
  }
  return parts.reduce((total, [, amount, name]) => total + Number(amount) * (unit[name ?? ""] ?? 0), 0);
}

export interface ArmSession {
  readonly armEndpoint: string;
  readonly tenantId: string;
  readonly subscriptionId: string;
  /** The deploying identity (`az login` in real life). */
  readonly deployer: { readonly clientId: string; readonly objectId: string };
  /** A bearer token of the deployer for ARM. */
  token(): Promise<string>;
}

export interface ControlApi {
  addPrincipal(principal: {
    clientId: string;
    objectId: string;
    certificatePem: string;
    displayName?: string;
  }): Promise<unknown>;
  addRoleAssignment(assignment: {
    principalId: string;
    roleDefinitionId: string;
    scope: string;
    principalType?: string;
  }): Promise<unknown>;
}

/** What the provider did, without secrets: for the harness's report and the tests' assertions. */
export interface AppliedResource {
  readonly type: string;
  readonly name: string;
  readonly id: string;
  /** What was done in the emulator, in words ("PUT …roleAssignments/…", "registered principal …"). */
  readonly action: string;
}

export class ArmRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

const API = {
  compute: "2024-11-01",
  authorization: "2022-04-01",
  tags: "2021-04-01",
} as const;

// How the mock monitor hands a secret input over (see support/pulumi-mocks.ts).
const SPECIAL_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function unwrapSecrets(value: unknown): unknown {
  if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    if (record[SPECIAL_SIG_KEY] === SECRET_SIG) return unwrapSecrets(record.value);
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

/** A promise plus its resolver, keyed by something that becomes known later. */
class Rendezvous<T> {
  private readonly waiting = new Map<string, { promise: Promise<T>; resolve: (value: T) => void }>();
  private entry(key: string) {
    let found = this.waiting.get(key.toLowerCase());
    if (!found) {
      let resolve!: (value: T) => void;
      const promise = new Promise<T>((r) => {
        resolve = r;
      });
      found = { promise, resolve };
      this.waiting.set(key.toLowerCase(), found);
    }
    return found;
  }
  set(key: string, value: T): void {
    this.entry(key).resolve(value);
  }
  get(key: string, timeoutMs = 30_000): Promise<T> {
    const { promise } = this.entry(key);
    return Promise.race([
      promise,
      new Promise<T>((_, reject) =>
        setTimeout(
          () => reject(new Error(`emulator provider: nothing registered for ${key}`)),
          timeoutMs,
        ).unref(),
      ),
    ]);
  }
}

export class EmulatorProvider {
  readonly applied: AppliedResource[] = [];
  /** Application object id -> client id. */
  private readonly applications = new Map<string, { clientId: string; displayName: string }>();
  /** Client id -> service principal object id (resolves when the SP is created). */
  private readonly servicePrincipals = new Rendezvous<string>();
  /** Service principal object id -> client id. */
  private readonly clientIdOfServicePrincipal = new Map<string, string>();
  /** Service principal object id -> resolves once its certificate is registered in Entra. */
  private readonly registered = new Rendezvous<true>();
  private readonly keyMaterial = createProgramMocks().mocks;

  constructor(
    private readonly arm: ArmSession,
    private readonly control: ControlApi,
    private readonly mutations: Mutations = {},
  ) {}

  get mocks(): Mocks {
    return {
      call: (args) => this.call(args),
      newResource: (args) => this.newResource(args),
    };
  }

  /** The application object id behind a service principal (for the "wrong object id" mutation). */
  applicationObjectIdOf(clientId: string): string | undefined {
    for (const [objectId, app] of this.applications) if (app.clientId === clientId) return objectId;
    return undefined;
  }

  private async call(args: MockCallArgs): Promise<Record<string, unknown>> {
    const { tenantId, subscriptionId, deployer } = this.arm;
    switch (args.token) {
      case "azuread:index/getClientConfig:getClientConfig":
        return {
          tenantId,
          objectId: deployer.objectId,
          clientId: deployer.clientId,
          id: "clientConfigs/emulator",
        };
      case "azure-native:authorization:getClientConfig":
        return { tenantId, subscriptionId, objectId: deployer.objectId, clientId: deployer.clientId };
      case "azure-native:compute:getVirtualMachine": {
        const { resourceGroupName, vmName } = args.inputs as { resourceGroupName: string; vmName: string };
        const path = `/subscriptions/${subscriptionId}/resourceGroups/${encodeURIComponent(resourceGroupName)}/providers/Microsoft.Compute/virtualMachines/${encodeURIComponent(vmName)}`;
        try {
          const vm = (await this.request("GET", path, API.compute)) as {
            id: string;
            name: string;
            location: string;
            tags?: Record<string, string>;
            properties: Record<string, unknown>;
          };
          return {
            id: vm.id,
            name: vm.name,
            location: vm.location,
            tags: vm.tags ?? {},
            priority: vm.properties.priority,
            evictionPolicy: vm.properties.evictionPolicy,
            billingProfile: vm.properties.billingProfile,
            azureApiVersion: API.compute,
          };
        } catch (error) {
          // The SDK rethrows a failed invoke as new Error(details) (components/README.md).
          const details =
            error instanceof ArmRequestError ? `${error.code}: ${error.message}` : String(error);
          throw Object.assign(new Error(details), { details });
        }
      }
      default:
        throw new Error(`emulator provider: unexpected invoke ${args.token}`);
    }
  }

  private async newResource(args: MockResourceArgs): Promise<MockResourceResult> {
    const inputs = unwrapSecrets(args.inputs) as Record<string, unknown>;
    const result = await this.create(args, inputs);
    if (args.custom && result.id) {
      this.applied.push({ type: args.type, name: args.name, id: result.id, action: result.action });
    }
    return { id: result.id, state: result.state };
  }

  private async create(
    args: MockResourceArgs,
    inputs: Record<string, unknown>,
  ): Promise<{ id: string | undefined; state: Record<string, unknown>; action: string }> {
    switch (args.type) {
      case "azuread:index/application:Application": {
        // Graph assigns both ids; the app is usable only once it has a service principal and a credential.
        const objectId = randomUUID();
        const clientId = randomUUID();
        this.applications.set(objectId, { clientId, displayName: String(inputs.displayName ?? args.name) });
        return {
          id: `/applications/${objectId}`,
          state: { ...inputs, objectId, clientId },
          action: `application ${clientId} (object ${objectId})`,
        };
      }
      case "azuread:index/servicePrincipal:ServicePrincipal": {
        const objectId = randomUUID();
        this.servicePrincipals.set(String(inputs.clientId), objectId);
        this.clientIdOfServicePrincipal.set(objectId, String(inputs.clientId));
        return {
          id: `/servicePrincipals/${objectId}`,
          state: { ...inputs, objectId },
          action: `service principal ${objectId} for application ${inputs.clientId}`,
        };
      }
      case "azuread:index/applicationCertificate:ApplicationCertificate": {
        const applicationObjectId = String(inputs.applicationId).replace(/^\/applications\//, "");
        const application = this.applications.get(applicationObjectId);
        if (!application) throw new Error(`emulator provider: no application ${inputs.applicationId}`);
        const objectId = await this.servicePrincipals.get(application.clientId);
        // The emulator's Entra keeps application + service principal as one principal, keyed by client id,
        // with the service principal's object id (what tokens carry as `oid` and RBAC matches).
        await this.control.addPrincipal({
          clientId: application.clientId,
          objectId,
          certificatePem: String(inputs.value),
          displayName: application.displayName,
        });
        this.registered.set(objectId, true);
        const keyId = randomUUID();
        return {
          id: `${inputs.applicationId}/certificates/${keyId}`,
          state: { ...inputs, keyId },
          action: `certificate registered on application ${application.clientId}`,
        };
      }
      case "tls:index/privateKey:PrivateKey":
      case "tls:index/selfSignedCert:SelfSignedCert": {
        const made = await this.keyMaterial.newResource(args);
        return {
          id: made.id,
          state: made.state as Record<string, unknown>,
          action: args.type.endsWith("PrivateKey") ? "RSA key generated" : "self-signed certificate issued",
        };
      }
      case "azure-native:authorization:RoleDefinition": {
        const scope = String(inputs.scope);
        const path = `${scope}/providers/Microsoft.Authorization/roleDefinitions/${inputs.roleDefinitionId}`;
        const body = await this.request("PUT", path, API.authorization, {
          properties: {
            roleName: inputs.roleName,
            description: inputs.description,
            // azure-native sends `roleType` as properties.type.
            type: inputs.roleType,
            permissions: inputs.permissions,
            assignableScopes: inputs.assignableScopes,
          },
        });
        return {
          id: String((body as { id: string }).id),
          state: { ...inputs, name: inputs.roleDefinitionId },
          action: `PUT ${path}`,
        };
      }
      case "time:index/sleep:Sleep": {
        // The program waits for a new custom role to replicate before assigning it (the emulator models the
        // delay: timing.roleDefinitionReplicationSeconds); the inputs are checked as the provider would.
        const made = await this.keyMaterial.newResource(args);
        const createDuration = inputs.createDuration === undefined ? "0s" : String(inputs.createDuration);
        const waitMs = this.mutations.skipWaits
          ? 0
          : Math.round(goDurationMs(createDuration) * DEMO_TIME_SCALE);
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        return {
          id: String(made.id),
          state: made.state as Record<string, unknown>,
          action: `waited ${waitMs} ms (${createDuration} at the demo's time scale) for the role definition to replicate`,
        };
      }
      case "azure-native:authorization:RoleAssignment":
        return this.createRoleAssignment(inputs);
      case "azure-native:resources:TagAtScope": {
        const scope = String(inputs.scope);
        const declared = (inputs.properties as { tags: Record<string, string> }).tags;
        const tags = this.mutations.tagName
          ? Object.fromEntries(
              Object.values(declared).map((value) => [this.mutations.tagName as string, value]),
            )
          : declared;
        const path = `${scope}/providers/Microsoft.Resources/tags/default`;
        // azure-native >= 3.28 (PR #4690): create/update is PATCH operation Merge, never a PUT of the whole set.
        await this.request("PATCH", path, API.tags, { operation: "Merge", properties: { tags } });
        return {
          id: path,
          state: { ...inputs, name: "default" },
          action: `PATCH ${path} Merge ${Object.keys(tags).join(",")}`,
        };
      }
      default:
        if (args.type.startsWith("pulumi:providers:"))
          return { id: args.name, state: inputs, action: "provider" };
        if (args.custom)
          throw new Error(`emulator provider: unexpected resource type ${args.type} (${args.name})`);
        return { id: undefined, state: inputs, action: "component" };
    }
  }

  private async createRoleAssignment(
    inputs: Record<string, unknown>,
  ): Promise<{ id: string; state: Record<string, unknown>; action: string }> {
    const servicePrincipalObjectId = String(inputs.principalId);
    // In Azure a fresh service principal is assignable at once (principalType skips the directory
    // lookup); the emulator looks it up, so wait until the certificate step registered it.
    await this.registered.get(servicePrincipalObjectId);
    let principalId = servicePrincipalObjectId;
    if (this.mutations.roleAssignee === "application") {
      const clientId = this.clientIdOfServicePrincipal.get(servicePrincipalObjectId);
      principalId = (clientId && this.applicationObjectIdOf(clientId)) || principalId;
    }
    const scope = this.mutations.roleScope ?? String(inputs.scope);
    const name = randomUUID();
    const properties = {
      roleDefinitionId: inputs.roleDefinitionId,
      principalId,
      principalType: inputs.principalType,
      description: inputs.description,
    };
    const path = `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`;
    // The planted bug goes through ARM like the real thing: with principalType set, ARM accepts the
    // application's object id without looking it up, and the role then grants the runtime nothing.
    const body = await this.request("PUT", path, API.authorization, { properties });
    return {
      id: String((body as { id: string }).id),
      state: { ...inputs, principalId, scope, name },
      action:
        principalId === servicePrincipalObjectId
          ? `PUT ${path}`
          : `PUT ${path} to ${principalId} (planted bug: the application's object id)`,
    };
  }

  /** One ARM request as the deployer; throws ArmRequestError with ARM's code and message. */
  private async request(method: string, path: string, apiVersion: string, body?: unknown): Promise<unknown> {
    const url = new URL(path, this.arm.armEndpoint);
    url.searchParams.set("api-version", apiVersion);
    const response = await fetch(url, {
      method,
      headers: {
        Authorization: `Bearer ${await this.arm.token()}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      const error = (parsed.error ?? {}) as { code?: string; message?: string };
      throw new ArmRequestError(
        `${method} ${path}: HTTP ${response.status} ${error.message ?? text}`,
        response.status,
        error.code ?? `Http${response.status}`,
      );
    }
    return parsed;
  }
}
