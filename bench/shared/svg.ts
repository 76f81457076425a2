import { ChartData } from './report';

/**
 * A log-log line chart as a hand-written SVG string (no chart dependency).
 * Log scales, since the interesting gap is N executions against 1.
 */

const WIDTH = 760;
const HEIGHT = 440;
const PAD = { left: 80, right: 40, top: 56, bottom: 64 };
/** Margin inside the plot, in decades, so points on the first and last ticks are not on the frame. */
const INSET = 0.12;
const COLORS = ['#8a8f98', '#e8710a', '#1a73e8', '#188038', '#a142f4'];
const DASHES = ['6 4', '2 3', '', '', ''];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Powers of ten from 10^lo to 10^hi. */
function decades(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) out.push(10 ** e);
  return out;
}

export function svgChart(chart: ChartData): string {
  const values = chart.series.flatMap((s) => s.ys).filter((y) => y > 0);
  const xLo = Math.floor(Math.log10(Math.min(...chart.xs)));
  const xHi = Math.ceil(Math.log10(Math.max(...chart.xs)));
  const yLo = Math.min(0, Math.floor(Math.log10(Math.min(...values))));
  const yHi = Math.max(1, Math.ceil(Math.log10(Math.max(...values))));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (v: number) => PAD.left + ((Math.log10(v) - xLo + INSET) / (xHi - xLo + 2 * INSET)) * plotW;
  const y = (v: number) =>
    PAD.top + plotH - ((Math.log10(Math.max(v, 10 ** yLo)) - yLo + INSET) / (yHi - yLo + 2 * INSET)) * plotH;
  const label = (v: number) => Math.round(v).toLocaleString('en-US');

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="14" font-weight="600">${escape(chart.title)}</text>`,
  );
  // Grid and tick labels.
  for (const v of decades(yLo, yHi)) {
    parts.push(
      `<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e0e0e0"/>`,
      `<text x="${PAD.left - 8}" y="${y(v) + 4}" text-anchor="end">${v.toLocaleString('en-US')}</text>`,
    );
  }
  for (const v of chart.xs) {
    parts.push(
      `<line x1="${x(v)}" x2="${x(v)}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#e0e0e0"/>`,
      `<text x="${x(v)}" y="${PAD.top + plotH + 18}" text-anchor="middle">${v.toLocaleString('en-US')}</text>`,
    );
  }
  parts.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9e9e9e"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 20}" text-anchor="middle">${escape(chart.xLabel)} (log scale)</text>`,
    `<text transform="translate(22 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(chart.yLabel)} (log scale)</text>`,
  );
  // One line per series, each point labelled with its value.
  chart.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length];
    const points = chart.xs.map((xv, j) => `${x(xv).toFixed(1)},${y(series.ys[j]).toFixed(1)}`).join(' ');
    const dash = DASHES[i % DASHES.length] ? ` stroke-dasharray="${DASHES[i % DASHES.length]}"` : '';
    parts.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2.5"${dash}/>`);
    chart.xs.forEach((xv, j) => {
      const cx = x(xv);
      const cy = y(series.ys[j]);
      // Alternate label sides so series that coincide (e.g. bare vs CacheInterceptor) stay readable.
      const dy = i % 2 === 0 ? -8 : 16;
      parts.push(
        `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="${color}"/>`,
        `<text x="${(cx + 6).toFixed(1)}" y="${(cy + dy).toFixed(1)}" fill="${color}">${label(series.ys[j])}</text>`,
      );
    });
    // Legend in the plot's top-left corner: the lines rise to the right, so it stays clear.
    const ly = PAD.top + 20 + i * 22;
    const lx = PAD.left + 16;
    parts.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 32}" y="${ly + 4}">${escape(series.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
