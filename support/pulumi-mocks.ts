// Pulumi mocks for the program's tests: they record every resource, answer exactly the invokes the
// program uses (anything else throws), and make REAL key material, so the combined PEM the stack exports
// can be parsed and checked like the real thing.
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomInt,
  randomUUID,
  webcrypto,
} from "node:crypto";
import "reflect-metadata"; // @peculiar/x509 needs a Reflect polyfill (its README)
import * as x509 from "@peculiar/x509";
import type * as pulumi from "@pulumi/pulumi";
import type { MockCallArgs, MockResourceArgs, MockResourceResult } from "@pulumi/pulumi/runtime";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const TENANT_ID = "11111111-1111-4111-8111-111111111111";
export const SUBSCRIPTION_ID = "22222222-2222-4222-8222-222222222222";
export const DEPLOYER_OBJECT_ID = "33333333-3333-4333-8333-333333333333";

export interface MockVm {
  /** Default: SUBSCRIPTION_ID (the default provider's). */
  readonly subscriptionId?: string;
  readonly resourceGroup: string;
  readonly name: string;
  /** Default Spot; `null`: the answer has no `priority` (a VM created without one, Regular). */
  readonly priority?: "Spot" | "SpotPlus" | "Regular" | "Low" | null;
  /** Default Deallocate; `null`: the answer has no `evictionPolicy` (Azure's default, Deallocate). */
  readonly evictionPolicy?: "Deallocate" | "Delete" | null;
}

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  /** Inputs with secrets unwrapped; `secretInputs` names the top-level ones that arrived as secrets. */
  readonly inputs: Record<string, unknown>;
  readonly secretInputs: readonly string[];
  readonly id: string;
  readonly state: Record<string, unknown>;
  /** The explicit provider's reference (`<urn>::<id>`), when the resource names one. */
  readonly provider?: string;
}

export interface ProgramMocks {
  readonly mocks: pulumi.runtime.Mocks;
  readonly resources: RecordedResource[];
  readonly calls: MockCallArgs[];
  /** The VMs `compute.getVirtualMachine` knows; tests add to it. */
  readonly vms: MockVm[];
  /** Tenant the azure-native provider reports (azuread always reports TENANT_ID). */
  armTenantId: string;
  /** Subscription the azure-native provider reports. */
  armSubscriptionId: string;
  /** Custom role names in the tenant (role name -> role definition id), as ARM keeps them unique. */
  readonly tenantRoleNames: Map<string, string>;
}

