import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FleetConfig, KeyCalls } from '../servers/fleet-app';
import { COLD_MS } from '../servers/http-systems';
import { Child, startChild } from '../shared/child';
import { RedisCluster, startRedisCluster } from '../../test/helpers/redis-cluster';
import { RedisServer } from '../../test/helpers/redis-server';
import { Check, Target, atMost } from '../shared/report';
import { Table, median, num, percentile } from '../shared/stats';
import { portOf, settle } from '../shared/systems';
import { Reply, burstAcross, keepAliveAgent } from '../shared/timed-http';

/**
 * The many-instances rows of redis-cold (GitHub issue #12): a cold burst over
 * 3 instances on a Redis Cluster, origin calls during a Redis outage under
 * load (with the in-process caching of an outage, and without it), and the
 * delay until every instance answers fresh after an invalidation on one.
 */

const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'fleet-app.js');
const INSTANCES = 3;
const PER_INSTANCE = 100;
const TTL_MS = 10 * 60_000;
/** Keys of the outage load, and the clients that loop over them. */
const OUTAGE_KEYS = 20;
/** Milliseconds the outage load's handler takes. */
const OUTAGE_ORIGIN_MS = 5;
/** Milliseconds an instance may take to answer fresh after an invalidation before the trial counts as failed. */
const FRESH_WITHIN_MS = 2_000;

/** How much to measure. */
export interface FleetPlan {
  clusterRounds: number;
  outageMs: number;
  invalidationTrials: number;
}

interface Burst {
  executions: number;
  followerP50: number;
  followerP99: number;
  failed: number;
}

interface Outage {
  calls: number;
  requests: number;
  failed: number;
}

export interface FleetMeasured {
  cluster: Burst[];
  outage: { with: Outage; without: Outage };
  /** Milliseconds until all 3 instances answered fresh, per trial (Infinity: one did not within the bound). */
  invalidation: number[];
}

function startFleet(config: FleetConfig): Promise<Child[]> {
  return Promise.all(Array.from({ length: INSTANCES }, () => startChild(SERVER_SCRIPT, [JSON.stringify(config)])));
}

async function stopAll(children: Child[]): Promise<void> {
  await Promise.all(children.map((child) => child.stop()));
}

async function calls(fleet: Child[], keys: string[]): Promise<number> {
  const counts = await Promise.all(fleet.flatMap((child) => keys.map((key) => child.call<KeyCalls>('keyCalls', key))));
  return counts.reduce((total, c) => total + c.calls, 0);
}

async function coldBurst(fleet: Child[], agent: Agent, key: string): Promise<Burst> {
  const replies: Reply[] = await burstAcross(agent, fleet.map(portOf), `/item?k=${key}`, PER_INSTANCE);
  const followers = replies.filter((r) => r.ok && !r.origin).map((r) => r.ms);
  return {
    executions: await calls(fleet, [key]),
    followerP50: percentile(followers, 50),
    followerP99: percentile(followers, 99),
    failed: replies.filter((r) => !r.ok).length,
  };
}

async function clusterBursts(cluster: RedisCluster, rounds: number): Promise<Burst[]> {
  const fleet = await startFleet({
    stampede: { ttl: TTL_MS, redis: { cluster: { rootNodes: cluster.rootNodes } } },
    originMs: COLD_MS,
  });
  const agent = keepAliveAgent();
  try {
    // Untimed: opens the sockets, warms the code paths and loads the scripts on every primary.
    await coldBurst(fleet, agent, 'cluster-warm');
    const bursts: Burst[] = [];
    for (let round = 0; round < rounds; round++) {
      await settle(100);
      bursts.push(await coldBurst(fleet, agent, `cluster-r${round}`));
    }
    return bursts;
  } finally {
    agent.destroy();
    await stopAll(fleet);
  }
}

/** GET `/item?k=<key>` on `port`: the `by` of the body ('' when it failed). */
function by(agent: Agent, port: number, key: string, caller: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path: `/item?k=${key}`, headers: { 'x-req': caller } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          try {
            resolve(res.statusCode === 200 ? String((JSON.parse(body) as { by: unknown }).by) : '');
          } catch {
            resolve('');
          }
        });
        res.on('error', () => resolve(''));
      },
    );
    req.on('error', () => resolve(''));
    req.end();
  });
}

