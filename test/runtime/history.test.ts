// The eviction history: records folded into the report's figures (plain records), and the file itself
// (append-only JSON lines, 0600, never through a symlink, a corrupt line skipped, pruned past historyDays).
import assert from "node:assert/strict";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { buildReport, formatReportTable, humanDuration } from "../../runtime/src/cli/report";
import type { RestarterEvent } from "../../runtime/src/core/events";
import { createEventBus } from "../../runtime/src/signals/events";
import { historyRecordFor, openHistoryRecorder } from "../../runtime/src/signals/historySink";
import { HistoryWriter, readHistory } from "../../runtime/src/state/history";
import { foldHistory } from "../../runtime/src/state/historyFold";
import {
  historyFileName,
  historyLine,
  type NewHistoryRecord,
  parseHistoryLine,
} from "../../runtime/src/state/historyRecords";

const rg = "personal-network";
const t0 = Date.parse("2026-12-01T00:00:00Z");
const min = 60_000;
const ref = (vm: string) => ({ resourceGroup: rg, vm });

/** An eviction of `vm` at `at` (Azure's time), seen `seenAfter` later, running again at `upAt`. */
function eviction(vm: string, at: number, seenAfter: number, upAt: number): RestarterEvent[] {
  return [
    { type: "vm-deallocated", ...ref(vm), at: at + seenAfter, was: "running" },
    {
      type: "vm-evicted",
      ...ref(vm),
      at: at + seenAfter,
      cause: "evicted",
      occurredAt: at,
      source: "resource-health",
    },
    { type: "start-issued", ...ref(vm), at: at + seenAfter, attempt: 1 },
    { type: "start-attempt-ended", ...ref(vm), at: upAt, result: "succeeded" },
    {
      type: "vm-restarted",
      ...ref(vm),
      at: upAt,
      downtimeSeconds: (upAt - at - seenAfter) / 1000,
      attempts: 1,
    },
  ];
}

function silentLog() {
  const warnings: Array<{ event: string; message: string }> = [];
  const log = {
    warn: (event: string, _fields: unknown, message: string) => warnings.push({ event, message }),
    info: () => {},
    error: () => {},
    debug: () => {},
  };
  return { log: log as never, warnings };
}

async function recordEvents(stateDir: string, events: RestarterEvent[], now = () => t0 + 600 * min) {
  const { log, warnings } = silentLog();
  const recorder = await openHistoryRecorder({ stateDir, historyDays: 90, log, now });
  const bus = createEventBus();
  bus.subscribe(recorder.sink);
  const outages: number[] = [];
  recorder.onOutageEnded((_vm, outage) => outages.push((outage.to - outage.from) / 1000));
  for (const event of events) bus.emit(event);
  await recorder.settled();
  return { recorder, warnings, outages };
}

const privateDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "spot-restarter-history-"));
  const stateDir = join(dir, "state");
  mkdirSync(stateDir, { mode: 0o700 });
  return stateDir;
};

