// The components under Pulumi mocks: what gets created, with which inputs, under which parent.
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
// Components create nothing at import time, so a static import before setMocks is safe.
import { buildSpotRestarter, restartTagResourceName } from "../../components/SpotRestarter";
import { parseConfig, type SpotRestarterConfig } from "../../config";
import {
  createProgramMocks,
  findResource,
  type ProgramMocks,
  promiseOf,
  type RecordedResource,
  resourcesOfType,
  SUBSCRIPTION_ID,
  TENANT_ID,
  vmId,
} from "../../support/pulumi-mocks";

type Built = ReturnType<typeof buildSpotRestarter>;

const T = {
  application: "azuread:index/application:Application",
  servicePrincipal: "azuread:index/servicePrincipal:ServicePrincipal",
  applicationCertificate: "azuread:index/applicationCertificate:ApplicationCertificate",
  privateKey: "tls:index/privateKey:PrivateKey",
  selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
  roleDefinition: "azure-native:authorization:RoleDefinition",
  roleAssignment: "azure-native:authorization:RoleAssignment",
  tagAtScope: "azure-native:resources:TagAtScope",
  sleep: "time:index/sleep:Sleep",
} as const;

const RG = "personal-network";
const RG_SCOPE = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/${RG}`;
const CONTRIBUTOR = `/subscriptions/${SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c`;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const baseConfig: SpotRestarterConfig = {
  resourceGroupName: RG,
  restartableVms: [],
  roleMode: "contributor",
  certificateValidityDays: 365,
  certificateRenewalDays: 30,
  principalName: "spot-restarter-test",
  notifications: [],
  fallbackSizes: {},
  fallbackAfterSeconds: 600,
  allowSimulateEviction: false,
};

let mocks: ProgramMocks;

/** Waits until every registration the program started has been answered by the mocks. */
async function settled(): Promise<void> {
  // biome-ignore lint/suspicious/noExplicitAny: waitForRPCs is exported at runtime but marked @internal.
  await (pulumi.runtime as any).waitForRPCs();
}

async function build(name: string, config: Partial<SpotRestarterConfig>): Promise<Built> {
  const built = buildSpotRestarter({ ...baseConfig, ...config }, { name, stack: "test" });
  await Promise.all([
    promiseOf(built.certificatePem),
    promiseOf(built.restartableVms),
    promiseOf(built.resourceGroupName),
    promiseOf(built.tenantId),
  ]);
  await settled();
  return built;
}

const byPrefix = (type: string, prefix: string): RecordedResource[] =>
  resourcesOfType(mocks, type, `${prefix}-`);

before(async () => {
  mocks = createProgramMocks([
    { resourceGroup: RG, name: "ubuntu-backup-server-spot" },
    { resourceGroup: RG, name: "build_box.2" },
  ]);
  await pulumi.runtime.setMocks(mocks.mocks, "spot-restarter", "test", false);
});

describe("contributor mode with two VMs", () => {
  let built: Built;
  before(async () => {
    built = await build("c", { restartableVms: ["ubuntu-backup-server-spot", "build_box.2"] });
  });

  it("assigns Contributor on exactly the resource group to the service principal's object id", () => {
    const assignment = findResource(mocks, T.roleAssignment, "c-access-assignment");
    const sp = findResource(mocks, T.servicePrincipal, "c-principal-sp");
    const app = findResource(mocks, T.application, "c-principal-app");
    assert.equal(assignment.inputs.scope, RG_SCOPE);
    assert.equal(assignment.inputs.principalId, sp.state.objectId);
    assert.notEqual(assignment.inputs.principalId, app.state.objectId);
    assert.notEqual(assignment.inputs.principalId, app.state.clientId);
    assert.equal(assignment.inputs.principalType, "ServicePrincipal");
    assert.equal(assignment.inputs.roleDefinitionId, CONTRIBUTOR);
    assert.deepEqual(byPrefix(T.roleDefinition, "c"), [], "no custom role in contributor mode");
    assert.deepEqual(byPrefix(T.sleep, "c"), [], "a built-in role needs no replication wait");
  });

  it("tags each configured VM once, scope = the VM's id, exactly our tag", () => {
    const tags = byPrefix(T.tagAtScope, "c");
    assert.equal(tags.length, 2);
    for (const vm of ["ubuntu-backup-server-spot", "build_box.2"]) {
      const tag = findResource(mocks, T.tagAtScope, `c-tag-${vm}-tags`);
      assert.equal(tag.inputs.scope, vmId(RG, vm));
      assert.deepEqual(tag.inputs.properties, { tags: { AttemptRestartAfterEviction: "true" } });
    }
  });

  it("looks each VM up with compute.getVirtualMachine", () => {
    const lookups = mocks.calls
      .filter((call) => call.token === "azure-native:compute:getVirtualMachine")
      .map((call) => call.inputs);
    for (const vmName of ["ubuntu-backup-server-spot", "build_box.2"]) {
      assert.ok(
        lookups.some((inputs) => inputs.resourceGroupName === RG && inputs.vmName === vmName),
        vmName,
      );
    }
  });

  it("makes an Entra application and its service principal", () => {
    const app = findResource(mocks, T.application, "c-principal-app");
    const sp = findResource(mocks, T.servicePrincipal, "c-principal-sp");
    assert.equal(app.inputs.displayName, "spot-restarter-test");
    assert.equal(sp.inputs.clientId, app.state.clientId);
  });

  it("issues an RSA key and a client-auth certificate with the configured validity and renewal", () => {
    const key = findResource(mocks, T.privateKey, "c-principal-key");
    assert.equal(key.inputs.algorithm, "RSA");
    const cert = findResource(mocks, T.selfSignedCert, "c-principal-cert");
    assert.equal(cert.inputs.validityPeriodHours, 365 * 24);
    assert.equal(cert.inputs.earlyRenewalHours, 30 * 24);
    assert.ok((cert.inputs.allowedUses as string[]).includes("client_auth"));
    assert.deepEqual(
      cert.secretInputs,
      ["privateKeyPem"],
      "the key reaches the certificate only as a secret",
    );
  });

  it("registers the certificate with the application: AsymmetricX509Cert, PEM, end date = validity end", () => {
    const app = findResource(mocks, T.application, "c-principal-app");
    const cert = findResource(mocks, T.selfSignedCert, "c-principal-cert");
    const credential = findResource(mocks, T.applicationCertificate, "c-principal-app-cert");
    assert.equal(credential.inputs.applicationId, app.id);
    assert.match(String(credential.inputs.applicationId), /^\/applications\//);
    assert.equal(credential.inputs.type, "AsymmetricX509Cert");
    assert.equal(credential.inputs.encoding, "pem");
    assert.equal(credential.inputs.value, cert.state.certPem);
    // The certificate's end, as Graph keeps it: whole seconds, UTC (the tls provider reports nanoseconds in
    // the deployer's zone).
    assert.equal(
      new Date(String(credential.inputs.endDate)).getTime(),
      Math.floor(new Date(String(cert.state.validityEndTime)).getTime() / 1000) * 1000,
    );
  });

  it("gives the credential the end date azuread reads back, so the next `pulumi up` does not replace it", () => {
    // azuread's end_date forces replacement (terraform-provider-azuread#1097): the input must equal what the
    // provider reads back from Graph, or every `pulumi up` re-creates the credential.
    const cert = findResource(mocks, T.selfSignedCert, "c-principal-cert");
    assert.match(String(cert.state.validityEndTime), /\.\d+\+01:00$/, "the tls provider's own format");
    const credential = findResource(mocks, T.applicationCertificate, "c-principal-app-cert");
    assert.equal(credential.inputs.endDate, credential.state.endDate);
    assert.match(String(credential.inputs.endDate), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  });

  it("exports certificatePem as a secret: the certificate, then its PKCS#8 private key", async () => {
    assert.equal(await pulumi.isSecret(built.certificatePem), true);
    const pem = await promiseOf(built.certificatePem);
    const blocks = [...pem.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((match) => match[1]);
    assert.deepEqual(blocks, ["CERTIFICATE", "PRIVATE KEY"]);
    const certificate = new X509Certificate(pem);
    const privateKey = createPrivateKey(pem);
    assert.equal(privateKey.asymmetricKeyType, "rsa");
    assert.ok(certificate.checkPrivateKey(privateKey), "the key belongs to the certificate");
    assert.equal(
      createPublicKey(privateKey).export({ type: "spki", format: "pem" }),
      certificate.publicKey.export({ type: "spki", format: "pem" }),
    );
    assert.ok(certificate.keyUsage?.includes("1.3.6.1.5.5.7.3.2"), "extended key usage clientAuth");
    const lifetimeMs = new Date(certificate.validTo).getTime() - new Date(certificate.validFrom).getTime();
    assert.equal(lifetimeMs, 365 * 24 * 3_600_000);
    // The exported expiry and the Entra credential's end date are the certificate's own notAfter.
    const expiresOn = await promiseOf(built.certificateExpiresOn);
    assert.equal(new Date(expiresOn).getTime(), new Date(certificate.validTo).getTime());
    const credential = findResource(mocks, T.applicationCertificate, "c-principal-app-cert");
    assert.equal(credential.inputs.endDate, expiresOn);
  });

  it("exports the ids from the right places", async () => {
    const app = findResource(mocks, T.application, "c-principal-app");
    assert.equal(await promiseOf(built.tenantId), TENANT_ID);
    assert.equal(await promiseOf(built.subscriptionId), SUBSCRIPTION_ID);
    assert.equal(await promiseOf(built.clientId), app.state.clientId);
    assert.equal(await promiseOf(built.resourceGroupName), RG);
    assert.deepEqual(await promiseOf(built.restartTag), {
      name: "AttemptRestartAfterEviction",
      value: "true",
    });
    assert.deepEqual(await promiseOf(built.restartableVms), ["ubuntu-backup-server-spot", "build_box.2"]);
    assert.equal(
      await promiseOf(built.installCommand),
      "pulumi stack output --stack test --json --show-secrets | ssh HOST sudo ./spot-restarter install --stack-outputs -",
    );
  });

  it("parents every child to its component and names it from the component's name", () => {
    // The mock monitor's URNs carry the parent's type: urn:pulumi:<stack>::<project>::<ParentType>$<Type>::<name>.
    const urns = [
      ...(pulumi.runtime.getMonitor() as unknown as { resources: Map<string, unknown> }).resources.keys(),
    ];
    const entries = urns
      .map((urn) => urn.split("::"))
      .map(([, , types, name]) => {
        const chain = types.split("$");
        return { parentType: chain.length > 1 ? chain[0] : undefined, type: chain.at(-1), name };
      })
      .filter((entry) => entry.name === "c" || entry.name.startsWith("c-"));
    const expected: Record<string, [parentType: string | undefined, namePrefix: string]> = {
      "spot-restarter:index:SpotRestarter": [undefined, "c"],
      "spot-restarter:identity:RestartPrincipal": ["spot-restarter:index:SpotRestarter", "c-"],
      "spot-restarter:access:ResourceGroupAccess": ["spot-restarter:index:SpotRestarter", "c-"],
      "spot-restarter:tags:RestartTag": ["spot-restarter:index:SpotRestarter", "c-"],
      [T.application]: ["spot-restarter:identity:RestartPrincipal", "c-principal-"],
      [T.servicePrincipal]: ["spot-restarter:identity:RestartPrincipal", "c-principal-"],
      [T.applicationCertificate]: ["spot-restarter:identity:RestartPrincipal", "c-principal-"],
      [T.privateKey]: ["spot-restarter:identity:RestartPrincipal", "c-principal-"],
      [T.selfSignedCert]: ["spot-restarter:identity:RestartPrincipal", "c-principal-"],
      [T.roleAssignment]: ["spot-restarter:access:ResourceGroupAccess", "c-access-"],
      [T.tagAtScope]: ["spot-restarter:tags:RestartTag", "c-tag-"],
    };
    assert.equal(
      entries.length,
      5 + 5 + 1 + 2, // 5 components, 5 identity, 1 assignment, 2 tags
      entries.map((e) => `${e.type}::${e.name}`).join("\n"),
    );
    for (const entry of entries) {
      const rule = expected[entry.type ?? ""];
      assert.ok(rule, `unexpected resource ${entry.type}::${entry.name}`);
      assert.equal(entry.parentType, rule[0], `${entry.type}::${entry.name} parent`);
      assert.ok(entry.name.startsWith(rule[1]), `${entry.type}::${entry.name} is named from its parent`);
    }
    for (const vm of ["ubuntu-backup-server-spot", "build_box.2"]) {
      assert.ok(
        entries.some((e) => e.type === T.tagAtScope && e.name === `c-tag-${vm}-tags`),
        vm,
      );
    }
  });
});

describe("least-privilege mode with no VMs", () => {
  before(async () => {
    await build("lp", { roleMode: "least-privilege", restartableVms: [] });
  });

  it("defines a custom role with only the runtime's actions, assignable only at the group", () => {
    const role = findResource(mocks, T.roleDefinition, "lp-access-role");
    assert.equal(role.inputs.scope, RG_SCOPE);
    assert.deepEqual(role.inputs.assignableScopes, [RG_SCOPE]);
    assert.deepEqual(role.inputs.permissions, [
      {
        actions: [
          "Microsoft.Compute/virtualMachines/read",
          "Microsoft.Compute/virtualMachines/instanceView/read",
          "Microsoft.Compute/virtualMachines/start/action",
          // A start's status URL, …/providers/Microsoft.Compute/locations/{l}/operations/{id}, is authorized as
          // this action (taskcluster/taskcluster#8594 found their custom role needed it to poll).
          "Microsoft.Compute/locations/operations/read",
          // doctor reads its own permissions (Permissions_ListForResourceGroup).
          "Microsoft.Authorization/permissions/read",
          // Why a VM is deallocated (issue 10): Resource Health annotations and the Activity Log.
          "Microsoft.ResourceHealth/availabilityStatuses/read",
          "Microsoft.Insights/eventtypes/values/read",
          // No simulateEviction/action: without spot-restarter:allowSimulateEviction the identity cannot evict.
        ],
        notActions: [],
      },
    ]);
    assert.match(String(role.inputs.roleDefinitionId), GUID);
    assert.equal(role.inputs.roleType, "CustomRole");
  });

  it("names the role uniquely and replacement-safely: the name carries the start of its own GUID", () => {
    const role = findResource(mocks, T.roleDefinition, "lp-access-role");
    const guid = String(role.inputs.roleDefinitionId);
    assert.equal(
      role.inputs.roleName,
      `spot-restarter-test (restart Spot VMs in ${RG}) [${guid.slice(0, 8)}]`,
    );
  });

  it("assigns that role (subscription-level id) on the group to the service principal", () => {
    const role = findResource(mocks, T.roleDefinition, "lp-access-role");
    const assignment = findResource(mocks, T.roleAssignment, "lp-access-assignment");
    const sp = findResource(mocks, T.servicePrincipal, "lp-principal-sp");
    assert.equal(assignment.inputs.scope, RG_SCOPE);
    assert.equal(assignment.inputs.principalId, sp.state.objectId);
    assert.equal(assignment.inputs.principalType, "ServicePrincipal");
    assert.equal(
      assignment.inputs.roleDefinitionId,
      `/subscriptions/${SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${role.inputs.roleDefinitionId}`,
    );
  });

  it("waits 60 s for the new role to replicate before assigning it (RoleDefinitionDoesNotExist)", () => {
    const role = findResource(mocks, T.roleDefinition, "lp-access-role");
    const wait = findResource(mocks, T.sleep, "lp-access-role-replication");
    const assignment = findResource(mocks, T.roleAssignment, "lp-access-assignment");
    assert.equal(wait.inputs.createDuration, "60s");
    assert.equal(wait.inputs.destroyDuration, undefined, "nothing waits on destroy");
    // A replaced role (new GUID, new id) replaces the wait, so the new role is waited for too.
    assert.deepEqual(wait.inputs.triggers, {
      roleDefinitionId: assignment.inputs.roleDefinitionId,
      roleDefinitionResourceId: role.id,
    });
    // The assignment was sent only after the wait ended: its role id came out of it.
    const order = mocks.resources.map((resource) => resource.name);
    assert.ok(order.indexOf("lp-access-role") < order.indexOf("lp-access-role-replication"));
    assert.ok(order.indexOf("lp-access-role-replication") < order.indexOf("lp-access-assignment"));
  });

  it("creates no TagAtScope when the list is empty", () => {
    assert.deepEqual(byPrefix(T.tagAtScope, "lp"), []);
    assert.deepEqual(
      mocks.resources
        .filter((resource) => resource.name.startsWith("lp-"))
        .map((resource) => resource.type)
        .sort(),
      [
        T.application,
        T.applicationCertificate,
        T.roleAssignment,
        T.roleDefinition,
        T.sleep,
        T.selfSignedCert,
        T.servicePrincipal,
        T.privateKey,
      ].sort(),
    );
  });
});

describe("least-privilege mode with allowSimulateEviction (opt-in)", () => {
  const EVICT = "Microsoft.Compute/virtualMachines/simulateEviction/action";

  it("the role may evict only when allowSimulateEviction is true", async () => {
    await build("se", { roleMode: "least-privilege", restartableVms: [], allowSimulateEviction: true });
    const allowed = findResource(mocks, T.roleDefinition, "se-access-role");
    const actions = (allowed.inputs.permissions as { actions: string[] }[])[0]?.actions ?? [];
    assert.ok(actions.includes(EVICT));
    // Without it (the "lp" stack above): the same role less that one action.
    const without = findResource(mocks, T.roleDefinition, "lp-access-role");
    const plain = (without.inputs.permissions as { actions: string[] }[])[0]?.actions ?? [];
    assert.ok(!plain.includes(EVICT));
    assert.deepEqual(
      actions.filter((action) => action !== EVICT),
      plain,
    );
  });
});

describe("least-privilege mode with fallback sizes (opt-in)", () => {
  const RESIZE = [
    "Microsoft.Compute/virtualMachines/vmSizes/read",
    "Microsoft.Compute/virtualMachines/write",
  ];

  it("the role gains the resize actions only when some VM has fallback sizes", async () => {
    await build("fb", {
      roleMode: "least-privilege",
      restartableVms: ["build_box.2"],
      fallbackSizes: { "build_box.2": ["Standard_D2as_v5"] },
    });
    const withFallbacks = findResource(mocks, T.roleDefinition, "fb-access-role");
    const actions = (withFallbacks.inputs.permissions as { actions: string[] }[])[0]?.actions ?? [];
    for (const action of RESIZE) assert.ok(actions.includes(action), action);

    // Without fallbacks (the "lp" stack above): no write, no size listing.
    const without = findResource(mocks, T.roleDefinition, "lp-access-role");
    const plain = (without.inputs.permissions as { actions: string[] }[])[0]?.actions ?? [];
    for (const action of RESIZE) assert.ok(!plain.includes(action), action);
    assert.deepEqual(
      actions.filter((action) => !RESIZE.includes(action)),
      plain,
      "otherwise the same role",
    );
  });

  it("exports the fallback sizes as a plain (not secret) output", async () => {
    const built = await build("fb2", {
      roleMode: "contributor",
      restartableVms: ["build_box.2"],
      fallbackSizes: { "build_box.2": ["Standard_D2as_v5", "Standard_D2s_v5"] },
    });
    assert.deepEqual(await promiseOf(built.fallbackSizes), {
      "build_box.2": ["Standard_D2as_v5", "Standard_D2s_v5"],
    });
    assert.equal(await pulumi.isSecret(built.fallbackSizes), false);
  });

  it("exports fallbackAfterSeconds as a plain number, with fallbacks and (unused, like fallbackSizes' {}) without", async () => {
    const built = await build("fb3", {
      restartableVms: ["build_box.2"],
      fallbackSizes: { "build_box.2": ["Standard_D2as_v5"] },
      fallbackAfterSeconds: 120,
    });
    assert.equal(await promiseOf(built.fallbackAfterSeconds), 120);
    assert.equal(await pulumi.isSecret(built.fallbackAfterSeconds), false);
    const none = await build("fb4", { fallbackAfterSeconds: 0 });
    assert.deepEqual(await promiseOf(none.fallbackSizes), {});
    assert.equal(await promiseOf(none.fallbackAfterSeconds), 0);
  });
});

describe("custom roles across subscriptions of one tenant", () => {
  after(() => {
    mocks.armSubscriptionId = SUBSCRIPTION_ID;
  });

  it("a second stack, same principal name and group, another subscription: no RoleDefinitionWithSameNameExists", async () => {
    mocks.armSubscriptionId = "44444444-4444-4444-8444-444444444444";
    await build("lp2", { roleMode: "least-privilege", restartableVms: [] });
    const first = findResource(mocks, T.roleDefinition, "lp-access-role");
    const second = findResource(mocks, T.roleDefinition, "lp2-access-role");
    assert.notEqual(second.inputs.roleName, first.inputs.roleName);
    assert.equal(second.inputs.scope, `/subscriptions/${mocks.armSubscriptionId}/resourceGroups/${RG}`);
  });
});

describe("VM names are case-insensitive", () => {
  it("an entry's case does not change its tag resource (a new name would create ours, then delete it)", async () => {
    await build("cc", { restartableVms: ["UBUNTU-Backup-Server-Spot"] });
    const tag = findResource(mocks, T.tagAtScope, "cc-tag-ubuntu-backup-server-spot-tags");
    // The scope is the id Azure returns, in the VM's own case.
    assert.equal(tag.inputs.scope, vmId(RG, "ubuntu-backup-server-spot"));
    assert.equal(restartTagResourceName("cc", "Build-Box"), restartTagResourceName("cc", "build-box"));
  });

  it("two entries that differ only in case are refused before anything is built", () => {
    assert.throws(
      () => parseConfig({ resourceGroupName: RG, restartableVms: '["build-box","Build-Box"]' }, "test"),
      /lists "Build-Box" twice \(entries 0 and 1 name the same VM; Azure VM and resource group names are case-insensitive\)/,
    );
  });
});

describe("VMs in other groups and subscriptions of the tenant (issue 28)", () => {
  const OTHER_SUB = "55555555-5555-4555-8555-555555555555";
  const BUILD_SCOPE = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/build-rg`;
  const LAB_SCOPE = `/subscriptions/${OTHER_SUB}/resourceGroups/lab`;
  const labId = vmId("lab", "lab-1", OTHER_SUB);
  const entries = ["ubuntu-backup-server-spot", "build-rg/build-box-spot", labId];
  const provider = `mg-provider-${OTHER_SUB}`;
  let built: Built;
  before(async () => {
    mocks.vms.push(
      { resourceGroup: "build-rg", name: "build-box-spot" },
      // Only in the other subscription: read through the default provider, it would be a 404.
      { subscriptionId: OTHER_SUB, resourceGroup: "lab", name: "lab-1" },
    );
    built = await build("mg", { roleMode: "least-privilege", restartableVms: entries });
  });

  it("assigns the role on each group holding a tagged VM, to the service principal", () => {
    const sp = findResource(mocks, T.servicePrincipal, "mg-principal-sp");
    const assignments = byPrefix(T.roleAssignment, "mg");
    assert.deepEqual(
      assignments.map((a) => [a.name, a.inputs.scope]),
      [
        ["mg-access-assignment", RG_SCOPE],
        ["mg-access-assignment-build-rg", BUILD_SCOPE],
        [`mg-access-assignment-${OTHER_SUB}/lab`, LAB_SCOPE],
      ],
    );
    for (const assignment of assignments) {
      assert.equal(assignment.inputs.principalId, sp.state.objectId);
      assert.equal(assignment.inputs.principalType, "ServicePrincipal");
    }
  });

  it("the least-privilege role is assignable at exactly those groups, and each group's id names it from its subscription", () => {
    const role = findResource(mocks, T.roleDefinition, "mg-access-role");
    assert.equal(role.inputs.scope, RG_SCOPE, "created where it always was");
    assert.deepEqual(role.inputs.assignableScopes, [RG_SCOPE, BUILD_SCOPE, LAB_SCOPE]);
    const guid = String(role.inputs.roleDefinitionId);
    const inSub = (sub: string) =>
      `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
    assert.equal(
      findResource(mocks, T.roleAssignment, "mg-access-assignment-build-rg").inputs.roleDefinitionId,
      inSub(SUBSCRIPTION_ID),
    );
    assert.equal(
      findResource(mocks, T.roleAssignment, `mg-access-assignment-${OTHER_SUB}/lab`).inputs.roleDefinitionId,
      inSub(OTHER_SUB),
    );
    // Every assignment waits for the role to replicate; the wait is triggered by the group list too.
    const order = mocks.resources.map((resource) => resource.name);
    for (const name of [
      "mg-access-assignment",
      "mg-access-assignment-build-rg",
      `mg-access-assignment-${OTHER_SUB}/lab`,
    ]) {
      assert.ok(order.indexOf("mg-access-role-replication") < order.indexOf(name), name);
    }
    const wait = findResource(mocks, T.sleep, "mg-access-role-replication");
    assert.equal(
      (wait.inputs.triggers as Record<string, string>).assignableScopes,
      [RG_SCOPE, BUILD_SCOPE, LAB_SCOPE].join(","),
    );
  });

  it("tags each VM where it lives; the other subscription's VM through its own explicit provider", () => {
    assert.deepEqual(
      byPrefix(T.tagAtScope, "mg").map((tag) => [tag.name, tag.inputs.scope]),
      [
        ["mg-tag-ubuntu-backup-server-spot-tags", vmId(RG, "ubuntu-backup-server-spot")],
        ["mg-tag-build-rg/build-box-spot-tags", vmId("build-rg", "build-box-spot")],
        [`mg-tag-${OTHER_SUB}/lab/lab-1-tags`, labId],
      ],
    );
    const providers = resourcesOfType(mocks, "pulumi:providers:azure-native", "mg-");
    assert.deepEqual(
      providers.map((p) => [p.name, p.inputs.subscriptionId, p.inputs.tenantId]),
      [[provider, OTHER_SUB, TENANT_ID]],
    );
    const lookup = mocks.calls.find(
      (call) => call.token === "azure-native:compute:getVirtualMachine" && call.inputs.vmName === "lab-1",
    );
    assert.match(String(lookup?.provider), new RegExp(`::${provider}::`));
    assert.match(
      String(findResource(mocks, T.tagAtScope, `mg-tag-${OTHER_SUB}/lab/lab-1-tags`).provider),
      new RegExp(`::${provider}::`),
    );
    assert.match(
      String(findResource(mocks, T.roleAssignment, `mg-access-assignment-${OTHER_SUB}/lab`).provider),
      new RegExp(`::${provider}::`),
    );
    // The stack's own subscription needs no explicit provider.
    assert.equal(
      findResource(mocks, T.tagAtScope, "mg-tag-build-rg/build-box-spot-tags").provider,
      undefined,
    );
  });

  it("exports resourceGroups (the same scopes, as ids) and the entries as written", async () => {
    assert.deepEqual(await promiseOf(built.resourceGroups), [RG_SCOPE, BUILD_SCOPE, LAB_SCOPE]);
    assert.deepEqual(await promiseOf(built.restartableVms), entries);
    assert.equal(await promiseOf(built.resourceGroupName), RG);
  });

  it("keeps every resource of a one-group stack when groups are added: same URNs, same inputs that force replacement", async () => {
    // Before: the VMs in resourceGroupName only. After: one written as <own group>/<name>, plus two elsewhere.
    await build("keep1", {
      roleMode: "least-privilege",
      restartableVms: ["ubuntu-backup-server-spot", "build_box.2"],
    });
    await build("keep2", {
      roleMode: "least-privilege",
      restartableVms: [
        "Personal-Network/ubuntu-backup-server-spot",
        "build_box.2",
        "build-rg/build-box-spot",
        labId,
      ],
    });
    const urns = [
      ...(pulumi.runtime.getMonitor() as unknown as { resources: Map<string, unknown> }).resources.keys(),
    ];
    const named = (prefix: string) =>
      urns
        .filter((urn) => new RegExp(`::${prefix}(-|$)`).test(urn))
        .map((urn) => urn.replace(new RegExp(`::${prefix}(?=-|$)`), "::STACK"));
    const before = named("keep1");
    const after = new Set(named("keep2"));
    assert.ok(before.length > 10);
    for (const urn of before) assert.ok(after.has(urn), `kept: ${urn}`);
    // The inputs azure-native replaces a resource for (its scope, its role or role GUID) are the same.
    const forceNew: Record<string, string[]> = {
      [T.tagAtScope]: ["scope"],
      [T.roleAssignment]: ["scope", "roleDefinitionId", "principalType"],
      [T.roleDefinition]: ["scope", "roleDefinitionId", "roleName"],
    };
    for (const [type, keys] of Object.entries(forceNew)) {
      for (const old of byPrefix(type, "keep1")) {
        const now = findResource(mocks, type, old.name.replace(/^keep1/, "keep2"));
        for (const key of keys) assert.deepEqual(now.inputs[key], old.inputs[key], `${old.name}.${key}`);
      }
    }
  });
});

describe("invokes", () => {
  it("uses only the lookups the mocks answer (any other invoke throws)", () => {
    const tokens = new Set(mocks.calls.map((call) => call.token));
    assert.deepEqual(
      [...tokens].sort(),
      [
        "azure-native:authorization:getClientConfig",
        "azure-native:compute:getVirtualMachine",
        "azuread:index/getClientConfig:getClientConfig",
      ].sort(),
    );
  });
});
