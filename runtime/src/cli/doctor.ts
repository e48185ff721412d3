// `spot-restarter doctor --config F`: checks, against Azure, everything the runtime needs, and prints each
// check with pass/fail and the fix. The installer's verification runs it too. Checks, in order (a later one
// is skipped, not failed, when an earlier one it needs failed):
//   endpoints and CA -> clock skew -> certificate -> token -> per resource group: the group, the caller's
//   effective actions there (ARM's Permissions API) against the actions each enabled feature needs, and
//   each tagged VM's priority and eviction policy.

import { request } from "node:https";
import type { TokenCredential } from "@azure/core-auth";
import {
  armToken,
  certificateExpiry,
  createCredential,
  type LoadedCertificate,
  loadCertificate,
  verifyAuthentication,
} from "../azure/auth";
import { tlsTrustCodes } from "../azure/authFailure";
import type { ListedVm, VmApi } from "../azure/azure";
import { actionsFor, type RoleAction, type RoleFeature } from "../azure/roleActions";
import {
  bandRank,
  findMarketEntry,
  HIGH_EVICTION_BAND,
  marketFigures,
  type SpotMarketSource,
} from "../azure/spotMarket";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupIdOfEntry } from "../core/resourceIds";
import {
  describeSpotIneligibility,
  effectiveEvictionPolicy,
  spotIneligibility,
} from "../core/spotEligibility";
import type { DoctorCheck } from "../install/doctorReport";
import { hasRestartTag } from "../loop/decisions";
import { chooseFallback } from "../loop/fallback";
import { causeDegradation, type FeatureDeps, featureChecks } from "./doctorFeatures";

/** The largest clock difference Entra ID tolerates in a client assertion's nbf/exp (5 minutes). */
export const maxClockSkewMs = 5 * 60_000;

/**
 * The runtime features a config enables, each needing the actions runtime/src/azure/roleActions.ts lists under it.
 * `restart` and `doctor` always. `simulate-eviction` never: it is opt-in in the Pulumi program
 * (spot-restarter:allowSimulateEviction), which the runtime config cannot see, and the command says how to
 * enable it when Azure refuses. A feature that adds actions adds its condition here.
 */
export function enabledFeatures(config: RuntimeConfig): RoleFeature[] {
  // Asking Azure why a VM is deallocated is on unless every deallocation is restarted (restartWhen).
  const features: RoleFeature[] =
    config.restartWhen === "deallocated" ? ["restart", "doctor"] : ["restart", "doctor", "eviction-cause"];
  // Resizing (opt-in) needs the VM's write action: checked only when some VM has fallback sizes.
  if (Object.keys(config.fallbackSizes).length > 0) features.push("fallback-size");
  return features;
}

