import { RedisKeys } from '../../lib/redis/redis.keys';
import { setTimeout as sleep } from 'node:timers/promises';
import { lastValueFrom } from 'rxjs';
import { isPromiseLike } from '../../lib/core/store';
import { until } from '../helpers/deferred';
import { RedisNode, redisSuite } from './support/suite';

/** Where the tier keeps each key (hash-tagged names). */
const KEYS = new RedisKeys('stampede:');

type Node = RedisNode;

describe('the Redis tier through an outage (a real Redis behind a TCP proxy that is cut)', () => {
  const redis = redisSuite();
  const node = (url: string, options?: { l1Ttl?: number }) => redis.node(url, options);

  const runs = new Map<string, number>();
  const work = (key: string) => async () => {
    runs.set(key, (runs.get(key) ?? 0) + 1);
    return `${key} #${runs.get(key)}`;
  };
  const get = (n: Node, key: string, tags?: string[]) =>
    lastValueFrom(n.coalescer.run$(key, work(key), { ttl: 60_000, tags: tags && (() => tags) }));

  async function cut(n: Node): Promise<void> {
    redis.proxy.cut();
    // Noticed by the next call (or the connection's own error event).
    await n.tier.store.get('-');
    await until(() => n.tier.connection.isDown, 'the outage noticed');
  }

  async function restore(n: Node): Promise<void> {
    redis.proxy.restore();
    await until(
      () => !n.tier.connection.isDown && n.tier.connection.client.isReady && n.tier.subscriber.isSubscribed,
      'Redis answering again',
    );
  }

  beforeEach(() => runs.clear());

  it('keeps caching in process while Redis is unreachable: one origin call per key, then drops it on return', async () => {
    const a = await node(redis.proxy.url);
    await cut(a);
    for (let i = 0; i < 20; i++) {
      for (const key of ['k1', 'k2']) expect((await get(a, key)).value).toBe(`${key} #1`);
    }
    expect(Object.fromEntries(runs)).toEqual({ k1: 1, k2: 1 });
    expect(a.tier.store.local.size).toBe(2);
    expect(a.logger.count(/Redis unreachable/)).toBe(1);

    await restore(a);
    // What was cached during the outage may have been invalidated meanwhile: gone, and shared again.
    expect(a.tier.store.local.size).toBe(0);
    expect(a.logger.count(/Redis answers again/)).toBe(1);
    expect((await get(a, 'k1')).value).toBe('k1 #2');
    expect(await redis.raw.exists(KEYS.value('k1'))).toBe(1);
  });

  it('bounds what it keeps during an outage by maxEntries', async () => {
    const a = await node(redis.proxy.url);
    await cut(a);
    for (let i = 0; i < 1_500; i++) await get(a, `key-${i}`);
    expect(a.tier.store.local.size).toBe(1_000);
  });

  it('applies an invalidation made during the outage at once, and in Redis (every instance) when it answers again', async () => {
    const a = await node(redis.proxy.url);
    const b = await node(redis.server.url, { l1Ttl: 60_000 });
    expect((await get(a, 'k')).value).toBe('k #1');
    expect((await get(b, 'k')).value).toBe('k #1'); // from Redis, now in b's L1
    await cut(a);
    await get(a, 'p:1');
    await a.coalescer.invalidate('k');
    await a.coalescer.invalidatePrefix('p:');
    expect(a.tier.store.pendingReplays).toBe(2);
    expect((await get(a, 'k')).value).toBe('k #2'); // here at once
    expect((await get(a, 'p:1')).value).toBe('p:1 #2');
    expect(isPromiseLike(b.tier.store.get('k'))).toBe(false); // b cannot know yet

    await restore(a);
    await until(() => a.tier.store.pendingReplays === 0, 'the invalidations replayed');
    expect(await redis.raw.exists(KEYS.value('k'))).toBe(0);
    await until(() => isPromiseLike(b.tier.store.get('k')), "b's L1 copy dropped");
    expect((await get(b, 'k')).value).toBe('k #3');
  });

  it('reaches the in-process copies of every instance for key, prefix and set, L1 or not', async () => {
    const a = await node(redis.server.url);
    const b = await node(redis.server.url, { l1Ttl: 60_000 });
    for (const key of ['k', 'p:1']) await get(b, key);
    expect(b.tier.store.local.size).toBe(2);
    await a.coalescer.invalidate('k');
    await until(() => b.tier.store.local.size === 1, 'the key dropped on b');
    await a.coalescer.invalidatePrefix('p:');
    await until(() => b.tier.store.local.size === 0, 'the prefix dropped on b');
    await get(b, 'k');
    await a.coalescer.set('k', 'set by a', 60_000);
    await until(() => b.tier.store.local.size === 0, 'the overwritten key dropped on b');
    expect(await lastValueFrom(b.coalescer.run$('k', work('k'), { ttl: 60_000 }))).toMatchObject({ value: 'set by a' });
  });

  it('invalidates tags on every instance, also entries another instance stored, through pub/sub', async () => {
    const a = await node(redis.server.url);
    const b = await node(redis.server.url, { l1Ttl: 60_000 });
    expect((await get(a, 'k', ['products'])).value).toBe('k #1');
    expect(await get(b, 'k', ['products'])).toMatchObject({ value: 'k #1', outcome: 'hit' });
    a.coalescer.invalidateTags(['products']);
    // Here at once (synchronously), there as soon as the message arrives.
    expect((await get(a, 'k', ['products'])).value).toBe('k #2');
    await until(() => b.tier.tags.size === 1, 'b hearing of it');
    // Not b's L1 copy. A value whose work began within the clocks' uncertainty (a few ms) after
    // the invalidation counts as before it: one more origin call at most, never the old value.
    expect((await get(b, 'k', ['products'])).value).not.toBe('k #1');
    expect(runs.get('k')).toBeLessThanOrEqual(3);
    expect(await redis.raw.zScore('stampede:tags', 'products')).toEqual(expect.any(Number));
  });

  it('answers a lease waiter with a fresh value, never one whose tag was invalidated', async () => {
    const a = await node(redis.server.url);
    const b = await node(redis.server.url);
    await get(a, 'k', ['t']);
    b.coalescer.invalidateTags(['t']);
    // a has not heard yet or has: either way the lease path must not hand back the old value.
    await until(() => a.tier.tags.size === 1, 'a hearing of it');
    expect(await get(a, 'k', ['t'])).toMatchObject({ value: 'k #2', outcome: 'miss' });
  });

  it('replays a tag invalidation made during an outage, with its original time, and reloads tags after a reconnection', async () => {
    const a = await node(redis.proxy.url);
    const b = await node(redis.server.url);
    await get(b, 'k', ['t']);
    await cut(a);
    const before = Date.now();
    a.coalescer.invalidateTags(['t']);
    await until(() => a.tier.tags.pendingReplays === 1, 'the invalidation kept for later');
    expect((await get(a, 'k', ['t'])).value).toBe('k #2'); // applied here at once
    expect(await get(b, 'k', ['t'])).toMatchObject({ value: 'k #1', outcome: 'hit' });

    await restore(a);
    await until(() => a.tier.tags.pendingReplays === 0 && b.tier.tags.size === 1, 'the replay heard by b');
    expect(await get(b, 'k', ['t'])).toMatchObject({ value: 'k #3' });
    expect(await redis.raw.zScore('stampede:tags', 't')).toBeLessThanOrEqual(Date.now() + 1_000);
    expect(await redis.raw.zScore('stampede:tags', 't')).toBeGreaterThan(before - 1_000);

    // a misses b's next invalidation while cut, and learns of it from Redis on its return.
    await cut(a);
    b.coalescer.invalidateTags(['u']);
    await until(async () => (await redis.raw.zScore('stampede:tags', 'u')) !== null, 'the invalidation in Redis');
    await restore(a);
    await until(() => a.tier.tags.size === 2, 'a reloading the tag times');
  });

  it('answers no value of a tag invalidated while it was cut off, not even as Redis answers again (before the tag times are read)', async () => {
    const a = await node(redis.proxy.url);
    const b = await node(redis.server.url);
    await get(b, 'k', ['t']);
    await cut(a);
    b.coalescer.invalidateTags(['t']); // a cannot hear it
    await until(async () => (await redis.raw.zScore('stampede:tags', 't')) !== null, 'the invalidation in Redis');
    // A request reaching a the moment Redis answers again (under load there is always one).
    let first: Promise<unknown> | undefined;
    a.tier.connection.onBack(() => (first = get(a, 'k', ['t'])));
    await restore(a);
    expect(await first).toMatchObject({ value: 'k #2', outcome: 'miss' });
    await until(() => a.tier.tags.size === 1, 'a reading the tag times');
    expect(await get(a, 'k', ['t'])).toMatchObject({ value: 'k #2', outcome: 'hit' });
  });

  it('never lets a slow reply make a value look younger than its tag invalidation (clocks compared safely)', async () => {
    const a = await node(redis.server.url);
    const b = await node(redis.proxy.url);
    await get(a, 'k', ['t']);
    const stored = await a.tier.store.read('k');
    a.coalescer.invalidateTags(['t']);
    await until(() => b.tier.tags.size === 1, 'b hearing of it');
    expect(Number.isFinite(b.tier.tags.clockUncertainty)).toBe(true); // measured when b connected
    // Redis answers b's read at once; the answer reaches b 300 ms later (a busy process, a slow link).
    redis.proxy.stall('replies');
    const reading = b.tier.store.read('k');
    await sleep(300);
    redis.proxy.restore();
    const seen = await reading;
    expect(seen?.v).toBe('k #1');
    // Not 300 ms younger (the stall); the margin covers a loaded machine's write and read delays.
    expect(seen!.e).toBeLessThan(stored!.e + 100);
    expect(b.tier.tags.isValid(seen!)).toBe(false);
    expect(await get(b, 'k', ['t'])).toMatchObject({ value: 'k #2', outcome: 'miss' });
  });

  it('keeps 10,000 tag invalidations for replay at most; beyond, it deletes every value instead (safe for any tag)', async () => {
    const a = await node(redis.proxy.url);
    const b = await node(redis.server.url);
    await get(b, 'k', ['kept-tag']);
    await cut(a);
    for (let i = 0; i <= 10_000; i++) a.coalescer.invalidateTags([`tag-${i}`]);
    await until(() => a.tier.tags.pendingReplays === 1, 'the replays collapsed into one');
    expect(await redis.raw.exists(KEYS.value('k'))).toBe(1);
    await restore(a);
    await until(() => a.tier.tags.pendingReplays === 0 && a.tier.store.pendingReplays === 0, 'the replay sent');
    expect(await redis.raw.exists(KEYS.value('k'))).toBe(0);
  });
});
