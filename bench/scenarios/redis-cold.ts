import autocannon from 'autocannon';
import { Agent } from 'node:http';
import { join } from 'node:path';
import type { FleetConfig, KeyCalls } from '../servers/fleet-app';
import { COLD_MS } from '../servers/http-systems';
import { Child, startChild } from '../shared/child';
import { RedisServer, startRedisServer } from '../../test/helpers/redis-server';
import { BenchOptions, Check, ScenarioReport, Target, atMost } from '../shared/report';
import { Table, median, num, pairedRatio, percentile, ratio } from '../shared/stats';
import { portOf, rotated, settle } from '../shared/systems';
import { Reply, burstAcross, keepAliveAgent, timedGet } from '../shared/timed-http';
import { FleetPlan, measureFleet, reportFleet } from './redis-fleet';

/**
 * redis-cold (GitHub issue #6): three instances of one app, a cold burst of
 * 300 GETs of one key spread over them (100 each), 100 ms handler. In process
 * each instance coalesces its own callers (3 origin calls); with the `redis`
 * option the fleet makes one. Also: what the Redis round trip costs a hit,
 * and (issue #12, `redis-fleet.ts`) the same burst on a Redis Cluster, origin
 * calls during an outage, and the delay of an invalidation across instances.
 */

const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'fleet-app.js');
const INSTANCES = 3;
const PER_INSTANCE = 100;
/** Long enough that nothing expires during a run. */
const TTL_MS = 10 * 60_000;
const HOT_CONNECTIONS = 50;
/** The L1 variant of the hit path: values read from Redis kept in process this long. */
const L1_TTL_MS = 1_000;

const FLEETS = ['redis', 'in-process'] as const;
type Fleet = (typeof FLEETS)[number];
const FLEET_LABELS: Record<Fleet, string> = {
  redis: 'redis (3 instances, one Redis)',
  'in-process': 'in-process only (3 instances)',
};

const HOT = ['in-process', 'redis', 'redis-l1'] as const;
type Hot = (typeof HOT)[number];
const HOT_LABELS: Record<Hot, string> = {
  'in-process': 'in-process store (no redis option)',
  redis: 'redis (every hit reads Redis)',
  'redis-l1': `redis, l1Ttl ${L1_TTL_MS} ms`,
};

interface BurstStats {
  executions: number;
  originMs: number;
  followerP50: number;
  followerP99: number;
  allP99: number;
  failed: number;
}

interface HotRun {
  /** Saturation: autocannon, HOT_CONNECTIONS connections. */
  rps: number;
  p99Ms: number;
  /** One request at a time over one connection: what a hit adds to one request's latency. */
  seqP50Us: number;
  seqP99Us: number;
  bad: number;
}

function config(redisUrl: string | undefined, l1Ttl = 0): FleetConfig {
  const redis = redisUrl ? { redis: { url: redisUrl, ...(l1Ttl > 0 ? { l1Ttl } : {}) } } : {};
  return { stampede: { ttl: TTL_MS, ...redis }, originMs: COLD_MS };
}

function startFleet(n: number, fleetConfig: FleetConfig): Promise<Child>[] {
  return Array.from({ length: n }, () => startChild(SERVER_SCRIPT, [JSON.stringify(fleetConfig)]));
}

function summarize(executions: number, replies: Reply[]): BurstStats {
  const origins = replies.filter((r) => r.ok && r.origin).map((r) => r.ms);
  const followers = replies.filter((r) => r.ok && !r.origin).map((r) => r.ms);
  return {
    executions,
    originMs: median(origins),
    followerP50: percentile(followers, 50),
    followerP99: percentile(followers, 99),
    allP99: percentile(
      replies.filter((r) => r.ok).map((r) => r.ms),
      99,
    ),
    failed: replies.filter((r) => !r.ok).length,
  };
}

async function coldBurst(fleet: Child[], agent: Agent, key: string): Promise<BurstStats> {
  const replies = await burstAcross(agent, fleet.map(portOf), `/item?k=${key}`, PER_INSTANCE);
  const calls = await Promise.all(fleet.map((child) => child.call<KeyCalls>('keyCalls', key)));
  return summarize(
    calls.reduce((sum, c) => sum + c.calls, 0),
    replies,
  );
}

/** `n` GETs of the hot key one after another on one keep-alive connection: latencies in µs, and failures. */
async function sequential(agent: Agent, port: number, n: number): Promise<{ us: number[]; failed: number }> {
  const us: number[] = [];
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const reply = await timedGet(agent, port, '/hot', 's');
    if (reply.status === 200) us.push(reply.ms * 1000);
    else failed++;
  }
  return { us, failed };
}

