// The seed file: the emulator's whole starting world (tenant, principals, roles, VMs, faults).
// The keys and fields named in docs/architecture.md ("Emulator") are a contract; everything else here
// is an optional extra with a default.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { rateLimitsSchema } from "./rateLimit";

export const POWER_STATES = [
  "running",
  "starting",
  "stopping",
  "stopped",
  "deallocating",
  "deallocated",
] as const;
export type PowerState = (typeof POWER_STATES)[number];

const guidish = z.string().min(1);

export const faultRuleSchema = z
  .object({
    /** HTTP method to match (case-insensitive). */
    method: z.string().optional(),
    /** Regular expression over the request path (no query), case-insensitive. */
    pathPattern: z.string().optional(),
    /** Only requests about this VM (by name, case-insensitive). */
    vm: z.string().optional(),
    /** How many matching requests (or start operations, for `startFailsWith`) it affects; absent = until cleared. */
    times: z.number().int().positive().optional(),
    /** It holds this many seconds from when it was added, then lapses (a capacity outage of known length). */
    forSeconds: z.number().positive().optional(),
    status: z.number().int().min(400).max(599).optional(),
    retryAfterSeconds: z.number().nonnegative().optional(),
    errorCode: z.string().optional(),
    errorMessage: z.string().optional(),
    delayMs: z.number().int().nonnegative().optional(),
    dropConnection: z.boolean().optional(),
    startFailsWith: z.string().optional(),
    /**
     * Only while the VM the request is about has this size (case-insensitive): with `startFailsWith` a
     * capacity outage of one VM size, which a resize to a fallback size escapes.
     */
    vmSize: z.string().optional(),
  })
  .refine(
    (rule) =>
      rule.status !== undefined ||
      rule.delayMs !== undefined ||
      rule.dropConnection === true ||
      rule.startFailsWith !== undefined,
    { message: "a fault rule needs an effect: status, delayMs, dropConnection or startFailsWith" },
  )
  .refine((rule) => rule.pathPattern === undefined || isValidRegExp(rule.pathPattern), {
    message: "pathPattern is not a valid regular expression",
    path: ["pathPattern"],
  });
export type FaultRule = z.infer<typeof faultRuleSchema>;

export const principalSchema = z.object({
  clientId: guidish,
  /** Object id of the service principal (what role assignments name as principalId). */
  objectId: guidish,
  displayName: z.string().optional(),
  /** One PEM certificate, several concatenated, or a list of them (a key rollover has two). */
  certificatePem: z.union([z.string(), z.array(z.string())]),
});
export type SeedPrincipal = z.infer<typeof principalSchema>;

export const roleDefinitionSchema = z.object({
  /** `/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}` (or just the guid). */
  id: z.string().min(1),
  roleName: z.string().optional(),
  description: z.string().optional(),
  actions: z.array(z.string()),
  notActions: z.array(z.string()).default([]),
  assignableScopes: z.array(z.string()).default([]),
});
export type SeedRoleDefinition = z.input<typeof roleDefinitionSchema>;

export const roleAssignmentSchema = z.object({
  /** Assignment name (a guid); generated when absent. */
  name: z.string().optional(),
  principalId: guidish,
  principalType: z.string().default("ServicePrincipal"),
  roleDefinitionId: z.string().min(1),
  scope: z.string().min(1),
});
export type SeedRoleAssignment = z.input<typeof roleAssignmentSchema>;

export const virtualMachineSchema = z.object({
  /** Another subscription of the tenant (issue 28); absent: the seed's `subscriptionId`. */
  subscriptionId: guidish.optional(),
  resourceGroup: z.string().min(1),
  name: z.string().min(1),
  location: z.string().default("eastus"),
  vmSize: z.string().default("Standard_B2s"),
  zone: z.string().nullable().default(null),
  /** `SpotPlus` (api-version 2026-04-01) is a Spot VM too. */
  priority: z.enum(["Regular", "Spot", "SpotPlus", "Low"]).default("Regular"),
  /** Absent on a Spot VM = `Deallocate` (Azure's default); `null` = a Spot VM sent without the field. */
  evictionPolicy: z.enum(["Deallocate", "Delete"]).nullable().optional(),
  maxPrice: z.number().nullable().optional(),
  powerState: z.enum(POWER_STATES).default("running"),
  /**
   * Who deallocated a VM seeded `deallocated`: `eviction` (Resource Health holds a
   * VirtualMachinePreempted annotation: evicted while nobody watched), `owner` (a
   * VirtualMachineDeallocationInitiated annotation and an Activity Log entry), `unknown` (neither).
   */
  deallocatedBy: z.enum(["eviction", "owner", "unknown"]).default("eviction"),
  /** A deallocated VM that was hibernated (instance view `HibernationState/Hibernated`). */
  hibernated: z.boolean().default(false),
  /** `Updating`, `Deleting`, `Creating`: an operation in progress that a start must not race. */
  provisioningState: z.enum(["Succeeded", "Updating", "Deleting", "Creating", "Failed"]).default("Succeeded"),
  osType: z.enum(["Linux", "Windows"]).default("Linux"),
  tags: z.record(z.string(), z.string()).default({}),
  /**
   * Whether the VM's NIC has a public IP (`{vm}-ip`). VMs reached over a VPN commonly have none; the
   * original script's `az vm list -d` reads one more resource for each VM that has one.
   */
  publicIp: z.boolean().default(true),
});
export type SeedVirtualMachine = z.input<typeof virtualMachineSchema>;

