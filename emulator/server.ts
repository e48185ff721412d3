// The HTTPS front: one origin serves Entra ID, Resource Manager and the control API. Every request
// except the control API passes the fault rules first and lands in the request log.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { activityLogRoutes } from "./arm/activityLog";
import { authorizationRoutes } from "./arm/authorization";
import { computeRoutes } from "./arm/compute";
import { networkRoutes } from "./arm/network";
import { placementScoreRoutes } from "./arm/placementScores";
import { resourceGraphRoutes } from "./arm/resourceGraph";
import { resourceRoutes } from "./arm/resources";
import { ArmRouter } from "./arm/router";
import { tagRoutes } from "./arm/tags";
import { handleControl, RequestLog } from "./control";
import type { EntraEmulator } from "./entra";
import { consumeFault, defaultErrorCode, findRequestFault, vmNameInPath, vmSizeInPath } from "./faults";
import { HttpError, type RequestContext, readBody, sendArmError, sendJson } from "./http";
import { handleRetailPrices } from "./retailPrices";
import type { World } from "./state";

export interface EmulatorServer {
  server: Server;
  origin: string;
  log: RequestLog;
}

export async function startServer(options: {
  world: World;
  entra: EntraEmulator;
  tls: { key: string; cert: string };
  port: number;
  host: string;
  info: () => Record<string, unknown>;
}): Promise<EmulatorServer> {
  const { world, entra } = options;
  const log = new RequestLog();
  const arm = new ArmRouter(world, entra, [
    ...resourceRoutes(),
    ...computeRoutes(),
    ...networkRoutes(),
    ...tagRoutes(),
    ...authorizationRoutes(),
    ...resourceGraphRoutes(),
    ...activityLogRoutes(),
    ...placementScoreRoutes(),
  ]);
  let origin = "";

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // az builds `{arm}/` + `/metadata/endpoints`: collapse repeated slashes first (a leading `//`
    // would otherwise parse as a host name).
    const url = new URL((req.url ?? "/").replace(/^\/{2,}/, "/"), "https://emulator.invalid");
    const path = url.pathname.replace(/\/{2,}/g, "/");
    const ctx: RequestContext = {
      req,
      res,
      method: (req.method ?? "GET").toUpperCase(),
      path,
      segments: path.split("/").filter(Boolean),
      query: url.searchParams,
      origin,
      body: Buffer.alloc(0),
    };
    const isControl = ctx.segments[0] === "_emulator";
    if (!isControl) {
      res.on("finish", () =>
        log.add({
          method: ctx.method,
          path: ctx.path,
          query: url.search.replace(/^\?/, ""),
          status: res.statusCode,
          ...(ctx.logClientId ? { clientId: ctx.logClientId } : {}),
          time: new Date().toISOString(),
        }),
      );
    }
    try {
      ctx.body = await readBody(req);
      if (isControl) {
        if (!isLoopback(req.socket.remoteAddress))
          throw new HttpError(403, "Forbidden", "The control API is loopback only.");
        handleControl(ctx, world, log, options.info());
        return;
      }
      const fault = findRequestFault(world.faults, {
        method: ctx.method,
        path: ctx.path,
        vm: vmNameInPath(ctx.path),
        vmSize: vmSizeInPath(ctx.path, (group, name) => world.vm(group, name)),
      });
      if (fault) {
        world.faults = consumeFault(world.faults, fault);
        if (fault.rule.delayMs) {
          // A client that gives up (its timeout) or an emulator that stops ends the wait: a long delay
          // must not keep a test process alive after everyone has hung up.
          const hungUp = new AbortController();
          const onClose = () => hungUp.abort();
          req.socket.once("close", onClose);
          try {
            await sleep(fault.rule.delayMs, undefined, { signal: hungUp.signal });
          } catch {
            return;
          } finally {
            req.socket.off("close", onClose);
          }
        }
        if (fault.rule.dropConnection) {
          ctx.logClientId ??= clientIdOf(ctx);
          log.add({
            method: ctx.method,
            path: ctx.path,
            query: url.search.replace(/^\?/, ""),
            status: 0,
            ...(ctx.logClientId ? { clientId: ctx.logClientId } : {}),
            time: new Date().toISOString(),
          });
          res.removeAllListeners("finish");
          req.socket.destroy();
          return;
        }
        if (fault.rule.status !== undefined) {
          ctx.logClientId ??= clientIdOf(ctx);
          if (/\/oauth2\/(v2\.0\/)?token$/i.test(ctx.path)) {
            entra.sendFault(ctx, fault.rule.status, fault.rule);
            return;
          }
          throw faultError(
            fault.rule.status,
            fault.rule.errorCode,
            fault.rule.errorMessage,
            fault.rule.retryAfterSeconds,
          );
        }
      }
      if (ctx.method === "GET" && ctx.path.toLowerCase() === "/metadata/endpoints") {
        sendJson(ctx, 200, metadataEndpoints(origin, ctx.query.get("api-version") ?? "2015-01-01"));
        return;
      }
      if (handleRetailPrices(ctx, world)) return;
      if (await entra.handle(ctx)) return;
      if (await arm.handle(ctx)) return;
      throw new HttpError(404, "NotFound", `The emulator does not serve ${ctx.method} ${ctx.path}.`);
    } catch (error) {
      if (res.headersSent || res.destroyed) return;
      if (error instanceof HttpError) return sendArmError(ctx, error);
      if (error instanceof z.ZodError) {
        const message = error.issues
          .map((issue) => `${issue.path.join(".") || "(body)"}: ${issue.message}`)
          .join("; ");
        return sendArmError(ctx, new HttpError(400, "InvalidRequestContent", message));
      }
      process.emitWarning(
        `emulator: ${ctx.method} ${ctx.path} failed: ${(error as Error).stack ?? String(error)}`,
      );
      sendArmError(
        ctx,
        new HttpError(500, "InternalServerError", "The emulator failed to handle the request."),
      );
    }
  };

  const server = createServer({ key: options.tls.key, cert: options.tls.cert }, (req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  origin = `https://${options.host}:${port}`;
  return { server, origin, log };
}

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
}

