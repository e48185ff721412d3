// Metrics: the registry counts what the events say, serves the Prometheus text format at /metrics,
// writes the textfile atomically and carries counters over between cron runs; the dashboard and the
// alert rules use only the exported metric names.
import assert from "node:assert/strict";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { silentLogger } from "../../runtime/src/signals/log";
import {
  createMetrics,
  exposedSeriesNames,
  metricNameList,
  restoreCountersFromTextfile,
  serveMetrics,
  writeTextfile,
} from "../../runtime/src/signals/metrics/index";

const yaml = require("js-yaml") as { load(text: string): unknown };

const t0 = Date.parse("2026-11-30T10:00:00Z");
const vm = { resourceGroup: "personal-network", vm: "backup" };
const lifecycle: RestarterEvent[] = [
  { type: "vm-observed", at: t0, ...vm, up: false, downSince: t0 - 60_000 },
  { type: "vm-evicted", at: t0, ...vm, cause: "evicted" },
  { type: "start-attempt-ended", at: t0 + 1_000, ...vm, result: "failed", code: "AllocationFailed" },
  { type: "start-attempt-ended", at: t0 + 61_000, ...vm, result: "succeeded" },
  { type: "vm-restarted", at: t0 + 61_000, ...vm, downtimeSeconds: 121, attempts: 2 },
  { type: "cycle-finished", at: t0 + 61_500, durationSeconds: 0.7 },
];

