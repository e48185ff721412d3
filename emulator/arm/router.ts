// Resource Manager front door: api-version check, bearer token, RBAC, then the resource provider
// handler. ARM authorizes before the provider sees the request, so a caller without access gets 403
// even for a resource that does not exist.
import type { EntraEmulator } from "../entra";
import { type Caller, HttpError, type RequestContext } from "../http";
import type { ComputePolicyGroup } from "../rateLimit";
import { isAllowed, normalizeScope } from "../rbac";
import type { World } from "../state";
import { type ApiVersionPolicy, checkApiVersion } from "./apiVersions";

export interface ArmEnv {
  world: World;
  caller: Caller;
  apiVersion: string;
}

export interface ArmRoute {
  method: string;
  /** Segments, `{name}` captures one; a leading `{*scope}` captures any scope prefix (possibly empty). */
  pattern: string;
  /** The api-versions the resource type registers (NoRegisteredProviderFound otherwise). */
  apiVersions?: ApiVersionPolicy;
  /** The RBAC action required; omit for routes any authenticated caller may use. */
  action?: string;
  /** The scope the action is checked at; defaults to the request path. */
  scope?: (params: Record<string, string>, ctx: RequestContext) => string;
  handle(ctx: RequestContext, params: Record<string, string>, env: ArmEnv): void | Promise<void>;
  /** The Compute throttling policies the request is charged to (rateLimit.ts), if any. */
  computePolicy?: ComputePolicyGroup;
}

export function matchRoute(segments: string[], pattern: string): Record<string, string> | undefined {
  const parts = pattern.split("/").filter(Boolean);
  const params: Record<string, string> = {};
  let offset = 0;
  if (parts[0] === "{*scope}") {
    parts.shift();
    offset = segments.length - parts.length;
    if (offset < 0) return undefined;
    params.scope = `/${segments.slice(0, offset).join("/")}`;
  } else if (parts.length !== segments.length) {
    return undefined;
  }
  if (segments.length - offset !== parts.length) return undefined;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const segment = segments[offset + i] as string;
    if (part.startsWith("{") && part.endsWith("}")) params[part.slice(1, -1)] = decodeURIComponent(segment);
    else if (part.toLowerCase() !== segment.toLowerCase()) return undefined;
  }
  return params;
}

export class ArmRouter {
  constructor(
    private readonly world: World,
    private readonly entra: EntraEmulator,
    private readonly routes: ArmRoute[],
  ) {}

  async handle(ctx: RequestContext): Promise<boolean> {
    const found = this.find(ctx);
    if (!found) return false;
    const [route, params] = found;
    const apiVersion = ctx.query.get("api-version");
    if (!apiVersion) {
      throw new HttpError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    const caller = await this.entra.authenticate(ctx);
    ctx.caller = caller;
    ctx.logClientId = caller.clientId;
    const subscription = params.subscriptionId;
    if (subscription !== undefined && !this.world.knowsSubscription(subscription)) {
      throw new HttpError(
        404,
        "SubscriptionNotFound",
        `The subscription '${subscription}' could not be found.`,
      );
    }
    checkApiVersion(apiVersion, route.apiVersions, this.locationOf(params), this.world.locations());
    if (route.action) {
      const scope = route.scope ? route.scope(params, ctx) : ctx.path;
      this.authorize(caller, route.action, scope);
    }
    this.chargeBudgets(ctx, route, caller);
    await route.handle(ctx, params, { world: this.world, caller, apiVersion });
    return true;
  }

  /** ARM's budget, then the resource provider's: remaining-budget headers, or a 429 when spent and enforced. */
  private chargeBudgets(ctx: RequestContext, route: ArmRoute, caller: Caller): void {
    const limiter = this.world.rateLimiter;
    const charges = [limiter.chargeArm(ctx.method, this.world.subscriptionId, caller.objectId)];
    if (route.computePolicy && !charges[0]?.throttled) {
      charges.push(limiter.chargeCompute(route.computePolicy, this.world.subscriptionId));
    }
    const headers = Object.assign({}, ...charges.map((c) => c.headers)) as Record<string, string>;
    const throttled = charges.find((c) => c.throttled)?.throttled;
    if (throttled) {
      throw new HttpError(
        throttled.status,
        throttled.code,
        throttled.message,
        { ...headers, "Retry-After": String(throttled.retryAfterSeconds) },
        throttled.details,
      );
    }
    for (const [name, value] of Object.entries(headers)) ctx.res.setHeader(name, value);
  }

  authorize(caller: Caller, action: string, scope: string): void {
    if (
      isAllowed(
        caller.objectId,
        action,
        scope,
        this.world.roleAssignments.values(),
        this.world.findRoleDefinition,
      )
    ) {
      return;
    }
    throw authorizationFailed(caller, action, scope);
  }

  /** The location ARM names in a NoRegisteredProviderFound: the resource's, else its group's. */
  private locationOf(params: Record<string, string>): string {
    const group = params.resourceGroup
      ? this.world.resourceGroup(params.resourceGroup, params.subscriptionId)
      : undefined;
    const vm =
      group && params.vmName ? this.world.vm(group.name, params.vmName, params.subscriptionId) : undefined;
    return (vm?.location ?? params.location ?? group?.location ?? "eastus").toLowerCase();
  }

  private find(ctx: RequestContext): [ArmRoute, Record<string, string>] | undefined {
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchRoute(ctx.segments, route.pattern);
      if (!params) continue;
      pathMatched = true;
      if (route.method === ctx.method) return [route, params];
    }
    if (pathMatched) {
      throw new HttpError(
        405,
        "MethodNotAllowed",
        `The requested method '${ctx.method}' is not allowed on '${ctx.path}'.`,
      );
    }
    return undefined;
  }
}

/** ARM's 403 for a caller without `action` at `scope`. */
export function authorizationFailed(caller: Caller, action: string, scope: string): HttpError {
  return new HttpError(
    403,
    "AuthorizationFailed",
    `The client '${caller.clientId}' with object id '${caller.objectId}' does not have authorization to perform action '${action}' over scope '${scopeForMessage(scope)}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
  );
}

function scopeForMessage(scope: string): string {
  return normalizeScope(scope) === "/" ? "/" : scope.replace(/\/+$/, "");
}
