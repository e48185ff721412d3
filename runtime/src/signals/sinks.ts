// The sinks beside the log, built from the config for `once` and `run`: notifications and metrics.
// cli.ts only calls these; what each sink does lives in notify/ and metrics/.
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import type { BudgetTracker } from "../azure/budgets";
import type { SpotMarketSource } from "../azure/spotMarket";
import type { RuntimeConfig } from "../config/config";
import { messageChain } from "../core/errors";
import type { EventBus } from "./events";
import type { HistoryRecorder } from "./historySink";
import type { Logger } from "./log";
import {
  createMetrics,
  type MetricsServer,
  restoreCountersFromTextfile,
  type StatusPages,
  serveMetrics,
  writeTextfile,
} from "./metrics/index";
import { createNotifier, type Notifier } from "./notify/index";

/** How long `once` waits for its notifications before it exits; `run` waits this long on SIGTERM. */
export const flushTimeoutMs = { once: 10_000, run: 5_000 } as const;

export interface Sinks {
  /** More ARM pipeline policies (the metrics' request counter). */
  readonly armPolicies: PipelinePolicy[];
  setCertificateExpiry(notAfter: Date): void;
  /** The metrics follow the remaining budgets Azure reports. */
  watchBudgets(tracker: BudgetTracker): void;
  /** The downtime metric counts the eviction history's outages as they end. */
  watchHistory(history: HistoryRecorder): void;
  /**
   * The metrics export each VM's eviction-rate band and Spot price from the source this builds (it is handed
   * the sinks' once-only warning for its failures).
   */
  watchSpotMarket(build: (onError: (error: unknown) => void) => SpotMarketSource): void;
  /** Opens the metrics listener (run only), with the status page when given; a port in use is logged, not fatal. */
  start(pages?: StatusPages): Promise<void>;
  /** Writes the textfile, waits for queued notifications (bounded), closes the listener. */
  finish(): Promise<void>;
}

export function createSinks(
  config: RuntimeConfig,
  events: EventBus,
  log: Logger,
  options: { command: "once" | "run"; dryRun: boolean },
): Sinks {
  let notifier: Notifier | undefined;
  if (config.notifications.length > 0) {
    notifier = createNotifier(config.notifications, {
      subscriptionId: config.subscriptionId,
      log,
      dryRun: options.dryRun,
      stateDir: config.stateDir,
    });
    events.subscribe(notifier.sink);
  }

  const metrics = config.metrics ? createMetrics() : undefined;
  const textfile = options.dryRun ? undefined : config.metrics?.textfile;
  let server: MetricsServer | undefined;
  let textfileFailed = false;
  const writeMetricsFile = async () => {
    if (!metrics || !textfile) return;
    try {
      await writeTextfile(metrics, textfile);
      textfileFailed = false;
    } catch (error) {
      if (!textfileFailed) {
        textfileFailed = true;
        log.warn(
          "metrics-textfile-failed",
          { path: textfile, code: (error as NodeJS.ErrnoException).code },
          "cannot write the metrics textfile; restarts carry on",
        );
      }
    }
  };
  if (metrics) {
    if (textfile) restoreCountersFromTextfile(metrics, textfile);
    events.subscribe(metrics.sink);
    // `run`: the textfile follows every cycle (`once` writes it when it finishes).
    if (textfile && options.command === "run") {
      events.subscribe((event) => {
        if (event.type === "cycle-finished") void writeMetricsFile();
      });
    }
  }

  return {
    armPolicies: metrics ? [metrics.armPolicy] : [],
    setCertificateExpiry: (notAfter) => metrics?.setCertificateExpiry(notAfter),
    watchBudgets: (tracker) => metrics?.watchBudgets(tracker),
    watchHistory(history) {
      history.onOutageEnded((vm, outage) => metrics?.addDowntime(vm, (outage.to - outage.from) / 1000));
    },
    watchSpotMarket: (build) => {
      if (!metrics) return;
      let warned = false;
      const warn = (error: unknown) => {
        if (warned) return;
        warned = true;
        log.warn(
          "spot-market-unavailable",
          {},
          `eviction rates and Spot prices left out of the metrics; restarts carry on: ${messageChain(error)}`,
        );
      };
      metrics.watchSpotMarket(build(warn), warn);
    },
    async start(pages) {
      const listen = config.metrics?.listen;
      if (!metrics || !listen || options.command !== "run") return;
      try {
        server = await serveMetrics(metrics, listen, log, pages);
        log.info(
          "metrics-listening",
          { address: server.address },
          pages
            ? "serving Prometheus metrics at /metrics, the status page at / and /status.json"
            : "serving Prometheus metrics at /metrics",
        );
      } catch (error) {
        log.error(
          "metrics-listen-failed",
          { listen, code: (error as NodeJS.ErrnoException).code },
          "cannot open the metrics listener; restarts carry on without it",
        );
      }
    },
    async finish() {
      await metrics?.settled();
      await writeMetricsFile();
      await notifier?.flush(flushTimeoutMs[options.command]);
      notifier?.close();
      await server?.close();
    },
  };
}