async function hotLoad(port: number, seconds: number): Promise<{ rps: number; p99Ms: number; bad: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/hot`,
    connections: HOT_CONNECTIONS,
    duration: seconds,
  });
  return { rps: result.requests.average, p99Ms: result.latency.p99, bad: result.errors + result.non2xx };
}

async function hotRun(agent: Agent, port: number, seconds: number, n: number): Promise<HotRun> {
  const { rps, p99Ms, bad } = await hotLoad(port, seconds);
  await settle(100);
  const { us, failed } = await sequential(agent, port, n);
  return { rps, p99Ms, seqP50Us: percentile(us, 50), seqP99Us: percentile(us, 99), bad: bad + failed };
}

/** How much to measure: cold rounds, hit-path rounds, autocannon seconds, sequential requests per hit-path round. */
interface Plan {
  rounds: number;
  hotRounds: number;
  seconds: number;
  sequential: number;
}

interface Measured {
  cold: Record<Fleet, BurstStats[]>;
  hot: Record<Hot, HotRun[]>;
  /** Hot-route handler calls: per fleet (the redis fleet and its L1 instance share one cache). */
  hotCalls: { 'in-process': number; redis: number };
}

async function measure(redis: RedisServer, plan: Plan): Promise<Measured> {
  const all: Promise<Child>[] = [
    ...startFleet(INSTANCES, config(redis.url)),
    ...startFleet(INSTANCES, config(undefined)),
    ...startFleet(1, config(redis.url, L1_TTL_MS)),
  ];
  const settled = await Promise.allSettled(all);
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const agent = keepAliveAgent();
  const oneSocket = keepAliveAgent(1);
  try {
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const fleets: Record<Fleet, Child[]> = {
      redis: children.slice(0, INSTANCES),
      'in-process': children.slice(INSTANCES, 2 * INSTANCES),
    };
    const hotServer: Record<Hot, Child> = {
      'in-process': fleets['in-process'][0],
      redis: fleets.redis[0],
      'redis-l1': children[2 * INSTANCES],
    };

    // Untimed: opens the bursts' sockets, warms each instance's code paths (and the Lua scripts).
    for (let i = 0; i < 2; i++) {
      for (const fleet of FLEETS) await coldBurst(fleets[fleet], agent, `warm${i}-${fleet}`);
    }
    const cold = { redis: [], 'in-process': [] } as Record<Fleet, BurstStats[]>;
    for (let round = 0; round < plan.rounds; round++) {
      for (const fleet of rotated(FLEETS, round)) {
        await settle(100);
        // A key of its own per burst: cold for every instance and in Redis.
        cold[fleet].push(await coldBurst(fleets[fleet], agent, `r${round}-${fleet}`));
      }
    }

    // Untimed: stores the hot key, opens the sequential connection and lets the JIT settle.
    for (const id of HOT) await hotRun(oneSocket, portOf(hotServer[id]), 1, plan.sequential);
    const hot = { 'in-process': [], redis: [], 'redis-l1': [] } as Record<Hot, HotRun[]>;
    for (let round = 0; round < plan.hotRounds; round++) {
      for (const id of rotated(HOT, round)) {
        await settle(200);
        hot[id].push(await hotRun(oneSocket, portOf(hotServer[id]), plan.seconds, plan.sequential));
      }
    }
    const count = (child: Child) => child.call<number>('hotCalls');
    const inProcess = await count(hotServer['in-process']);
    const redisFleet = await Promise.all([...fleets.redis, hotServer['redis-l1']].map(count));
    return { cold, hot, hotCalls: { 'in-process': inProcess, redis: redisFleet.reduce((a, b) => a + b, 0) } };
  } finally {
    agent.destroy();
    oneSocket.destroy();
    await Promise.all(children.map((child) => child.stop()));
  }
}

const pick = (stats: BurstStats[], field: keyof BurstStats) => stats.map((s) => s[field]);

function report(measured: Measured, plan: Plan): ScenarioReport {
  const { cold, hot, hotCalls } = measured;
  const { rounds, hotRounds, seconds } = plan;
  const coldTable: Table = {
    title: `redis-cold: ${INSTANCES * PER_INSTANCE} concurrent GETs of one cold key over ${INSTANCES} instances (${PER_INSTANCE} each), ${COLD_MS} ms handler (median of ${rounds} rounds)`,
    columns: [
      'coalescing',
      'origin calls',
      'per round',
      'origin ms',
      'follower p50 ms',
      'follower p99 ms',
      'p99 − origin ms',
      'p99 ms (all)',
      'failed',
    ],
    rows: FLEETS.map((fleet) => {
      const stats = cold[fleet];
      return [
        FLEET_LABELS[fleet],
        num(median(pick(stats, 'executions'))),
        pick(stats, 'executions').join(' '),
        num(median(pick(stats, 'originMs')), 1),
        num(median(pick(stats, 'followerP50')), 1),
        num(median(pick(stats, 'followerP99')), 1),
        num(median(stats.map((s) => s.followerP99 - s.originMs)), 1),
        num(median(pick(stats, 'allP99')), 1),
        num(pick(stats, 'failed').reduce((a, b) => a + b, 0)),
      ];
    }),
    notes: [
      'origin: a request that ran the handler; follower: one answered with another request’s result (any instance).',
      'latency per request, from just before it is written until its body is in (keep-alive sockets, warmed).',
    ],
  };

  const rps = (id: Hot) => hot[id].map((r) => r.rps);
  const field = (id: Hot, key: 'seqP50Us' | 'seqP99Us' | 'p99Ms') => hot[id].map((r) => r[key]);
  const usPerRequest = (id: Hot) => rps(id).map((r) => 1e6 / r);
  /** Median over rounds of (this store − in-process store), paired round by round. */
  const pairedGap = (own: number[], base: number[]) => median(own.map((v, i) => v - base[i]));
  const hotTable: Table = {
    title: `redis-cold, hit path: one instance, cached key; ${HOT_CONNECTIONS} connections for ${seconds} s, then ${num(plan.sequential)} requests one at a time (${hotRounds} rounds, medians)`,
    columns: [
      'store',
      'req/s',
      'µs per request',
      'added µs',
      'vs in-process',
      'p99 ms',
      'one at a time: p50 µs',
      'p99 µs',
      'added p50 µs',
    ],
    rows: HOT.map((id) => [
      HOT_LABELS[id],
      num(median(rps(id))),
      num(median(usPerRequest(id))),
      num(pairedGap(usPerRequest(id), usPerRequest('in-process'))),
      ratio(pairedRatio(rps(id), rps('in-process'))),
      num(median(field(id, 'p99Ms')), 1),
      num(median(field(id, 'seqP50Us'))),
      num(median(field(id, 'seqP99Us'))),
      num(pairedGap(field(id, 'seqP50Us'), field('in-process', 'seqP50Us'))),
    ]),
    notes: [
      `req/s, p99 ms: autocannon, ${HOT_CONNECTIONS} connections (saturation); µs per request = 1,000,000 / req/s, the CPU cost (load generator, app and redis-server share the 2 cores).`,
      'one at a time: latency of sequential GETs on one keep-alive connection, what a hit adds to a single request.',
      'added: paired round by round with the in-process store. Without l1Ttl every hit is one Redis round trip (a Lua GET + PTTL).',
    ],
  };

  const redisCalls = pick(cold.redis, 'executions');
  const targets: Target[] = [
    atMost(
      `redis-cold (#6): origin calls per cold burst of ${INSTANCES * PER_INSTANCE} over ${INSTANCES} instances, redis (worst round)`,
      Math.max(...redisCalls),
      1,
      '',
      0,
    ),
  ];
  const failedCold = FLEETS.flatMap((fleet) => pick(cold[fleet], 'failed')).reduce((a, b) => a + b, 0);
  const badHot = HOT.flatMap((id) => hot[id].map((r) => r.bad)).reduce((a, b) => a + b, 0);
  const checks: Check[] = [
    {
      name: 'redis-cold: with redis, one origin call per cold burst across the 3 instances',
      pass: redisCalls.every((e) => e === 1),
      detail: `origin calls per burst: ${redisCalls.join(', ')} (in-process only: ${pick(cold['in-process'], 'executions').join(', ')})`,
    },
    {
      name: 'redis-cold: every request answered 200; hot route ran once per cache',
      pass: failedCold === 0 && badHot === 0 && hotCalls['in-process'] === 1 && hotCalls.redis === 1,
      detail: `failed cold requests: ${failedCold}; hot errors/non-2xx: ${badHot}; hot handler calls: in-process ${hotCalls['in-process']}, redis fleet ${hotCalls.redis}`,
    },
  ];
  return {
    tables: [coldTable, hotTable],
    targets,
    checks,
    raw: { ...plan, instances: INSTANCES, perInstance: PER_INSTANCE, ...measured },
  };
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const plan: Plan = options.quick
    ? { rounds: 3, hotRounds: 2, seconds: 1, sequential: 300 }
    : { rounds: 7, hotRounds: 5, seconds: 2, sequential: 500 };
  let redis: RedisServer;
  try {
    redis = await startRedisServer();
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return {
      tables: [
        {
          title: 'redis-cold: not run',
          columns: ['reason'],
          rows: [[why.split('\n')[0]]],
        },
      ],
      targets: [],
      checks: [{ name: 'redis-cold: a redis-server could be started', pass: false, detail: why.split('\n')[0] }],
      raw: { error: why },
    };
  }
  const fleetPlan: FleetPlan = options.quick
    ? { clusterRounds: 2, outageMs: 1_500, invalidationTrials: 20 }
    : { clusterRounds: 7, outageMs: 5_000, invalidationTrials: 100 };
  try {
    const own = report(await measure(redis, plan), plan);
    let fleet;
    try {
      fleet = await measureFleet(redis, fleetPlan);
    } catch (error) {
      // E.g. no redis-cli to make the cluster with: the rows are missing, and the run fails saying why.
      const why = (error instanceof Error ? error.message : String(error)).split('\n')[0];
      own.checks.push({
        name: 'redis-cold: the cluster, outage and invalidation rows could run',
        pass: false,
        detail: why,
      });
      return own;
    }
    const more = reportFleet(fleet, fleetPlan);
    return {
      tables: [...own.tables, ...more.tables],
      targets: [...own.targets, ...more.targets],
      checks: [...own.checks, ...more.checks],
      raw: { ...(own.raw as object), fleetPlan, fleet },
    };
  } finally {
    await redis.stop();
  }
}
