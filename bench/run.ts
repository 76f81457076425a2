import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import * as fnCold from './scenarios/fn-cold';
import * as freshness from './scenarios/freshness';
import * as graphqlCold from './scenarios/graphql-cold';
import * as fnHot from './scenarios/fn-hot';
import * as httpCold from './scenarios/http-cold';
import * as httpHot from './scenarios/http-hot';
import * as memory from './scenarios/memory';
import * as redisCold from './scenarios/redis-cold';
import * as runMany from './scenarios/run-many';
import * as validators from './scenarios/validators';
import { BenchOptions, Check, ScenarioReport, Target } from './shared/report';
import { markdown } from './shared/stats';
import { svgChart } from './shared/svg';

/**
 * `npm run bench [-- <scenario>...] [--quick]`: runs the scenarios, prints
 * Markdown tables, the target checklist and the correctness checks, writes
 * JSON to bench/results/ and (full runs with http-cold) bench/origin-calls.svg.
 * Exits non-zero only when a correctness check fails, never on a timing target.
 */

const SCENARIOS: Record<string, (options: BenchOptions) => Promise<ScenarioReport>> = {
  'http-cold': httpCold.run,
  'http-hot': httpHot.run,
  'fn-cold': fnCold.run,
  'fn-hot': fnHot.run,
  memory: memory.run,
  'redis-cold': redisCold.run,
  freshness: freshness.run,
  'graphql-cold': graphqlCold.run,
  'run-many': runMany.run,
  validators: validators.run,
};

/** The repository root: this file runs from dist-bench/bench/. */
const ROOT = join(__dirname, '..', '..');

function machine(): Record<string, string> {
  const cpuModel = (() => {
    try {
      const line = readFileSync('/proc/cpuinfo', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('model name'));
      return line?.split(':')[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
    } catch {
      return cpus()[0]?.model ?? 'unknown';
    }
  })();
  let nproc = String(cpus().length);
  try {
    nproc = execSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // not Linux: the os module's count above
  }
  return { nproc, cpu: cpuModel, node: process.version, platform: `${process.platform} ${process.arch}` };
}

function loadAverage(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(' / ');
}

function parseArgs(argv: string[]): { options: BenchOptions; names: string[] } {
  const quick = argv.includes('--quick');
  const names = argv.filter((arg) => !arg.startsWith('--'));
  for (const name of names) {
    if (!(name in SCENARIOS)) {
      throw new Error(`unknown scenario "${name}"; one of: ${Object.keys(SCENARIOS).join(', ')}`);
    }
  }
  return { options: { quick }, names: names.length > 0 ? names : Object.keys(SCENARIOS) };
}

function checklist(targets: Target[], checks: Check[]): string {
  const targetTable = markdown({
    title: 'Targets (issues #4, #6, #7), from this run',
    columns: ['target', 'measured', 'goal', 'result'],
    rows: targets.map((t) => [t.name, t.measured, t.goal, t.pass ? 'PASS' : 'MISS']),
  });
  const checkTable = markdown({
    title: 'Correctness checks (these decide the exit code)',
    columns: ['check', 'result', 'detail'],
    rows: checks.map((c) => [c.name, c.pass ? 'PASS' : 'FAIL', c.detail]),
  });
  return `${targetTable}\n\n${checkTable}`;
}

async function main(): Promise<void> {
  const { options, names } = parseArgs(process.argv.slice(2));
  const started = new Date();
  const info = machine();
  console.log(`# nestjs-stampede benchmarks${options.quick ? ' (--quick)' : ''}\n`);
  console.log(`- date: ${started.toUTCString()}`);
  console.log(`- machine: ${info.nproc} cores, ${info.cpu}, ${info.platform}, Node ${info.node}`);
  console.log(`- load average at start (1/5/15 min): ${loadAverage()}`);
  console.log(`- scenarios: ${names.join(', ')}\n`);

  const reports: Record<string, ScenarioReport> = {};
  const targets: Target[] = [];
  const checks: Check[] = [];
  for (const name of names) {
    const t0 = Date.now();
    console.error(`[bench] ${name}…`);
    const report = await SCENARIOS[name](options);
    console.error(`[bench] ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    reports[name] = report;
    targets.push(...report.targets);
    checks.push(...report.checks);
    console.log(`## ${name}\n`);
    for (const table of report.tables) console.log(`${markdown(table)}\n`);
  }
  // Other processes on the machine skew every figure: the load average says how busy it was.
  console.log(`## Summary\n\n- load average at end (1/5/15 min): ${loadAverage()}\n\n${checklist(targets, checks)}\n`);

  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = join(resultsDir, `${stamp}${options.quick ? '-quick' : ''}.json`);
  const json = JSON.stringify({ date: started.toISOString(), machine: info, options, names, reports }, null, 2);
  writeFileSync(file, json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
  console.error(`[bench] results: ${file}`);

  // The committed chart comes from full runs only, so a CI smoke run leaves the tree clean.
  const chart = reports['http-cold']?.chart;
  if (chart && !options.quick) {
    const svgFile = join(ROOT, 'bench', 'origin-calls.svg');
    writeFileSync(svgFile, svgChart(chart));
    console.error(`[bench] chart: ${svgFile}`);
  }

  const failed = checks.filter((c) => !c.pass);
  const elapsed = ((Date.now() - started.getTime()) / 1000).toFixed(0);
  console.error(`[bench] ${elapsed} s; ${failed.length} failed check(s)`);
  if (failed.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