/** `name{labels} value` lines of a Prometheus text exposition, by series. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

describe("metrics: the registry", () => {
  it("counts evictions and restarts, sets up/down and cycle metrics from events", async () => {
    const metrics = createMetrics();
    for (const event of lifecycle.slice(0, 3)) metrics.sink(event);
    let s = samples(await metrics.render());
    assert.equal(s.get('spot_restarter_vm_up{resource_group="personal-network",vm="backup"}'), 0);
    assert.equal(s.get('spot_restarter_vm_down_seconds{resource_group="personal-network",vm="backup"}'), 60);
    for (const event of lifecycle.slice(3)) metrics.sink(event);
    metrics.setCertificateExpiry(new Date("2027-11-30T00:00:00Z"));
    s = samples(await metrics.render());
    assert.equal(s.get('spot_restarter_evictions_total{resource_group="personal-network",vm="backup"}'), 1);
    assert.equal(
      s.get('spot_restarter_restarts_total{resource_group="personal-network",vm="backup",result="failed"}'),
      1,
    );
    assert.equal(
      s.get(
        'spot_restarter_restarts_total{resource_group="personal-network",vm="backup",result="succeeded"}',
      ),
      1,
    );
    assert.equal(s.get('spot_restarter_vm_up{resource_group="personal-network",vm="backup"}'), 1);
    assert.equal(s.get('spot_restarter_vm_down_seconds{resource_group="personal-network",vm="backup"}'), 0);
    assert.equal(s.get("spot_restarter_cycle_duration_seconds_count"), 1);
    assert.equal(s.get('spot_restarter_cycle_duration_seconds_bucket{le="1"}'), 1);
    assert.equal(s.get('spot_restarter_cycle_duration_seconds_bucket{le="0.5"}'), 0);
    assert.equal(s.get("spot_restarter_last_cycle_timestamp_seconds"), (t0 + 61_500) / 1000);
    assert.equal(
      s.get("spot_restarter_certificate_expiry_timestamp_seconds"),
      Date.parse("2027-11-30T00:00:00Z") / 1000,
    );
    // Nothing but the contract's names (no default process metrics on this registry).
    const names = new Set([...s.keys()].map((series) => series.split("{")[0]));
    for (const name of names) assert.ok(exposedSeriesNames.includes(name), name);
  });

  it("the ARM policy counts each request by operation and status or error code", async () => {
    const metrics = createMetrics();
    const base =
      "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines";
    const send = (method: string, url: string, outcome: number | Error) =>
      metrics.armPolicy
        .sendRequest({ method, url } as never, async () => {
          if (outcome instanceof Error) throw outcome;
          return { status: outcome } as never;
        })
        .catch(() => undefined);
    await send("GET", base, 200);
    await send("POST", `${base}/backup/start`, 202);
    await send("POST", `${base}/backup/start`, 429);
    await send(
      "GET",
      `${base}/backup/instanceView`,
      Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }),
    );
    const s = samples(await metrics.render());
    assert.equal(s.get('spot_restarter_arm_requests_total{operation="list",code="200"}'), 1);
    assert.equal(s.get('spot_restarter_arm_requests_total{operation="start",code="202"}'), 1);
    assert.equal(s.get('spot_restarter_arm_requests_total{operation="start",code="429"}'), 1);
    assert.equal(s.get('spot_restarter_arm_requests_total{operation="instanceView",code="ETIMEDOUT"}'), 1);
  });
});

describe("metrics: /metrics and the textfile", () => {
  it("serves the text format at /metrics and 404 elsewhere", async () => {
    const metrics = createMetrics();
    for (const event of lifecycle) metrics.sink(event);
    const server = await serveMetrics(metrics, "127.0.0.1:0", silentLogger);
    try {
      const response = await fetch(`http://${server.address}/metrics`);
      assert.equal(response.status, 200);
      assert.match(String(response.headers.get("content-type")), /^text\/plain; version=0\.0\.4/);
      const s = samples(await response.text());
      assert.equal(s.get('spot_restarter_evictions_total{resource_group="personal-network",vm="backup"}'), 1);
      assert.equal((await fetch(`http://${server.address}/`)).status, 404);
    } finally {
      await server.close();
    }
  });

  it("refuses a port in use with the error, for the caller to log", async () => {
    const metrics = createMetrics();
    const first = await serveMetrics(metrics, "127.0.0.1:0", silentLogger);
    try {
      await assert.rejects(serveMetrics(metrics, first.address, silentLogger), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });

  it("writes the textfile by rename (no temporary left) and a new process continues the counters", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-prom-"));
    const path = join(dir, "spot-restarter.prom");
    const first = createMetrics();
    for (const event of lifecycle) first.sink(event);
    await writeTextfile(first, path);
    assert.deepEqual(readdirSync(dir), ["spot-restarter.prom"]);

    // The next `once` (cron): a new process, a new registry, one more eviction.
    const second = createMetrics();
    restoreCountersFromTextfile(second, path);
    second.sink(lifecycle[1]);
    await writeTextfile(second, path);
    const s = samples(readFileSync(path, "utf8"));
    assert.equal(s.get('spot_restarter_evictions_total{resource_group="personal-network",vm="backup"}'), 2);
    assert.equal(
      s.get(
        'spot_restarter_restarts_total{resource_group="personal-network",vm="backup",result="succeeded"}',
      ),
      1,
    );
    // Gauges are not carried over: they describe this run (which finished no cycle here).
    assert.equal(s.get("spot_restarter_last_cycle_timestamp_seconds"), 0);
  });

  it("never writes the textfile through a symlink planted where a temporary file could be predicted", async () => {
    // The textfile directory belongs to node_exporter, not to us; a runtime running as root must not
    // write through a link another user placed there (the earlier `<path>.<pid>.tmp` could be guessed).
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-prom-"));
    const path = join(dir, "spot-restarter.prom");
    const victim = join(dir, "victim");
    writeFileSync(victim, "untouched\n");
    symlinkSync(victim, `${path}.${process.pid}.tmp`);
    const metrics = createMetrics();
    for (const event of lifecycle) metrics.sink(event);
    await writeTextfile(metrics, path);
    assert.equal(readFileSync(victim, "utf8"), "untouched\n");
    assert.ok(lstatSync(path).isFile() && !lstatSync(path).isSymbolicLink());
    assert.equal(lstatSync(path).mode & 0o044, 0o044, "readable by node_exporter");
    assert.match(readFileSync(path, "utf8"), /spot_restarter_evictions_total/);
  });

  it("ignores a textfile that is missing or not ours", () => {
    const dir = mkdtempSync(join(tmpdir(), "spot-restarter-prom-"));
    const metrics = createMetrics();
    restoreCountersFromTextfile(metrics, join(dir, "missing.prom"));
    writeFileSync(
      join(dir, "junk.prom"),
      'other_total{a="b"} 5\nspot_restarter_evictions_total{vm="x"} NaN\n',
    );
    restoreCountersFromTextfile(metrics, join(dir, "junk.prom"));
  });
});

describe("metrics: the shipped dashboard and alert rules", () => {
  const dashboard = readFileSync(join(__dirname, "../../monitoring/grafana-dashboard.json"), "utf8");
  const alerts = readFileSync(join(__dirname, "../../monitoring/prometheus-alerts.yml"), "utf8");

  function expressions(): string[] {
    const panels = (JSON.parse(dashboard) as { panels: Array<{ targets: Array<{ expr: string }> }> }).panels;
    const rules = (
      yaml.load(alerts) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    ).groups.flatMap((g) => g.rules);
    return [...panels.flatMap((p) => p.targets.map((t) => t.expr)), ...rules.map((r) => String(r.expr))];
  }

  it("use only exported metric names", () => {
    const used = new Set([...`${dashboard}\n${alerts}`.matchAll(/spot_restarter_[a-z_]+/g)].map((m) => m[0]));
    const unknown = [...used].filter((name) => !exposedSeriesNames.includes(name));
    assert.deepEqual(unknown, []);
    // And between them every metric has a use.
    for (const name of metricNameList)
      assert.ok(
        [...used].some((u) => u.startsWith(name)),
        `${name} unused`,
      );
  });

  it("alert on the certificate, a VM down and no cycle for 5 minutes", () => {
    const rules = (
      yaml.load(alerts) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    ).groups.flatMap((g) => g.rules);
    const byName = new Map(rules.map((r) => [r.alert, String(r.expr)]));
    assert.match(
      byName.get("SpotRestarterNoCycle") ?? "",
      /time\(\) - spot_restarter_last_cycle_timestamp_seconds > 300/,
    );
    assert.match(byName.get("SpotRestarterVmDown") ?? "", /spot_restarter_vm_up == 0/);
    assert.match(
      byName.get("SpotRestarterCertificateExpiring") ?? "",
      /spot_restarter_certificate_expiry_timestamp_seconds/,
    );
    for (const expr of expressions()) {
      let depth = 0;
      for (const c of expr) depth += c === "(" ? 1 : c === ")" ? -1 : 0;
      assert.equal(depth, 0, `balanced parentheses in ${expr}`);
    }
  });
});
