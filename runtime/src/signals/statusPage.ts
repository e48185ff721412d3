// The status page the metrics listener serves at `/` (metrics.listen): one card per tagged VM with what
// `status` shows, a 7-day timeline drawn as inline SVG (running / evicted and waiting / owner-stopped /
// paused / down), and the report's figures for those 7 days. One self-contained document: no script, no
// external asset (it renders offline, and the listener's Content-Security-Policy forbids both), light and
// dark by the reader's setting, one column on a phone. Every text it shows is escaped.
import { figuresFor, type Phase, timelineKey, type VmTimeline } from "../state/historyFold";

/** What a status row must have for the page (the `status --json` row, cli/commands.ts). */
export interface PageVm {
  readonly resourceGroup: string;
  readonly name: string;
  readonly powerState: string | null;
  readonly lastCause: { readonly kind: string; readonly at: string; readonly by: string | null } | null;
  readonly pausedUntil: string | null;
  readonly vmSize: string | null;
  readonly originalVmSize: string | null;
  readonly backoffUntil: string | null;
  readonly lastResult: string | null;
}

export interface StatusPageInput {
  readonly generatedAt: number;
  readonly vms: readonly PageVm[];
  readonly timelines: readonly VmTimeline[];
  /** When the loop's last cycle finished, if one has. */
  readonly lastCycleAt?: number;
  /** Problems the status report carries. */
  readonly errors?: readonly string[];
}

export const TIMELINE_DAYS = 7;
const DAY_MS = 86_400_000;

const replacements: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML content and quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => replacements[c] ?? c);
}

export const phaseLabels: Record<Phase, string> = {
  running: "running",
  evicted: "evicted, waiting for a start",
  owner: "stopped by its owner",
  paused: "paused",
  down: "down (cause not known)",
};

const iso = (ms: number) => new Date(ms).toISOString();
const shortTime = (text: string | null) => (text ? text.replace("T", " ").replace(/\.\d+Z$/, " UTC") : "–");

function humanSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < (2 * DAY_MS) / 1000) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

/** The 7-day timeline of one VM: a rect per phase segment, a tick per day. */
export function timelineSvg(timeline: VmTimeline | undefined, label: string, until: number): string {
  const width = 700;
  const height = 28;
  const since = until - TIMELINE_DAYS * DAY_MS;
  const x = (ms: number) => ((Math.max(since, Math.min(until, ms)) - since) / (until - since)) * width;
  const rects = (timeline?.segments ?? [])
    .filter((segment) => segment.to > since)
    .map((segment) => {
      const from = x(segment.from);
      const w = Math.max(x(segment.to) - from, 0.5);
      const title = `${phaseLabels[segment.phase]}: ${shortTime(iso(Math.max(segment.from, since)))} – ${shortTime(iso(segment.to))}`;
      return `<rect class="p-${segment.phase}" data-phase="${segment.phase}" data-from="${iso(segment.from)}" data-to="${iso(segment.to)}" x="${from.toFixed(2)}" y="4" width="${w.toFixed(2)}" height="${height - 8}"><title>${escapeHtml(title)}</title></rect>`;
    })
    .join("");
  const ticks = Array.from({ length: TIMELINE_DAYS - 1 }, (_, i) => {
    const tx = (((i + 1) * DAY_MS) / (until - since)) * width;
    return `<line class="tick" x1="${tx.toFixed(2)}" x2="${tx.toFixed(2)}" y1="0" y2="${height}"/>`;
  }).join("");
  return `<svg class="timeline" viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(`${label}: the last ${TIMELINE_DAYS} days`)}" data-vm="${escapeHtml(label)}"><rect class="empty" x="0" y="4" width="${width}" height="${height - 8}"/>${rects}${ticks}</svg>`;
}

/** The dot before the name: running, evicted (deallocated for a start), stopped by its owner, or else. */
function stateClass(vm: PageVm): string {
  if (vm.powerState === "running") return "s-running";
  if (vm.powerState === "deallocated") return vm.lastCause?.kind === "owner" ? "s-owner" : "s-evicted";
  return "s-other";
}