export function vmId(resourceGroup: string, name: string, subscriptionId = SUBSCRIPTION_ID): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`;
}

/** An explicit provider's subscription, from the `provider` reference (`<urn>::<id>`) an invoke names. */
function providerSubscription(recorded: ProgramMocks, reference: string | undefined): string | undefined {
  if (!reference) return undefined;
  const urn = reference.slice(0, reference.lastIndexOf("::"));
  const name = urn.slice(urn.lastIndexOf("::") + 2);
  const provider = recorded.resources.find(
    (resource) => resource.type === "pulumi:providers:azure-native" && resource.name === name,
  );
  if (!provider) throw new Error(`mock: invoke names unknown provider ${reference}`);
  return String(provider.inputs.subscriptionId);
}

// terraform-provider-tls allowed_uses -> X.509 bits (internal/provider/common_cert.go).
const KEY_USAGES: Record<string, x509.KeyUsageFlags> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  content_commitment: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
};
const EXTENDED_KEY_USAGES: Record<string, string> = {
  server_auth: x509.ExtendedKeyUsage.serverAuth,
  client_auth: x509.ExtendedKeyUsage.clientAuth,
  code_signing: x509.ExtendedKeyUsage.codeSigning,
  email_protection: x509.ExtendedKeyUsage.emailProtection,
};

function privateKeyState(inputs: Record<string, unknown>): Record<string, unknown> {
  if (inputs.algorithm !== "RSA")
    throw new Error(`mock tls.PrivateKey supports RSA only, got ${inputs.algorithm}`);
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: Number(inputs.rsaBits ?? 2048),
  });
  return {
    ...inputs,
    // Like the provider: privateKeyPem is PKCS#1 for RSA, privateKeyPemPkcs8 is PKCS#8.
    privateKeyPem: privateKey.export({ type: "pkcs1", format: "pem" }),
    privateKeyPemPkcs8: privateKey.export({ type: "pkcs8", format: "pem" }),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }),
  };
}

/** The deploying machine's zone in these mocks: not UTC, as for most people running `pulumi up`. */
export const DEPLOYER_UTC_OFFSET_MINUTES = 60;

/** Go's `time.Time.MarshalText` (RFC 3339 with nanoseconds, trailing zeros trimmed) in a zone `offset` from UTC. */
export function goMarshalText(wholeSecond: Date, nanos: number, offsetMinutes: number): string {
  const local = new Date(wholeSecond.getTime() + offsetMinutes * 60_000);
  const fraction = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`;
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const zone =
    offsetMinutes === 0
      ? "Z"
      : `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  return `${local.toISOString().slice(0, 19)}${fraction}${zone}`;
}

/**
 * What azuread reads back as `end_date` after Graph stored a key credential: Graph keeps whole seconds in
 * UTC, and the provider sets `end_date` to `EndDateTime.Format(time.RFC3339)`
 * (terraform-provider-azuread internal/services/applications/application_certificate_resource.go, Read).
 * The create also validates the input as RFC 3339 (`validation.IsRFC3339Time`).
 */
export function graphEndDate(input: string): string {
  const parsed = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(input);
  if (!parsed) throw new Error(`mock azuread.ApplicationCertificate: endDate ${input} is not RFC 3339`);
  return new Date(`${parsed[1]}${parsed[3]}`).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function selfSignedCertState(inputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  const keyObject = createPrivateKey(String(inputs.privateKeyPem));
  const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const privateKey = await webcrypto.subtle.importKey(
    "pkcs8",
    keyObject.export({ type: "pkcs8", format: "der" }),
    algorithm,
    true,
    ["sign"],
  );
  const publicKey = await webcrypto.subtle.importKey(
    "spki",
    createPublicKey(keyObject).export({ type: "spki", format: "der" }),
    algorithm,
    true,
    ["verify"],
  );
  const uses = (inputs.allowedUses as string[]) ?? [];
  const unknown = uses.filter((use) => !(use in KEY_USAGES) && !(use in EXTENDED_KEY_USAGES));
  if (unknown.length > 0)
    throw new Error(`mock tls.SelfSignedCert: unknown allowedUses ${unknown.join(", ")}`);
  const keyUsage = uses.reduce((bits, use) => bits | (KEY_USAGES[use] ?? 0), 0);
  const extendedKeyUsage = uses.flatMap((use) =>
    use in EXTENDED_KEY_USAGES ? [EXTENDED_KEY_USAGES[use]] : [],
  );
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true)];
  if (keyUsage !== 0) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  if (extendedKeyUsage.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(extendedKeyUsage));
  // The provider: NotBefore = time.Now() (nanoseconds, local zone), NotAfter = NotBefore + validity
  // (terraform-provider-tls internal/provider/common_cert.go `createCertificate`); X.509 encodes both to
  // the second, truncated (Go crypto/x509).
  const nowMs = Date.now();
  const nanosWithinSecond = (nowMs % 1000) * 1_000_000 + randomInt(1, 1_000_000);
  const notBefore = new Date(Math.floor(nowMs / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + Number(inputs.validityPeriodHours) * 3_600_000);
  const subject = (inputs.subject as { commonName?: string } | undefined)?.commonName ?? "";
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: subject ? [{ CN: [subject] }] : [],
    notBefore,
    notAfter,
    keys: { privateKey, publicKey },
    signingAlgorithm: algorithm,
    extensions,
  });
  return {
    ...inputs,
    certPem: `${certificate.toString("pem")}\n`,
    // `validity_start_time` / `validity_end_time` are Go's time.MarshalText of those times: RFC 3339 with
    // nanoseconds (trailing zeros dropped) in the deploying machine's zone, e.g. 2027-11-30T13:45:12.123456789+01:00.
    validityStartTime: goMarshalText(notBefore, nanosWithinSecond, DEPLOYER_UTC_OFFSET_MINUTES),
    validityEndTime: goMarshalText(notAfter, nanosWithinSecond, DEPLOYER_UTC_OFFSET_MINUTES),
    readyForRenewal: false,
  };
}

// How the mock monitor hands a secret input over: { [specialSigKey]: secretSig, value }.
const SPECIAL_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function isWrappedSecret(value: unknown): value is { value: unknown } {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<string, unknown>)[SPECIAL_SIG_KEY] === SECRET_SIG
  );
}

function unwrapSecrets(value: unknown): unknown {
  if (isWrappedSecret(value)) return unwrapSecrets(value.value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

async function resourceResult(args: MockResourceArgs, recorded: ProgramMocks): Promise<MockResourceResult> {
  const inputs = args.inputs as Record<string, unknown>;
  switch (args.type) {
    case "azuread:index/application:Application": {
      const objectId = randomUUID();
      return { id: `/applications/${objectId}`, state: { ...inputs, objectId, clientId: randomUUID() } };
    }
    case "azuread:index/servicePrincipal:ServicePrincipal": {
      const objectId = randomUUID();
      return { id: `/servicePrincipals/${objectId}`, state: { ...inputs, objectId } };
    }
    case "azuread:index/applicationCertificate:ApplicationCertificate": {
      const keyId = randomUUID();
      const endDate = inputs.endDate === undefined ? undefined : graphEndDate(String(inputs.endDate));
      return { id: `${inputs.applicationId}/certificates/${keyId}`, state: { ...inputs, keyId, endDate } };
    }
    case "tls:index/privateKey:PrivateKey":
      return { id: randomUUID(), state: privateKeyState(inputs) };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { id: randomUUID(), state: await selfSignedCertState(inputs) };
    case "azure-native:authorization:RoleDefinition": {
      // Role names are unique in the tenant, case-insensitively; ARM refuses a second one with 409
      // RoleDefinitionWithSameNameExists "A custom role with the same name already exists in this directory."
      // (the text az and Kong's docs quote; Azure/azure-sdk-for-net's RoleDefinitionTests assert the code).
      const id = `${inputs.scope}/providers/Microsoft.Authorization/roleDefinitions/${inputs.roleDefinitionId}`;
      const nameKey = String(inputs.roleName).toLowerCase();
      const holder = recorded.tenantRoleNames.get(nameKey);
      if (holder !== undefined && holder.split("/").at(-1) !== String(inputs.roleDefinitionId)) {
        throw new Error(
          "RoleDefinitionWithSameNameExists: A custom role with the same name already exists in this directory.",
        );
      }
      recorded.tenantRoleNames.set(nameKey, id);
      return {
        id: `${inputs.scope}/providers/Microsoft.Authorization/roleDefinitions/${inputs.roleDefinitionId}`,
        state: { ...inputs, name: inputs.roleDefinitionId },
      };
    }
    case "azure-native:authorization:RoleAssignment": {
      const name = randomUUID();
      return {
        id: `${inputs.scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
        state: { ...inputs, name },
      };
    }
    case "time:index/sleep:Sleep": {
      // terraform-provider-time (which @pulumiverse/time bridges) parses each duration with Go's
      // time.ParseDuration and refuses anything else; the id is "<create>,<destroy>" (its import format).
      for (const key of ["createDuration", "destroyDuration"]) {
        const value = inputs[key];
        if (value !== undefined && !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(String(value))) {
          throw new Error(`time: ${key} ${JSON.stringify(value)} is not a Go duration (e.g. "60s", "1m30s")`);
        }
      }
      return {
        id: `${inputs.createDuration ?? ""},${inputs.destroyDuration ?? ""}`,
        state: { ...inputs },
      };
    }
    case "pulumi:providers:azure-native":
      // An explicit provider for another subscription: nothing in Azure, its inputs are its configuration.
      return { id: randomUUID(), state: { ...inputs } };
    case "azure-native:resources:TagAtScope":
      return {
        id: `${inputs.scope}/providers/Microsoft.Resources/tags/default`,
        state: { ...inputs, name: "default" },
      };
    default:
      // Components register without an id; any other custom resource is a surprise worth failing on.
      if (args.custom) throw new Error(`mock: unexpected resource type ${args.type} (${args.name})`);
      return { id: undefined, state: inputs };
  }
}

