// npm run docs:screenshot: writes docs/status-page.png, the status page (runtime/src/signals/statusPage.ts)
// as headless Chromium shows it, for a made-up week of three Spot VMs: one evicted three times (once into a
// fallback size), one its owner stops every evening, one paused for a day and now waiting for capacity.
// The page is the product's own rendering; only the week is invented (the tests check the real thing).
import { join } from "node:path";
import { renderStatusPage } from "../runtime/src/signals/statusPage";
import { foldHistory } from "../runtime/src/state/historyFold";
import type { HistoryRecord } from "../runtime/src/state/historyRecords";
import { launchChromium } from "../support/browser";

const rg = "personal-network";
const now = Date.parse("2026-12-08T09:30:00Z");
const hour = 3_600_000;
const day = 24 * hour;
const start = now - 7 * day - hour;
const records: HistoryRecord[] = [];
const add = (vm: string, at: number, record: Record<string, unknown>) =>
  records.push({ v: 1, at, resourceGroup: rg, vm, ...record } as HistoryRecord);

// The backup server: three evictions; the second waited 2 h 40 min for capacity and ran in a fallback size.
const backup = "ubuntu-backup-server-spot";
add(backup, start, { kind: "power", powerState: "running" });
const evictions: Array<[number, number, boolean]> = [
  [now - 6 * day + 3 * hour, 12 * 60_000, false],
  [now - 4 * day - 5 * hour, 160 * 60_000, true],
  [now - 1 * day + 7 * hour, 25 * 60_000, false],
];
for (const [at, down, fallback] of evictions) {
  add(backup, at + 20_000, { kind: "power", powerState: "deallocated", was: "running" });
  add(backup, at + 21_000, { kind: "cause", cause: "evicted", source: "resource-health", occurredAt: at });
  add(backup, at + 21_000, { kind: "start-requested", attempt: 1 });
  if (fallback) {
    add(backup, at + down - 60_000, {
      kind: "size",
      from: "Standard_D2s_v5",
      to: "Standard_D2as_v5",
      fallback: true,
    });
  }
  add(backup, at + down, { kind: "start-ended", result: "succeeded" });
  add(backup, at + down, { kind: "power", powerState: "running", was: "deallocated", by: "start" });
}
add(backup, now - 2 * day, {
  kind: "size",
  from: "Standard_D2as_v5",
  to: "Standard_D2s_v5",
  fallback: false,
});

// The dev box: its owner deallocates it at 19:00 and starts it at 08:00.
const dev = "dev-box-spot";
add(dev, start, { kind: "power", powerState: "running" });
for (let d = 7; d >= 1; d--) {
  const evening = Date.parse("2026-12-07T19:00:00Z") - (d - 1) * day;
  add(dev, evening + 30_000, { kind: "power", powerState: "deallocated", was: "running" });
  add(dev, evening + 60_000, {
    kind: "cause",
    cause: "owner",
    source: "resource-health",
    occurredAt: evening,
  });
  if (d > 1) add(dev, evening + 13 * hour, { kind: "power", powerState: "running", was: "deallocated" });
}

// The build box: paused for a day, then evicted and still waiting for Spot capacity.
const build = "build-box-spot";
add(build, start, { kind: "power", powerState: "running" });
add(build, now - 5 * day, { kind: "power", powerState: "deallocated", was: "running" });
add(build, now - 5 * day, { kind: "cause", cause: "owner", source: "activity-log", by: "you@contoso.com" });
add(build, now - 5 * day + hour, { kind: "left-alone", reason: "paused", until: now - 4 * day });
add(build, now - 4 * day, { kind: "power", powerState: "running", was: "deallocated" });
add(build, now - 3 * hour, { kind: "power", powerState: "deallocated", was: "running" });
add(build, now - 3 * hour, {
  kind: "cause",
  cause: "evicted",
  source: "resource-health",
  occurredAt: now - 3 * hour,
});
for (let i = 0; i < 9; i++) {
  add(build, now - 3 * hour + i * 20 * 60_000, { kind: "start-requested", attempt: i + 1 });
  add(build, now - 3 * hour + i * 20 * 60_000 + 30_000, {
    kind: "start-ended",
    result: "failed",
    code: "AllocationFailed",
  });
}
records.sort((a, b) => a.at - b.at);

const iso = (ms: number) => new Date(ms).toISOString();
const vms = [
  {
    resourceGroup: rg,
    name: backup,
    powerState: "running",
    lastCause: { kind: "evicted", at: iso(evictions[2]?.[0] ?? now), by: null },
    pausedUntil: null,
    vmSize: "Standard_D2s_v5",
    originalVmSize: null,
    backoffUntil: null,
    lastResult: "started",
  },
  {
    resourceGroup: rg,
    name: dev,
    powerState: "deallocated",
    lastCause: { kind: "owner", at: "2026-12-07T19:00:00.000Z", by: null },
    pausedUntil: null,
    vmSize: "Standard_D4s_v5",
    originalVmSize: null,
    backoffUntil: null,
    lastResult: null,
  },
  {
    resourceGroup: rg,
    name: build,
    powerState: "deallocated",
    lastCause: { kind: "evicted", at: iso(now - 3 * hour), by: null },
    pausedUntil: null,
    vmSize: "Standard_F8s_v2",
    originalVmSize: null,
    backoffUntil: iso(now + 12 * 60_000),
    lastResult: "capacity (AllocationFailed)",
  },
];

async function main() {
  const html = renderStatusPage({
    generatedAt: now,
    vms,
    timelines: foldHistory(records, now),
    lastCycleAt: now - 12_000,
  });
  const browser = await launchChromium({ viewport: { width: 1000, height: 600 }, colorScheme: "light" });
  try {
    const page = await browser.context.newPage();
    await page.setContent(html);
    const target = join(__dirname, "..", "docs", "status-page.png");
    await page.screenshot({ path: target, fullPage: true });
    process.stdout.write(`wrote ${target}\n`);
  } finally {
    await browser.close();
  }
}

void main();