function vmCard(vm: PageVm, timeline: VmTimeline | undefined, until: number): string {
  const label = `${vm.resourceGroup}/${vm.name}`;
  const figures = timeline ? figuresFor(timeline, until - TIMELINE_DAYS * DAY_MS, until) : undefined;
  const size =
    vm.vmSize === null ? "?" : vm.originalVmSize ? `${vm.vmSize} (own: ${vm.originalVmSize})` : vm.vmSize;
  const cause = vm.lastCause
    ? `${vm.lastCause.kind}${vm.lastCause.by ? ` by ${vm.lastCause.by}` : ""}, ${shortTime(vm.lastCause.at)}`
    : "–";
  const facts: Array<[string, string, string]> = [
    ["power", "power state", vm.powerState ?? "?"],
    ["cause", "last cause", cause],
    ["paused", "paused until", vm.pausedUntil === "resume" ? "resume" : shortTime(vm.pausedUntil)],
    ["size", "size", size],
    ["result", "last start", vm.lastResult ?? "–"],
    ["backoff", "next try", shortTime(vm.backoffUntil)],
  ];
  const figureCells: Array<[string, string]> = figures
    ? [
        ["evictions", String(figures.evictions)],
        ["owner stops", String(figures.ownerStops)],
        ["downtime", figures.downtimeSeconds > 0 ? humanSeconds(figures.downtimeSeconds) : "0"],
        [
          "longest outage",
          figures.longestOutageSeconds > 0 ? humanSeconds(figures.longestOutageSeconds) : "–",
        ],
        ["start requests", String(figures.startRequests)],
        [
          "availability",
          figures.availability === null ? "–" : `${(figures.availability * 100).toFixed(1)} %`,
        ],
      ]
    : [];
  return `<section class="vm" data-vm="${escapeHtml(label)}">
<h2><span class="state ${stateClass(vm)}"></span><span class="name">${escapeHtml(vm.name)}</span> <span class="rg">${escapeHtml(vm.resourceGroup)}</span></h2>
<dl class="facts">${facts.map(([key, name, value]) => `<div data-field="${key}"><dt>${name}</dt><dd>${escapeHtml(value)}</dd></div>`).join("")}</dl>
${timelineSvg(timeline, label, until)}
<div class="axis"><span>${TIMELINE_DAYS} days ago</span><span>now</span></div>
${figures ? `<dl class="figures">${figureCells.map(([name, value]) => `<div data-figure="${name}"><dt>${name}</dt><dd>${escapeHtml(value)}</dd></div>`).join("")}</dl>` : `<p class="none">no eviction history yet</p>`}
</section>`;
}

const style = `
:root{color-scheme:light dark;--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#5f6368;--line:#d9d9d6;
--running:#2e7d32;--evicted:#c62828;--owner:#6d6d6d;--paused:#b26a00;--down:#8e24aa;--empty:#ececea}
@media (prefers-color-scheme:dark){:root{--bg:#121314;--card:#1c1d1f;--fg:#e8e8e6;--muted:#a0a4a8;--line:#34363a;
--running:#66bb6a;--evicted:#ef5350;--owner:#9e9e9e;--paused:#ffb74d;--down:#ce93d8;--empty:#2a2c2f}}
*{box-sizing:border-box}
body{margin:0;padding:16px;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;margin-bottom:12px}
h1{font-size:20px;margin:0}header p{margin:0;color:var(--muted)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:12px}
.vm{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;min-width:0}
h2{font-size:17px;margin:0 0 8px;overflow-wrap:anywhere}.rg{color:var(--muted);font-weight:400;font-size:14px}
.state{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:8px;background:var(--down)}
.s-running{background:var(--running)}.s-evicted{background:var(--evicted)}.s-owner{background:var(--owner)}
dl{margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:6px 12px}
dt{color:var(--muted);font-size:12px}dd{margin:0;overflow-wrap:anywhere}
.timeline{display:block;width:100%;height:28px;margin-top:10px}
.timeline .empty{fill:var(--empty)}.tick{stroke:var(--card);stroke-width:1.5}
.p-running{fill:var(--running)}.p-evicted{fill:var(--evicted)}.p-owner{fill:var(--owner)}.p-paused{fill:var(--paused)}.p-down{fill:var(--down)}
.axis{display:flex;justify-content:space-between;color:var(--muted);font-size:12px;margin-bottom:8px}
.figures{border-top:1px solid var(--line);padding-top:8px}.none{color:var(--muted);margin:0}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:0 0 12px;padding:0;list-style:none;color:var(--muted);font-size:13px}
.legend span{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.legend .p-running{background:var(--running)}.legend .p-evicted{background:var(--evicted)}.legend .p-owner{background:var(--owner)}
.legend .p-paused{background:var(--paused)}.legend .p-down{background:var(--down)}
.errors{color:var(--evicted)}
`;

/** The whole page. */
export function renderStatusPage(input: StatusPageInput): string {
  const until = input.generatedAt;
  const timelines = new Map(input.timelines.map((t) => [timelineKey(t.resourceGroup, t.name), t]));
  const cards = input.vms
    .map((vm) => vmCard(vm, timelines.get(timelineKey(vm.resourceGroup, vm.name)), until))
    .join("\n");
  const legend = (Object.keys(phaseLabels) as Phase[])
    .map((phase) => `<li><span class="p-${phase}"></span>${phaseLabels[phase]}</li>`)
    .join("");
  const errors = (input.errors ?? []).map((e) => `<li>${escapeHtml(e)}</li>`).join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>spot-restarter status</title>
<style>${style}</style>
</head>
<body>
<header><h1>spot-restarter</h1><p>as of <time datetime="${iso(until)}">${shortTime(iso(until))}</time></p><p data-field="last-cycle">last cycle: ${input.lastCycleAt === undefined ? "none yet" : shortTime(iso(input.lastCycleAt))}</p></header>
<ul class="legend">${legend}</ul>
${errors ? `<ul class="errors">${errors}</ul>` : ""}
<main>
${cards || `<p class="none">no tagged Spot VM found yet</p>`}
</main>
</body>
</html>
`;
}
