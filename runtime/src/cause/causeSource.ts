// Where the eviction cause is read: Resource Graph (`@azure/arm-resourcegraph`, one query per cycle for
// every candidate) and the Activity Log (`@azure/arm-monitor`, one filtered query per resource group),
// with the same credential, cloud endpoint, token audience, retries and request timeout as the VM calls,
// and the same per-attempt policies (the budget reader of budgets.ts: ARM's
// `x-ms-ratelimit-remaining-subscription-reads` on the Activity Log, Resource Graph's
// `x-ms-user-quota-remaining` / `-resets-after` on its query; the metrics' request counter).
// Behind a small interface (`CauseSource`) so the loop can run against the SDK (and the emulator) or a fake.
import { MonitorClient } from "@azure/arm-monitor";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import type { TokenCredential } from "@azure/core-auth";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { armClientOptions, type RequestCounter } from "../azure/azure";
import { queryByIdBatches } from "../azure/resourceGraph";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupOfEntry, subscriptionsOfEntries } from "../core/resourceIds";
import { type ActivityRecord, type AnnotationRecord, annotationsQuery } from "./cause";

export interface CauseSource {
  /**
   * The latest Resource Health annotation of each of these VMs that has one. One Resource Graph query
   * per batch of ids, every page of it (azure/resourceGraph.ts).
   */
  readAnnotations(vmIds: readonly string[], signal: AbortSignal): Promise<AnnotationRecord[]>;
  /** The group's Activity Log entries since `since` (ms), newest first. One query (and its pages). */
  readActivity(resourceGroup: string, since: number, signal: AbortSignal): Promise<ActivityRecord[]>;
}

/** The Activity Log keeps 90 days; a query reaching further back is refused. */
const ACTIVITY_LOG_RETENTION_MS = 89 * 24 * 3_600_000;

export function createArmCauseSource(
  config: RuntimeConfig,
  credential: TokenCredential,
  options: { counter?: RequestCounter; policies?: readonly PipelinePolicy[] } = {},
): CauseSource {
  const clientOptions = armClientOptions(config, options);
  const graph = new ResourceGraphClient(credential, clientOptions);
  // One Activity Log client per subscription (a config entry may be a group of another subscription, issue 28).
  const monitors = new Map<string, MonitorClient>();
  const monitorFor = (subscriptionId: string) => {
    let monitor = monitors.get(subscriptionId);
    if (!monitor) {
      monitor = new MonitorClient(credential, subscriptionId, clientOptions);
      monitors.set(subscriptionId, monitor);
    }
    return monitor;
  };
  return {
    async readAnnotations(vmIds, signal) {
      if (vmIds.length === 0) return [];
      const { rows } = await queryByIdBatches(
        graph,
        vmIds,
        annotationsQuery,
        // Every subscription the config names (issue 28): an annotation is found only in its VM's.
        { subscriptions: subscriptionsOfEntries(config.resourceGroups, config.subscriptionId) },
        signal,
      );
      const out: AnnotationRecord[] = [];
      for (const row of rows) {
        const occurredAt = Date.parse(String(row.occurredTime ?? ""));
        if (typeof row.targetResourceId !== "string" || typeof row.annotationName !== "string") continue;
        if (Number.isNaN(occurredAt)) continue;
        out.push({
          targetResourceId: row.targetResourceId,
          annotationName: row.annotationName,
          ...(typeof row.context === "string" ? { context: row.context } : {}),
          occurredAt,
        });
      }
      return out;
    },
    async readActivity(entry, since, signal) {
      const { subscriptionId, resourceGroup } = resourceGroupOfEntry(entry, config.subscriptionId);
      const from = new Date(Math.max(since, Date.now() - ACTIVITY_LOG_RETENTION_MS)).toISOString();
      const filter = `eventTimestamp ge '${from}' and resourceGroupName eq '${resourceGroup.replace(/'/g, "")}'`;
      const out: ActivityRecord[] = [];
      for await (const event of monitorFor(subscriptionId).activityLogs.list(filter, {
        abortSignal: signal,
      })) {
        const claims = event.claims ?? {};
        out.push({
          resourceId: event.resourceId,
          operationName: event.operationName?.value,
          status: event.status?.value,
          caller: event.caller,
          callerObjectId: claims["http://schemas.microsoft.com/identity/claims/objectidentifier"],
          at: event.eventTimestamp ? new Date(event.eventTimestamp).getTime() : undefined,
        });
      }
      return out;
    },
  };
}
