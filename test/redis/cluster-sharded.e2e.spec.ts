import { randomUUID } from 'node:crypto';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { until } from '../helpers/deferred';
import { RedisCluster } from '../helpers/redis-cluster';
import { Fleet } from './support/fleet';
import { itemKey } from './support/instances';
import { idServedBy, killPrimaryUnderLoad, startClusterFleet } from './support/cluster';

const PER_INSTANCE = 100;
const TRIALS = 100;

// The trials take ~40 s on an idle 2-core machine; more when it is shared.
jest.setTimeout(150_000);

describe("3 instances on a Redis Cluster with redis.wake: 'sharded'", () => {
  let cluster: RedisCluster;
  let fleet: Fleet;
  let stop: (() => Promise<void>) | undefined;
  const figures: string[] = [];
  const keys = new RedisKeys('stampede:');

  beforeAll(async () => {
    ({ cluster, fleet, stop } = await startClusterFleet({
      l1Ttl: 60_000,
      lockTimeout: 30_000,
      wake: 'sharded',
    }));
  });

  afterAll(async () => {
    await stop?.();
    if (figures.length > 0) console.log(`sharded cluster figures:\n${figures.join('\n')}`);
  });

  it(`runs the handler once for ${3 * PER_INSTANCE} cold requests over 3 instances in >= 99 of ${TRIALS} trials, woken by sharded pub/sub`, async () => {
    const perTrial: number[] = [];
    const failed: string[] = [];
    const started = Date.now();
    for (let n = 1; n <= TRIALS; n++) {
      const id = `burst-${n}-${randomUUID()}`;
      const replies = await fleet.coldBurst(id, PER_INSTANCE);
      failed.push(...replies.filter((reply) => reply.status !== 200).map((reply) => `${reply.status} ${reply.text}`));
      perTrial.push(await fleet.executions(id));
      expect(JSON.parse(replies[0].text)).toEqual({ id, execution: expect.any(String) });
    }
    const once = perTrial.filter((calls) => calls === 1).length;
    const states = await fleet.states('-');
    figures.push(
      `cold bursts: ${once} of ${TRIALS} trials with 1 origin call (max ${Math.max(...perTrial)}), ` +
        `${((Date.now() - started) / TRIALS).toFixed(0)} ms a trial; SSUBSCRIBE per instance ` +
        `${states.map((s) => s.shards?.subscribes).join('/')}, SUNSUBSCRIBE ${states.map((s) => s.shards?.unsubscribes).join('/')}`,
    );
    expect(failed).toEqual([]);
    expect(once).toBeGreaterThanOrEqual(99);
    // One channel per key and instance (kept a while after), never one per request; no L1 dropped meanwhile.
    expect(states.every((s) => s.shards!.subscribes <= TRIALS + 5)).toBe(true);
    expect(states.map((s) => s.resubscribed)).toEqual([0, 0, 0]);
    // Wake-ups went by sharded pub/sub: no pattern subscription on any node.
    const numpat = await Promise.all(
      cluster.nodes.map(async (node) => Number(await cluster.cli('-p', String(node.port), 'PUBSUB', 'NUMPAT'))),
    );
    expect(numpat).toEqual(cluster.nodes.map(() => 0));
  });

  it('loses no request when a primary is killed mid-load, and wakes waiters again on the promoted replica', async () => {
    const { completed, failures, victim, promoted } = await killPrimaryUnderLoad(cluster, fleet);
    figures.push(`primary killed mid-load: ${completed} requests, ${failures.length} failed`);
    expect(failures).toEqual([]);

    // A key of the promoted replica's slots: its waiters are woken there (a cold burst waits on the wake-up).
    expect(promoted.port).not.toBe(victim.port);
    const id = await idServedBy(cluster, promoted, 'after-failover');
    const channel = keys.wake(itemKey(id));
    const replies = fleet.coldBurst(id, 30);
    // The waiting instances (all but the holder's) are subscribed to the key's channel on the promoted replica.
    await until(async () => {
      const reply = await cluster.cli('-p', String(promoted.port), 'PUBSUB', 'SHARDNUMSUB', channel);
      return Number(reply.split('\n')[1]) === 2;
    }, "the key's channel subscribed on the promoted replica by the 2 waiting instances");
    const answered = await replies;
    expect(answered.every((reply) => reply.status === 200)).toBe(true);
    expect(new Set(answered.map((reply) => reply.text)).size).toBe(1);
    expect(await fleet.executions(id)).toBe(1);
  });
});