export const resourceGroupSchema = z.object({
  name: z.string().min(1),
  location: z.string().default("eastus"),
  tags: z.record(z.string(), z.string()).default({}),
});
export type SeedResourceGroup = z.input<typeof resourceGroupSchema>;

export const timingSchema = z.object({
  /** How long a start takes (seconds, may be fractional); also how long a failing start runs before it fails. */
  startSeconds: z.number().nonnegative().default(2),
  /** Delay between simulateEviction and the eviction itself (Azure: up to 30 minutes). */
  evictionDelaySeconds: z.number().nonnegative().default(0),
  /** How long deallocate and powerOff take. */
  deallocateSeconds: z.number().nonnegative().default(1),
  /** `Retry-After` sent with 202 answers and on operation polls. */
  retryAfterSeconds: z.number().int().nonnegative().default(1),
  /** Lifetime of issued access tokens (Entra: 60 to 90 minutes). */
  tokenLifetimeSeconds: z.number().int().positive().default(3599),
  /**
   * For this long after a principal is added, a role assignment naming it without `principalType`
   * fails with PrincipalNotFound, as Entra replication does in Azure. 0 = off.
   */
  principalReplicationSeconds: z.number().nonnegative().default(0),
  /**
   * Replication as Entra ID and ARM show it after `pulumi up` (seconds to minutes in Azure). For this long
   * after a principal is added at run time (not in the seed), its token requests fail with AADSTS700016
   * (application not found in the directory); after a certificate is added to a principal, assertions
   * signed with it fail with AADSTS700027 (key not found). 0 = off.
   */
  signInReplicationSeconds: z.number().nonnegative().default(0),
  /**
   * For this long after a custom role definition is created at run time (not in the seed), a role
   * assignment naming it fails with 400 RoleDefinitionDoesNotExist, as ARM answers while a new role
   * replicates (hashicorp/terraform-provider-azurerm#10442, pulumi/pulumi-azure#840). 0 = off.
   */
  roleDefinitionReplicationSeconds: z.number().nonnegative().default(0),
  /**
   * For this long after a role assignment is created at run time (not in the seed), ARM does not apply it:
   * requests it would allow get 403 AuthorizationFailed ("If access was recently granted, please refresh
   * your credentials"; Azure RBAC troubleshooting: changes can take up to 10 minutes). 0 = off.
   */
  roleAssignmentReplicationSeconds: z.number().nonnegative().default(0),
  /**
   * How long after an eviction or deallocation its Resource Health annotation becomes visible in Resource
   * Graph's `healthresources` (and, unless `activityLogDelaySeconds` says otherwise, its Activity Log entry).
   * Microsoft documents no bound for either (docs/signal-delays.md: Resource Graph's change records "in less
   * than five minutes"); 1 s is a fast Azure, kept so that tests and the demo are quick. The bench and the
   * soak set the slow cases (60 s, 300 s) explicitly.
   */
  annotationDelaySeconds: z.number().nonnegative().default(1),
  /**
   * The Activity Log's own delay (the owner's `deallocate/action` entry), when it differs from the
   * annotation's; absent: `annotationDelaySeconds`. Microsoft documents none for the REST API (its figure, 30 s,
   * is for the copy in Log Analytics through diagnostic settings: docs/signal-delays.md).
   */
  activityLogDelaySeconds: z.number().nonnegative().optional(),
  /**
   * How far Resource Graph's `resources` table lags the VM: its power state
   * (`properties.extended.instanceView.powerState.code`) is the one the VM had this long ago. Resource Graph
   * learns of changes from notifications and says only that it is updated "within seconds" of most changes
   * (https://learn.microsoft.com/azure/governance/resource-graph/overview#how-resource-graph-is-kept-current);
   * 0 (the default) = no lag. A test sets it to prove a graph reading is confirmed before a start.
   */
  resourceGraphLagSeconds: z.number().nonnegative().default(0),
});
export type EmulatorTiming = z.infer<typeof timingSchema>;