describe("the eviction history's figures", () => {
  it("counts two evictions' downtime from Azure's eviction time, an owner stop as no downtime, and a pause apart", async () => {
    const stateDir = privateDir();
    const events: RestarterEvent[] = [
      { type: "power-state-changed", ...ref("backup"), at: t0, state: "running" },
      { type: "power-state-changed", ...ref("builder"), at: t0, state: "running" },
      ...eviction("backup", t0 + 10 * min, 20_000, t0 + 15 * min),
      ...eviction("backup", t0 + 100 * min, 5_000, t0 + 160 * min),
      // The owner stops builder at +30 min and starts it again at +90 min.
      { type: "vm-deallocated", ...ref("builder"), at: t0 + 30 * min, was: "running" },
      {
        type: "vm-left-alone",
        ...ref("builder"),
        at: t0 + 31 * min,
        reason: "owner-deallocated",
        occurredAt: t0 + 29 * min,
        source: "resource-health",
        by: "owner@example.com",
      },
      { type: "vm-running", ...ref("builder"), at: t0 + 90 * min, was: "deallocated" },
    ];
    const { outages } = await recordEvents(stateDir, events);
    // The downtime metric's feed: each eviction outage as it ends, from Azure's eviction time.
    assert.deepEqual(outages, [300, 3600]);

    const { records, skipped } = await readHistory(stateDir);
    assert.deepEqual(skipped, []);
    const until = t0 + 200 * min;
    const report = buildReport(foldHistory(records, until), t0, until);
    assert.deepEqual(
      report.vms.map((vm) => [
        vm.name,
        vm.evictions,
        vm.ownerStops,
        vm.downtimeSeconds,
        vm.longestOutageSeconds,
        vm.startRequests,
      ]),
      [
        ["backup", 2, 0, 300 + 3600, 3600, 2],
        ["builder", 0, 1, 0, 0, 0],
      ],
    );
    const backup = report.vms[0];
    const builder = report.vms[1];
    assert.equal(backup?.availability, Math.round(((200 * 60 - 3900) / (200 * 60)) * 10_000) / 10_000);
    // An owner stop is no downtime, but the VM did not run: availability counts running time.
    assert.equal(builder?.availability, Math.round(((200 - 61) / 200) * 10_000) / 10_000);
    assert.equal(report.totals.evictions, 2);
    assert.equal(report.totals.ownerStops, 1);
    assert.equal(report.totals.downtimeSeconds, 3900);
    assert.equal(report.totals.longestOutageSeconds, 3600);

    // A window that begins inside the second outage counts only its part of it, and the whole outage as the longest.
    const late = buildReport(foldHistory(records, until), t0 + 130 * min, until);
    assert.equal(late.vms[0]?.evictions, 0);
    assert.equal(late.vms[0]?.downtimeSeconds, 30 * 60);
    assert.equal(late.vms[0]?.longestOutageSeconds, 3600);

    const table = formatReportTable(report);
    assert.match(table, /^personal-network\/backup +2 +0 +1 h 5 min +1 h +2 +67\.50 %/m);
    assert.match(table, /^total /m);
  });

  it("an ongoing outage counts until now; a pause and a fallback size have their own phases", async () => {
    const stateDir = privateDir();
    await recordEvents(stateDir, [
      { type: "power-state-changed", ...ref("backup"), at: t0, state: "running" },
      { type: "vm-deallocated", ...ref("backup"), at: t0 + 10 * min },
      { type: "vm-left-alone", ...ref("backup"), at: t0 + 10 * min, reason: "paused", until: t0 + 20 * min },
      { type: "vm-evicted", ...ref("backup"), at: t0 + 20 * min, cause: "unknown", waitedSeconds: 600 },
      {
        type: "vm-fallback-size",
        ...ref("backup"),
        at: t0 + 30 * min,
        fromSize: "Standard_B2s",
        toSize: "Standard_B2ms",
      },
    ]);
    const { records } = await readHistory(stateDir);
    const until = t0 + 40 * min;
    const [timeline] = foldHistory(records, until);
    assert.deepEqual(
      timeline?.segments.map((s) => [s.phase, (s.from - t0) / min, (s.to - t0) / min]),
      [
        ["running", 0, 10],
        ["paused", 10, 20],
        ["evicted", 20, 40],
      ],
    );
    const [row] = buildReport(foldHistory(records, until), t0, until).vms;
    assert.equal(row?.evictions, 1);
    assert.equal(row?.downtimeSeconds, 30 * 60, "from the deallocation, the pause included, until now");
    assert.equal(row?.fallbackSeconds, 10 * 60);
  });

  it("humanises durations", () => {
    assert.equal(humanDuration(45), "45 s");
    assert.equal(humanDuration(3 * 3600 + 12 * 60 + 5), "3 h 12 min");
    assert.equal(humanDuration(2 * 86_400 + 4 * 3600), "2 d 4 h");
    assert.equal(humanDuration(3600), "1 h");
  });
});

