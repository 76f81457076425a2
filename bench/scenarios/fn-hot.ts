import { serveParent, startChild } from '../shared/child';
import type { FnSystem, Origin } from '../shared/fn-systems';
import { BenchOptions, ScenarioReport, Target, atLeast } from '../shared/report';
import { median, num, pairedRatio, ratio } from '../shared/stats';
import { rotated } from '../shared/systems';
import { Deferred, deferred } from '../../test/helpers/deferred';

/**
 * fn-hot: operations per second of (1) a cached hit and (2) joining a call
 * already in flight, for each function-level system (tinybench, in a child
 * process of its own). Floors: a bare `Map.get`, the same behind `await`, and
 * a hand-rolled `Map<string, Promise>` single flight.
 */

/** Calls per tinybench iteration: sub-microsecond operations would otherwise measure the timer. */
const BATCH = 100;
const HOT_KEY = 'hot';
const PEERS = ['cache-manager wrap', 'async-cache-dedupe'];
const FLOOR_HIT = 'Map.get (sync floor)';
const FLOOR_JOIN = 'hand-rolled Map<key, Promise>';
const STAMPEDE = ['StampedeService.run', '@Coalesce method'];
const TRACED = 'StampedeService.run, OpenTelemetry on';

interface Params {
  rounds: number;
  timeMs: number;
}

/** Operations per second per task name, one entry per round. */
type Runs = Record<string, number[]>;

/** Hits on a near-empty cache, hits on a cache holding FULL other keys, joins. */
const PHASES = ['hit', 'full', 'join'] as const;
type Phase = (typeof PHASES)[number];
/** Other keys in the "full" caches: with the hot key, the default maxEntries (10,000). */
const FULL = 9_999;

// Written by the floors so the JIT cannot drop their reads as dead code.
let _sink: unknown;

type Task = [name: string, fn: () => unknown];

function hitTasks(systems: FnSystem[], others: number): Task[] {
  const map = new Map<string, unknown>();
  for (let i = 0; i < others; i++) map.set(`other:${i}`, { cached: true });
  map.set(HOT_KEY, { cached: true });
  const asyncGet = async (key: string) => map.get(key);
  return [
    [
      FLOOR_HIT,
      () => {
        for (let i = 0; i < BATCH; i++) _sink = map.get(HOT_KEY);
      },
    ],
    [
      'await Map.get (async floor)',
      async () => {
        for (let i = 0; i < BATCH; i++) _sink = await asyncGet(HOT_KEY);
      },
    ],
    ...systems
      .filter((s) => s.caches)
      .map((s): Task => [
        s.name,
        async () => {
          for (let i = 0; i < BATCH; i++) _sink = await s.get(HOT_KEY);
        },
      ]),
  ];
}

/** Each iteration: one leader and BATCH − 1 joiners on a fresh key, then the work resolves. */
function joinTasks(systems: FnSystem[], origin: { hold: Deferred<unknown> }): Task[] {
  const inflight = new Map<string, Promise<unknown>>();
  const floor = (key: string) => {
    let p = inflight.get(key);
    if (!p) {
      p = origin.hold.promise.finally(() => inflight.delete(key));
      inflight.set(key, p);
    }
    return p;
  };
  let n = 0;
  const join = (get: (key: string) => Promise<unknown>) => async () => {
    origin.hold = deferred<unknown>();
    const key = `join:${n++}`;
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < BATCH; i++) calls.push(get(key));
    origin.hold.resolve({ key });
    _sink = await Promise.all(calls);
  };
  return [[FLOOR_JOIN, join(floor)], ...systems.filter((s) => s.coalesces).map((s): Task => [s.name, join(s.get)])];
}

/** In the child: every round runs all tasks, in an order rotated each round. */
async function measure({ rounds, timeMs }: Params): Promise<Record<Phase, Runs>> {
  const { Bench } = await import('tinybench');
  const { createFnSystems } = await import('../shared/fn-systems');
  const state: { mode: 'hit' | 'join'; hold: Deferred<unknown> } = { mode: 'hit', hold: deferred<unknown>() };
  const origin: Origin = (key) => (state.mode === 'hit' ? Promise.resolve({ key, cached: true }) : state.hold.promise);
  const { systems, close } = await createFnSystems(origin);
  try {
    for (const s of systems) await s.get(HOT_KEY); // fills every cache: from now on HOT_KEY is a hit
    const out: Record<Phase, Runs> = { hit: {}, full: {}, join: {} };
    for (const phase of PHASES) {
      if (phase === 'full') {
        // A long-running app's cache is full: the LRU's upkeep on a hit may depend on it.
        for (const s of systems.filter((x) => x.caches)) {
          for (let i = 0; i < FULL; i++) await s.get(`other:${i}`);
        }
      }
      const tasks = phase === 'join' ? joinTasks(systems, state) : hitTasks(systems, phase === 'full' ? FULL : 0);
      state.mode = phase === 'join' ? 'join' : 'hit';
      for (const [name] of tasks) out[phase][name] = [];
      for (let round = 0; round < rounds; round++) {
        const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs), iterations: 10 });
        for (const [name, fn] of rotated(tasks, round)) bench.add(name, fn);
        await bench.run();
        for (const task of bench.tasks) {
          const result = task.result;
          if (result.state !== 'completed') throw new Error(`${phase} ${task.name}: ${result.state}`);
          out[phase][task.name].push((BATCH * 1000) / result.period);
        }
      }
    }
    return out;
  } finally {
    await close();
  }
}

