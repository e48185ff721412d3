// Delivery that never delays a restart: `enqueue` only appends to a bounded queue; one worker per
// channel posts with a timeout and retries with backoff, on timers that do not hold the process.
// A channel's failure is logged once (with its URL redacted) until it delivers again, and counted.

import { redactUrl } from "../../core/text";
import type { Logger } from "../log";
import type { ChannelRequest } from "./message";

export interface DeliveryOptions {
  /** Messages waiting per channel; beyond it the oldest is dropped (and counted). */
  readonly maxQueued: number;
  /** One POST, from connect to the end of the answer. */
  readonly timeoutMs: number;
  /** Attempts per message (1 = no retry). */
  readonly attempts: number;
  /** First backoff; doubled per retry, with jitter; a 429's Retry-After is honoured up to maxBackoffMs. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

export const defaultDeliveryOptions: DeliveryOptions = {
  maxQueued: 100,
  timeoutMs: 10_000,
  attempts: 4,
  backoffMs: 2_000,
  maxBackoffMs: 60_000,
};

export interface DeliveryStats {
  delivered: number;
  failed: number;
  dropped: number;
}

export type SendResult =
  | { ok: true; status: number }
  | { ok: false; reason: string; retry: boolean; retryAfterMs?: number };

/** One POST; never throws, never names the URL. */
export async function post(
  url: string,
  request: ChannelRequest,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<SendResult> {
  // Our own controller, timer and listener (removed afterwards), not AbortSignal.any: the stop signal
  // lives as long as the process, and every signal composed with it would stay reachable from it.
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  timer.unref();
  const forward = () => controller.abort();
  if (signal?.aborted) controller.abort();
  signal?.addEventListener("abort", forward);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "user-agent": "spot-restarter", ...request.headers },
      body: request.body,
      redirect: "manual",
      signal: controller.signal,
    });
    // Read (and discard) the answer so the connection is reusable, within the same timeout.
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
    const retryAfter = Number(response.headers.get("retry-after"));
    return {
      ok: false,
      reason: `HTTP ${response.status}`,
      // 408, 429 and 5xx may pass; any other 4xx (a revoked webhook, a bad body) will not.
      retry: response.status === 408 || response.status === 429 || response.status >= 500,
      ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
    };
  } catch (error) {
    if (timedOut) return { ok: false, reason: `no answer within ${timeoutMs / 1000} s`, retry: true };
    if (signal?.aborted) return { ok: false, reason: "stopped", retry: false };
    // fetch's message may name the host; only the error code is kept, never the URL.
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, reason: cause?.code ?? "network error", retry: true };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", forward);
  }
}

export class ChannelQueue {
  private readonly queue: ChannelRequest[] = [];
  private running = false;
  private failing = false;
  private droppedLogged = false;
  private idle: Array<() => void> = [];
  readonly stats: DeliveryStats = { delivered: 0, failed: 0, dropped: 0 };
  private readonly stop = new AbortController();

  constructor(
    /** How the channel is named in a log line: `notifications[0] (slack, https://hooks.slack.com/…)`. */
    readonly label: string,
    private readonly url: string,
    private readonly log: Logger,
    private readonly options: DeliveryOptions = defaultDeliveryOptions,
    private readonly random: () => number = Math.random,
  ) {}

  enqueue(request: ChannelRequest): void {
    if (this.stop.signal.aborted) return;
    if (this.queue.length >= this.options.maxQueued) {
      this.queue.shift();
      this.stats.dropped++;
      if (!this.droppedLogged) {
        this.droppedLogged = true;
        this.log.warn(
          "notification-dropped",
          { channel: this.label },
          `more than ${this.options.maxQueued} notifications waiting; dropping the oldest`,
        );
      }
    }
    this.queue.push(request);
    if (!this.running) void this.work();
  }

  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Resolves when the queue is empty, or after `timeoutMs`, whichever is first. */
  drain(timeoutMs: number): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      // Not unref'd, unlike the timers of delivery itself: a flush is the one wait meant to hold the
      // process (bounded by timeoutMs). Unref'd, a retry's back-off sleep left the event loop empty, and
      // Node exited 0 with the command's own error still pending behind this flush.
      const timer = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Abandons what is queued and any retry in progress (logged once, with how many). */
  close(): void {
    const undelivered = this.pending;
    this.stop.abort();
    this.queue.length = 0;
    if (undelivered > 0) {
      this.log.warn(
        "notifications-undelivered",
        { channel: this.label, count: undelivered },
        `${undelivered} notification${undelivered === 1 ? "" : "s"} not delivered before exit`,
      );
    }
  }

  private async work(): Promise<void> {
    this.running = true;
    try {
      for (let request = this.queue.shift(); request; request = this.queue.shift()) {
        await this.deliver(request);
        if (this.stop.signal.aborted) break;
      }
    } finally {
      this.running = false;
      for (const done of this.idle.splice(0)) done();
    }
  }

  private async deliver(request: ChannelRequest): Promise<void> {
    let result: SendResult = { ok: false, reason: "not sent", retry: false };
    for (let attempt = 1; attempt <= this.options.attempts; attempt++) {
      result = await post(this.url, request, this.options.timeoutMs, this.stop.signal);
      if (result.ok || !result.retry || attempt === this.options.attempts || this.stop.signal.aborted) break;
      const backoff = Math.min(
        this.options.maxBackoffMs,
        result.retryAfterMs ?? this.options.backoffMs * 2 ** (attempt - 1) * (0.5 + this.random()),
      );
      await sleep(backoff, this.stop.signal);
    }
    if (result.ok) {
      this.stats.delivered++;
      if (this.failing) {
        this.failing = false;
        this.log.info("notification-recovered", { channel: this.label }, "notifications are delivered again");
      }
      return;
    }
    if (this.stop.signal.aborted) return;
    this.stats.failed++;
    if (!this.failing) {
      this.failing = true;
      this.log.warn(
        "notification-failed",
        { channel: this.label, reason: result.reason },
        `cannot deliver a notification (${result.reason}); restarts carry on, later failures of this channel are not logged until it works again`,
      );
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

export function channelLabel(index: number, type: string, url: string): string {
  return `notifications[${index}] (${type}, ${redactUrl(url)})`;
}