/** `clients` closed loops over `keys` and the instances until `stop()`; counts requests and failures. */
function load(fleet: Child[], agent: Agent, keys: string[]): { stop(): Promise<{ requests: number; failed: number }> } {
  let running = true;
  let requests = 0;
  let failed = 0;
  const loops = keys.map(async (key, client) => {
    for (let round = 0; running; round++) {
      const port = portOf(fleet[(client + round) % fleet.length]);
      if ((await by(agent, port, key, `l${client}-${round}`)) === '') failed++;
      requests++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { requests, failed };
    },
  };
}

/**
 * Two fleets on one Redis, loaded at once (20 keys each), then Redis stopped
 * for `outageMs`: origin calls during the outage with this round's in-process
 * caching (`ttl` 10 min) and without it (`ttl` 0: coalesced, never cached,
 * which is what every instance did during an outage before).
 */
function startOutageFleets(redis: RedisServer): Promise<Child[][]> {
  return Promise.all(
    [TTL_MS, 0].map((ttl) => startFleet({ stampede: { ttl, redis: { url: redis.url } }, originMs: OUTAGE_ORIGIN_MS })),
  );
}

async function outage(redis: RedisServer, fleets: Child[][], outageMs: number): Promise<FleetMeasured['outage']> {
  const agent = keepAliveAgent();
  const keys = ['with', 'without'].map((name) => Array.from({ length: OUTAGE_KEYS }, (_, i) => `outage-${name}-${i}`));
  try {
    const loads = fleets.map((fleet, f) => load(fleet, agent, keys[f]));
    // Warm: every key stored in Redis (with ttl) before it goes away.
    await settle(500);
    const before = await Promise.all(fleets.map((fleet, f) => calls(fleet, keys[f])));
    await redis.stop();
    await settle(outageMs);
    const during = await Promise.all(fleets.map((fleet, f) => calls(fleet, keys[f])));
    await redis.restart();
    const done = await Promise.all(loads.map((running) => running.stop()));
    const result = (f: number): Outage => ({ calls: during[f] - before[f], ...done[f] });
    return { with: result(0), without: result(1) };
  } finally {
    agent.destroy();
  }
}

/** Invalidates a key read (into L1) by all 3 instances on one of them; milliseconds until all answer fresh. */
function startInvalidationFleet(redis: RedisServer): Promise<Child[]> {
  return startFleet({ stampede: { ttl: TTL_MS, redis: { url: redis.url, l1Ttl: TTL_MS } }, originMs: 1 });
}

async function invalidationDelays(fleet: Child[], trials: number): Promise<number[]> {
  const agent = keepAliveAgent();
  try {
    const delays: number[] = [];
    for (let trial = -3; trial < trials; trial++) {
      const key = `inv-${trial}`;
      const old = await by(agent, portOf(fleet[0]), key, `first-${trial}`);
      for (const child of fleet) await by(agent, portOf(child), key, `warm-${trial}`);
      const start = performance.now();
      await fleet[0].call('invalidate', `GET http://api.example/item?k=${key}`);
      const seen = await Promise.all(
        fleet.map(async (child, i) => {
          for (let poll = 0; performance.now() - start < FRESH_WITHIN_MS; poll++) {
            const now = await by(agent, portOf(child), key, `poll-${trial}-${i}-${poll}`);
            if (now !== '' && now !== old) return performance.now() - start;
          }
          return Infinity;
        }),
      );
      // The first trials warm the code paths: not counted.
      if (trial >= 0) delays.push(Math.max(...seen));
    }
    return delays;
  } finally {
    agent.destroy();
  }
}

/** Runs the three measurements; `redis` is stopped and restarted by the outage one. */
export async function measureFleet(redis: RedisServer, plan: FleetPlan): Promise<FleetMeasured> {
  // Everything starts at once: the instances load while the cluster's nodes sync.
  const starting = Promise.allSettled([startRedisCluster(), startInvalidationFleet(redis), startOutageFleets(redis)]);
  const [cluster, invalidationFleet, outageFleets] = await starting;
  try {
    for (const started of [cluster, invalidationFleet, outageFleets]) {
      if (started.status === 'rejected') throw started.reason;
    }
    const ok = <T>(started: PromiseSettledResult<T>) => (started as PromiseFulfilledResult<T>).value;
    const bursts = await clusterBursts(ok(cluster), plan.clusterRounds);
    await ok(cluster).stop();
    const invalidation = await invalidationDelays(ok(invalidationFleet), plan.invalidationTrials);
    return { cluster: bursts, outage: await outage(redis, ok(outageFleets), plan.outageMs), invalidation };
  } finally {
    if (cluster.status === 'fulfilled') await cluster.value.stop();
    if (invalidationFleet.status === 'fulfilled') await stopAll(invalidationFleet.value);
    if (outageFleets.status === 'fulfilled') await Promise.all(outageFleets.value.map(stopAll));
  }
}

/** The tables, targets and checks of what `measureFleet` measured. */
export function reportFleet(
  measured: FleetMeasured,
  plan: FleetPlan,
): { tables: Table[]; targets: Target[]; checks: Check[] } {
  const { cluster, outage: out, invalidation } = measured;
  const executions = cluster.map((b) => b.executions);
  const clusterTable: Table = {
    title: `redis-cold on a Redis Cluster (3 primaries + 3 replicas): ${INSTANCES * PER_INSTANCE} concurrent GETs of one cold key over ${INSTANCES} instances, ${COLD_MS} ms handler (median of ${plan.clusterRounds} rounds)`,
    columns: ['coalescing', 'origin calls', 'per round', 'follower p50 ms', 'follower p99 ms', 'failed'],
    rows: [
      [
        'redis cluster (3 instances)',
        num(median(executions)),
        executions.join(' '),
        num(median(cluster.map((b) => b.followerP50)), 1),
        num(median(cluster.map((b) => b.followerP99)), 1),
        num(cluster.reduce((total, b) => total + b.failed, 0)),
      ],
    ],
    notes: ['the value, lease and wake-up channel of a key share one hash slot; the cluster is started by the bench.'],
  };
  const seconds = (plan.outageMs / 1000).toFixed(1);
  const outageTable: Table = {
    title: `redis-cold, outage: Redis stopped for ${seconds} s under a closed-loop load of ${OUTAGE_KEYS} keys over ${INSTANCES} instances (${OUTAGE_ORIGIN_MS} ms handler)`,
    columns: ['during the outage', 'origin calls', 'bound (instances × keys)', 'requests (whole run)', 'failed'],
    rows: [
      [
        'cached in process (this round)',
        num(out.with.calls),
        num(INSTANCES * OUTAGE_KEYS),
        num(out.with.requests),
        num(out.with.failed),
      ],
      [
        'without (coalesced, not cached)',
        num(out.without.calls),
        '—',
        num(out.without.requests),
        num(out.without.failed),
      ],
    ],
    notes: [
      '"without": the same fleet with ttl 0 (coalesced, never cached), which is what each instance did during an outage before the in-process caching of an outage; both fleets run at once, during the same outage.',
      'bound: one origin call per key per instance per TTL window (the TTL is 10 minutes: one window).',
    ],
  };
  const finite = invalidation.filter(Number.isFinite).sort((a, b) => a - b);
  const invalidationTable: Table = {
    title: `redis-cold, invalidation: invalidate(key) on one of ${INSTANCES} instances (all holding it in L1) until all answer fresh (${plan.invalidationTrials} trials)`,
    columns: ['p50 ms', 'p99 ms', 'max ms', `not fresh within ${FRESH_WITHIN_MS} ms`],
    rows: [
      [
        num(percentile(finite, 50), 1),
        num(percentile(finite, 99), 1),
        num(finite[finite.length - 1] ?? NaN, 1),
        num(invalidation.length - finite.length),
      ],
    ],
    notes: ['from just before the invalidate call until the last instance answered a new value (loopback, one Redis).'],
  };
  const targets: Target[] = [
    atMost(
      'redis-cold (#12): origin calls during the outage, cached in process',
      out.with.calls,
      INSTANCES * OUTAGE_KEYS,
      '',
      0,
    ),
    atMost('redis-cold (#12): invalidation visible on all 3 instances, p99', percentile(finite, 99), 50, ' ms'),
  ];
  const checks: Check[] = [
    {
      name: 'redis-cold: on a Redis Cluster, one origin call per cold burst across the 3 instances',
      pass: executions.every((e) => e === 1) && cluster.every((b) => b.failed === 0),
      detail: `origin calls per burst: ${executions.join(', ')}; failed: ${cluster.reduce((t, b) => t + b.failed, 0)}`,
    },
    {
      name: 'redis-cold: no request failed during the Redis outage',
      pass: out.with.failed === 0 && out.without.failed === 0,
      detail: `failed: ${out.with.failed} cached, ${out.without.failed} without`,
    },
    {
      name: 'redis-cold: after an invalidation every instance answered fresh',
      pass: finite.length === invalidation.length,
      detail: `${invalidation.length - finite.length} of ${invalidation.length} trials not fresh within ${FRESH_WITHIN_MS} ms`,
    },
  ];
  return { tables: [clusterTable, outageTable, invalidationTable], targets, checks };
}
