// `spot-restarter report`: what evictions cost over a window, per tagged VM and in total, from the
// eviction history (state/history.ts) alone: it needs no Azure and no lock. The JSON shape is a
// contract (docs/eviction-history.md): { since, until, vms: [{ resourceGroup, name, …figures }], totals }.
import { figuresFor, type VmFigures, type VmTimeline } from "../state/historyFold";

export interface ReportRow extends VmFigures {
  readonly resourceGroup: string;
  readonly name: string;
}

export interface EvictionReport {
  readonly since: string;
  readonly until: string;
  readonly vms: ReportRow[];
  /** Sums, except `longestOutageSeconds` (the longest of all) and `availability` (running time over observed time, all VMs). */
  readonly totals: VmFigures;
}

export const DEFAULT_REPORT_WINDOW = "30d";

export function buildReport(timelines: readonly VmTimeline[], since: number, until: number): EvictionReport {
  const vms = timelines
    .filter((timeline) => (timeline.segments[0]?.from ?? until) < until)
    .map((timeline) => ({
      resourceGroup: timeline.resourceGroup,
      name: timeline.name,
      ...figuresFor(timeline, since, until),
    }))
    .sort((a, b) => a.resourceGroup.localeCompare(b.resourceGroup) || a.name.localeCompare(b.name));
  const sum = (field: keyof VmFigures) => vms.reduce((total, vm) => total + (vm[field] ?? 0), 0);
  // The fleet's availability weighs each VM by how long it was observed in the window.
  let observed = 0;
  let running = 0;
  for (const timeline of timelines) {
    const seenFrom = Math.max(since, timeline.segments[0]?.from ?? until);
    const vm = vms.find((row) => row.resourceGroup === timeline.resourceGroup && row.name === timeline.name);
    if (!vm || vm.availability === null) continue;
    observed += until - seenFrom;
    running += vm.availability * (until - seenFrom);
  }
  return {
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    vms,
    totals: {
      evictions: sum("evictions"),
      ownerStops: sum("ownerStops"),
      downtimeSeconds: sum("downtimeSeconds"),
      longestOutageSeconds: Math.max(0, ...vms.map((vm) => vm.longestOutageSeconds)),
      startRequests: sum("startRequests"),
      availability: observed > 0 ? Math.round((running / observed) * 10_000) / 10_000 : null,
      fallbackSeconds: sum("fallbackSeconds"),
    },
  };
}

/** "3 h 12 min", "45 s", "2 d 4 h": the largest unit and the one below it (when not zero), for people. */
export function humanDuration(seconds: number): string {
  const s = Math.round(seconds);
  const units: Array<[string, number]> = [
    ["d", 86_400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ];
  const index = units.findIndex(([, size]) => s >= size);
  if (index < 0) return "0 s";
  const [name, size] = units[index] as [string, number];
  const first = `${Math.floor(s / size)} ${name}`;
  const next = units[index + 1];
  if (!next) return first;
  const rest = Math.floor((s % size) / next[1]);
  return rest > 0 ? `${first} ${rest} ${next[0]}` : first;
}

const percent = (ratio: number | null) => (ratio === null ? "-" : `${(ratio * 100).toFixed(2)} %`);

export function formatReportTable(report: EvictionReport): string {
  const header = [
    "VM",
    "EVICTIONS",
    "OWNER STOPS",
    "DOWNTIME",
    "LONGEST OUTAGE",
    "STARTS",
    "AVAILABILITY",
    "FALLBACK SIZE",
  ];
  const cells = (name: string, f: VmFigures) => [
    name,
    String(f.evictions),
    String(f.ownerStops),
    f.downtimeSeconds > 0 ? humanDuration(f.downtimeSeconds) : "-",
    f.longestOutageSeconds > 0 ? humanDuration(f.longestOutageSeconds) : "-",
    String(f.startRequests),
    percent(f.availability),
    f.fallbackSeconds > 0 ? humanDuration(f.fallbackSeconds) : "-",
  ];
  const lines = [
    ...report.vms.map((vm) => cells(`${vm.resourceGroup}/${vm.name}`, vm)),
    ...(report.vms.length > 1 ? [cells("total", report.totals)] : []),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  const fmt = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  const out = [`Evictions from ${report.since} to ${report.until}`, fmt(header), ...lines.map(fmt)];
  if (report.vms.length === 0) out.push("(no tagged Spot VM in the eviction history for this window)");
  return `${out.join("\n")}\n`;
}
