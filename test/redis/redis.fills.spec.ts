import { lastValueFrom } from 'rxjs';
import { until } from '../helpers/deferred';
import { GatedWork } from '../helpers/gated-work';
import { RedisNode, redisSuite } from './support/suite';

/**
 * An invalidation made while a value is on its way to the in-process copies
 * (a read of Redis, a holder's fenced write, work during an outage) keeps it
 * out of them: the next caller never gets the value from before it.
 */
describe('an invalidation against what is on its way in process', () => {
  const redis = redisSuite();
  const runs = new Map<string, number>();
  const work = (key: string) => async () => {
    runs.set(key, (runs.get(key) ?? 0) + 1);
    return `${key} #${runs.get(key)}`;
  };
  const get = (n: RedisNode, key: string) => lastValueFrom(n.coalescer.run$(key, work(key), { ttl: 60_000 }));
  beforeEach(() => runs.clear());

  it('L1 keeps no value whose read was on its way when the key was invalidated here', async () => {
    const a = await redis.node(redis.server.url, { l1Ttl: 60_000 });
    const b = await redis.node(redis.server.url);
    expect((await get(b, 'k')).value).toBe('k #1'); // in Redis, not in a's L1
    const reading = a.coalescer.get('k'); // its reply comes after the invalidation below
    await a.coalescer.invalidate('k', true);
    expect(await reading).toBe('k #1');
    expect((await get(a, 'k')).value).toBe('k #2');
    expect(a.tier.store.fills.size).toBe(0);
  });

  it("L1 keeps no holder's value whose fenced write Redis ran before an invalidation of its key", async () => {
    const a = await redis.node(redis.proxy.url, { l1Ttl: 60_000 });
    const gate = new GatedWork(() => 'computed before the invalidation');
    const answer = lastValueFrom(a.coalescer.run$('k', gate.run, { ttl: 60_000 }));
    await until(() => gate.runs === 1, 'a holding the lease, running the work');
    redis.proxy.stall('replies'); // Redis runs what it is sent; its replies wait
    gate.open();
    await until(async () => (await redis.raw.keys('stampede:v:*')).length === 1, 'the write run by Redis');
    const invalidated = a.coalescer.invalidate('k', true);
    await until(async () => (await redis.raw.keys('stampede:v:*')).length === 0, 'the delete run by Redis');
    redis.proxy.restore();
    await invalidated;
    expect((await answer).value).toBe('computed before the invalidation'); // its own callers: fine
    expect((await lastValueFrom(a.coalescer.run$('k', async () => 'fresh', { ttl: 60_000 }))).value).toBe('fresh');
  });

  it('during an outage, keeps no result in process whose work began before an invalidation of its key', async () => {
    const a = await redis.node(redis.proxy.url);
    redis.proxy.cut();
    await a.tier.store.get('-');
    await until(() => a.tier.connection.isDown, 'the outage noticed');
    const gate = new GatedWork(() => 'read before the invalidation');
    const answer = lastValueFrom(a.coalescer.run$('k', gate.run, { ttl: 60_000 }));
    await until(() => gate.runs === 1, 'the work running');
    await a.coalescer.invalidate('k');
    gate.open();
    expect((await answer).value).toBe('read before the invalidation');
    expect((await lastValueFrom(a.coalescer.run$('k', async () => 'new', { ttl: 60_000 }))).value).toBe('new');
    // What it computes after the invalidation is kept for the outage as before.
    expect((await lastValueFrom(a.coalescer.run$('k', async () => 'newer', { ttl: 60_000 }))).value).toBe('new');
    expect(a.tier.store.fills.size).toBe(0);
  });

  it('L1 keeps no value read between a reconnection and the replay of a delete queued during the outage', async () => {
    const b = await redis.node(redis.server.url);
    for (const key of ['k1', 'k2']) await get(b, key); // 'k1 #1', 'k2 #1' in Redis
    const a = await redis.node(redis.proxy.url, { l1Ttl: 60_000 });
    redis.proxy.cut();
    await a.tier.store.get('-');
    await until(() => a.tier.connection.isDown, 'the outage noticed');
    await a.coalescer.invalidate('k1');
    await a.coalescer.invalidate('k2'); // two replays, sent one after the other
    let reading: unknown;
    a.tier.connection.onBack(() => (reading = a.tier.store.get('k2'))); // a request as Redis answers again
    redis.proxy.restore();
    await until(() => reading !== undefined && a.tier.store.pendingReplays === 0, 'the replays sent');
    await reading;
    expect(await redis.raw.keys('stampede:v:*')).toEqual([]);
    expect((await get(a, 'k2')).value).toBe('k2 #2');
  });
});
