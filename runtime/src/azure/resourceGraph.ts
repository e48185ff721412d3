// Every Resource Graph query of the runtime goes through here, so that none of them reads only the first
// page. Azure's rules (learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data and
// …/concepts/paging-results; azure-rest-api-specs resourcegraph 2024-04-01 resourcegraph.json and its
// examples ResourcesFirstPageQuery.json / ResourcesNextPageQuery.json):
// - an answer holds at most `$top` rows (1 to 1000; without it fewer: 100 in the older docs, 1000 today),
//   so every request sets `$top` to the maximum;
// - when more rows remain the answer carries `$skipToken`, to be sent back with the same query and
//   scopes for the next page;
// - a query that cannot be paged (it has a take/limit/sample operator, or all its columns are dynamic)
//   answers `resultTruncated: "true"` and no token: the rows beyond the first page are lost, and the
//   caller is told (`truncated`) rather than handed a silently short list;
// - a request names at most 1000 subscriptions (troubleshoot/general, "Too many subscriptions"), so a
//   longer list is queried in batches.
// A query over a list of ids is split too (queryByIdBatches): Resource Graph documents no limit on the
// query's length, so each query carries a bounded number of ids rather than a fleet's worth.
import type { QueryRequest, QueryResponse } from "@azure/arm-resourcegraph";

/** The largest `$top` Resource Graph accepts (QueryRequestOptions `$top`, maximum 1000). */
export const RESOURCE_GRAPH_MAX_PAGE = 1000;
/** Subscriptions one request may name. */
export const RESOURCE_GRAPH_MAX_SUBSCRIPTIONS = 1000;
/**
 * Ids one query carries. An ARM id is about 150 characters, so 200 keep a query near 30 KB, far from any
 * request limit; a query returning one row per id then also fits in one page.
 */
export const RESOURCE_GRAPH_IDS_PER_QUERY = 200;
/** A runaway guard: no query of ours has this many pages (1000 × 1000 rows). */
const MAX_PAGES = 1000;

/** The part of `ResourceGraphClient` used here (the SDK's client, or the emulator behind it). */
export interface ResourceGraphQueryClient {
  resources(query: QueryRequest, options?: { abortSignal?: AbortSignal }): Promise<QueryResponse>;
}

export type ResourceGraphRow = Record<string, unknown>;

export interface ResourceGraphResult {
  readonly rows: ResourceGraphRow[];
  /** Azure said the rows were cut short and could not be paged: some rows are missing. */
  readonly truncated: boolean;
  /** Requests sent (each page of each batch). */
  readonly requests: number;
}

export interface ResourceGraphQuery {
  readonly query: string;
  /** Scopes; absent = every subscription the caller can read. Split into batches of 1000. */
  readonly subscriptions?: readonly string[];
  readonly managementGroups?: readonly string[];
}

/** Every row of one query: `$top` at the maximum, every `$skipToken` followed, subscriptions batched. */
export async function queryAllPages(
  client: ResourceGraphQueryClient,
  request: ResourceGraphQuery,
  signal: AbortSignal,
  options: { pageSize?: number } = {},
): Promise<ResourceGraphResult> {
  const pageSize = options.pageSize ?? RESOURCE_GRAPH_MAX_PAGE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > RESOURCE_GRAPH_MAX_PAGE) {
    throw new RangeError(`pageSize must be an integer from 1 to ${RESOURCE_GRAPH_MAX_PAGE}, got ${pageSize}`);
  }
  const scopes =
    request.subscriptions === undefined
      ? [undefined]
      : chunks(request.subscriptions, RESOURCE_GRAPH_MAX_SUBSCRIPTIONS);
  const rows: ResourceGraphRow[] = [];
  let truncated = false;
  let requests = 0;
  for (const subscriptions of scopes) {
    let skipToken: string | undefined;
    const seen = new Set<string>();
    for (let page = 0; ; page++) {
      if (page >= MAX_PAGES) {
        throw new Error(`Resource Graph query still had more pages after ${MAX_PAGES}; stopped`);
      }
      const response = await client.resources(
        {
          query: request.query,
          ...(subscriptions ? { subscriptions: [...subscriptions] } : {}),
          ...(request.managementGroups ? { managementGroups: [...request.managementGroups] } : {}),
          options: { top: pageSize, ...(skipToken ? { skipToken } : {}) },
        },
        { abortSignal: signal },
      );
      requests++;
      if (Array.isArray(response.data)) rows.push(...(response.data as ResourceGraphRow[]));
      if (response.resultTruncated === "true") truncated = true;
      skipToken = response.skipToken || undefined;
      if (!skipToken) break;
      // A token seen before would loop forever: Azure never sends one twice for a query.
      if (seen.has(skipToken))
        throw new Error("Resource Graph sent the same $skipToken twice; stopped paging");
      seen.add(skipToken);
    }
  }
  return { rows, truncated, requests };
}

/**
 * Every row of a query over a list of ids, the ids split into batches of `idsPerQuery`: one query (and
 * its pages) per batch, the rows concatenated.
 */
export async function queryByIdBatches(
  client: ResourceGraphQueryClient,
  ids: readonly string[],
  buildQuery: (ids: readonly string[]) => string,
  scope: Omit<ResourceGraphQuery, "query">,
  signal: AbortSignal,
  options: { idsPerQuery?: number; pageSize?: number } = {},
): Promise<ResourceGraphResult> {
  const rows: ResourceGraphRow[] = [];
  let truncated = false;
  let requests = 0;
  for (const batch of chunks(ids, options.idsPerQuery ?? RESOURCE_GRAPH_IDS_PER_QUERY)) {
    const result = await queryAllPages(client, { ...scope, query: buildQuery(batch) }, signal, options);
    rows.push(...result.rows);
    truncated ||= result.truncated;
    requests += result.requests;
  }
  return { rows, truncated, requests };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`batch size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