/** Azure's permission patterns: case-insensitive, `*` matches any run of characters (including `/`). */
export function actionPatternMatches(pattern: string, action: string): boolean {
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`, "i").test(action);
}

/** One entry of the Permissions API's `value` (Permissions_ListForResourceGroup, 2022-04-01). */
export interface PermissionEntry {
  readonly actions?: readonly string[];
  readonly notActions?: readonly string[];
}

/**
 * The needed actions the caller does not have. An action is granted when one entry (one role assignment)
 * matches it in `actions` and not in that same entry's `notActions`: notActions subtract within a role,
 * never across roles (learn.microsoft.com/azure/role-based-access-control/role-definitions#notactions).
 */
export function missingActions(
  needed: readonly RoleAction[],
  permissions: readonly PermissionEntry[],
): RoleAction[] {
  return needed.filter(
    (entry) =>
      !permissions.some(
        (permission) =>
          (permission.actions ?? []).some((pattern) => actionPatternMatches(pattern, entry.action)) &&
          !(permission.notActions ?? []).some((pattern) => actionPatternMatches(pattern, entry.action)),
      ),
  );
}

/**
 * A tagged VM the runtime would never restart, and why; undefined when it is a restartable Spot VM.
 * The rule is the loop's own (core/spotEligibility.ts).
 */
export function unrestartableReason(vm: Pick<ListedVm, "priority" | "evictionPolicy">): string | undefined {
  const reason = spotIneligibility(vm);
  return reason ? describeSpotIneligibility(vm, reason) : undefined;
}

/** An HTTPS GET with no credentials: reachability, TLS trust and the server's clock (`Date`). */
export type EndpointProbe =
  | { kind: "answered"; status: number; date?: Date; body: string }
  | { kind: "tls"; code: string }
  | { kind: "unreachable"; code: string };

export function probeEndpoint(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000) {
  return new Promise<EndpointProbe>((resolve) => {
    const req = request(url, { method: "GET", timeout: timeoutMs, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < 65_536) body += chunk;
      });
      res.on("end", () => {
        const header = res.headers.date;
        const date = header ? new Date(header) : undefined;
        resolve({
          kind: "answered",
          status: res.statusCode ?? 0,
          date: date && !Number.isNaN(date.getTime()) ? date : undefined,
          body,
        });
      });
      res.on("error", () => resolve({ kind: "unreachable", code: "ECONNRESET" }));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (error: NodeJS.ErrnoException) => {
      const code = error.code ?? "UNKNOWN";
      resolve(tlsTrustCodes.has(code) ? { kind: "tls", code } : { kind: "unreachable", code });
    });
    req.end();
  });
}

export interface DoctorDeps {
  readonly now: () => Date;
  readonly probe: typeof probeEndpoint;
  /** The VM list of a group (the runtime's own ARM client); built from the credential. */
  readonly vmApi: (credential: TokenCredential) => VmApi;
  /**
   * The eviction-cause signals' client (Resource Graph, the Activity Log): with it, doctor also checks each
   * feature the config enables beyond restarting (doctorFeatures.ts).
   */
  readonly causeSource?: FeatureDeps["causeSource"];
  readonly probeOrigin?: FeatureDeps["probeOrigin"];
  /** Azure's Spot market data (eviction-rate bands, Spot prices); without it doctor gives no size advice. */
  readonly market?: (credential: TokenCredential) => SpotMarketSource;
}

const caFix =
  "if the endpoint uses a private CA (sovereign cloud, emulator), point NODE_EXTRA_CA_CERTS at its PEM " +
  "(install: --extra-ca-certs FILE); otherwise fix this host's CA store or proxy";

function endpointCheck(name: string, url: string, probe: EndpointProbe): DoctorCheck {
  if (probe.kind === "tls") {
    return {
      name,
      status: "fail",
      detail: `${url}: the TLS certificate is not trusted (${probe.code})`,
      fix: caFix,
    };
  }
  if (probe.kind === "unreachable") {
    return {
      name,
      status: "fail",
      detail: `${url}: unreachable (${probe.code})`,
      fix: 'check DNS, outbound HTTPS (port 443) and the config\'s "cloud" endpoints',
    };
  }
  return { name, status: "pass", detail: `${url} answers over trusted HTTPS (HTTP ${probe.status})` };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The ARM error body's `{error: {code, message}}`, if it is one. */
function armError(body: string): { code?: string; message?: string } {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
    return parsed.error ?? {};
  } catch {
    return {};
  }
}

/** Runs every check; never throws for what it checks (a failure is a `fail` check). */
export async function runDoctor(
  config: RuntimeConfig,
  signal: AbortSignal,
  deps: DoctorDeps,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const { authorityHost, armEndpoint } = config.cloud;

  // Endpoints and CA. The authority's tenant metadata and ARM's subscription (unauthenticated: 401) both
  // prove DNS, routing and TLS trust, and carry the server's clock.
  const authorityUrl = `${authorityHost}/${encodeURIComponent(config.tenantId)}/v2.0/.well-known/openid-configuration`;
  const armUrl = `${armEndpoint}/subscriptions/${encodeURIComponent(config.subscriptionId)}?api-version=2022-12-01`;
  const [authorityProbe, armProbe] = await Promise.all([deps.probe(authorityUrl), deps.probe(armUrl)]);
  checks.push(endpointCheck("endpoint: Entra ID", authorityHost, authorityProbe));
  if (authorityProbe.kind === "answered" && authorityProbe.status === 400) {
    checks[checks.length - 1] = {
      name: "endpoint: Entra ID",
      status: "fail",
      detail: `${authorityHost} does not know tenant ${config.tenantId} (HTTP 400)`,
      fix: 'check "tenantId" in the config (the stack output tenantId)',
    };
  }
  checks.push(endpointCheck("endpoint: Resource Manager", armEndpoint, armProbe));

  // Clock skew against the servers' Date headers (whole seconds).
  const serverDate =
    (armProbe.kind === "answered" ? armProbe.date : undefined) ??
    (authorityProbe.kind === "answered" ? authorityProbe.date : undefined);
  const now = deps.now();
  if (!serverDate) {
    checks.push({ name: "clock", status: "skip", detail: "no server answered with a Date header" });
  } else {
    const skewMs = now.getTime() - serverDate.getTime();
    const seconds = Math.round(skewMs / 1000);
    checks.push(
      Math.abs(skewMs) > maxClockSkewMs
        ? {
            name: "clock",
            status: "fail",
            detail: `this host's clock is ${Math.abs(seconds)} s ${seconds > 0 ? "ahead of" : "behind"} Azure's: Entra ID refuses client assertions outside their validity window`,
            fix: "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd)",
          }
        : { name: "clock", status: "pass", detail: `within ${Math.abs(seconds)} s of Azure's` },
    );
  }

  // Certificate: readable, private, holds its own key, currently valid.
  let certificate: LoadedCertificate | undefined;
  try {
    certificate = await loadCertificate(config.certificatePath, now);
    const expiry = certificateExpiry(certificate, now);
    checks.push({
      name: "certificate",
      status: expiry.expiresSoon ? "warn" : "pass",
      detail: `${certificate.subject}, key matches, valid until ${certificate.notAfter.toISOString()} (${expiry.daysLeft} days)`,
      fix: expiry.expiresSoon
        ? "run `pulumi up` (it re-issues the certificate) and the install command again"
        : undefined,
    });
  } catch (error) {
    checks.push({
      name: "certificate",
      status: "fail",
      detail: errorText(error),
      fix: "run the install command again from `pulumi stack output --json --show-secrets`",
    });
  }

  // Token.
  let credential: TokenCredential | undefined;
  let objectId: string | undefined;
  if (!certificate) {
    checks.push({ name: "token", status: "skip", detail: "needs a usable certificate" });
  } else {
    credential = createCredential(config, certificate);
    try {
      objectId = await verifyAuthentication(credential, config, signal);
      checks.push({
        name: "token",
        status: "pass",
        detail: `signed in to tenant ${config.tenantId} as client ${config.clientId}${objectId ? ` (service principal object id ${objectId})` : ""}`,
      });
    } catch (error) {
      credential = undefined;
      checks.push({
        name: "token",
        status: "fail",
        detail: errorText(error),
        fix:
          "compare tenantId and clientId with the stack outputs; a service principal or certificate created " +
          "moments ago can take a few minutes to be usable (AADSTS700016 / AADSTS700027): run doctor again",
      });
    }
  }

  const features = enabledFeatures(config);
  const needed = actionsFor(features);
  for (const resourceGroup of config.resourceGroups) {
    const name = `resource group ${resourceGroup}`;
    if (!credential) {
      checks.push({ name, status: "skip", detail: "needs a token" });
      continue;
    }
    checks.push(
      ...(await checkResourceGroup(config, resourceGroup, credential, needed, objectId, signal, deps)),
    );
  }
  if (deps.causeSource) {
    checks.push(
      ...(await featureChecks(config, credential, signal, {
        vmApi: deps.vmApi,
        causeSource: deps.causeSource,
        ...(deps.probeOrigin ? { probeOrigin: deps.probeOrigin } : {}),
      })),
    );
  }
  return checks;
}

