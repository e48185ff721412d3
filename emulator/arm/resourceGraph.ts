// Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources` (api-version 2024-04-01,
// what @azure/arm-resourcegraph 5 sends). Queries are parsed and executed by ./kusto.ts over two
// tables: `resources` (the VMs), `healthresources` (their Resource Health annotations) and
// `spotresources` (eviction-rate bands and Spot prices per size and region, ../market.ts).
// - Shapes: azure-rest-api-specs resourcegraph/…/stable/2024-04-01/examples/ResourcesFilterQuery.json.
// - A rejected query: 400 BadRequest with details InvalidQuery + ParserFailure, as Azure answers it
//   (Azure/azure-powershell#13762, Azure/aztfexport#485).
// - Access: no role action gates the call itself; rows are filtered to what the caller may read, as
//   Resource Graph does (https://learn.microsoft.com/azure/governance/resource-graph/overview#permissions-in-azure-resource-graph).
//   Health rows need the Resource Health read action at the VM's scope (HEALTH_READ_ACTION).
// - Throttling: every answer carries x-ms-user-quota-remaining / x-ms-user-quota-resets-after (a
//   quota of 15 queries per 5-second window per caller, seed `rateLimits.resourceGraph`), and a caller
//   over quota gets 429 RateLimiting with Retry-After (rateLimit.ts, chargeResourceGraph;
//   https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests).
// - Freshness: an annotation becomes visible `timing.annotationDelaySeconds` after it happened.
// - Pages (pageOf): 100 rows unless `options.$top` asks for more, up to 1000 (the spec's bounds:
//   resourcegraph.json 2024-04-01 QueryRequestOptions `$top` minimum 1, maximum 1000); when more rows
//   remain, `$skipToken` (examples ResourcesFirstPageQuery.json / ResourcesNextPageQuery.json:
//   totalRecords 386, count 3, resultTruncated "false", $skipToken set), passed back in
//   `options.$skipToken` with the same query and scopes. A query that limits itself (take/limit) or
//   whose columns are all dynamic cannot be paged: `resultTruncated: "true"` and no $skipToken
//   (https://learn.microsoft.com/azure/governance/resource-graph/concepts/paging-results).
//   The default of 100 is the figure the contract and the older work-with-data page give (today's page
//   says 1000; MicrosoftDocs/azure-docs#16527 traces the 100 to the CLI's --first): the smaller one
//   catches a client that forgets `$top`.
import { createHash, randomUUID } from "node:crypto";
import { HttpError, jsonBody, sendJson } from "../http";
import { isAllowed } from "../rbac";
import type { Annotation, World } from "../state";
import type { ApiVersionPolicy } from "./apiVersions";
import { displayPower, vmJson } from "./compute";
import { vmId } from "./ids";
import {
  KustoNotImplementedError,
  KustoQueryError,
  type ResourceGraphTable,
  type Row,
  runQueryDetailed,
  serializeRows,
} from "./kusto";
import type { ArmEnv, ArmRoute } from "./router";

/** The action that lets a caller see a VM's Resource Health records (annotations) in Resource Graph. */
export const HEALTH_READ_ACTION = "Microsoft.ResourceHealth/availabilityStatuses/read";

/** Rows in one answer when the request sets no `$top`, and the most `$top` may ask for. */
export const RESOURCE_GRAPH_DEFAULT_TOP = 100;
export const RESOURCE_GRAPH_MAX_TOP = 1000;

/** The stable api-versions: the folders of azure-rest-api-specs resourcegraph/…/ResourceGraph/stable. */
const RESOURCE_GRAPH_VERSIONS: ApiVersionPolicy = {
  resourceType: "resources",
  versions: ["2019-04-01", "2021-03-01", "2022-10-01", "2024-04-01"],
};

const supportMessage = () =>
  `Please provide below info when asking for support: timestamp = ${new Date().toISOString()}, correlationId = ${randomUUID()}.`;

