import { randomUUID } from 'node:crypto';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { until } from '../helpers/deferred';
import { SENTINEL_MASTER, RedisSentinelSetup, startRedisSentinel } from '../helpers/redis-sentinel';
import { freePort, redisPipe } from '../helpers/redis-server';
import { Fleet } from './support/fleet';
import { send } from './support/http';
import { Instance, itemKey, startInstance } from './support/instances';
import { Tiers } from './support/tiers';

jest.setTimeout(90_000);

describe('3 instances on a Sentinel-managed primary (1 primary, 1 replica, 1 Sentinel)', () => {
  let sentinel: RedisSentinelSetup;
  let instances: Instance[] = [];
  let fleet: Fleet;
  const figures: string[] = [];
  const keys = new RedisKeys('stampede:');

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    instances = await Promise.all(
      [1, 2, 3].map(() => startInstance({ sentinel: sentinel.options, lockTimeout: 30_000 })),
    );
    fleet = new Fleet(instances);
    await until(() => fleet.allUp(), 'every instance connected through the Sentinel');
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await sentinel?.stop();
    if (figures.length > 0) console.log(`sentinel figures:\n${figures.join('\n')}`);
  });

  it('shares values through the primary: one origin call for a cold burst, hits on the others', async () => {
    const id = `burst-${randomUUID()}`;
    const replies = await fleet.coldBurst(id, 30);
    expect(replies.map((reply) => reply.status)).toEqual(Array(90).fill(200));
    expect(new Set(replies.map((reply) => reply.text)).size).toBe(1);
    expect(await fleet.executions(id)).toBe(1);
    const primary = await sentinel.primaryPort();
    expect(await sentinel.cli(primary, 'EXISTS', keys.value(itemKey(id)))).toBe('1');
    const again = await Promise.all(instances.map((instance) => send(`${instance.url}/item/${id}`)));
    expect(again.map((reply) => reply.cacheStatus)).toEqual(instances.map(() => expect.stringMatching(/; hit; ttl=/)));
  });

  it('loses no request through a failover mid-traffic, and caches on the new primary after it', async () => {
    const load = fleet.load(30, `failover-${randomUUID()}`);
    await until(() => load.completed() >= 300, 'load under way');
    const before = await sentinel.primaryPort();
    const after = await sentinel.failover();
    expect(after).not.toBe(before);
    const atFailover = load.completed();
    await until(() => load.completed() >= atFailover + 600, '600 requests served after the failover');
    await until(() => fleet.allUp(), 'every instance on the new primary');
    await load.stop();
    figures.push(`SENTINEL FAILOVER mid-load: ${load.completed()} requests, ${load.failures.length} failed`);
    expect(load.failures).toEqual([]);

    const id = `after-failover-${randomUUID()}`;
    const replies = await fleet.coldBurst(id, 30);
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    expect(new Set(replies.map((reply) => reply.text)).size).toBe(1);
    expect(await fleet.executions(id)).toBe(1);
    expect(await sentinel.cli(after, 'EXISTS', keys.value(itemKey(id)))).toBe('1');
    expect((await send(`${instances[1].url}/item/${id}`)).cacheStatus).toMatch(/; hit; ttl=/);
  });
});

describe('an instance started before its Sentinel', () => {
  let sentinel: RedisSentinelSetup | undefined;
  let instances: Instance[] = [];
  const keys = new RedisKeys('stampede:');

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await sentinel?.stop();
  });

  it('serves alone while no Sentinel answers, then joins the fleet once one does, without a log line per attempt', async () => {
    const sentinelPort = await freePort();
    const options = { name: SENTINEL_MASTER, sentinelRootNodes: [{ host: '127.0.0.1', port: sentinelPort }] };
    instances = await Promise.all([1, 2].map(() => startInstance({ sentinel: options, lockTimeout: 30_000 })));
    const fleet = new Fleet(instances);
    const alone = await Promise.all(instances.map((instance) => send(`${instance.url}/item/alone-${randomUUID()}`)));
    expect(alone.map((reply) => reply.status)).toEqual([200, 200]);
    expect(await fleet.allUp()).toBe(false);

    sentinel = await startRedisSentinel({ sentinelPort });
    await until(() => fleet.allUp(), 'both instances on the primary the Sentinel names', 30_000);
    const id = `joined-${randomUUID()}`;
    const replies = await fleet.coldBurst(id, 20);
    expect(replies.map((reply) => reply.status)).toEqual(Array(40).fill(200));
    expect(await fleet.executions(id)).toBe(1);
    expect(await sentinel.cli(await sentinel.primaryPort(), 'EXISTS', keys.value(itemKey(id)))).toBe('1');
    // node-redis prints each failed attempt of its own connect loop; the quiet probes print nothing.
    for (const instance of instances) expect(instance.output()).not.toContain('None of the sentinels are available');
  });
});

describe('the invalidation connection through a Sentinel', () => {
  let sentinel: RedisSentinelSetup | undefined;
  const tiers = new Tiers();

  afterAll(async () => {
    await tiers.closeAll();
    await sentinel?.stop();
  });

  it('drops L1 when the pub/sub connection dropped, and again once its probe is heard (node-redis says only "error")', async () => {
    sentinel = await startRedisSentinel();
    const made = await tiers.make(undefined, { sentinel: sentinel.options, l1Ttl: 60_000 });
    expect(made.subscriber.isSubscribed).toBe(true);
    let resubscribed = 0;
    made.subscriber.onResubscribed(() => resubscribed++);
    const key = 'GET /l1-after-reconnect/sentinel';
    await made.store.set(key, { v: 'old', e: Date.now() + 60_000, t: Date.now() }, 60_000);
    expect(made.store.local.get(key)?.v).toBe('old');
    const missed = JSON.stringify({ k: key, o: 'another-instance' });
    const primary = await sentinel.primaryPort();
    await redisPipe(primary, `CLIENT KILL TYPE pubsub\nPUBLISH stampede:invalidate '${missed}'\n`);
    // At the drop, and once its probe is heard on the resubscribed connection.
    await until(() => resubscribed >= 2, 'the subscription back and its probe heard');
    expect(made.store.local.get(key)).toBeUndefined();
  });
});
