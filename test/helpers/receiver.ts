// A local HTTP server standing in for a notification service (ntfy, Slack, Discord, Teams, a
// webhook): it records every request and answers as told (a status, a delay, or never).
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export interface ReceiverBehaviour {
  /** Status of each answer (default 200); a function gets the request's index (0-based). */
  status?: number | ((index: number) => number);
  /** Milliseconds before answering. */
  delayMs?: number;
  headers?: Record<string, string>;
}

export interface Receiver {
  readonly origin: string;
  readonly requests: ReceivedRequest[];
  behaviour: ReceiverBehaviour;
  /** Resolves once `count` requests have arrived (or rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startReceiver(behaviour: ReceiverBehaviour = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const waiters: Array<() => void> = [];
  const receiver: Receiver = {
    origin: "",
    requests,
    behaviour,
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (requests.length >= count) {
            clearTimeout(timer);
            resolve(requests);
            return true;
          }
          return false;
        };
        const timer = setTimeout(
          () => reject(new Error(`receiver got ${requests.length} requests, expected ${count}`)),
          timeoutMs,
        );
        const waiter = () => {
          if (!check()) waiters.push(waiter);
        };
        waiter();
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const index = requests.length;
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      });
      for (const waiter of waiters.splice(0)) waiter();
      const b = receiver.behaviour;
      const status = typeof b.status === "function" ? b.status(index) : (b.status ?? 200);
      const answer = () => {
        res.writeHead(status, { "content-type": "text/plain", ...b.headers });
        res.end(status < 300 ? "ok" : "no");
      };
      if (b.delayMs) setTimeout(answer, b.delayMs).unref();
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (receiver as { origin: string }).origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

/** A URL that refuses connections (a port just closed). */
export async function deadUrl(path = "/hook"): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}${path}`;
}
