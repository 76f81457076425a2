import { createCluster } from 'redis';
import { StoredEntry } from '../../lib/core/store';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { validateRedisOptions } from '../../lib/redis/redis.options';
import { keySlot } from '../../lib/redis/redis.slot';
import { RedisTier } from '../../lib/redis/redis.tier';
import { until } from '../helpers/deferred';
import { RecordingLogger } from '../helpers/logger';
import { RedisCluster } from '../helpers/redis-cluster';
import { redisPipe } from '../helpers/redis-server';
import { RawCluster, clusterTiers } from './support/cluster';

jest.setTimeout(60_000);

const entry = (v: unknown, tags?: string[]): StoredEntry => ({ v, e: Date.now() + 60_000, t: Date.now(), g: tags });

describe('the Redis tier on a Redis Cluster', () => {
  const suite = clusterTiers('pattern');
  let cluster: RedisCluster;
  let raw: RawCluster;
  const tier = suite.tier;
  const keys = new RedisKeys('stampede:');

  /** Ports of the nodes with a subscriber of `channel` (`PUBSUB NUMSUB`). */
  async function nodesSubscribedTo(channel: string): Promise<number[]> {
    const counts = await Promise.all(
      cluster.nodes.map(async (node) => {
        const reply = await cluster.cli('-p', String(node.port), 'PUBSUB', 'NUMSUB', channel);
        return { port: node.port, subscribers: Number(reply.split('\n')[1]) };
      }),
    );
    return counts.filter((c) => c.subscribers > 0).map((c) => c.port);
  }

  beforeAll(() => {
    ({ cluster, raw } = suite);
  });

  it.each(['GET /prices', 'GET /a{b}c', 'GET /{}', 'GET /}{x}', 'ключ {0}'])(
    'keeps the value, lease and wake-up channel of %j in one slot, as the server computes it',
    async (key) => {
      const names = [keys.value(key), keys.lock(key), keys.wake(key)];
      const slots = await Promise.all(names.map((name) => cluster.cli('CLUSTER', 'KEYSLOT', name)));
      expect(new Set(slots).size).toBe(1);
      expect(slots.map(Number)).toEqual(names.map(keySlot));
      expect(keys.wakeKey(keys.wake(key))).toBe(key);
    },
  );

  it('spreads cache keys over every primary', () => {
    const slots = Array.from({ length: 300 }, (_, i) => keySlot(keys.value(`GET /item/${i}`)));
    // 3 primaries of about 5461 slots each: 300 keys reach all three.
    const thirds = new Set(slots.map((slot) => Math.floor(slot / 5462)));
    expect(thirds.size).toBe(3);
  });

  it('shares values between instances, and reads many keys of many slots at once', async () => {
    const [a, b] = await Promise.all([tier(), tier()]);
    const names = Array.from({ length: 40 }, (_, i) => `GET /many/${i}`);
    await Promise.all(names.map((name, i) => a.store.set(name, entry(i), 60_000)));
    expect(Number(await raw.exists(keys.value(names[0])))).toBe(1);
    const read = await b.store.getMany([...names, 'GET /many/missing']);
    expect(read.map((found) => found?.v)).toEqual([...names.map((_, i) => i), undefined]);
  });

  it('invalidates a prefix on every primary, and tells the other instances', async () => {
    const [a, b] = await Promise.all([tier(60_000), tier(60_000)]);
    const names = Array.from({ length: 60 }, (_, i) => `GET /prefixed/${i}`);
    await Promise.all(names.map((name) => a.store.set(name, entry(name), 60_000)));
    await a.store.set('GET /kept', entry('kept'), 60_000);
    const owners = await Promise.all(names.map((name) => cluster.primaryOf(keySlot(keys.value(name)))));
    expect(new Set(owners).size).toBe(3);
    expect(a.store.local.get(names[0])).toBeDefined();
    expect(await b.store.deletePrefix('GET /prefixed/')).toBe(60);
    const left = await Promise.all(names.map((name) => raw.exists(keys.value(name))));
    expect(left.map(Number)).toEqual(names.map(() => 0));
    expect((await a.store.get('GET /kept'))?.v).toBe('kept');
    // The writer's in-process copies go too (pub/sub from the other instance).
    await until(() => names.every((name) => a.store.local.get(name) === undefined), 'the L1 copies to be dropped');
  });

  it('works on a cluster client the app made, and leaves it open', async () => {
    const client = createCluster({ rootNodes: cluster.rootNodes });
    client.on('error', () => undefined);
    await client.connect();
    const made = new RedisTier(validateRedisOptions({ client }), { logger: new RecordingLogger(), maxEntries: 100 });
    expect(await made.ready(10_000)).toBe(true);
    expect(made.connection.isCluster).toBe(true);
    await made.store.set('GET /theirs', entry('theirs'), 60_000);
    expect(await raw.get(keys.value('GET /theirs'))).toContain('theirs');
    await made.close();
    expect(client.isOpen).toBe(true);
    expect(await client.get(keys.value('GET /theirs'))).toContain('theirs');
    client.destroy();
  });

  it('shares tag invalidations between instances', async () => {
    const [a, b] = await Promise.all([tier(), tier()]);
    const tagged = entry('tagged', ['products']);
    expect(a.tags.isValid(tagged)).toBe(true);
    b.tags.invalidate(['products']);
    await until(() => !a.tags.isValid(tagged), 'the invalidation to reach the other instance');
    // A third instance started afterwards reads it from the cluster.
    const c = await tier();
    expect(c.tags.isValid(tagged)).toBe(false);
  });

  it.each(['pattern', 'sharded'] as const)(
    '%s wake-ups: drops L1 when the invalidation connection dropped, and again once its probe is heard',
    async (wake) => {
      const made = await tier(60_000, wake);
      let resubscribed = 0;
      made.subscriber.onResubscribed(() => resubscribed++);
      const key = `GET /l1-after-reconnect/${wake}`;
      // Other connections of the cluster drop (node-redis reports each): not the invalidation one, no probe.
      for (const node of cluster.nodes) await redisPipe(node.port, 'CLIENT KILL TYPE normal\n');
      await until(
        () => made.store.set(`${key}/after`, entry('x'), 60_000).then((ok) => ok === true),
        'the tier writing again',
      );
      expect(resubscribed).toBe(0);
      await made.store.set(key, entry('old'), 60_000);
      expect(made.store.local.get(key)?.v).toBe('old');
      // The node carrying the invalidation subscription drops it, and an invalidation goes out meanwhile.
      const carrying = await nodesSubscribedTo(keys.invalidation);
      const missed = JSON.stringify({ k: key, o: 'another-instance' });
      for (const port of carrying) {
        await redisPipe(port, `CLIENT KILL TYPE pubsub\nPUBLISH ${keys.invalidation} '${missed}'\n`);
      }
      // At the drop (Redis answers meanwhile: a missed invalidation must not be served), and once its probe is heard.
      await until(() => resubscribed >= 2, 'the subscription back and its probe heard');
      expect(made.store.local.get(key)).toBeUndefined();
      expect(resubscribed).toBe(2);
      expect(made.subscriber.isSubscribed).toBe(true);
    },
  );

  // Last: it leaves the cluster with a replica promoted.
  it('answers a PING only when every primary does, and writes again once a replica took over a killed one', async () => {
    const made = await tier();
    await expect(made.connection.command(['PING'])).resolves.toBe('PONG');
    const victim = await cluster.primaryOf(keySlot(keys.value('GET /victim')));
    await victim.kill();
    await expect(made.connection.command(['PING'])).rejects.toThrow();
    expect(await made.store.set('GET /victim', entry('lost'), 60_000)).toBe(false);
    await cluster.healthy();
    const answers = (call: () => Promise<unknown>) =>
      call().then(
        (ok) => ok !== false,
        () => false,
      );
    await until(() => answers(() => made.connection.command(['PING'])), 'a PONG from every primary');
    await until(
      () => answers(() => made.store.set('GET /victim', entry('back'), 60_000)),
      'a write on the promoted replica',
    );
    // Read with redis-cli -c: a node-redis cluster client of the test's own would wait for the dead node for good.
    expect(await cluster.cli('-c', 'GET', keys.value('GET /victim'))).toContain('back');
  });
});