export function createProgramMocks(vms: MockVm[] = []): ProgramMocks {
  const recorded: ProgramMocks = {
    resources: [],
    calls: [],
    vms: [...vms],
    armTenantId: TENANT_ID,
    armSubscriptionId: SUBSCRIPTION_ID,
    tenantRoleNames: new Map(),
    mocks: {
      newResource: async (args) => {
        const wrapped = args.inputs as Record<string, unknown>;
        const inputs = unwrapSecrets(wrapped) as Record<string, unknown>;
        const result = await resourceResult({ ...args, inputs }, recorded);
        if (args.custom) {
          recorded.resources.push({
            type: args.type,
            name: args.name,
            inputs,
            secretInputs: Object.keys(wrapped).filter((key) => isWrappedSecret(wrapped[key])),
            id: result.id ?? "",
            state: result.state,
            ...(args.provider ? { provider: args.provider } : {}),
          });
        }
        return result;
      },
      call: (args) => {
        recorded.calls.push(args);
        switch (args.token) {
          case "azuread:index/getClientConfig:getClientConfig":
            return {
              tenantId: TENANT_ID,
              objectId: DEPLOYER_OBJECT_ID,
              clientId: randomUUID(),
              id: "clientConfigs/x",
            };
          case "azure-native:authorization:getClientConfig":
            return {
              tenantId: recorded.armTenantId,
              subscriptionId: recorded.armSubscriptionId,
              objectId: DEPLOYER_OBJECT_ID,
              clientId: randomUUID(),
            };
          case "azure-native:compute:getVirtualMachine": {
            const { resourceGroupName, vmName } = args.inputs as {
              resourceGroupName: string;
              vmName: string;
            };
            // The provider's subscription decides where the VM is read (an explicit one for another subscription).
            const subscriptionId =
              providerSubscription(recorded, args.provider) ?? recorded.armSubscriptionId;
            const vm = recorded.vms.find(
              (candidate) =>
                (candidate.subscriptionId ?? SUBSCRIPTION_ID).toLowerCase() ===
                  subscriptionId.toLowerCase() &&
                candidate.resourceGroup.toLowerCase() === resourceGroupName.toLowerCase() &&
                candidate.name.toLowerCase() === vmName.toLowerCase(),
            );
            if (!vm) {
              // The provider's text for ARM's 404. The SDK rethrows a failed invoke as new Error(grpcError.details),
              // so the text goes in `details` as the engine would send it.
              const details = `ResourceNotFound: The Resource 'Microsoft.Compute/virtualMachines/${vmName}' under resource group '${resourceGroupName}' was not found.`;
              throw Object.assign(new Error(details), { details });
            }
            return {
              id: vmId(vm.resourceGroup, vm.name, vm.subscriptionId),
              name: vm.name,
              location: "eastus",
              ...(vm.priority === null ? {} : { priority: vm.priority ?? "Spot" }),
              ...(vm.evictionPolicy === null ? {} : { evictionPolicy: vm.evictionPolicy ?? "Deallocate" }),
              billingProfile: { maxPrice: -1 },
              tags: { owner: "someone-else" },
              azureApiVersion: "2024-11-01",
            };
          }
          default:
            throw new Error(`mock: unexpected invoke ${args.token} ${JSON.stringify(args.inputs)}`);
        }
      },
    },
  };
  return recorded;
}

/** Resolves an Output (rejecting if it failed). */
export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // biome-ignore lint/suspicious/noExplicitAny: Output.promise is internal but stable; apply() swallows rejections.
    (output as any).promise().then(resolve, reject);
  });
}

export function findResource(mocks: ProgramMocks, type: string, name: string): RecordedResource {
  const found = mocks.resources.filter((resource) => resource.type === type && resource.name === name);
  if (found.length !== 1) {
    const known = mocks.resources.map((resource) => `${resource.type}::${resource.name}`).join("\n  ");
    throw new Error(`expected one ${type} named ${name}, found ${found.length}; recorded:\n  ${known}`);
  }
  return found[0];
}

export function resourcesOfType(mocks: ProgramMocks, type: string, namePrefix = ""): RecordedResource[] {
  return mocks.resources.filter((resource) => resource.type === type && resource.name.startsWith(namePrefix));
}