async function checkResourceGroup(
  config: RuntimeConfig,
  resourceGroup: string,
  credential: TokenCredential,
  needed: readonly RoleAction[],
  objectId: string | undefined,
  signal: AbortSignal,
  deps: DoctorDeps,
): Promise<DoctorCheck[]> {
  const scope = resourceGroupIdOfEntry(resourceGroup, config.subscriptionId);
  const checks: DoctorCheck[] = [];
  let token: string;
  try {
    token = await armToken(credential, config, signal);
  } catch (error) {
    return [{ name: `resource group ${resourceGroup}`, status: "fail", detail: errorText(error) }];
  }
  // The caller's effective permissions at the group: ARM's Permissions API
  // (GET {group}/providers/Microsoft.Authorization/permissions, Permissions_ListForResourceGroup).
  const url = `${config.cloud.armEndpoint}${scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01`;
  const answer = await deps.probe(url, { Authorization: `Bearer ${token}` });
  if (answer.kind !== "answered") {
    return [endpointCheck(`resource group ${resourceGroup}`, config.cloud.armEndpoint, answer)];
  }
  const error = armError(answer.body);
  if (answer.status === 404 || error.code === "ResourceGroupNotFound") {
    return [
      {
        name: `resource group ${resourceGroup}`,
        status: "fail",
        detail: `does not exist in subscription ${config.subscriptionId} (${error.code ?? `HTTP ${answer.status}`})`,
        fix: 'check "resourceGroups" in the config and "subscriptionId" (the stack outputs resourceGroupName and subscriptionId)',
      },
    ];
  }
  const who = objectId ? `service principal object id ${objectId}` : `client ${config.clientId}`;
  if (answer.status === 403 && error.code === "AuthorizationFailed") {
    // ARM authorizes the call as Microsoft.Authorization/permissions/read (roleActions.ts, feature doctor)
    // before it looks at the group: without it nothing else can be read from here, so say what is missing
    // and go on to the VM list, which answers for itself.
    const own = needed.filter((entry) => entry.feature === "doctor");
    checks.push({
      name: `permissions on ${resourceGroup}`,
      status: "fail",
      detail:
        `missing ${own.map((entry) => `${entry.action} (${entry.feature}: ${entry.usedFor})`).join(", ")}, so the ` +
        `other ${needed.length - own.length} actions cannot be checked; no role assigned to this principal at or above the group grants it ` +
        "(or the group does not exist: ARM checks access before existence)",
      fix: `check "resourceGroups" in the config, then grant it to ${who} at ${scope}: \`pulumi up\` with this version of the program (roleMode least-privilege defines the role with it; Contributor and Reader have it); a role assigned moments ago can take a few minutes to apply`,
    });
  } else if (answer.status !== 200) {
    return [
      {
        name: `resource group ${resourceGroup}`,
        status: "fail",
        detail: `the Permissions API answered HTTP ${answer.status}${error.code ? ` ${error.code}: ${error.message}` : ""}`,
      },
    ];
  } else {
    checks.push({ name: `resource group ${resourceGroup}`, status: "pass", detail: `exists (${scope})` });
    checks.push(permissionCheck(config, resourceGroup, scope, who, needed, answer.body));
  }
  return [...checks, ...(await taggedVmChecks(config, resourceGroup, credential, signal, deps))];
}