export function resourceGraphRoutes(): ArmRoute[] {
  return [
    {
      method: "POST",
      pattern: "providers/Microsoft.ResourceGraph/resources",
      apiVersions: RESOURCE_GRAPH_VERSIONS,
      handle: (ctx, _params, env) => {
        // The caller's quota (rateLimit.ts, chargeResourceGraph): headers on every answer, 429 over quota.
        const charge = env.world.rateLimiter.chargeResourceGraph(env.caller.objectId);
        const quotaHeaders = charge.headers;
        if (charge.throttled) {
          throw new HttpError(charge.throttled.status, charge.throttled.code, charge.throttled.message, {
            "Retry-After": String(charge.throttled.retryAfterSeconds),
            ...quotaHeaders,
          });
        }
        const body = jsonBody<{
          query?: unknown;
          subscriptions?: unknown;
          options?: { resultFormat?: string; $top?: unknown; $skip?: unknown; $skipToken?: unknown };
        }>(ctx);
        if (typeof body.query !== "string" || body.query.trim() === "") {
          throw new HttpError(400, "BadRequest", supportMessage(), quotaHeaders, [
            { code: "InvalidQuery", message: "The query is empty." },
          ]);
        }
        const subscriptions = Array.isArray(body.subscriptions) ? body.subscriptions.map(String) : undefined;
        // Rows of the subscriptions the request names (all the caller may read when it names none).
        const wanted = subscriptions?.map((s) => s.toLowerCase());
        const inScope = (row: Row) =>
          wanted === undefined || wanted.includes(String(row.subscriptionId).toLowerCase());
        // The page asked for is checked before the query runs: a bad option is the request's fault.
        const fingerprint = queryFingerprint(body.query, subscriptions);
        const window = pageWindow(body.options ?? {}, fingerprint, quotaHeaders);
        let rows: Row[];
        let usesTake: boolean;
        try {
          ({ rows, usesTake } = runQueryDetailed(
            body.query,
            scopedTables(
              tablesFor(env),
              inScope,
              (wanted ?? [env.world.subscriptionId]).some((s) => env.world.knowsSubscription(s)),
            ),
          ));
        } catch (error) {
          if (error instanceof KustoQueryError) {
            throw new HttpError(400, "BadRequest", supportMessage(), quotaHeaders, [
              {
                code: "InvalidQuery",
                message:
                  "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying.",
              },
              ...error.diagnostics.map((d) => ({
                code: "ParserFailure",
                message: `${d.code}: ${d.message}`,
                line: (body.query as string).slice(0, d.start).split("\n").length,
                characterPositionInLine: d.start,
                token: (body.query as string).slice(d.start, d.start + d.length),
              })),
            ]);
          }
          if (error instanceof KustoNotImplementedError) {
            throw new HttpError(400, "BadRequest", supportMessage(), quotaHeaders, [
              { code: "EmulatorNotImplemented", message: error.message },
            ]);
          }
          throw error;
        }
        sendJson(ctx, 200, pageOf(serializeRows(rows), window, usesTake, fingerprint), quotaHeaders);
      },
    },
  ];
}

/** What a skip token carries: where the next page starts, and which query and scopes it belongs to. */
interface SkipToken {
  offset: number;
  fingerprint: string;
}

function queryFingerprint(query: string, subscriptions: string[] | undefined): string {
  const scopes = (subscriptions ?? []).map((s) => s.toLowerCase()).sort();
  return createHash("sha256")
    .update(JSON.stringify([query, scopes]))
    .digest("base64url")
    .slice(0, 16);
}

function badOption(message: string, headers: Record<string, string>): HttpError {
  // Azure's own code for a bad paging option is not documented; the emulator names itself.
  return new HttpError(400, "BadRequest", supportMessage(), headers, [
    { code: "EmulatorInvalidQueryOptions", message },
  ]);
}

