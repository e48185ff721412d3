// doctor's checks of the features a config enables beyond restarting (issue 23, item 5): each one is
// exercised the way the runtime uses it, and a missing right or an unusable setting says what degrades.
//   eviction cause: Resource Graph annotations (one query for the tagged VMs), the Activity Log (one
//   query per group); fallback sizes (the sizes each configured VM can be resized to); notifications
//   (each channel's origin answers; the URL's secret path is never requested nor printed); metrics (the
//   listener's address can be bound, the textfile's directory exists). Notifications and metrics only
//   warn: they are sinks, which never fail the loop, so restarting works without them.

import { stat } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname } from "node:path";
import type { TokenCredential } from "@azure/core-auth";
import type { ListedVm, VmApi } from "../azure/azure";
import { describeAzureError } from "../azure/azure";
import type { CauseSource } from "../cause/causeSource";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupIdOfEntry, resourceGroupOfEntry } from "../core/resourceIds";
import { redactUrl } from "../core/text";
import type { DoctorCheck } from "../install/doctorReport";
import { isRestartCandidate } from "../loop/decisions";

export interface FeatureDeps {
  readonly vmApi: (credential: TokenCredential) => VmApi;
  readonly causeSource: (credential: TokenCredential) => CauseSource;
  /** GET of a notification channel's origin (no path, no secret): its HTTP status, or why it failed. */
  readonly probeOrigin?: (
    origin: string,
    signal: AbortSignal,
  ) => Promise<{ status?: number; error?: string }>;
}

/** What the runtime loses without each eviction-cause signal (causeGate.ts decides from both). */
export function causeDegradation(signal: "annotations" | "activity-log", config: RuntimeConfig): string {
  const wait = `unknownCauseAfterSeconds (${config.unknownCauseAfterSeconds} s)`;
  return signal === "annotations"
    ? `Azure's evictions are not recognised from Resource Health: a deallocation the Activity Log does not explain is started only after ${wait}, and an owner's stop (auto-shutdown, the portal) is recognised only from the Activity Log`
    : `owner stops are recognised only from their Resource Health annotation: an owner's stop that Resource Health reports late or not at all is taken for an eviction and started after ${wait}`;
}

const handCheck = (vmIds: readonly string[]) =>
  `check by hand, signed in as an owner of the group: az graph query -q "healthresources | where type =~ 'microsoft.resourcehealth/resourceannotations' | where properties.targetResourceId in~ (${vmIds
    .slice(0, 3)
    .map((id) => `'${id}'`)
    .join(
      ", ",
    )}${vmIds.length > 3 ? ", …" : ""}) | project properties.targetResourceId, properties.annotationName, properties.occurredTime"; a row there that doctor did not see is one this principal may not read (grant Microsoft.ResourceHealth/availabilityStatuses/read at the group)`;

/** The tagged Spot VMs of every group as full ids (what Resource Graph is asked about), from the VM lists. */
async function taggedVmIds(
  config: RuntimeConfig,
  api: VmApi,
  signal: AbortSignal,
): Promise<{ ids: string[]; byId: Map<string, string>; unlisted: Set<string> }> {
  const ids: string[] = [];
  const byId = new Map<string, string>();
  const unlisted = new Set<string>();
  for (const entry of config.resourceGroups) {
    let listed: ListedVm[];
    try {
      listed = await api.listVms(entry, signal);
    } catch {
      unlisted.add(entry); // the group's own checks say why
      continue;
    }
    for (const vm of listed) {
      if (!isRestartCandidate(vm, config.tag)) continue;
      const id = `${resourceGroupIdOfEntry(entry, config.subscriptionId)}/providers/Microsoft.Compute/virtualMachines/${vm.name}`;
      ids.push(id);
      byId.set(
        id.toLowerCase(),
        `${resourceGroupOfEntry(entry, config.subscriptionId).resourceGroup}/${vm.name}`,
      );
    }
  }
  return { ids, byId, unlisted };
}

function isForbidden(error: unknown): boolean {
  const facts = describeAzureError(error);
  return facts.statusCode === 403 || facts.code === "AuthorizationFailed";
}

/** Every feature check the config calls for, after the groups' own checks; never throws. */
export async function featureChecks(
  config: RuntimeConfig,
  credential: TokenCredential | undefined,
  signal: AbortSignal,
  deps: FeatureDeps,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  if (config.restartWhen === "evicted") checks.push(...(await causeChecks(config, credential, signal, deps)));
  if (Object.keys(config.fallbackSizes).length > 0)
    checks.push(...(await fallbackChecks(config, credential, signal, deps)));
  for (const channel of config.notifications) checks.push(await notificationCheck(channel, signal, deps));
  if (config.metrics) checks.push(...(await metricsChecks(config.metrics)));
  return checks;
}

