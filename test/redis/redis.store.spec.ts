import { RedisKeys } from '../../lib/redis/redis.keys';
import { StoredEntry, isPromiseLike } from '../../lib/core/store';
import { decodeEntry, encodeEntry } from '../../lib/redis/redis.codec';
import { RedisTier } from '../../lib/redis/redis.tier';
import { until } from '../helpers/deferred';
import { RawClient, RedisServer, freePort, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';
import { RecordingLogger } from '../helpers/logger';
import { Tiers } from './support/tiers';

/** Where the tier keeps each key (hash-tagged names). */
const KEYS = new RedisKeys('stampede:');
const OTHER = new RedisKeys('other-app:');

type Raw = RawClient;

/** An HTTP response snapshot as the interceptor stores it. */
function snapshot() {
  return {
    shareable: true,
    status: 203,
    headers: [
      ['content-type', 'application/octet-stream'],
      ['x-served-at', 'Tue, 01 Jan 2030 00:00:00 GMT'],
      ['vary', ['accept', 'accept-language']],
    ],
    body: Buffer.from([0, 1, 2, 250, 255]),
    bytes: 5,
  };
}

describe('value encoding', () => {
  const roundTrip = (v: unknown) => decodeEntry(encodeEntry({ v, e: 1 }))?.v;

  it('brings back Buffers, Uint8Arrays, Dates, BigInts, Maps and Sets, nested anywhere', () => {
    const value = {
      body: Buffer.from('héllo'),
      bytes: new Uint8Array([1, 2, 3]),
      at: new Date('2030-01-01T00:00:00.000Z'),
      big: 12345678901234567890n,
      byId: new Map<unknown, unknown>([
        [1, { tags: new Set(['a', 'b']) }],
        ['k', [new Date(0)]],
      ]),
      list: [null, 1.5, 'x', true],
    };
    const back = roundTrip(value) as typeof value;
    expect(back).toEqual(value);
    expect(Buffer.isBuffer(back.body)).toBe(true);
    expect(back.bytes).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(back.bytes)).toBe(false);
    expect(back.byId.get(1)).toEqual({ tags: new Set(['a', 'b']) });
    const invalid = roundTrip(new Date(NaN));
    expect(invalid).toBeInstanceOf(Date);
    expect(Number.isNaN((invalid as Date).getTime())).toBe(true);
  });

  it('never mistakes a plain object for a tag, and keeps an undefined value', () => {
    const lookalikes = { $t: 'D', v: 0, nested: [{ $t: 'B', v: 'AA==' }] };
    expect(roundTrip(lookalikes)).toEqual(lookalikes);
    expect(decodeEntry(encodeEntry({ v: undefined, e: 7 }))).toEqual({ v: undefined, e: 7 });
    expect(roundTrip(null)).toBeNull();
    expect(roundTrip('text')).toBe('text');
  });

  it('keeps every field of an entry', () => {
    const entry: StoredEntry = { v: 1, e: 1000, t: 900, s: 2000, f: 3000, d: 100, g: ['user:1'] };
    expect(decodeEntry(encodeEntry(entry))).toEqual(entry);
  });

  it('reads garbage as nothing', () => {
    for (const garbage of [
      'garbage',
      '',
      '[]',
      'null',
      '{"v":1}',
      '{"e":"soon","v":1}',
      '{"e":1}',
      '{"e":1,"v":{"$t":"B","v":1}}',
      '{"e":1,"v":{"$t":"?","v":1}}',
      '{"e":1,"v":{"$t":"N","v":"1.5"}}',
      '{"e":1,"v":1,"g":[1]}',
      '{"e":1,"v":1,"t":"x"}',
    ]) {
      expect(decodeEntry(garbage)).toBeUndefined();
    }
    expect(decodeEntry(undefined)).toBeUndefined();
  });

  it('refuses a value JSON cannot hold', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodeEntry({ v: circular, e: 1 })).toThrow(TypeError);
  });
});