/** The Permissions API's answer against the actions the enabled features need. */
function permissionCheck(
  config: RuntimeConfig,
  resourceGroup: string,
  scope: string,
  who: string,
  needed: readonly RoleAction[],
  body: string,
): DoctorCheck {
  const permissions = ((JSON.parse(body) as { value?: PermissionEntry[] }).value ?? []) as PermissionEntry[];
  const missing = missingActions(needed, permissions);
  return missing.length === 0
    ? {
        name: `permissions on ${resourceGroup}`,
        status: "pass",
        detail: `has all ${needed.length} actions the enabled features need`,
      }
    : {
        name: `permissions on ${resourceGroup}`,
        status: "fail",
        detail: `missing ${missing.map((entry) => `${entry.action} (${entry.feature}: ${entry.usedFor})`).join(", ")}${permissions.length === 0 ? "; no role is assigned to this principal at or above the group" : ""}${degradations(config, missing)}`,
        fix:
          `grant them to ${who} at ${scope}: \`pulumi up\` with this version of the program (roleMode ` +
          "least-privilege defines the role with every action" +
          (missing.some((entry) => entry.feature === "fallback-size")
            ? ", the fallback-size ones only while spot-restarter:fallbackSizes is set"
            : "") +
          "; Contributor has them all), or add them to the " +
          "assigned role; a role assigned moments ago can take a few minutes to apply",
      };
}

/** What the runtime loses without the missing actions of the features that degrade rather than stop. */
function degradations(config: RuntimeConfig, missing: readonly RoleAction[]): string {
  const lost: string[] = [];
  if (missing.some((entry) => entry.action === "Microsoft.ResourceHealth/availabilityStatuses/read"))
    lost.push(causeDegradation("annotations", config));
  if (missing.some((entry) => entry.action === "Microsoft.Insights/eventtypes/values/read"))
    lost.push(causeDegradation("activity-log", config));
  if (missing.some((entry) => entry.feature === "fallback-size"))
    lost.push("VMs with fallbackSizes are started only in their own size, never resized");
  return lost.length ? `. Until then: ${lost.join("; ")}` : "";
}