/** The rows one request asks for: from `offset`, at most `top`. */
function pageWindow(
  options: { $top?: unknown; $skip?: unknown; $skipToken?: unknown },
  fingerprint: string,
  headers: Record<string, string>,
): { offset: number; top: number } {
  const top = options.$top ?? RESOURCE_GRAPH_DEFAULT_TOP;
  if (!Number.isInteger(top) || (top as number) < 1 || (top as number) > RESOURCE_GRAPH_MAX_TOP) {
    throw badOption(
      `$top must be an integer from 1 to ${RESOURCE_GRAPH_MAX_TOP}, got ${String(top)}.`,
      headers,
    );
  }
  let offset = 0;
  if (options.$skipToken !== undefined) {
    let token: SkipToken | undefined;
    try {
      token = JSON.parse(Buffer.from(String(options.$skipToken), "base64").toString("utf8")) as SkipToken;
    } catch {
      token = undefined;
    }
    if (!token || !Number.isInteger(token.offset) || token.fingerprint !== fingerprint) {
      throw badOption("$skipToken does not belong to this query and these subscriptions.", headers);
    }
    offset = token.offset;
  }
  // `$skip` overrides the token's offset (QueryRequestOptions `$skip`).
  if (options.$skip !== undefined) {
    if (!Number.isInteger(options.$skip) || (options.$skip as number) < 0) {
      throw badOption(`$skip must be an integer from 0, got ${String(options.$skip)}.`, headers);
    }
    offset = options.$skip as number;
  }
  return { offset, top: top as number };
}

/** One page of a query's rows, with the fields Azure's QueryResponse carries. */
function pageOf(
  rows: Row[],
  window: { offset: number; top: number },
  usesTake: boolean,
  fingerprint: string,
): Record<string, unknown> {
  const data = rows.slice(window.offset, window.offset + window.top);
  const end = window.offset + data.length;
  const more = end < rows.length;
  // Paging is impossible for a query that limits itself or whose columns are all dynamic or null:
  // Azure then says resultTruncated "true" and sends no $skipToken (paging-results).
  const allDynamic =
    rows.length > 0 &&
    rows.every((row) => Object.values(row).every((v) => v === null || typeof v === "object"));
  const pageable = !usesTake && !allDynamic;
  const body: Record<string, unknown> = {
    totalRecords: rows.length,
    count: data.length,
    data,
    facets: [],
    resultTruncated: more && !pageable ? "true" : "false",
  };
  if (more && pageable) {
    const token: SkipToken = { offset: end, fingerprint };
    body.$skipToken = Buffer.from(JSON.stringify(token)).toString("base64");
  }
  return body;
}

function allowed(env: ArmEnv, action: string, scope: string): boolean {
  return isAllowed(
    env.caller.objectId,
    action,
    scope,
    env.world.roleAssignments.values(),
    env.world.findRoleDefinition,
  );
}

/**
 * The rows of the subscriptions a request names: resources and health rows by their subscription; the
 * SpotResources rows (Azure's, not the tenant's) whenever it names a subscription the emulator has.
 */
function scopedTables(
  tables: Record<ResourceGraphTable, Row[]>,
  inScope: (row: Row) => boolean,
  anyKnown: boolean,
): Record<ResourceGraphTable, Row[]> {
  return {
    ...tables,
    resources: tables.resources.filter(inScope),
    healthresources: tables.healthresources.filter(inScope),
    spotresources: anyKnown ? tables.spotresources : [],
  };
}

