import autocannon from 'autocannon';
import { PLATFORMS, Platform } from '../servers/http-systems';
import { BenchOptions, Check, ScenarioReport, Target, atLeast, atMost } from '../shared/report';
import { median, num, pairedRatio, ratio } from '../shared/stats';
import { ServerSetup, portOf, rotated, serverOf, settle, startServers, stopServers } from '../shared/systems';

/**
 * http-hot: the cost of a cached hit. autocannon hammers one URL whose answer
 * is cached (for the bare route: a constant handler, the floor any cache
 * layer is compared with) and reports requests per second and p99 latency.
 */

const CONNECTIONS = 50;
/** Other keys in the "full" caches: the default maxEntries, as a long-running app's store would hold. */
const FULL = 9_999;
/** The edge hit's goal against the bare route, per platform (issue 15). */
const EDGE_GOAL: Record<Platform, number> = { fastify: 0.9, express: 0.95 };

interface HotSetup extends ServerSetup {
  label: string;
}

const SETUPS: HotSetup[] = [
  { id: 'bare', system: 'bare', label: 'bare route (constant, no interceptor)' },
  { id: 'noop', system: 'noop', label: 'no-op interceptor (pipeline floor)' },
  { id: 'cache-manager', system: 'cache-manager', label: 'CacheInterceptor hit' },
  { id: 'stampede', system: 'stampede', label: 'nestjs-stampede hit' },
  { id: 'edge', system: 'edge', label: 'nestjs-stampede edge hit (before the pipeline)' },
  { id: 'cache-manager-full', system: 'cache-manager', fill: FULL, label: 'CacheInterceptor hit, 10k keys stored' },
  { id: 'stampede-full', system: 'stampede', fill: FULL, label: 'nestjs-stampede hit, 10k keys stored' },
];

interface HotRun {
  rps: number;
  p99Ms: number;
  bad: number;
}

async function load(port: number, seconds: number): Promise<HotRun> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/hot`,
    connections: CONNECTIONS,
    duration: seconds,
  });
  return { rps: result.requests.average, p99Ms: result.latency.p99, bad: result.errors + result.non2xx };
}

type Rounds = Record<string, HotRun[]>;

async function runPlatform(platform: Platform, rounds: number, seconds: number, warmup: number) {
  const servers = await startServers(platform, SETUPS);
  try {
    // Untimed: fills the caches and lets the JIT settle (Express needs about a second to reach its pace).
    for (const { id } of SETUPS) await load(portOf(serverOf(servers, id)), warmup);
    const runs: Rounds = Object.fromEntries(SETUPS.map(({ id }) => [id, []]));
    for (let round = 0; round < rounds; round++) {
      for (const { id } of rotated(SETUPS, round)) {
        await settle(200);
        runs[id].push(await load(portOf(serverOf(servers, id)), seconds));
      }
    }
    const counts = await Promise.all(SETUPS.map(({ id }) => serverOf(servers, id).call<{ hot: number }>('counts')));
    const handlerCalls = Object.fromEntries(SETUPS.map(({ id }, i) => [id, counts[i].hot]));
    return { runs, handlerCalls };
  } finally {
    await stopServers(servers);
  }
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  // Many short interleaved rounds rather than a few long ones: the paired ratios then shrug off bursts of load.
  const rounds = options.quick ? 2 : 8;
  const seconds = options.quick ? 1 : 2;
  const warmup = options.quick ? 1 : 2;
  const targets: Target[] = [];
  const checks: Check[] = [];
  const raw: Record<string, unknown> = { rounds, seconds, connections: CONNECTIONS, setups: SETUPS };

  const tables = [];
  for (const platform of PLATFORMS) {
    const { runs, handlerCalls } = await runPlatform(platform, rounds, seconds, warmup);
    raw[platform] = { runs, handlerCalls };
    const rps = (id: string) => runs[id].map((r) => r.rps);
    tables.push({
      title: `http-hot, ${platform}: cached hit, ${CONNECTIONS} connections, ${seconds} s × ${rounds} rounds (medians)`,
      columns: ['system', 'req/s', 'vs CacheInterceptor', 'vs bare route', 'p99 ms'],
      rows: SETUPS.map(({ id, label }) => [
        label,
        num(median(rps(id))),
        ratio(pairedRatio(rps(id), rps(id.endsWith('-full') ? 'cache-manager-full' : 'cache-manager'))),
        ratio(pairedRatio(rps(id), rps('bare'))),
        num(median(runs[id].map((r) => r.p99Ms)), 1),
      ]),
      notes: [
        'no-op interceptor: `intercept(ctx, next) { return next.handle(); }`, what any interceptor costs in Nest.',
        `10k keys stored: ${num(FULL)} other keys put in the cache first; compared with the CacheInterceptor holding as many.`,
      ],
    });
    const vsCache = pairedRatio(rps('stampede'), rps('cache-manager'));
    const vsCacheFull = pairedRatio(rps('stampede-full'), rps('cache-manager-full'));
    targets.push(
      atLeast(`http-hot ${platform}: hit vs CacheInterceptor hit`, vsCache, 1),
      atLeast(`http-hot ${platform}: hit vs bare route`, pairedRatio(rps('stampede'), rps('bare')), 0.85),
      atLeast(`http-hot ${platform}: hit vs CacheInterceptor hit, 10k keys stored`, vsCacheFull, 1),
      // Issue #10: a hit costs no more than an interceptor that does nothing (and runs the constant handler).
      atLeast(`http-hot ${platform}: hit vs no-op interceptor`, pairedRatio(rps('stampede'), rps('noop')), 1),
    );
    // The edge tier's goals (issue 15): a hit at the price of the bare route, its tail within a millisecond of it.
    const p99 = (id: string) => median(runs[id].map((r) => r.p99Ms));
    targets.push(
      atLeast(
        `http-hot ${platform}: edge hit vs bare route`,
        pairedRatio(rps('edge'), rps('bare')),
        EDGE_GOAL[platform],
      ),
      atMost(`http-hot ${platform}: edge hit p99`, p99('edge'), p99('bare') + 1, ' ms'),
    );
    const bad = SETUPS.reduce((sum, { id }) => sum + runs[id].reduce((n, r) => n + r.bad, 0), 0);
    const cachedOnce = SETUPS.filter((s) => s.system !== 'bare' && s.system !== 'noop').every(
      ({ id }) => handlerCalls[id] === 1,
    );
    checks.push({
      name: `http-hot ${platform}: all responses 2xx, and the cached systems ran the handler once`,
      pass: bad === 0 && cachedOnce,
      detail: `errors/non-2xx: ${bad}; handler calls: ${SETUPS.map(({ id }) => `${id} ${handlerCalls[id]}`).join(', ')}`,
    });
  }
  return { tables, targets, checks, raw };
}
