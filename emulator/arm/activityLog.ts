// The Activity Log: `GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values`
// (api-version 2015-04-01, what @azure/arm-monitor 8 sends), holding the VM deallocations someone asked
// ARM for, with their caller. Shapes: azure-rest-api-specs monitor/…/stable/2015-04-01/examples/
// GetActivityLogsFiltered.json. `$filter` takes the documented clauses joined by `and`:
// `eventTimestamp ge '…'` (required), `eventTimestamp le '…'`, and one of `resourceGroupName eq '…'`,
// `resourceUri eq '…'`, `resourceProvider eq '…'`, `correlationId eq '…'`
// (https://learn.microsoft.com/rest/api/monitor/activity-logs/list).
// Access: `Microsoft.Insights/eventtypes/values/read`, checked at the scope the filter narrows to (a
// principal with a role on one resource group reads that group's events).
import { HttpError, sendJson } from "../http";
import type { ActivityEvent, World } from "../state";
import { vmId } from "./ids";
import type { ArmRoute } from "./router";

export const ACTIVITY_LOG_READ_ACTION = "Microsoft.Insights/eventtypes/values/read";

interface ActivityFilter {
  from: number;
  to: number;
  resourceGroupName?: string;
  resourceUri?: string;
  resourceProvider?: string;
  correlationId?: string;
}

export function parseActivityFilter(filter: string | null): ActivityFilter {
  if (!filter) {
    throw new HttpError(
      400,
      "BadRequest",
      "The $filter query parameter is required (eventTimestamp ge '…').",
    );
  }
  const result: Partial<ActivityFilter> & { to: number } = { to: Number.POSITIVE_INFINITY };
  for (const clause of filter.split(/\s+and\s+/i)) {
    const match = /^\s*(\w+)\s+(eq|ge|le)\s+'([^']*)'\s*$/i.exec(clause);
    if (!match) throw new HttpError(400, "BadRequest", `The $filter clause '${clause}' is not valid.`);
    const [, field = "", operator = "", value = ""] = match;
    const name = field.toLowerCase();
    const op = operator.toLowerCase();
    if (name === "eventtimestamp" && (op === "ge" || op === "le")) {
      const ms = Date.parse(value);
      if (Number.isNaN(ms)) throw new HttpError(400, "BadRequest", `'${value}' is not a valid timestamp.`);
      if (op === "ge") result.from = ms;
      else result.to = ms;
    } else if (op === "eq" && name === "resourcegroupname") result.resourceGroupName = value;
    else if (op === "eq" && name === "resourceuri") result.resourceUri = value;
    else if (op === "eq" && name === "resourceprovider") result.resourceProvider = value;
    else if (op === "eq" && name === "correlationid") result.correlationId = value;
    else throw new HttpError(400, "BadRequest", `The $filter field '${field} ${operator}' is not supported.`);
  }
  if (result.from === undefined) {
    throw new HttpError(400, "BadRequest", "The $filter must contain eventTimestamp ge '…'.");
  }
  return result as ActivityFilter;
}

export function activityLogRoutes(): ArmRoute[] {
  return [
    {
      method: "GET",
      pattern: "subscriptions/{subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values",
      // The only version of the Activity Log API (azure-rest-api-specs monitor/…/stable/2015-04-01).
      apiVersions: { resourceType: "eventtypes/values", versions: ["2015-04-01"] },
      action: ACTIVITY_LOG_READ_ACTION,
      scope: (_params, ctx) => {
        const filter = parseActivityFilter(ctx.query.get("$filter"));
        const subscription = `/subscriptions/${_params.subscriptionId}`;
        if (filter.resourceUri) return filter.resourceUri;
        if (filter.resourceGroupName) return `${subscription}/resourceGroups/${filter.resourceGroupName}`;
        return subscription;
      },
      handle: (ctx, _params, env) => {
        const filter = parseActivityFilter(ctx.query.get("$filter"));
        const now = Date.now();
        const events = env.world.activityLog.filter((event) => {
          const at = Date.parse(event.eventTimestamp);
          if (event.visibleAt > now || at < filter.from || at > filter.to) return false;
          if (
            filter.resourceGroupName &&
            filter.resourceGroupName.toLowerCase() !== event.resourceGroup.toLowerCase()
          ) {
            return false;
          }
          if (
            filter.resourceUri &&
            filter.resourceUri.toLowerCase() !==
              vmId(env.world, { resourceGroup: event.resourceGroup, name: event.vmName }).toLowerCase()
          ) {
            return false;
          }
          if (filter.resourceProvider && filter.resourceProvider.toLowerCase() !== "microsoft.compute")
            return false;
          if (filter.correlationId && filter.correlationId !== event.correlationId) return false;
          return true;
        });
        // Newest first, as the Activity Log answers.
        events.sort((a, b) => Date.parse(b.eventTimestamp) - Date.parse(a.eventTimestamp));
        sendJson(ctx, 200, { value: events.map((event) => eventJson(env.world, event)) });
      },
    },
  ];
}

const localized = (value: string) => ({ value, localizedValue: value });

function eventJson(world: World, event: ActivityEvent): Record<string, unknown> {
  const resourceId = vmId(world, { resourceGroup: event.resourceGroup, name: event.vmName });
  const ticks = BigInt(Date.parse(event.eventTimestamp)) * 10_000n + 621_355_968_000_000_000n;
  return {
    authorization: {
      action: event.operationName,
      scope: resourceId,
    },
    caller: event.caller,
    channels: "Operation",
    claims: {
      aud: "https://management.core.windows.net/",
      ...(event.callerObjectId
        ? {
            appid: event.caller,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": event.callerObjectId,
          }
        : { "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": event.caller }),
    },
    correlationId: event.correlationId,
    description: "",
    eventDataId: event.eventDataId,
    eventName: localized("EndRequest"),
    category: localized("Administrative"),
    id: `${resourceId}/events/${event.eventDataId}/ticks/${ticks}`,
    level: "Informational",
    resourceGroupName: event.resourceGroup,
    resourceProviderName: localized("Microsoft.Compute"),
    resourceId,
    resourceType: localized("Microsoft.Compute/virtualMachines"),
    operationId: event.correlationId,
    operationName: {
      value: event.operationName,
      localizedValue: "Deallocate Virtual Machine",
    },
    properties: { statusCode: "OK" },
    status: localized(event.status),
    subStatus: localized(""),
    eventTimestamp: event.eventTimestamp,
    submissionTimestamp: new Date(event.visibleAt).toISOString(),
    subscriptionId: world.subscriptionId,
    tenantId: world.tenantId,
  };
}
