import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { serveParent, startChild } from '../shared/child';
import type { Origin } from '../shared/fn-systems';
import { BenchOptions, Check, ScenarioReport } from '../shared/report';
import { median, num, pairedRatio, ratio } from '../shared/stats';
import { rotated } from '../shared/systems';

/**
 * fn-cold: 1000 concurrent calls of one key to a 50 ms async function. How
 * many times does it run, and how long until every caller has its answer?
 * Runs in a child process of its own (this file, forked).
 */

const CALLS = 1000;
const WORK_MS = 50;
const PEER = 'cache-manager wrap';
const STAMPEDE = ['StampedeService.run', '@Coalesce method'];

interface ColdRun {
  executions: number;
  wallMs: number;
  failed: number;
}

interface Params {
  rounds: number;
}

type Runs = Record<string, ColdRun[]>;

/** In the child: every round calls each system with a key of its own, systems interleaved. */
async function measure({ rounds }: Params): Promise<Runs> {
  const { createFnSystems } = await import('../shared/fn-systems');
  const executions = new Map<string, number>();
  const origin: Origin = async (key) => {
    executions.set(key, (executions.get(key) ?? 0) + 1);
    await sleep(WORK_MS);
    return { key, payload: 'x'.repeat(64) };
  };
  const { systems, close } = await createFnSystems(origin);
  const once = async (get: (key: string) => Promise<unknown>, key: string): Promise<ColdRun> => {
    const start = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: CALLS }, () => get(key)));
    const wallMs = performance.now() - start;
    return {
      executions: executions.get(key) ?? 0,
      wallMs,
      failed: settled.filter((s) => s.status !== 'fulfilled').length,
    };
  };
  try {
    // Untimed round: compiles each system's code paths.
    for (const system of systems) await once(system.get, `warm:${system.name}`);
    const runs: Runs = Object.fromEntries(systems.map((s) => [s.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const system of rotated(systems, round)) {
        runs[system.name].push(await once(system.get, `cold:${round}:${system.name}`));
      }
    }
    return runs;
  } finally {
    await close();
  }
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const rounds = options.quick ? 2 : 7;
  const child = await startChild(__filename, []);
  let runs: Runs;
  try {
    runs = await child.call<Runs>('measure', { rounds } satisfies Params);
  } finally {
    await child.stop();
  }
  const wall = (name: string) => runs[name].map((r) => r.wallMs);
  const table = {
    title: `fn-cold: ${CALLS} concurrent calls of one key, ${WORK_MS} ms async function (median of ${rounds} rounds)`,
    columns: ['system', 'executions', 'wall ms', `wall vs ${PEER}`, 'failed'],
    rows: Object.keys(runs).map((name) => [
      name,
      num(median(runs[name].map((r) => r.executions))),
      num(median(wall(name)), 1),
      ratio(pairedRatio(wall(name), wall(PEER))),
      num(runs[name].reduce((n, r) => n + r.failed, 0)),
    ]),
    notes: ['wall: from the first call until all 1000 promises settled; lower is better.'],
  };
  const checks: Check[] = STAMPEDE.map((name) => ({
    name: `fn-cold: ${name} runs the function once per cold burst`,
    pass: runs[name].every((r) => r.executions === 1 && r.failed === 0),
    detail: `executions per burst: ${runs[name].map((r) => r.executions).join(', ')}`,
  }));
  return { tables: [table], targets: [], checks, raw: { rounds, calls: CALLS, workMs: WORK_MS, runs } };
}

if (require.main === module) serveParent({ measure });