export const seedSchema = z.object({
  tenantId: guidish,
  subscriptionId: guidish,
  subscriptionName: z.string().default("Emulated subscription"),
  principals: z.array(principalSchema).default([]),
  roleDefinitions: z.array(roleDefinitionSchema).default([]),
  roleAssignments: z.array(roleAssignmentSchema).default([]),
  resourceGroups: z.array(resourceGroupSchema).default([]),
  virtualMachines: z.array(virtualMachineSchema).default([]),
  timing: timingSchema.default(timingSchema.parse({})),
  faults: z.array(faultRuleSchema).default([]),
  /**
   * Page size of VM lists (`nextLink` beyond it). Azure pages VM lists at 50, undocumented but
   * long observed (Azure/azure-sdk-for-node#4769, Azure/azure-powershell#3227).
   */
  listPageSize: z.number().int().positive().default(50),
  /**
   * How a start is answered. `async` (default): 202 with Azure-AsyncOperation and Location, as Compute
   * usually answers; `location`: 202 with Location only; `sync`: the emulator finishes the start first
   * and answers 200, as ARM may when an operation completes within the request (the three shapes of
   * the ARM async API: azure-resource-manager-rpc v1.0 async-api-reference.md). A start that a fault
   * makes fail is always answered `async`.
   */
  startResponse: z.enum(["async", "location", "sync"]).default("async"),
  /**
   * A start sent while another start of the VM is in flight: `join` (default) accepts it as well; `conflict`
   * refuses it 409 Conflict, "The request failed due to conflict with a concurrent request…", Compute's answer
   * to concurrent requests on one VM (Azure/azure-cli#15765). Microsoft documents neither for start; the
   * runtime handles both (two hosts, docs/many-groups.md).
   */
  concurrentStart: z.enum(["join", "conflict"]).default("join"),
  /**
   * Sizes that do not support Spot: resizing a Spot VM to one answers 409 AzureSpotIsNotSupportedForThisVMSize
   * (azure-compute-docs articles/virtual-machines/error-codes-spot.md). Empty by default.
   */
  spotUnsupportedSizes: z.array(z.string()).default([]),
  /**
   * VM sizes the emulated region offers (listAvailableSizes, and what a resize may choose), by name from the
   * catalogue in vmSizes.ts; absent = all of it.
   */
  offeredVmSizes: z.array(z.string()).optional(),
  /** The remaining-budget headers' counts and windows, and whether a spent budget is refused (rateLimit.ts). */
  rateLimits: rateLimitsSchema,
  /**
   * Resource Graph SpotResources eviction-rate bands (market.ts); sizes and regions not named get "0-5".
   * `evictionRate` is Azure's band string: "0-5", "5-10", "10-15", "15-20" or "20+".
   */
  spotEvictionRates: z
    .array(
      z.object({
        location: z.string().min(1),
        skuName: z.string().min(1),
        evictionRate: z.enum(["0-5", "5-10", "10-15", "15-20", "20+"]),
      }),
    )
    .default([]),
  /** Resource Graph SpotResources latest Spot prices, USD per hour (market.ts); others from the catalogue. */
  spotPrices: z
    .array(
      z.object({
        location: z.string().min(1),
        skuName: z.string().min(1),
        osType: z.enum(["Linux", "Windows"]).default("Linux"),
        priceUsd: z.number().nonnegative(),
      }),
    )
    .default([]),
  /** Spot Placement Scores (market.ts); a size not named scores "High". `zone` absent = the regional score. */
  placementScores: z
    .array(
      z.object({
        location: z.string().min(1),
        skuName: z.string().min(1),
        zone: z.string().optional(),
        score: z.enum(["High", "Medium", "Low", "RestrictedSkuNotAvailable", "DataNotFoundOrStale"]),
      }),
    )
    .default([]),
});
/** The seed as written (fields with defaults may be left out). */
export type EmulatorSeed = z.input<typeof seedSchema>;
/** The seed after defaults were applied. */
export type ResolvedSeed = z.output<typeof seedSchema>;

export function parseSeed(seed: unknown, origin = "seed"): ResolvedSeed {
  const result = seedSchema.safeParse(seed);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `  ${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
    throw new Error(`invalid emulator seed (${origin}):\n${problems.join("\n")}`);
  }
  return result.data;
}

export function loadSeedFile(path: string): ResolvedSeed {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new Error(`cannot read emulator seed ${path}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // Not V8's message: it quotes the text around the error (of whatever file --seed names).
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const where = position === undefined ? "" : ` at character ${position}`;
    throw new Error(`emulator seed ${path} is not valid JSON${where}`);
  }
  return parseSeed(raw, path);
}

function isValidRegExp(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
