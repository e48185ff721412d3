// `status`'s table (cli/statusTable.ts): by default within 120 columns with relative times; --wide keeps
// every column with ISO times. Plain reports in, text out.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { StatusReport, StatusRow } from "../../runtime/src/cli/commands";
import { formatStatusTable, relativeTime, STATUS_WIDTH } from "../../runtime/src/cli/statusTable";

const now = Date.parse("2026-03-01T12:00:00.000Z");
const ago = (ms: number) => new Date(now - ms).toISOString();

function row(overrides: Partial<StatusRow> = {}): StatusRow {
  return {
    resourceGroup: "personal-network",
    name: "backup",
    powerState: "running",
    evictedSince: null,
    lastEvictionSeenAt: null,
    lastStartAt: null,
    lastStartedAt: null,
    lastResult: null,
    startAttempts: 0,
    backoffUntil: null,
    lastCause: null,
    pausedUntil: null,
    vmSize: "Standard_D2as_v5",
    originalVmSize: null,
    evictionRate: null,
    spotPriceUsdPerHour: null,
    ...overrides,
  };
}

function report(vms: StatusRow[]): StatusReport {
  return {
    version: 1,
    command: "status",
    generatedAt: new Date(now).toISOString(),
    throttledUntil: null,
    vms,
    lowestBudget: null,
    errors: [],
    missingResourceGroups: [],
    heartbeat: null,
  };
}

/** The header and one line per VM (the footer lines are sentences, not table rows). */
const tableLines = (text: string, rows: number) => text.split("\n").slice(0, rows + 1);

describe("status table", () => {
  it("relative times: the largest unit that keeps it short, past and future", () => {
    assert.equal(relativeTime(null, now), "-");
    assert.equal(relativeTime(ago(0), now), "now");
    assert.equal(relativeTime(ago(42_000), now), "42 s ago");
    assert.equal(relativeTime(ago(3 * 60_000), now), "3 min ago");
    assert.equal(relativeTime(ago(-2 * 60_000), now), "in 2 min");
    assert.equal(relativeTime(ago(5 * 3_600_000), now), "5 h ago");
    assert.equal(relativeTime(ago(3 * 86_400_000), now), "3 d ago");
  });

  it("default: short headers, relative times, a deallocated VM's cause beside its state, the fallback mark", () => {
    const text = formatStatusTable(
      report([
        row({
          name: "builder",
          powerState: "deallocated",
          lastEvictionSeenAt: ago(3 * 60_000),
          lastStartAt: ago(60_000),
          lastResult: "capacity (ZonalAllocationFailed)",
          startAttempts: 2,
          backoffUntil: ago(-2 * 60_000),
          lastCause: {
            kind: "evicted",
            at: ago(3 * 60_000),
            by: null,
            source: "resource-health",
            knownAfterSeconds: 4,
          },
          vmSize: "Standard_D2s_v5",
          originalVmSize: "Standard_D2as_v5",
        }),
        row({ name: "paused-one", powerState: "deallocated", pausedUntil: "resume" }),
      ]),
    );
    const [header, builder, paused] = text.split("\n");
    assert.match(header ?? "", /^VM +STATE +DOWN AT +LAST START +RESULT +ATTEMPTS +BACKOFF +SIZE$/);
    assert.match(
      builder ?? "",
      /^builder +deallocated, evicted +3 min ago +1 min ago +capacity \(Zonal\w*… +2 +in 2 min +Standard_D2s_v5\*$/,
    );
    // 127 columns uncut: the widest cuttable cell (the result) gives up what the table lacks, no more.
    assert.equal(builder?.length, 120);
    assert.match(paused ?? "", /^paused-one +deallocated, paused +- /);
    assert.match(text, /^\* in a fallback size until its next eviction \(--wide shows its own size\)$/m);
    assert.doesNotMatch(text, /\d{4}-\d\d-\d\dT/, "no ISO time in the default table");
  });

  it("--wide: every column, ISO times, the group with the name, its own size beside the fallback", () => {
    const text = formatStatusTable(
      report([
        row({
          powerState: "deallocated",
          lastEvictionSeenAt: ago(3 * 60_000),
          lastCause: {
            kind: "owner",
            at: ago(3 * 60_000),
            by: "alice@example.com",
            source: "activity-log",
            knownAfterSeconds: 12,
          },
          pausedUntil: ago(-3_600_000),
          vmSize: "Standard_D2s_v5",
          originalVmSize: "Standard_D2as_v5",
          evictionRate: "10-15",
          spotPriceUsdPerHour: 0.0123,
        }),
      ]),
      { wide: true },
    );
    const [header, line] = text.split("\n");
    assert.match(
      header ?? "",
      /^VM +POWER STATE +LAST DEALLOCATION SEEN +LAST START +LAST RESULT +ATTEMPTS +BACKOFF UNTIL +LAST CAUSE +PAUSED UNTIL +SIZE +EVICTION RATE +SPOT \$\/H$/,
    );
    assert.match(
      line ?? "",
      new RegExp(`^personal-network/backup +deallocated +${ago(3 * 60_000).replaceAll(".", "\\.")} +- `),
    );
    assert.ok(line?.includes(`owner by alice@example.com ${ago(3 * 60_000)}`), line);
    assert.ok(line?.includes(ago(-3_600_000)), line);
    assert.match(line ?? "", /Standard_D2s_v5 \(own: Standard_D2as_v5\) +10-15% +0\.01230$/);
  });

  it("names the group with each VM when there are several groups", () => {
    const text = formatStatusTable(report([row(), row({ resourceGroup: "lab", name: "gpu" })]));
    assert.match(text, /^personal-network\/backup /m);
    assert.match(text, /^lab\/gpu /m);
  });

  it("default: every table line fits 120 columns, whatever the names, results and sizes", () => {
    const when = fc.option(
      fc.integer({ min: -40 * 86_400_000, max: 400 * 86_400_000 }).map((ms) => ago(ms)),
      { nil: null },
    );
    const arbitraryRow = fc.record({
      resourceGroup: fc.stringMatching(/^[\w.()-]{1,90}$/),
      name: fc.stringMatching(/^[\w.-]{1,64}$/),
      powerState: fc.constantFrom(
        "running",
        "starting",
        "stopped",
        "stopping",
        "deallocating",
        "deallocated",
        null,
      ),
      lastEvictionSeenAt: when,
      lastStartAt: when,
      lastResult: fc.option(fc.string({ maxLength: 80 }), { nil: null }),
      startAttempts: fc.integer({ min: 0, max: 100_000 }),
      backoffUntil: when,
      paused: fc.boolean(),
      evicted: fc.boolean(),
      vmSize: fc.option(fc.stringMatching(/^Standard_[A-Za-z0-9_-]{1,40}$/), { nil: null }),
      fallback: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbitraryRow, { minLength: 1, maxLength: 8 }), (rows) => {
        const vms = rows.map((r) =>
          row({
            ...r,
            pausedUntil: r.paused ? "resume" : null,
            lastCause: r.evicted
              ? { kind: "evicted", at: ago(0), by: null, source: "resource-health", knownAfterSeconds: 0 }
              : null,
            originalVmSize: r.fallback && r.vmSize ? "Standard_D2as_v5" : null,
          }),
        );
        for (const line of tableLines(formatStatusTable(report(vms)), vms.length)) {
          assert.ok(line.length <= STATUS_WIDTH, `${line.length} columns: ${line}`);
        }
      }),
    );
  });
});
