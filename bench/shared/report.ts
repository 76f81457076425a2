import { Table } from './stats';

/** Command-line settings every scenario receives. */
export interface BenchOptions {
  /** Fewer rounds and shorter runs: the CI smoke test. */
  quick: boolean;
}

/** A performance goal of issue #4: reported PASS/MISS, never part of the exit code. */
export interface Target {
  name: string;
  /** What was measured, e.g. `1.12x` or `38.2 ms`. */
  measured: string;
  /** What it must be, e.g. `>= 1.0x`. */
  goal: string;
  pass: boolean;
}

/** A correctness check (e.g. one origin call per cold burst): a failure makes the run exit non-zero. */
export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

/** What a scenario hands back to the runner. */
export interface ScenarioReport {
  tables: Table[];
  targets: Target[];
  checks: Check[];
  /** Everything measured, per round, for the JSON file. */
  raw: unknown;
  /** Data for bench/origin-calls.svg (http-cold only). */
  chart?: ChartData;
}

/** A log-log line chart: one line per series over the same x values. */
export interface ChartData {
  title: string;
  xLabel: string;
  yLabel: string;
  xs: number[];
  series: { label: string; ys: number[] }[];
}

/** `>= goal` target on a ratio. */
export function atLeast(name: string, measured: number, goal: number, unit = 'x'): Target {
  const show = (n: number) => (unit === 'x' ? `${n.toFixed(2)}x` : `${Math.round(n).toLocaleString('en-US')}${unit}`);
  return { name, measured: show(measured), goal: `>= ${show(goal)}`, pass: measured >= goal };
}

/** `<= goal` target. */
export function atMost(name: string, measured: number, goal: number, unit: string, digits = 1): Target {
  return {
    name,
    measured: `${measured.toFixed(digits)}${unit}`,
    goal: `<= ${goal.toFixed(digits)}${unit}`,
    pass: measured <= goal,
  };
}