async function causeChecks(
  config: RuntimeConfig,
  credential: TokenCredential | undefined,
  signal: AbortSignal,
  deps: FeatureDeps,
): Promise<DoctorCheck[]> {
  const annotations = "eviction cause: Resource Health annotations";
  const activity = "eviction cause: Activity Log";
  if (!credential) {
    return [
      { name: annotations, status: "skip", detail: "needs a token" },
      { name: activity, status: "skip", detail: "needs a token" },
    ];
  }
  const checks: DoctorCheck[] = [];
  const source = deps.causeSource(credential);
  const { ids, byId, unlisted } = await taggedVmIds(config, deps.vmApi(credential), signal);
  if (ids.length === 0) {
    checks.push({ name: annotations, status: "skip", detail: "no tagged Spot VM to ask about" });
  } else {
    try {
      const rows = await source.readAnnotations(ids, signal);
      const seen = new Set(rows.map((row) => row.targetResourceId.toLowerCase()));
      const unseen = ids.filter((id) => !seen.has(id.toLowerCase()));
      checks.push(
        unseen.length === 0
          ? {
              name: annotations,
              status: "pass",
              detail: `Resource Graph answers with the latest annotation of all ${ids.length} tagged Spot VM(s)`,
            }
          : {
              // Resource Graph answers a row the caller may not read by leaving it out, never with 403
              // (learn.microsoft.com/azure/governance/resource-graph/overview#permissions-in-azure-resource-graph),
              // and a VM with no Resource Health event in the last 14 days has no annotation row either.
              name: annotations,
              status: "warn",
              detail: `Resource Graph answers, but with no annotation for ${unseen.map((id) => byId.get(id.toLowerCase()) ?? id).join(", ")}: doctor cannot tell whether none was recorded (no deallocation lately) or this principal may not read it, since Resource Graph leaves out rows it may not read instead of refusing. If it may not: ${causeDegradation("annotations", config)}`,
              fix: handCheck(unseen),
            },
      );
    } catch (error) {
      checks.push({
        name: annotations,
        status: "fail",
        detail: `the Resource Graph query failed (${describeAzureError(error).code ?? describeAzureError(error).statusCode}): ${causeDegradation("annotations", config)}`,
        fix: isForbidden(error)
          ? "grant Microsoft.ResourceHealth/availabilityStatuses/read at the group (`pulumi up` with this version of the program)"
          : "check the Resource Manager endpoint; the runtime retries each cycle",
      });
    }
  }
  for (const entry of config.resourceGroups) {
    if (unlisted.has(entry)) {
      checks.push({
        name: `${activity} of ${entry}`,
        status: "skip",
        detail: "the group's VMs cannot be listed (see its checks above)",
      });
      continue;
    }
    try {
      await source.readActivity(entry, Date.now() - 3_600_000, signal);
      checks.push({ name: `${activity} of ${entry}`, status: "pass", detail: "readable" });
    } catch (error) {
      const facts = describeAzureError(error);
      checks.push({
        name: `${activity} of ${entry}`,
        status: "fail",
        detail: `cannot read it (${facts.code ?? facts.statusCode}): ${causeDegradation("activity-log", config)}`,
        fix: isForbidden(error)
          ? `grant Microsoft.Insights/eventtypes/values/read at ${resourceGroupIdOfEntry(entry, config.subscriptionId)} (\`pulumi up\` with this version of the program)`
          : "check the Resource Manager endpoint; the runtime retries each cycle",
      });
    }
  }
  return checks;
}

