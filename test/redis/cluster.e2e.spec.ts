import { randomUUID } from 'node:crypto';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { keySlot } from '../../lib/redis/redis.slot';
import { until } from '../helpers/deferred';
import { RedisCluster } from '../helpers/redis-cluster';
import { Fleet } from './support/fleet';
import { send } from './support/http';
import { Instance, itemKey } from './support/instances';
import { idServedBy, killPrimaryUnderLoad, startClusterFleet } from './support/cluster';

const PER_INSTANCE = 100;
const TRIALS = 100;

// The trials take ~40 s on an idle 2-core machine; more when it is shared.
jest.setTimeout(120_000);

describe('3 instances on a Redis Cluster (3 primaries, 3 replicas)', () => {
  let cluster: RedisCluster;
  let instances: Instance[] = [];
  let fleet: Fleet;
  let stop: (() => Promise<void>) | undefined;
  const figures: string[] = [];
  const keys = new RedisKeys('stampede:');

  beforeAll(async () => {
    ({ cluster, instances, fleet, stop } = await startClusterFleet({
      l1Ttl: 60_000,
      invalidateOnWrite: true,
      // A loaded machine may take seconds to get 300 requests waiting: none of them gives up meanwhile.
      lockTimeout: 30_000,
    }));
  });

  afterAll(async () => {
    await stop?.();
    if (figures.length > 0) console.log(`cluster figures:\n${figures.join('\n')}`);
  });

  it(`runs the handler once for ${3 * PER_INSTANCE} cold requests over 3 instances in >= 99 of ${TRIALS} trials`, async () => {
    const perTrial: number[] = [];
    const failed: string[] = [];
    const trial = async (n: number) => {
      const id = `burst-${n}-${randomUUID()}`;
      const replies = await fleet.coldBurst(id, PER_INSTANCE);
      failed.push(...replies.filter((reply) => reply.status !== 200).map((reply) => `${reply.status} ${reply.text}`));
      perTrial.push(await fleet.executions(id));
      // Whatever ran, everyone got an answer of this id.
      expect(JSON.parse(replies[0].text)).toEqual({ id, execution: expect.any(String) });
    };
    for (let n = 1; n <= TRIALS; n++) await trial(n);
    const once = perTrial.filter((calls) => calls === 1).length;
    figures.push(`cold bursts: ${once} of ${TRIALS} trials with 1 origin call (max ${Math.max(...perTrial)})`);
    expect(failed).toEqual([]);
    expect(once).toBeGreaterThanOrEqual(99);
    // The keys were spread over every primary.
    const owners = new Set(
      await Promise.all(
        Array.from(
          { length: 12 },
          async (_, i) => (await cluster.primaryOf(keySlot(keys.value(itemKey(`x${i}`))))).port,
        ),
      ),
    );
    expect(owners.size).toBe(3);
  });

  it('keeps the value and lease of a cache key in one slot, as CLUSTER KEYSLOT says', async () => {
    const key = itemKey('slot-{a}-}{b');
    const slots = await Promise.all(
      [keys.value(key), keys.lock(key), keys.wake(key)].map((name) => cluster.cli('CLUSTER', 'KEYSLOT', name)),
    );
    expect(new Set(slots).size).toBe(1);
  });

  /** Warms `path` on every instance (in L1 too), invalidates on instance 0, waits until all answer fresh. */
  async function freshEverywhere(path: string, invalidate: () => Promise<unknown>): Promise<void> {
    const old = (await send(`${instances[0].url}${path}`)).text;
    for (const instance of instances) expect((await send(`${instance.url}${path}`)).text).toBe(old);
    await invalidate();
    await Promise.all(
      instances.map((instance) =>
        until(async () => (await send(`${instance.url}${path}`)).text !== old, `${path} fresh on ${instance.url}`),
      ),
    );
  }

  it('invalidates a prefix, a key, a tag and on write from one instance: every instance answers fresh', async () => {
    const id = randomUUID();
    // Keys under one prefix on every primary: 12 at least, more until each primary owns one
    // (12 random keys all miss one of 3 primaries about once in 40 runs).
    const ids: string[] = [];
    const owners = new Set<unknown>();
    for (let i = 0; ids.length < 12 || owners.size < 3; i++) {
      ids.push(`${id}-p-${i}`);
      owners.add(await cluster.primaryOf(keySlot(keys.value(itemKey(ids[i])))));
    }
    for (const each of ids) await send(`${instances[1].url}/item/${each}`);
    await fleet.post(instances[0], `/admin/invalidate-prefix/${id}-p-`);
    const after = await Promise.all(ids.map((each) => send(`${instances[2].url}/item/${each}`)));
    expect(after.map((reply) => reply.cacheStatus)).toEqual(ids.map(() => expect.stringMatching(/fwd=miss/)));

    await freshEverywhere(`/item/${id}-prefix-x`, () =>
      fleet.post(instances[0], `/admin/invalidate-prefix/${id}-prefix`),
    );
    await freshEverywhere(`/item/${id}-key`, () => fleet.post(instances[0], `/admin/invalidate/${id}-key`));
    await freshEverywhere(`/tagged/${id}-tag`, () => fleet.post(instances[0], `/admin/invalidate-tag/${id}-tag`));
    await freshEverywhere(`/item/${id}-write`, () => fleet.post(instances[0], `/item/${id}-write`));
  });

  it('loses no request when a primary is killed mid-load, and shares again on the promoted replica', async () => {
    const { completed, failures, victim, promoted } = await killPrimaryUnderLoad(cluster, fleet);
    figures.push(`primary killed mid-load: ${completed} requests, ${failures.length} failed`);
    expect(failures).toEqual([]);

    // A key of the slots the killed primary served: its replica serves them now, shared again.
    expect(promoted.port).not.toBe(victim.port);
    const id = await idServedBy(cluster, promoted, 'after-failover');
    const replies = await fleet.coldBurst(id, 30);
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    expect(new Set(replies.map((reply) => reply.text)).size).toBe(1);
    expect(await fleet.executions(id)).toBe(1);
    expect((await send(`${instances[2].url}/item/${id}`)).cacheStatus).toMatch(/; hit; ttl=/);
  });
});