describe('RedisStore on a real Redis', () => {
  let server: RedisServer;
  let raw: Raw;
  const tiers = new Tiers();
  let tier: RedisTier;

  beforeAll(async () => ({ server, raw } = await startRedisWithClient()));
  afterAll(async () => {
    await tiers.closeAll();
    await stopRedisWithClient(server, raw);
  });
  beforeEach(async () => {
    await raw.flushAll();
    tier = await tiers.make(server.url);
  });
  afterEach(() => tiers.closeAll());

  it('round-trips a response snapshot under the key prefix, expiring by PX', async () => {
    const entry: StoredEntry = { v: snapshot(), e: Date.now() + 60_000, t: Date.now(), d: 3 };
    await expect(tier.store.set('GET /files/1', entry, 60_000)).resolves.toBe(true);

    expect(await raw.keys('*')).toEqual([KEYS.value('GET /files/1')]);
    const pttl = await raw.pTTL(KEYS.value('GET /files/1'));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(60_000);

    const back = await tier.store.get('GET /files/1');
    expect(back?.v).toEqual(snapshot());
    expect(Buffer.isBuffer((back?.v as ReturnType<typeof snapshot>).body)).toBe(true);
    expect(back?.e).toBeGreaterThan(Date.now());
  });

  it('reads garbage, a malformed entry and a key of another type as a miss, without calling Redis down', async () => {
    await raw.set(KEYS.value('a'), 'garbage');
    await raw.set(KEYS.value('b'), '{"e":1,"v":{"$t":"B","v":1}}');
    await raw.hSet(KEYS.value('c'), 'field', 'value');
    for (const key of ['a', 'b', 'c', 'missing']) await expect(tier.store.get(key)).resolves.toBeUndefined();
    expect(tier.connection.isDown).toBe(false);
  });

  it("moves an entry to the reader's clock: a writer whose clock is a minute ahead does not make it look fresher", async () => {
    const skew = 60_000;
    const ttl = 5_000;
    const writerNow = Date.now() + skew;
    const text = encodeEntry({ v: 'x', e: writerNow + ttl }, writerNow + ttl);
    await raw.set(KEYS.value('skewed'), text, { PX: ttl });
    const back = await tier.store.get('skewed');
    expect(back?.e).toBeGreaterThan(Date.now());
    expect(back?.e).toBeLessThanOrEqual(Date.now() + ttl);
  });

  it('deletes a key with its lease, and every key under a prefix (SCAN + UNLINK), glob characters included', async () => {
    const entry = { v: 1, e: Date.now() + 60_000 };
    for (const key of ['GET /a*[1]?x', 'GET /a*[1]?y', 'GET /a1', 'GET /b']) await tier.store.set(key, entry, 60_000);
    await raw.set(KEYS.lock('GET /a*[1]?x'), 'someone');
    await raw.set(OTHER.value('GET /a*[1]?x'), 'theirs');

    await expect(tier.store.deletePrefix('GET /a*[1]?')).resolves.toBe(2);
    expect((await raw.keys('*')).sort()).toEqual(
      [OTHER.value('GET /a*[1]?x'), KEYS.value('GET /a1'), KEYS.value('GET /b')].sort(),
    );

    await raw.set(KEYS.lock('GET /b'), 'someone');
    await expect(tier.store.delete('GET /b')).resolves.toBe(true);
    expect((await raw.keys('*')).sort()).toEqual([OTHER.value('GET /a*[1]?x'), KEYS.value('GET /a1')].sort());
  });

  it('keeps values in L1 when asked, and drops them on every instance when one invalidates', async () => {
    const a = await tiers.make(server.url, { l1Ttl: 60_000 });
    const b = await tiers.make(server.url, { l1Ttl: 60_000 });
    await a.store.set('k', { v: 'one', e: Date.now() + 60_000 }, 60_000);

    expect((await b.store.get('k'))?.v).toBe('one');
    // A read overlapping the invalidation a's write sent (heard by b any time now) keeps nothing in L1: read again.
    await until(async () => {
      await b.store.get('k');
      return !isPromiseLike(b.store.get('k'));
    }, "b's L1 copy");
    const near = b.store.get('k');
    expect(isPromiseLike(near)).toBe(false); // From L1: no round trip.
    expect((near as StoredEntry).v).toBe('one');

    await a.store.delete('k');
    await until(() => isPromiseLike(b.store.get('k')), "b's L1 copy dropped");
    await expect(b.store.get('k')).resolves.toBeUndefined();
  });

  it('never throws while Redis cannot be reached, and logs that once', async () => {
    const logger = new RecordingLogger();
    const nowhere = await tiers.make(`redis://127.0.0.1:${await freePort()}`, {}, logger, 200);
    const entry = { v: 1, e: Date.now() + 1_000 };
    for (let i = 0; i < 20; i++) {
      await expect(nowhere.store.get('k')).resolves.toBeUndefined();
      await expect(nowhere.store.set('k', entry, 1_000)).resolves.toBe(false);
      await expect(nowhere.store.delete('k')).resolves.toBe(false);
      await expect(nowhere.store.deletePrefix('')).resolves.toBe(0);
    }
    expect(logger.count(/Redis unreachable/)).toBe(1);
  });

  it('answers (a miss) while Redis hangs, instead of hanging the caller', async () => {
    await tier.store.set('k', { v: 1, e: Date.now() + 60_000 }, 60_000);
    server.pause();
    try {
      await expect(tier.store.get('k')).resolves.toBeUndefined();
      // Known to hang now: the next calls do not wait for the timeout again.
      await expect(tier.store.get('k')).resolves.toBeUndefined();
      expect(tier.connection.isDown).toBe(true);
    } finally {
      server.resume();
    }
    await until(async () => (await tier.store.get('k'))?.v === 1, 'Redis answering again');
    expect(tier.connection.isDown).toBe(false);
  });
});
