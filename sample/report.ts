import { BurstResult, Outcome } from './burst';

/** One table row: a burst at one route and how many queries it cost. */
export interface RouteResult extends BurstResult {
  route: string;
  executions: number;
}

const OUTCOME_ORDER: readonly Outcome[] = ['miss', 'collapsed', 'hit', 'bypass', 'no header', 'failed'];

function outcomes(result: BurstResult): string {
  return OUTCOME_ORDER.filter((outcome) => result.outcomes.has(outcome))
    .map((outcome) => `${result.outcomes.get(outcome)} ${outcome}`)
    .join(', ');
}

/** A Markdown table of `results`, columns padded so it also reads well in a terminal. */
export function table(results: readonly RouteResult[]): string {
  const header = ['route', 'requests', 'executions', 'p50 ms', 'p99 ms', 'all OK', 'Cache-Status'];
  const right = [false, true, true, true, true, false, false];
  const rows = results.map((r) => [
    r.route,
    String(r.sent),
    String(r.executions),
    r.p50Ms.toFixed(1),
    r.p99Ms.toFixed(1),
    r.allOk ? 'yes' : 'no',
    outcomes(r),
  ]);
  const widths = header.map((title, col) => Math.max(title.length, ...rows.map((row) => row[col].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, col) => (right[col] ? cell.padStart(widths[col]) : cell.padEnd(widths[col]))).join(' | ')} |`;
  const rule = `|${widths.map((width, col) => (right[col] ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
