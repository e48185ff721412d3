// The metric names are a contract (docs/architecture.md "Metric names"): the Grafana dashboard and the alert
// rules in monitoring/ use them, and a test checks they use no other. Never rename one.
export const metricNames = {
  evictions: "spot_restarter_evictions_total",
  restarts: "spot_restarter_restarts_total",
  vmUp: "spot_restarter_vm_up",
  vmDownSeconds: "spot_restarter_vm_down_seconds",
  downtime: "spot_restarter_downtime_seconds_total",
  armRequests: "spot_restarter_arm_requests_total",
  cycleDuration: "spot_restarter_cycle_duration_seconds",
  lastCycleTimestamp: "spot_restarter_last_cycle_timestamp_seconds",
  certificateExpiryTimestamp: "spot_restarter_certificate_expiry_timestamp_seconds",
  armBudgetRemaining: "spot_restarter_arm_budget_remaining",
  armBudgetLowestRatio: "spot_restarter_arm_budget_lowest_ratio",
  causeDelay: "spot_restarter_cause_delay_seconds",
  spotEvictionRateLowerRatio: "spot_restarter_spot_eviction_rate_lower_ratio",
  spotPriceUsdPerHour: "spot_restarter_spot_price_usd_per_hour",
} as const;

export const metricNameList = Object.values(metricNames);

/**
 * The series names a scrape shows: a histogram adds `_bucket`, `_sum` and `_count` to its name.
 * prom-client shows a counter under its full name (it keeps the `_total`).
 */
const histograms: readonly string[] = [metricNames.cycleDuration, metricNames.causeDelay];
export const exposedSeriesNames: readonly string[] = metricNameList.flatMap((name) =>
  histograms.includes(name) ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
);