/** The tables as this caller may see them now. */
function tablesFor(env: ArmEnv): Record<ResourceGraphTable, Row[]> {
  const { world } = env;
  const vms = world.listVms();
  const resources = vms
    .filter((vm) => allowed(env, "Microsoft.Compute/virtualMachines/read", vmId(world, vm)))
    .map((vm) => {
      const json = vmJson(world, vm, false);
      // As the instance view words it, for the state Resource Graph has caught up with (timing.resourceGraphLagSeconds).
      const state = world.graphPowerState(vm);
      const power = { code: `PowerState/${state}`, displayStatus: displayPower[state] };
      return baseRow(world, {
        id: json.id as string,
        name: vm.name,
        type: "microsoft.compute/virtualmachines",
        location: vm.location,
        resourceGroup: vm.resourceGroup,
        subscriptionId: vm.subscriptionId,
        properties: {
          ...(json.properties as Row),
          extended: {
            instanceView: { powerState: { code: power?.code, displayStatus: power?.displayStatus } },
          },
        },
        tags: json.tags as Row,
        zones: vm.zone ? [vm.zone] : null,
      });
    });
  const now = Date.now();
  const healthresources = latestVisibleAnnotations(world, now)
    .filter((annotation) =>
      allowed(
        env,
        HEALTH_READ_ACTION,
        vmId(world, {
          subscriptionId: annotation.subscriptionId,
          resourceGroup: annotation.resourceGroup,
          name: annotation.vmName,
        }),
      ),
    )
    .map((annotation) => annotationRow(world, annotation));
  // SpotResources describe sizes and regions, not the caller's resources: no role action is documented
  // for them (spot-vms.md queries them with any access), so every caller in scope sees them (market.ts).
  const spotresources = world.market.spotResourceRows(world.subscriptionId, world.tenantId, now);
  return { resources, healthresources, spotresources };
}

/**
 * Resource Graph holds the latest annotation of each VM ("the latest snapshot",
 * https://learn.microsoft.com/azure/virtual-machines/resource-graph-availability), once visible.
 */
function latestVisibleAnnotations(world: World, now: number): Annotation[] {
  const latest = new Map<string, Annotation>();
  for (const annotation of world.annotations) {
    if (annotation.visibleAt > now) continue;
    latest.set(
      `${annotation.subscriptionId ?? ""}/${annotation.resourceGroup}/${annotation.vmName}`.toLowerCase(),
      annotation,
    );
  }
  return [...latest.values()];
}

function annotationRow(world: World, annotation: Annotation): Row {
  const target = vmId(world, {
    subscriptionId: annotation.subscriptionId,
    resourceGroup: annotation.resourceGroup,
    name: annotation.vmName,
  });
  return baseRow(world, {
    id: `${target}/providers/Microsoft.ResourceHealth/resourceAnnotations/current`,
    name: "current",
    type: "microsoft.resourcehealth/resourceannotations",
    location: world.vmAnywhere(annotation.resourceGroup, annotation.vmName)?.location ?? "",
    resourceGroup: annotation.resourceGroup,
    subscriptionId: annotation.subscriptionId,
    properties: {
      targetResourceType: "Microsoft.Compute/virtualMachines",
      targetResourceId: target,
      occurredTime: annotation.occurredTime,
      annotationName: annotation.annotationName,
      reason: annotation.reason,
      summary: annotation.summary,
      context: annotation.context,
      category: annotation.category,
      impactType: annotation.impactType,
    },
    tags: null,
    zones: null,
  });
}

function baseRow(
  world: World,
  row: {
    id: string;
    name: string;
    type: string;
    location: string;
    resourceGroup: string;
    /** Absent: the seed's subscription. */
    subscriptionId?: string;
    properties: Row;
    tags: Row | null;
    zones: string[] | null;
  },
): Row {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    tenantId: world.tenantId,
    kind: "",
    location: row.location,
    // Resource Graph lower-cases the resourceGroup column.
    resourceGroup: row.resourceGroup.toLowerCase(),
    subscriptionId: row.subscriptionId ?? world.subscriptionId,
    managedBy: "",
    sku: null,
    plan: null,
    properties: row.properties,
    tags: row.tags,
    identity: null,
    zones: row.zones,
    extendedLocation: null,
  };
}
