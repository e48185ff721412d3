// Prometheus metrics: one registry, created once per process, fed by the event bus (a sink) and by
// an ARM pipeline policy; served at /metrics (`metrics.listen`) and/or written to a node_exporter
// textfile (`metrics.textfile`, atomically: a temporary file renamed over the old one).
// Names follow Prometheus practice (https://prometheus.io/docs/practices/naming/): one prefix,
// base units in the name, `_total` on counters, labels of bounded cardinality (VM and resource
// group, an HTTP status or error code, never a message).
import { readFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { requestKind } from "../../azure/azure";
import { type BudgetTracker, remainingShare } from "../../azure/budgets";
import { bandRank, marketFigures, type SpotMarketSource } from "../../azure/spotMarket";
import type { EventSink, VmRef } from "../../core/events";
import { writeFileAtomically } from "../../state/state";
import type { Logger } from "../log";
import { metricNames } from "./names";

export { exposedSeriesNames, metricNameList, metricNames } from "./names";

const vmLabels = ["resource_group", "vm"] as const;

export interface Metrics {
  readonly registry: Registry;
  readonly sink: EventSink;
  /** Counts every ARM request attempt by operation and answer (an HTTP status, or an error code). */
  readonly armPolicy: PipelinePolicy;
  setCertificateExpiry(notAfter: Date): void;
  /** Follows the remaining budgets Azure reports (budgets.ts). */
  watchBudgets(tracker: BudgetTracker): void;
  /** An eviction outage ended (the eviction history's, historyFold.ts): its length joins the downtime counter. */
  addDowntime(vm: VmRef, seconds: number): void;
  /**
   * Exports each tagged VM's eviction-rate band and Spot price from this source (Resource Graph SpotResources,
   * cached an hour), refreshed after each cycle without holding the loop up.
   */
  watchSpotMarket(source: SpotMarketSource, onError?: (error: unknown) => void): void;
  /** Resolves once the refresh under way (if any) has ended: for `once`, before its textfile is written. */
  settled(): Promise<void>;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const evictions = new Counter({
    name: metricNames.evictions,
    help: "Evictions of tagged Spot VMs seen (a deallocated VM the runtime will start).",
    labelNames: vmLabels,
    registers: [registry],
  });
  const restarts = new Counter({
    name: metricNames.restarts,
    help: "Start attempts by their end: succeeded, failed, throttled or interrupted.",
    labelNames: [...vmLabels, "result"],
    registers: [registry],
  });
  const vmUp = new Gauge({
    name: metricNames.vmUp,
    help: "1 when the tagged VM was last seen up, 0 when down (deallocated, or not running).",
    labelNames: vmLabels,
    registers: [registry],
  });
  const vmDown = new Gauge({
    name: metricNames.vmDownSeconds,
    help: "How long the tagged VM has been down, as of the last cycle; 0 when up.",
    labelNames: vmLabels,
    registers: [registry],
  });
  const downtime = new Counter({
    name: metricNames.downtime,
    help: "Seconds tagged Spot VMs were down after an eviction, counted when each VM runs again (as `report` counts downtimeSeconds; owner stops excluded).",
    labelNames: vmLabels,
    registers: [registry],
  });
  const armRequests = new Counter({
    name: metricNames.armRequests,
    help: "Azure Resource Manager requests sent (each attempt), by operation and HTTP status or error code.",
    labelNames: ["operation", "code"],
    registers: [registry],
  });
  const cycleDuration = new Histogram({
    name: metricNames.cycleDuration,
    help: "Duration of one cycle: list, instance views, starts issued.",
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const causeDelay = new Histogram({
    name: metricNames.causeDelay,
    help: "From a tagged Spot VM first seen deallocated until Azure said why (eviction or owner's stop): the eviction-cause signal's delay as met here.",
    // Microsoft documents no bound; Resource Graph change records "in less than five minutes" (docs/signal-delays.md).
    buckets: [1, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const lastCycle = new Gauge({
    name: metricNames.lastCycleTimestamp,
    help: "When the last cycle finished (Unix seconds).",
    registers: [registry],
  });
  const certificateExpiry = new Gauge({
    name: metricNames.certificateExpiryTimestamp,
    help: "When the service principal's certificate expires (Unix seconds).",
    registers: [registry],
  });

  const budgetRemaining = new Gauge({
    name: metricNames.armBudgetRemaining,
    help: "Requests left in an Azure throttling budget as Azure last reported it (x-ms-ratelimit-remaining-*), by policy.",
    labelNames: ["policy"],
    registers: [registry],
  });
  let budgets: BudgetTracker | undefined;
  new Gauge({
    name: metricNames.armBudgetLowestRatio,
    help: "The lowest share (0-1) left of any Azure throttling budget reported within its window; absent before the first answer.",
    registers: [registry],
    collect() {
      const lowest = budgets?.lowest();
      if (lowest) this.set(remainingShare(lowest));
      else this.reset();
    },
  });

  // Azure's market data per VM (azure/spotMarket.ts): the band's lower bound as a ratio ("10-15" -> 0.1; the
  // band string itself is in `status --json`) and the latest Spot price of the VM's size, region and OS.
  const evictionRate = new Gauge({
    name: metricNames.spotEvictionRateLowerRatio,
    help: "Lower bound (0-1) of Azure's eviction-rate band for the VM's size in its region, over the trailing 28 days (Resource Graph SpotResources).",
    labelNames: vmLabels,
    registers: [registry],
  });
  const spotPrice = new Gauge({
    name: metricNames.spotPriceUsdPerHour,
    help: "The latest Spot price of the VM's size, region and OS, USD per hour (Resource Graph SpotResources).",
    labelNames: vmLabels,
    registers: [registry],
  });
  const placements = new Map<
    string,
    { resourceGroup: string; vm: string; location: string; vmSize: string; osType?: string }
  >();
  let market: { source: SpotMarketSource; onError?: (error: unknown) => void } | undefined;
  let refreshing: Promise<void> = Promise.resolve();
  let inFlight = false;
  const refreshMarket = () => {
    if (!market || inFlight || placements.size === 0) return;
    inFlight = true;
    const { source, onError } = market;
    const vms = [...placements.values()];
    refreshing = source
      .read(
        vms.map((vm) => ({ location: vm.location, skuName: vm.vmSize })),
        AbortSignal.timeout(60_000),
      )
      .then((reading) => {
        for (const vm of vms) {
          const figures = marketFigures(reading, vm);
          const labels = { resource_group: vm.resourceGroup, vm: vm.vm };
          const lower = bandLowerRatio(figures.evictionRate);
          if (lower === undefined) evictionRate.remove(labels);
          else evictionRate.set(labels, lower);
          if (figures.spotPriceUsdPerHour === null) spotPrice.remove(labels);
          else spotPrice.set(labels, figures.spotPriceUsdPerHour);
        }
      })
      .catch((error: unknown) => onError?.(error))
      .finally(() => {
        inFlight = false;
      });
  };

  const sink: EventSink = (event) => {
    switch (event.type) {
      case "vm-evicted":
        evictions.inc({ resource_group: event.resourceGroup, vm: event.vm });
        break;
      case "start-attempt-ended":
        restarts.inc({ resource_group: event.resourceGroup, vm: event.vm, result: event.result });
        break;
      case "vm-observed": {
        const labels = { resource_group: event.resourceGroup, vm: event.vm };
        vmUp.set(labels, event.up ? 1 : 0);
        vmDown.set(
          labels,
          event.up || event.downSince === undefined ? 0 : Math.max(0, (event.at - event.downSince) / 1000),
        );
        if (event.location && event.vmSize) {
          placements.set(`${event.resourceGroup}/${event.vm}`.toLowerCase(), {
            resourceGroup: event.resourceGroup,
            vm: event.vm,
            location: event.location,
            vmSize: event.vmSize,
            ...(event.osType ? { osType: event.osType } : {}),
          });
        }
        break;
      }
      case "vm-restarted": {
        const labels = { resource_group: event.resourceGroup, vm: event.vm };
        vmUp.set(labels, 1);
        vmDown.set(labels, 0);
        break;
      }
      case "cause-known":
        causeDelay.observe(event.knownAfterSeconds);
        break;
      case "cycle-finished":
        cycleDuration.observe(event.durationSeconds);
        lastCycle.set(event.at / 1000);
        refreshMarket();
        break;
    }
  };

  const armPolicy: PipelinePolicy = {
    name: "spotRestarterArmMetrics",
    async sendRequest(request, next) {
      const operation = requestKind(request.method, request.url);
      try {
        const response = await next(request);
        armRequests.inc({ operation, code: String(response.status) });
        return response;
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        const code = status ?? (error as { code?: string }).code ?? "error";
        armRequests.inc({ operation, code: String(code).slice(0, 40) });
        throw error;
      }
    },
  };

  return {
    registry,
    sink,
    armPolicy,
    setCertificateExpiry: (notAfter) => certificateExpiry.set(notAfter.getTime() / 1000),
    watchBudgets(tracker) {
      budgets = tracker;
      tracker.onReading((reading) => budgetRemaining.set({ policy: reading.policy }, reading.remaining));
    },
    addDowntime: (vm, seconds) =>
      downtime.inc({ resource_group: vm.resourceGroup, vm: vm.vm }, Math.max(0, seconds)),
    watchSpotMarket(source, onError) {
      market = { source, ...(onError ? { onError } : {}) };
    },
    settled: () => refreshing,
    render: () => registry.metrics(),
  };
}

/** "10-15" -> 0.1, "20+" -> 0.2; undefined for null or a string Azure does not use. */
export function bandLowerRatio(band: string | null): number | undefined {
  if (band === null || bandRank(band) === undefined) return undefined;
  return Number.parseInt(band, 10) / 100;
}

/**
 * For the textfile in cron mode, where each `once` is a new process: the counters go on from what
 * the last run wrote, so they only ever grow (Prometheus would read each new process's restart from
 * zero as a counter reset and lose the increments in between).
 */
export function restoreCounters(metrics: Metrics, text: string): void {
  for (const line of text.split("\n")) {
    const match = /^(spot_restarter_\w+_total)\{([^}]*)\} ([0-9.eE+]+)$/.exec(line);
    if (!match) continue;
    const counter = metrics.registry.getSingleMetric(match[1]);
    if (!(counter instanceof Counter)) continue;
    const labels: Record<string, string> = {};
    for (const pair of match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const value = Number(match[3]);
    if (Number.isFinite(value) && value > 0) counter.inc(labels, value);
  }
}

/** Reads the previous textfile, if any, into the counters (see restoreCounters). */
export function restoreCountersFromTextfile(metrics: Metrics, path: string): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return;
  }
  restoreCounters(metrics, text);
}

/** Writes the exposition atomically: node_exporter never reads a half-written file. */
export async function writeTextfile(metrics: Metrics, path: string): Promise<void> {
  // Readable by node_exporter; written as the state files are (never through a planted symlink, never half).
  await writeFileAtomically(path, await metrics.render(), 0o644);
}

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

/** The status page and its JSON, served beside /metrics when given (signals/statusPage.ts). */
export interface StatusPages {
  /** What `status --json` prints. */
  statusJson(): Promise<unknown>;
  html(): Promise<string>;
}

// The page holds no script and loads nothing: the policy says so, so that even a name that slipped past
// escaping could not run (https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy).
const pageHeaders = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/**
 * Serves GET /metrics on `host:port`, and with `pages` the status page at / and /status.json; anything
 * else is a 404. Rejects when the port cannot be bound.
 */
export async function serveMetrics(
  metrics: Metrics,
  listen: string,
  log: Logger,
  pages?: StatusPages,
): Promise<MetricsServer> {
  const separator = listen.lastIndexOf(":");
  const host = listen.slice(0, separator).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(separator + 1));
  const failed = (response: ServerResponse, what: string) => (error: unknown) => {
    log.warn(`${what}-render-failed`, {}, String(error));
    if (!response.headersSent) response.writeHead(500);
    response.end();
  };
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    const get = request.method === "GET" || request.method === "HEAD";
    if (get && path === "/metrics") {
      metrics
        .render()
        .then(
          (text) => response.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
          failed(response, "metrics"),
        );
      return;
    }
    if (get && pages && path === "/status.json") {
      pages.statusJson().then(
        (report) =>
          response
            .writeHead(200, {
              "content-type": "application/json",
              "cache-control": "no-store",
              "x-content-type-options": "nosniff",
            })
            .end(`${JSON.stringify(report, null, 2)}\n`),
        failed(response, "status"),
      );
      return;
    }
    if (get && pages && path === "/") {
      pages
        .html()
        .then((html) => response.writeHead(200, pageHeaders).end(html), failed(response, "status-page"));
      return;
    }
    response
      .writeHead(404, { "content-type": "text/plain" })
      .end(pages ? "see /, /status.json or /metrics\n" : "see /metrics\n");
  });
  // A scrape must never keep the process alive on SIGTERM.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.unref();
  const bound = server.address();
  const address =
    bound && typeof bound === "object"
      ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : listen;
  return {
    address,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
