// `status` as a table. By default it fits a 120-column terminal: the columns an operator reads first,
// times relative to the report ("3 min ago", "in 2 min"), long cells cut with "…". `--wide` prints every
// column with full ISO times; `--json` (commands.ts) keeps everything, unformatted. A new column is one
// entry in `statusColumns`: `narrow` says whether the default table shows it.
import { describeReading } from "../azure/budgets";
import { describeHeartbeat } from "../state/heartbeat";
import type { StatusReport, StatusRow } from "./commands";

/** The default table's width: a common terminal, and what fits a 1280-pixel window at a usual font size. */
export const STATUS_WIDTH = 120;

const SEPARATOR = "  ";

/** How long ago (or until when) `iso` is from `now`, in the largest unit that keeps it short: "3 min ago", "in 2 h". */
export function relativeTime(iso: string | null, now: number): string {
  if (iso === null) return "-";
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return iso;
  const seconds = Math.round((at - now) / 1000);
  const size = Math.abs(seconds);
  const amount =
    size < 60
      ? `${size} s`
      : size < 3600
        ? `${Math.round(size / 60)} min`
        : size < 48 * 3600
          ? `${Math.round(size / 3600)} h`
          : `${Math.round(size / 86_400)} d`;
  if (size < 1) return "now";
  return seconds < 0 ? `${amount} ago` : `in ${amount}`;
}

interface Context {
  readonly now: number;
  readonly wide: boolean;
  /** One resource group only: the VM column shows the name alone. */
  readonly oneGroup: boolean;
}

export interface StatusColumn {
  /** The default table's header: short, so that the cells get the width. */
  readonly header: string;
  /** The header with --wide, when it differs. */
  readonly wideHeader?: string;
  /** Shown by the default (120-column) table; every column is shown with --wide. */
  readonly narrow: boolean;
  /** The default table may cut this column's cells (with "…") down to `minWidth` to fit. */
  readonly minWidth?: number;
  cell(row: StatusRow, context: Context): string;
}

const time = (iso: string | null, context: Context) =>
  context.wide ? (iso ?? "-") : relativeTime(iso, context.now);

export const statusColumns: readonly StatusColumn[] = [
  {
    header: "VM",
    narrow: true,
    minWidth: 12,
    cell: (r, c) => (c.oneGroup && !c.wide ? r.name : `${r.resourceGroup}/${r.name}`),
  },
  {
    header: "STATE",
    wideHeader: "POWER STATE",
    narrow: true,
    // The default table says why a deallocated VM waits here (its cause, or its pause); --wide has columns for both.
    cell: (r, c) => {
      const state = r.powerState ?? "?";
      if (c.wide) return state;
      if (r.pausedUntil) return `${state}, paused`;
      return r.lastCause && state === "deallocated" ? `${state}, ${r.lastCause.kind}` : state;
    },
  },
  {
    // When the loop first saw the VM deallocated: an eviction, or the owner's stop (issue 23 item 7).
    header: "DOWN AT",
    wideHeader: "LAST DEALLOCATION SEEN",
    narrow: true,
    cell: (r, c) => time(r.lastEvictionSeenAt, c),
  },
  { header: "LAST START", narrow: true, cell: (r, c) => time(r.lastStartAt, c) },
  {
    header: "RESULT",
    wideHeader: "LAST RESULT",
    narrow: true,
    minWidth: 8,
    cell: (r) => r.lastResult ?? "-",
  },
  { header: "ATTEMPTS", narrow: true, cell: (r) => String(r.startAttempts) },
  { header: "BACKOFF", wideHeader: "BACKOFF UNTIL", narrow: true, cell: (r, c) => time(r.backoffUntil, c) },
  {
    header: "LAST CAUSE",
    narrow: false,
    cell: (r, c) =>
      r.lastCause
        ? `${r.lastCause.kind}${r.lastCause.by ? ` by ${r.lastCause.by}` : ""} ${time(r.lastCause.at, c)}`
        : "-",
  },
  {
    header: "PAUSED UNTIL",
    narrow: false,
    cell: (r, c) =>
      r.pausedUntil === null || r.pausedUntil === "resume" ? (r.pausedUntil ?? "-") : time(r.pausedUntil, c),
  },
  {
    header: "SIZE",
    narrow: true,
    minWidth: 8,
    // In a fallback size: its own size beside it (--wide), or a mark (default).
    cell: (r, c) =>
      r.vmSize === null
        ? "?"
        : r.originalVmSize
          ? c.wide
            ? `${r.vmSize} (own: ${r.originalVmSize})`
            : `${r.vmSize}*`
          : r.vmSize,
  },
  {
    // Azure's band for the size in its region (azure/spotMarket.ts), percent over the trailing 28 days.
    header: "EVICTION RATE",
    narrow: false,
    cell: (r) => (r.evictionRate === null ? "-" : `${r.evictionRate}%`),
  },
  {
    header: "SPOT $/H",
    narrow: false,
    cell: (r) => (r.spotPriceUsdPerHour === null ? "-" : r.spotPriceUsdPerHour.toFixed(5)),
  },
];

function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** The table `status` prints: at most STATUS_WIDTH columns unless `wide`. */
export function formatStatusTable(report: StatusReport, options: { wide?: boolean } = {}): string {
  const wide = options.wide === true;
  const groups = new Set(report.vms.map((r) => r.resourceGroup.toLowerCase()));
  const context: Context = { now: Date.parse(report.generatedAt), wide, oneGroup: groups.size <= 1 };
  const columns = statusColumns.filter((column) => wide || column.narrow);
  const header = columns.map((column) => (wide ? (column.wideHeader ?? column.header) : column.header));
  const lines = report.vms.map((row) => columns.map((column) => column.cell(row, context)));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  if (!wide) {
    // Narrow the widest cuttable column, one character at a time, until the table fits.
    const total = () => widths.reduce((sum, w) => sum + w, 0) + SEPARATOR.length * (widths.length - 1);
    while (total() > STATUS_WIDTH) {
      let widest = -1;
      columns.forEach((column, i) => {
        const min = Math.max(column.minWidth ?? Number.POSITIVE_INFINITY, header[i]?.length ?? 0);
        if ((widths[i] ?? 0) > min && (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))) widest = i;
      });
      if (widest < 0) break;
      widths[widest] = (widths[widest] ?? 0) - 1;
    }
  }
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => cut(c, widths[i] ?? 0).padEnd(widths[i] ?? 0))
      .join(SEPARATOR)
      .trimEnd();
  const out = [fmt(header), ...lines.map(fmt)];
  if (report.vms.length === 0) out.push("(no tagged Spot VMs found)");
  if (!wide && report.vms.some((r) => r.originalVmSize)) {
    out.push("* in a fallback size until its next eviction (--wide shows its own size)");
  }
  if (report.throttledUntil)
    out.push(`ARM throttling: no requests until ${time(report.throttledUntil, context)}`);
  if (report.lowestBudget)
    out.push(`Lowest Azure budget left: ${describeReading({ ...report.lowestBudget, at: 0 })}`);
  if (report.heartbeat) out.push(...describeHeartbeat(report.heartbeat));
  for (const error of report.errors) out.push(`warning: ${error}`);
  return `${out.join("\n")}\n`;
}
