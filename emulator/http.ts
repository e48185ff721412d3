// Small request/response helpers shared by the Entra, ARM and control handlers.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export interface Caller {
  clientId: string;
  objectId: string;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path with repeated slashes collapsed (az sends `//metadata/endpoints`). */
  path: string;
  segments: string[];
  query: URLSearchParams;
  /** `https://127.0.0.1:PORT`, the origin clients reached us on. */
  origin: string;
  body: Buffer;
  caller?: Caller;
  /** Client id to record in the request log (the caller's, or the token request's client_id). */
  logClientId?: string;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details?: unknown[],
    /** ARM's `error.target`: the parameter at fault (`vmSize`). */
    readonly target?: string,
  ) {
    super(message);
  }
}

export function sendJson(
  ctx: RequestContext,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  ctx.res.writeHead(status, {
    ...(body === undefined ? {} : { "Content-Type": "application/json; charset=utf-8" }),
    "Content-Length": Buffer.byteLength(text),
    "x-ms-request-id": randomUUID(),
    "x-ms-correlation-request-id": randomUUID(),
    ...headers,
  });
  ctx.res.end(text);
}

/** Azure Resource Manager's error shape: `{"error":{"code","message"}}`. */
export function sendArmError(ctx: RequestContext, error: HttpError): void {
  sendJson(
    ctx,
    error.status,
    {
      error: {
        code: error.code,
        ...(error.target ? { target: error.target } : {}),
        message: error.message,
        ...(error.details ? { details: error.details } : {}),
      },
    },
    error.headers,
  );
}

export function jsonBody<T = Record<string, unknown>>(ctx: RequestContext): T {
  if (ctx.body.length === 0) {
    throw new HttpError(
      400,
      "InvalidRequestContent",
      "The request content was invalid and could not be deserialized: the body is empty.",
    );
  }
  try {
    return JSON.parse(ctx.body.toString("utf8")) as T;
  } catch (cause) {
    throw new HttpError(
      400,
      "InvalidRequestContent",
      `The request content was invalid and could not be deserialized: '${(cause as Error).message}'.`,
    );
  }
}

export async function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, "RequestEntityTooLarge", "The request body is too large.");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Case-insensitive match of path segments against a pattern like `subscriptions/{s}/resourceGroups/{rg}`. */
export function matchSegments(segments: string[], pattern: string): Record<string, string> | undefined {
  const parts = pattern.split("/").filter(Boolean);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const segment = segments[i] as string;
    if (part.startsWith("{") && part.endsWith("}")) params[part.slice(1, -1)] = segment;
    else if (part.toLowerCase() !== segment.toLowerCase()) return undefined;
  }
  return params;
}
