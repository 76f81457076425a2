import { RedisKeys } from '../../lib/redis/redis.keys';
import { createClient } from 'redis';
import { lastValueFrom } from 'rxjs';
import { CoordinatedWrite } from '../../lib/core/coordinator';
import { encodeEntry } from '../../lib/redis/redis.codec';
import { RedisTier } from '../../lib/redis/redis.tier';
import { until } from '../helpers/deferred';
import { RawClient, RedisServer, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';
import { TcpProxy, startTcpProxy } from '../helpers/tcp-proxy';
import { Tiers } from './support/tiers';
import { GatedWork } from '../helpers/gated-work';

/** Where the tier keeps each key (hash-tagged names). */
const KEYS = new RedisKeys('stampede:');

type Raw = RawClient;

function write<T>(ttl = 60_000): CoordinatedWrite<T> {
  return { ttl, storable: () => true, entry: (v) => ({ v, e: Date.now() + ttl }) };
}

const lead = <T>(tier: RedisTier, key: string, work: GatedWork<T>) =>
  lastValueFrom(tier.lease.lead(key, work.run, write<T>()));

describe('lease and value hygiene on a real Redis that stalls, drops or holds foreign keys', () => {
  let server: RedisServer;
  let raw: Raw;
  const tiers = new Tiers();
  // Long enough that a lease left behind would outlive every wait of these tests.
  const LONG = { leaseTtl: 120_000, lockTimeout: 60_000 };

  const lockOf = (key: string) => KEYS.lock(key);
  const valueOf = async (key: string) => (await raw.get(KEYS.value(key))) ?? undefined;

  beforeAll(async () => ({ server, raw } = await startRedisWithClient()));
  afterAll(async () => {
    await tiers.closeAll();
    await stopRedisWithClient(server, raw);
  });
  beforeEach(() => raw.flushAll());
  afterEach(() => tiers.closeAll());

  it('releases a lease Redis granted after the call that asked for it had timed out (SIGSTOP)', async () => {
    const a = await tiers.make(server.url, LONG);
    const b = await tiers.make(server.url, LONG);
    server.pause();
    let answer: Promise<string>;
    const own = new GatedWork(() => 'served during the stall', true);
    try {
      // The lease command times out here, and is still queued in the paused server.
      answer = lead(a, 'k', own);
      await expect(answer).resolves.toBe('served during the stall');
    } finally {
      server.resume();
    }
    await until(() => !a.connection.isDown && a.lease.pendingRetries === 0, 'the late lease handed back');
    expect(await raw.exists(lockOf('k'))).toBe(0);
    // b takes the lease at once instead of waiting out lockTimeout.
    const next = new GatedWork(() => 'from b', true);
    await expect(lead(b, 'k', next)).resolves.toBe('from b');
    expect(next.runs).toBe(1);
  });

  it('retries a fenced write and release that failed on a dropped connection, once Redis answers', async () => {
    const proxy: TcpProxy = await startTcpProxy(server.port);
    try {
      const a = await tiers.make(proxy.url, LONG);
      const holder = new GatedWork(() => 'computed by a');
      const answer = lead(a, 'k', holder);
      await until(async () => holder.runs === 1 && (await raw.exists(lockOf('k'))) === 1, 'a holding the lease');
      proxy.cut();
      await until(() => a.connection.isDown || !a.connection.client.isReady, 'the connection lost');
      holder.open();
      await expect(answer).resolves.toBe('computed by a');
      expect(a.lease.pendingRetries).toBe(1);
      expect(await raw.exists(lockOf('k'))).toBe(1);

      proxy.restore();
      await until(() => a.lease.pendingRetries === 0 && !a.connection.isDown, 'the retry sent');
      expect(await raw.exists(lockOf('k'))).toBe(0);
      expect(JSON.parse((await valueOf('k'))!)).toMatchObject({ v: 'computed by a' });
    } finally {
      await tiers.closeAll();
      await proxy.close();
    }
  });

  it.each([
    ['a string without expiry', (key: string) => raw.set(key, 'someone else')],
    ['a hash', (key: string) => raw.hSet(key, 'owner', 'someone else')],
    ['a hash with an expiry', async (key: string) => (await raw.hSet(key, 'x', '1'), raw.pExpire(key, 100_000))],
  ])('treats a lease key the package did not write (%s) as foreign: it takes the lease', async (_, plant) => {
    const a = await tiers.make(server.url, LONG);
    await plant(lockOf('k'));
    const work = new GatedWork(() => 'fresh', true);
    await expect(lead(a, 'k', work)).resolves.toBe('fresh');
    expect(work.runs).toBe(1);
    expect(await raw.exists(lockOf('k'))).toBe(0);
    expect(JSON.parse((await valueOf('k'))!)).toMatchObject({ v: 'fresh' });
  });

  it('replaces a value key of another type, without counting it as an outage', async () => {
    const a = await tiers.make(server.url, LONG);
    await raw.hSet(KEYS.value('k'), 'field', 'not ours');
    await expect(a.store.get('k')).resolves.toBeUndefined();
    const work = new GatedWork(() => 'ours', true);
    await expect(lead(a, 'k', work)).resolves.toBe('ours');
    expect(a.connection.isDown).toBe(false);
    expect(await raw.type(KEYS.value('k'))).toBe('string');
    expect((await a.store.get('k'))?.v).toBe('ours');
  });

  it('skips a value over maxValueBytes, reading it neither from the store nor the lease, and writes no such value', async () => {
    const a = await tiers.make(server.url, { ...LONG, maxValueBytes: 1_000 });
    const huge = encodeEntry({ v: 'x'.repeat(5_000), e: Date.now() + 60_000 }, Date.now() + 60_000);
    await raw.set(KEYS.value('big'), huge, { PX: 60_000 });
    await expect(a.store.get('big')).resolves.toBeUndefined();
    const small = new GatedWork(() => 'small', true);
    await expect(lead(a, 'big', small)).resolves.toBe('small');
    expect(small.runs).toBe(1);
    expect(JSON.parse((await valueOf('big'))!)).toMatchObject({ v: 'small' });

    const tooBig = new GatedWork(() => 'y'.repeat(5_000), true);
    await expect(lead(a, 'other', tooBig)).resolves.toHaveLength(5_000); // its callers are answered
    expect(await valueOf('other')).toBeUndefined();
    expect(await raw.exists(lockOf('other'))).toBe(0);
    await expect(a.store.set('other', { v: 'small', e: Date.now() + 60_000 }, 60_000)).resolves.toBe(true);
    // Replacing it with one too big: not written, and the older value does not answer in its place.
    await expect(a.store.set('other', { v: 'y'.repeat(5_000), e: Date.now() + 60_000 }, 60_000)).resolves.toBe(false);
    expect(await valueOf('other')).toBeUndefined();
    expect(a.connection.isDown).toBe(false);
  });

  it('loads its scripts when the connection becomes ready: after a restart no call meets NOSCRIPT or needs EVAL', async () => {
    const a = await tiers.make(server.url, LONG);
    raw.destroy();
    await server.stop();
    await server.restart();
    raw = createClient({ url: server.url });
    raw.on('error', () => undefined);
    await raw.connect();
    await until(() => !a.connection.isDown && a.connection.client.isReady, 'a reconnected');
    for (let i = 0; i < 5; i++) {
      await a.store.get(`k${i}`);
      await lead(a, `k${i}`, new GatedWork(() => i, true));
    }
    a.tags.invalidate(['t']);
    await until(async () => (await raw.zScore('stampede:tags', 't')) !== null, 'the tag invalidated');
    const stats = await raw.info('commandstats');
    const errors = await raw.info('errorstats');
    expect(stats).toMatch(/cmdstat_evalsha:calls=\d+/);
    expect(stats).not.toMatch(/cmdstat_eval:/);
    expect(errors).not.toMatch(/NOSCRIPT/);
  });
});
