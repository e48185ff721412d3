// Hand-written SVG line charts (log-log axes) for the benchmark: no plotting dependency for two charts.

export interface Series {
  label: string;
  color: string;
  dashed?: boolean;
  /** `estimated` points (extrapolated) are drawn hollow. */
  points: { x: number; y: number; estimated?: boolean }[];
}

export interface Chart {
  title: string;
  yLabel: string;
  xLabel: string;
  series: Series[];
}

const W = 520;
const H = 360;
const M = { left: 64, right: 16, top: 40, bottom: 118 };

const esc = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function decades(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) ticks.push(10 ** e);
  return ticks;
}

function chart(spec: Chart, offsetX: number): string {
  const points = spec.series.flatMap((s) => s.points).filter((p) => p.y > 0);
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const yTicks = decades(Math.min(...points.map((p) => p.y)), Math.max(...points.map((p) => p.y)));
  const [yMin, yMax] = [yTicks[0] as number, yTicks[yTicks.length - 1] as number];
  const [xMin, xMax] = [(xs[0] as number) / 1.5, (xs[xs.length - 1] as number) * 1.5];
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const sx = (x: number) =>
    M.left + ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * plotW;
  const sy = (y: number) =>
    M.top + plotH - ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotH;
  const out: string[] = [`<g transform="translate(${offsetX},0)">`];
  out.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`,
  );
  for (const tick of yTicks) {
    const y = sy(tick).toFixed(1);
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(
      `<text x="${M.left - 6}" y="${y}" dy="4" text-anchor="end" font-size="11">${tick >= 1 ? tick : tick.toString()}</text>`,
    );
  }
  for (const x of xs) {
    const px = sx(x).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${M.top}" y2="${M.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${M.top + plotH + 16}" text-anchor="middle" font-size="11">${x}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push(
    `<text x="${M.left + plotW / 2}" y="${M.top + plotH + 34}" text-anchor="middle" font-size="12">${esc(spec.xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(16,${M.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(spec.yLabel)}</text>`,
  );
  spec.series.forEach((series, index) => {
    const visible = series.points.filter((p) => p.y > 0);
    const path = visible
      .map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`)
      .join(" ");
    out.push(
      `<path d="${path}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    for (const p of visible) {
      out.push(
        `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="4" fill="${p.estimated ? "white" : series.color}" stroke="${series.color}" stroke-width="2"><title>${esc(`${series.label}: N=${p.x}: ${p.y}${p.estimated ? " (extrapolated)" : ""}`)}</title></circle>`,
      );
    }
    const ly = M.top + plotH + 52 + index * 16;
    out.push(
      `<line x1="${M.left}" x2="${M.left + 24}" y1="${ly}" y2="${ly}" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    out.push(`<text x="${M.left + 30}" y="${ly + 4}" font-size="11">${esc(series.label)}</text>`);
  });
  out.push("</g>");
  return out.join("\n");
}

/** Splits a footnote into lines that fit `maxChars` (SVG text does not wrap by itself). */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** Charts side by side in one SVG document, with a footnote below them. */
export function renderCharts(charts: Chart[], footnote: string): string {
  const width = W * charts.length;
  // About 5.5 px per character at font-size 10.
  const notes = wrapText(footnote, Math.floor((width - 24) / 5.5));
  const height = H + 10 + 14 * notes.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...charts.map((c, i) => chart(c, i * W)),
    ...notes.map(
      (note, i) => `<text x="12" y="${H + 6 + 14 * (i + 1)}" font-size="10" fill="#555">${esc(note)}</text>`,
    ),
    "</svg>",
    "",
  ].join("\n");
}