describe("the eviction history file", () => {
  it("is JSON lines, 0600 from creation, and survives a reopen", async () => {
    const stateDir = privateDir();
    await recordEvents(stateDir, eviction("backup", t0, 1000, t0 + min));
    await recordEvents(stateDir, eviction("backup", t0 + 10 * min, 1000, t0 + 11 * min));
    const path = join(stateDir, historyFileName);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    assert.equal(lines.length, 10);
    assert.deepEqual(JSON.parse(lines[0] ?? ""), {
      v: 1,
      at: new Date(t0 + 1000).toISOString(),
      resourceGroup: rg,
      vm: "backup",
      kind: "power",
      powerState: "deallocated",
      was: "running",
    });
    const { records } = await readHistory(stateDir);
    assert.equal(buildReport(foldHistory(records, t0 + 20 * min), t0, t0 + 20 * min).vms[0]?.evictions, 2);
  });

  it("skips a corrupt line with a warning, and the next append starts on a line of its own", async () => {
    const stateDir = privateDir();
    await recordEvents(stateDir, eviction("backup", t0, 1000, t0 + min));
    // A crash in the middle of an append leaves half a line.
    appendFileSync(join(stateDir, historyFileName), '{"v":1,"at":"2026-12-01T00:0');
    const { warnings } = await recordEvents(stateDir, eviction("backup", t0 + 10 * min, 1000, t0 + 11 * min));
    assert.ok(
      warnings.some((w) => w.event === "history-line-skipped" && /line 6: not valid JSON/.test(w.message)),
      JSON.stringify(warnings),
    );
    const { records } = await readHistory(stateDir);
    assert.equal(records.length, 10);
  });

  it("never writes through a symlink, and a write that fails is told once, never thrown", async () => {
    const stateDir = privateDir();
    const target = join(stateDir, "..", "elsewhere");
    writeFileSync(target, "");
    symlinkSync(target, join(stateDir, historyFileName));
    const warnings: string[] = [];
    const writer = new HistoryWriter({
      stateDir,
      historyDays: 90,
      now: () => t0,
      warn: (code) => warnings.push(code),
    });
    await writer.append([{ kind: "power", at: t0, resourceGroup: rg, vm: "a", powerState: "running" }]);
    await writer.append([{ kind: "power", at: t0, resourceGroup: rg, vm: "a", powerState: "deallocated" }]);
    assert.equal(readFileSync(target, "utf8"), "");
    assert.deepEqual(warnings, ["history-write-failed"]);
  });

  it("is pruned past historyDays, keeping what the old records told", async () => {
    const stateDir = privateDir();
    const day = 86_400_000;
    const records: NewHistoryRecord[] = [
      { kind: "power", at: t0, resourceGroup: rg, vm: "backup", powerState: "running" },
      { kind: "power", at: t0 + 2 * day, resourceGroup: rg, vm: "backup", powerState: "deallocated" },
      { kind: "cause", at: t0 + 2 * day, resourceGroup: rg, vm: "backup", cause: "evicted" },
    ];
    const old = new HistoryWriter({ stateDir, historyDays: 90, now: () => t0, warn: () => {} });
    await old.append(records);
    // Ten days on, with historyDays 7: the records of day 0 and 2 are past it; the VM is still down.
    const now = t0 + 10 * day;
    const warnings: string[] = [];
    const writer = new HistoryWriter({
      stateDir,
      historyDays: 7,
      now: () => now,
      warn: (c) => warnings.push(c),
    });
    await writer.append([{ kind: "power", at: now, resourceGroup: rg, vm: "backup", powerState: "running" }]);
    assert.deepEqual(warnings, []);
    const { records: kept } = await readHistory(stateDir);
    assert.deepEqual(
      kept.map((r) => [r.kind, r.at]),
      [
        ["carried", now - 7 * day],
        ["power", now],
      ],
    );
    assert.equal(statSync(join(stateDir, historyFileName)).mode & 0o777, 0o600);
    // The outage that spans the cut is still known whole.
    const [row] = buildReport(foldHistory(kept, now), now - 7 * day, now).vms;
    assert.equal(row?.longestOutageSeconds, 8 * 86_400);
    assert.equal(row?.downtimeSeconds, 7 * 86_400);
    assert.equal(row?.availability, 0);
  });
});

describe("the eviction history keeps how late Azure said why (issue 31)", () => {
  it("an eviction's and an owner's stop's cause record carry knownAfterSeconds, through the file and back", async () => {
    const at = Date.parse("2026-12-08T03:00:00Z");
    const evicted = historyRecordFor({
      type: "vm-evicted",
      resourceGroup: "rg",
      vm: "spot",
      at,
      cause: "evicted",
      source: "resource-health",
      occurredAt: at - 30_000,
      knownAfterSeconds: 20.4,
    });
    const owner = historyRecordFor({
      type: "vm-left-alone",
      resourceGroup: "rg",
      vm: "worker",
      at,
      reason: "owner-deallocated",
      source: "activity-log",
      occurredAt: at - 10_000,
      knownAfterSeconds: 3,
    });
    for (const [record, seconds] of [
      [evicted, 20.4],
      [owner, 3],
    ] as const) {
      assert.ok(record);
      const back = parseHistoryLine(historyLine(record).trim());
      assert.ok("record" in back, JSON.stringify(back));
      assert.equal(back.record.kind, "cause");
      assert.equal("knownAfterSeconds" in back.record ? back.record.knownAfterSeconds : undefined, seconds);
    }
  });
});