/** Who a request is from, without verifying anything (for the log of a faulted request). */
function clientIdOf(ctx: RequestContext): string | undefined {
  const header = ctx.req.headers.authorization;
  if (header?.startsWith("Bearer ")) {
    try {
      const payload = JSON.parse(Buffer.from(header.split(".")[1] ?? "", "base64url").toString("utf8")) as {
        appid?: string;
      };
      return payload.appid;
    } catch {
      return undefined;
    }
  }
  return new URLSearchParams(ctx.body.toString("utf8")).get("client_id") ?? undefined;
}

function faultError(
  status: number,
  code: string | undefined,
  message: string | undefined,
  retryAfter: number | undefined,
): HttpError {
  const headers: Record<string, string> =
    retryAfter !== undefined ? { "Retry-After": String(retryAfter) } : {};
  if (status === 429) {
    // Compute throttling, as Azure answers it: OperationNotAllowed with a TooManyRequests detail.
    // https://learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/troubleshooting-throttling-errors
    headers["x-ms-ratelimit-remaining-resource"] = "Microsoft.Compute/HighCostGet3Min;0";
    return new HttpError(
      429,
      code ?? defaultErrorCode(429),
      message ??
        "The server rejected the request because too many requests have been received for this subscription.",
      headers,
      [
        {
          code: "TooManyRequests",
          target: "HighCostGet3Min",
          message:
            '{"operationGroup":"HighCostGet3Min","startTime":"","endTime":"","allowedRequestCount":0,"measuredRequestCount":0}',
        },
      ],
    );
  }
  return new HttpError(
    status,
    code ?? defaultErrorCode(status),
    message ?? `Emulated fault: HTTP ${status}.`,
    headers,
  );
}

/** The cloud metadata document az reads on `az cloud register --endpoint-resource-manager`. */
function metadataEndpoints(origin: string, apiVersion: string): unknown {
  const audiences = ["https://management.azure.com/", `${origin}/`];
  // az 2.45 takes `authentication.loginEndpoint` as the cloud's active_directory endpoint; an /adfs
  // authority keeps MSAL Python from asking login.microsoftonline.com for instance discovery.
  const loginEndpoint = `${origin}/adfs`;
  if (apiVersion < "2019-05-01") {
    return {
      galleryEndpoint: `${origin}/`,
      graphEndpoint: "https://graph.windows.net/",
      portalEndpoint: `${origin}/`,
      authentication: { loginEndpoint, audiences },
    };
  }
  return [
    {
      name: "SpotRestarterEmulator",
      portal: `${origin}/`,
      resourceManager: `${origin}/`,
      gallery: `${origin}/`,
      graph: "https://graph.windows.net/",
      graphAudience: "https://graph.windows.net/",
      microsoftGraphResourceId: "https://graph.microsoft.com/",
      authentication: { loginEndpoint, audiences, tenant: "common", identityProvider: "AAD" },
      suffixes: { storage: "core.windows.net", keyVaultDns: "vault.azure.net" },
    },
  ];
}
