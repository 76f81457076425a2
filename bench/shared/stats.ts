/** Small statistics and formatting helpers shared by every scenario. */

/** Nearest-rank percentile (p in 0..100) of unsorted `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Median (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Median of the per-round ratios a[i] / b[i]. Rounds are interleaved, so
 * round i of A and of B ran under the same machine conditions: pairing them
 * cancels slow drifts (thermal, other tenants) that a ratio of medians keeps.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (b[i] !== 0 && Number.isFinite(a[i]) && Number.isFinite(b[i])) ratios.push(a[i] / b[i]);
  }
  return median(ratios);
}

/** `n` with thousands separators and `digits` decimals; `—` for NaN. */
export function num(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A ratio as `1.23x`; `—` when undefined. */
export function ratio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r >= 0.01 ? r.toFixed(2) : r.toFixed(3)}x`;
}

/** One printed table: column titles and rows of cells already formatted. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** Footnotes printed under the table. */
  notes?: string[];
}

/** A Markdown table padded so it also reads in a terminal; numbers (and `—`) right-aligned. */
export function markdown(table: Table): string {
  const { columns, rows } = table;
  const widths = columns.map((title, col) => Math.max(3, title.length, ...rows.map((row) => row[col]?.length ?? 0)));
  const numeric = columns.map(
    (_, col) => col > 0 && rows.every((row) => /^[-+]?[\d,.]+(x| ms| MB| B)?$|^—$/.test(row[col] ?? '')),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, col) => (numeric[col] ? cell.padStart(widths[col]) : cell.padEnd(widths[col]))).join(' | ')} |`;
  const rule = `|${widths.map((width, col) => (numeric[col] ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`;
  const out = [`### ${table.title}`, '', line(columns), rule, ...rows.map(line)];
  if (table.notes?.length) out.push('', ...table.notes.map((note) => `- ${note}`));
  return out.join('\n');
}