async function fallbackChecks(
  config: RuntimeConfig,
  credential: TokenCredential | undefined,
  signal: AbortSignal,
  deps: FeatureDeps,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  for (const [key, sizes] of Object.entries(config.fallbackSizes)) {
    const name = `fallback sizes of ${key}`;
    if (!credential) {
      checks.push({ name, status: "skip", detail: "needs a token" });
      continue;
    }
    const slash = key.lastIndexOf("/");
    const [group, vm] = [key.slice(0, slash), key.slice(slash + 1)];
    const api = deps.vmApi(credential);
    try {
      const offered = (await api.listAvailableSizes?.(group, vm, signal)) ?? [];
      const names = new Set(offered.map((size) => (size.name ?? "").toLowerCase()));
      const missing = sizes.filter((size) => !names.has(size.toLowerCase()));
      checks.push(
        missing.length === 0
          ? { name, status: "pass", detail: `Azure offers all ${sizes.length} configured size(s) to this VM` }
          : {
              name,
              status: "warn",
              detail: `Azure does not offer ${missing.join(", ")} to this VM (region, family or temp-disk line): those are skipped when its own size has no capacity`,
              fix: "pick sizes from `az vm list-vm-resize-options` for this VM",
            },
      );
    } catch (error) {
      const facts = describeAzureError(error);
      checks.push({
        name,
        status: "fail",
        detail: `cannot list the sizes it can be resized to (${facts.code ?? facts.statusCode}): the VM is started only in its own size, never resized, when Spot capacity fails`,
        fix: isForbidden(error)
          ? `grant Microsoft.Compute/virtualMachines/vmSizes/read and Microsoft.Compute/virtualMachines/write at the group (pulumi config spot-restarter:fallbackSizes, then \`pulumi up\`)`
          : `check that ${key} names a VM of a configured group`,
      });
    }
  }
  return checks;
}

async function notificationCheck(
  channel: RuntimeConfig["notifications"][number],
  signal: AbortSignal,
  deps: FeatureDeps,
): Promise<DoctorCheck> {
  const name = `notifications: ${channel.type} ${redactUrl(channel.url)}`;
  const origin = new URL(channel.url).origin;
  const probe = deps.probeOrigin ?? probeOrigin;
  const answer = await probe(origin, signal);
  if (answer.error !== undefined) {
    // A sink never fails the loop: restarting works without it, so a warning, not a failure.
    return {
      name,
      status: "warn",
      detail: `${origin} does not answer (${answer.error}): events are not delivered to this channel (the log still has them)`,
      fix: "check the URL, DNS and outbound HTTPS (a private CA: NODE_EXTRA_CA_CERTS); `notify-test` sends a test message",
    };
  }
  return {
    name,
    status: "pass",
    detail: `${origin} answers (HTTP ${answer.status}); \`notify-test\` sends a test message to check the rest of the URL`,
  };
}

/** GET of an origin only: reachability and TLS trust, with no path (the secret) and no body sent. */
export async function probeOrigin(
  origin: string,
  signal: AbortSignal,
): Promise<{ status?: number; error?: string }> {
  try {
    const response = await fetch(origin, {
      method: "GET",
      redirect: "manual",
      signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
    });
    await response.body?.cancel();
    return { status: response.status };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return { error: cause?.code ?? (error instanceof Error ? error.name : String(error)) };
  }
}

async function metricsChecks(metrics: NonNullable<RuntimeConfig["metrics"]>): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  if (metrics.listen) {
    const match = /^\[?(.*?)\]?:(\d+)$/.exec(metrics.listen);
    const host = match?.[1] ?? "127.0.0.1";
    const port = Number(match?.[2]);
    const problem = await new Promise<string | undefined>((resolve) => {
      const server = createServer();
      server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      server.listen(port, host, () => server.close(() => resolve(undefined)));
    });
    checks.push(
      problem === undefined
        ? { name: `metrics: listen ${metrics.listen}`, status: "pass", detail: "the address can be bound" }
        : problem === "EADDRINUSE"
          ? {
              name: `metrics: listen ${metrics.listen}`,
              status: "warn",
              detail:
                "the port is in use: by the running service (fine), or by another program, and then the service serves no metrics and no status page",
              fix: "`ss -ltnp` shows who holds it; pick another port in metrics.listen if it is not spot-restarter",
            }
          : {
              name: `metrics: listen ${metrics.listen}`,
              status: "warn",
              detail: `cannot listen there (${problem}): no /metrics and no status page`,
              fix: "use an address of this host (127.0.0.1:9464) in metrics.listen",
            },
    );
  }
  if (metrics.textfile) {
    const directory = dirname(metrics.textfile);
    const isDirectory = await stat(directory).then(
      (info) => info.isDirectory(),
      () => false,
    );
    checks.push(
      isDirectory
        ? { name: "metrics: textfile", status: "pass", detail: `${directory} exists` }
        : {
            name: "metrics: textfile",
            status: "warn",
            detail: `${directory} does not exist: the textfile is never written, node_exporter shows no spot-restarter metrics`,
            fix: "point metrics.textfile into node_exporter's --collector.textfile.directory",
          },
    );
  }
  return checks;
}