function table(
  title: string,
  runs: Runs,
  peers: string[],
  extra: string,
): { title: string; columns: string[]; rows: string[][] } {
  return {
    title,
    columns: ['system', 'ops/s', 'ns/op', ...peers.map((p) => `vs ${p}`)],
    rows: Object.keys(runs).map((name) => [
      name,
      num(median(runs[name])),
      num(1e9 / median(runs[name])),
      ...peers.map((p) => ratio(pairedRatio(runs[name], runs[p]))),
    ]),
    ...(extra ? { notes: [extra] } : {}),
  };
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const params: Params = { rounds: options.quick ? 1 : 7, timeMs: options.quick ? 100 : 300 };
  const child = await startChild(__filename, []);
  let runs: Record<Phase, Runs>;
  try {
    runs = await child.call('measure', params);
  } finally {
    await child.stop();
  }
  const targets: Target[] = [
    ...STAMPEDE.flatMap((name) => [
      ...PEERS.map((peer) =>
        atLeast(`fn-hot: ${name} hit vs ${peer} hit`, pairedRatio(runs.hit[name], runs.hit[peer]), 1),
      ),
      atLeast(`fn-hot: ${name} hit ops/s`, median(runs.hit[name]), 1_000_000, ' ops/s'),
    ]),
    // The same for the run() hit once the store is full, as in a long-running app.
    ...PEERS.map((peer) =>
      atLeast(
        `fn-hot: ${STAMPEDE[0]} hit vs ${peer} hit, 10k keys stored`,
        pairedRatio(runs.full[STAMPEDE[0]], runs.full[peer]),
        1,
      ),
    ),
    atLeast(`fn-hot: ${STAMPEDE[0]} hit ops/s, 10k keys stored`, median(runs.full[STAMPEDE[0]]), 1_000_000, ' ops/s'),
    // Issue #10: a join costs no more than async-cache-dedupe's.
    ...STAMPEDE.map((name) =>
      atLeast(`fn-hot: ${name} join vs ${PEERS[1]} join`, pairedRatio(runs.join[name], runs.join[PEERS[1]]), 1),
    ),
    // Issue #14: what tracing costs a hit (within 5 %) and a flight (within 10 %).
    atLeast(`fn-hot: ${TRACED} hit vs off`, pairedRatio(runs.hit[TRACED], runs.hit[STAMPEDE[0]]), 0.95),
    atLeast(`fn-hot: ${TRACED} join vs off`, pairedRatio(runs.join[TRACED], runs.join[STAMPEDE[0]]), 0.9),
  ];
  const rounds = `${params.rounds} round${params.rounds > 1 ? 's' : ''} of ${params.timeMs} ms per system, medians`;
  return {
    tables: [
      table(
        `fn-hot: cached hit, awaited one after another (${rounds})`,
        runs.hit,
        [...PEERS, FLOOR_HIT],
        'plain and promise-coalesce keep nothing, so they have no hit.',
      ),
      table(
        `fn-hot: cached hit of one hot key, each cache holding ${num(FULL)} other keys (${rounds})`,
        runs.full,
        [...PEERS, FLOOR_HIT],
        'as in a long-running app, the store is full (nestjs-stampede: maxEntries 10,000, the default).',
      ),
      table(
        `fn-hot: coalesced join, ${BATCH} callers of one in-flight key, per caller (${rounds})`,
        runs.join,
        [PEERS[0], FLOOR_JOIN],
        'each iteration: a fresh key, 1 leader + 99 joiners, then the work resolves and all settle.',
      ),
    ],
    targets,
    checks: [],
    raw: { ...params, batch: BATCH, runs },
  };
}

if (require.main === module) serveParent({ measure });
