// Tags API at scope: `{scope}/providers/Microsoft.Resources/tags/default`.
// PUT replaces the whole set; PATCH `operation` Merge (add/overwrite), Replace (whole set) or Delete
// (names, or name/value pairs: a pair whose value differs is kept); DELETE removes all tags.
// https://learn.microsoft.com/rest/api/resources/tags
import { HttpError, jsonBody, type RequestContext, sendJson } from "../http";
import type { World } from "../state";
import type { ArmRoute } from "./router";

const TAGS = "{*scope}/providers/Microsoft.Resources/tags/default";
const MAX_TAGS = 50;

export function tagRoutes(): ArmRoute[] {
  const scopeOf = (params: Record<string, string>) => params.scope as string;
  return [
    {
      method: "GET",
      pattern: TAGS,
      action: "Microsoft.Resources/tags/read",
      scope: scopeOf,
      handle: (ctx, params, env) =>
        sendTags(ctx, params.scope as string, requireTags(env.world, params.scope as string)),
    },
    {
      method: "PUT",
      pattern: TAGS,
      action: "Microsoft.Resources/tags/write",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const scope = params.scope as string;
        requireTags(env.world, scope);
        const tags = tagsFromBody(ctx);
        env.world.replaceTagsAt(scope, tags);
        sendTags(ctx, scope, requireTags(env.world, scope));
      },
    },
    {
      method: "PATCH",
      pattern: TAGS,
      action: "Microsoft.Resources/tags/write",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        const scope = params.scope as string;
        const current = requireTags(env.world, scope);
        const operation = String(jsonBody(ctx).operation ?? "");
        const given = tagsFromBody(ctx);
        env.world.replaceTagsAt(scope, patchTags(current, operation, given));
        sendTags(ctx, scope, requireTags(env.world, scope));
      },
    },
    {
      method: "DELETE",
      pattern: TAGS,
      action: "Microsoft.Resources/tags/delete",
      scope: scopeOf,
      handle: (ctx, params, env) => {
        requireTags(env.world, params.scope as string);
        env.world.replaceTagsAt(params.scope as string, {});
        sendJson(ctx, 200, undefined);
      },
    },
  ];
}

/** Pure tag-patch semantics. Tag names compare case-insensitively, values case-sensitively (as in Azure). */
export function patchTags(
  current: Record<string, string>,
  operation: string,
  given: Record<string, string>,
): Record<string, string> {
  const op = operation.toLowerCase();
  if (op === "replace") return { ...given };
  if (op === "merge") {
    const merged = { ...current };
    for (const [name, value] of Object.entries(given)) {
      const existing = Object.keys(merged).find((known) => known.toLowerCase() === name.toLowerCase());
      if (existing !== undefined) delete merged[existing];
      merged[existing ?? name] = value;
    }
    return checkCount(merged);
  }
  if (op === "delete") {
    const remaining = { ...current };
    for (const [name, value] of Object.entries(given)) {
      const existing = Object.keys(remaining).find((known) => known.toLowerCase() === name.toLowerCase());
      // An empty value deletes by name (az tag update --operation delete --tags Name); otherwise
      // the pair has to match.
      if (existing !== undefined && (value === "" || remaining[existing] === value))
        delete remaining[existing];
    }
    return remaining;
  }
  throw new HttpError(
    400,
    "InvalidTagPatchOperation",
    `The tag patch operation '${operation}' is not valid. Supported values are 'Merge', 'Replace' and 'Delete'.`,
  );
}

function checkCount(tags: Record<string, string>): Record<string, string> {
  if (Object.keys(tags).length > MAX_TAGS) {
    throw new HttpError(400, "InvalidTagCount", `The number of tags exceeds the limit of ${MAX_TAGS}.`);
  }
  return tags;
}

function tagsFromBody(ctx: RequestContext): Record<string, string> {
  const body = jsonBody<{ properties?: { tags?: unknown } }>(ctx);
  const tags = body.properties?.tags;
  if (tags === null || typeof tags !== "object" || Array.isArray(tags)) {
    throw new HttpError(
      400,
      "InvalidRequestContent",
      "The request content must contain 'properties.tags', an object.",
    );
  }
  for (const [name, value] of Object.entries(tags)) {
    if (typeof value !== "string") {
      throw new HttpError(400, "InvalidTagValue", `The value of tag '${name}' must be a string.`);
    }
  }
  return checkCount({ ...(tags as Record<string, string>) });
}

function requireTags(world: World, scope: string): Record<string, string> {
  const tags = world.tagsAt(scope);
  if (!tags) {
    throw new HttpError(
      404,
      "ResourceNotFound",
      `The resource at scope '${scope}' was not found by the emulator.`,
    );
  }
  return tags;
}

function sendTags(ctx: RequestContext, scope: string, tags: Record<string, string>): void {
  sendJson(ctx, 200, {
    id: `${scope.replace(/\/+$/, "")}/providers/Microsoft.Resources/tags/default`,
    name: "default",
    type: "Microsoft.Resources/tags",
    properties: { tags: { ...tags } },
  });
}