/** Each tagged VM: the list is what the runtime reads every cycle. */
async function taggedVmChecks(
  config: RuntimeConfig,
  resourceGroup: string,
  credential: TokenCredential,
  signal: AbortSignal,
  deps: DoctorDeps,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  let vms: ListedVm[];
  try {
    vms = await deps.vmApi(credential).listVms(resourceGroup, signal);
  } catch (cause) {
    checks.push({
      name: `VMs in ${resourceGroup}`,
      status: "fail",
      detail: `cannot list the group's VMs: ${errorText(cause)}`,
      fix: "grant Microsoft.Compute/virtualMachines/read at the group",
    });
    return checks;
  }
  const tagged = vms.filter((vm) => hasRestartTag(vm.tags, config.tag));
  if (tagged.length === 0) {
    checks.push({
      name: `VMs in ${resourceGroup}`,
      status: "warn",
      detail: `no VM carries ${config.tag.name}=${config.tag.value}: nothing will be restarted`,
      fix: "list the VMs in the stack (pulumi config set --path 'restartableVms[0]' <vm>) and run `pulumi up`",
    });
    return checks;
  }
  for (const vm of tagged) {
    const reason = unrestartableReason(vm);
    checks.push(
      reason
        ? {
            name: `VM ${resourceGroup}/${vm.name}`,
            status: "fail",
            detail: `tagged for restart, but ${reason}`,
            fix: "recreate it as a Spot VM with eviction policy Deallocate, or remove it from restartableVms and run `pulumi up`",
          }
        : {
            name: `VM ${resourceGroup}/${vm.name}`,
            status: "pass",
            detail: `${vm.priority}, eviction policy ${effectiveEvictionPolicy(vm)}${vm.evictionPolicy ? "" : " (Azure's default)"}`,
          },
    );
  }
  if (deps.market) {
    checks.push(
      ...(await evictionRateChecks(
        config,
        resourceGroup,
        tagged,
        deps.market(credential),
        deps.vmApi(credential),
        signal,
      )),
    );
  }
  return checks;
}

/**
 * A tagged VM whose size is in a high eviction-rate band (HIGH_EVICTION_BAND or above, Resource Graph
 * SpotResources) gets a warning naming the sizes with lower bands it can be resized to: the sizes Azure offers it
 * (VirtualMachines_ListAvailableSizes, when the role may list them) on the same side of the temp-disk line
 * (loop/fallback.ts chooseFallback), else its configured fallback sizes. Market data that cannot be read gives no
 * advice, and no failure.
 */
async function evictionRateChecks(
  config: RuntimeConfig,
  resourceGroup: string,
  tagged: readonly ListedVm[],
  market: SpotMarketSource,
  api: VmApi,
  signal: AbortSignal,
): Promise<DoctorCheck[]> {
  const placed = tagged.filter((vm) => vm.location && vm.vmSize);
  if (placed.length === 0) return [];
  const own = await market.read(
    placed.map((vm) => ({ location: vm.location as string, skuName: vm.vmSize as string })),
    signal,
  );
  const checks: DoctorCheck[] = [];
  for (const vm of placed) {
    const location = vm.location as string;
    const size = vm.vmSize as string;
    const band = findMarketEntry(own, location, size)?.evictionRate;
    const rank = bandRank(band);
    if (rank === undefined || rank < (bandRank(HIGH_EVICTION_BAND) ?? 0)) continue;
    const available = await api.listAvailableSizes?.(resourceGroup, vm.name, signal).catch(() => undefined);
    const configured = config.fallbackSizes[`${resourceGroup}/${vm.name}`] ?? [];
    const candidates = available
      ? available
          .flatMap((entry) => (entry.name && !sameSize(entry.name, size) ? [entry.name] : []))
          .filter((name) => chooseFallback(size, [name], available).chosen !== undefined)
      : configured;
    const reading = candidates.length
      ? await market.read(
          [...candidates, size].map((skuName) => ({ location, skuName })),
          signal,
        )
      : undefined;
    const better = candidates
      .flatMap((name) => {
        const entry = findMarketEntry(reading, location, name);
        const candidateRank = bandRank(entry?.evictionRate);
        return entry && candidateRank !== undefined && candidateRank < rank
          ? [
              {
                name,
                band: entry.evictionRate as string,
                rank: candidateRank,
                price: marketFigures(reading, { location, vmSize: name, osType: vm.osType })
                  .spotPriceUsdPerHour,
              },
            ]
          : [];
      })
      .sort((a, b) => a.rank - b.rank || (a.price ?? Infinity) - (b.price ?? Infinity))
      .slice(0, 5);
    checks.push({
      name: `eviction rate of ${resourceGroup}/${vm.name}`,
      status: "warn",
      detail:
        `${size} in ${location}: eviction rate ${band}; ` +
        (better.length
          ? `sizes with lower rates that the VM can be resized to: ${better.map((b) => `${b.name} (${b.band}${b.price === null ? "" : `, $${b.price}/h`})`).join(", ")}`
          : available
            ? "no size it can be resized to has a lower rate"
            : "no configured fallback size has a lower rate"),
      fix: better.length
        ? `resize it (deallocated) to one of them, or list them as its fallback sizes (pulumi config set --path 'fallbackSizes.${vm.name}[0]' ${better[0]?.name})`
        : "consider another region, or accept more evictions",
    });
  }
  return checks;
}

function sameSize(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
