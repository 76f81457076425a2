import { RedisKeys } from '../../lib/redis/redis.keys';
import { Subscription, lastValueFrom, map } from 'rxjs';
import { Coalescer } from '../../lib/core/coalescer';
import { CoordinatedWrite } from '../../lib/core/coordinator';
import { RedisLease } from '../../lib/redis/redis.lease';
import { RedisTier } from '../../lib/redis/redis.tier';
import { until } from '../helpers/deferred';
import { RawClient, RedisServer, freePort, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';
import { RecordingLogger } from '../helpers/logger';
import { Tiers } from './support/tiers';
import { GatedWork } from '../helpers/gated-work';

/** Where the tier keeps each key (hash-tagged names). */
const KEYS = new RedisKeys('stampede:');

type Raw = RawClient;

function write<T>(storable: (value: T) => boolean = () => true, ttl = 60_000): CoordinatedWrite<T> {
  return { ttl, storable, entry: (v) => ({ v, e: Date.now() + ttl }) };
}

/** Leads `key` on `lease`; the Promise settles as the caller's answer. */
function lead<T>(lease: RedisLease, key: string, work: GatedWork<T>, w = write<T>()): { answer: Promise<T> } {
  return { answer: lastValueFrom(lease.lead(key, work.run, w)) };
}

describe('RedisLease on a real Redis', () => {
  let server: RedisServer;
  let raw: Raw;
  const tiers = new Tiers();
  let a: RedisTier;
  let b: RedisTier;
  let c: RedisTier;

  const valueOf = async (key: string) => (await raw.get(KEYS.value(key))) ?? undefined;
  const holdsLease = async (key: string) => (await raw.exists(KEYS.lock(key))) === 1;

  beforeAll(async () => ({ server, raw } = await startRedisWithClient()));
  afterAll(async () => {
    await tiers.closeAll();
    await stopRedisWithClient(server, raw);
  });
  beforeEach(async () => {
    await raw.flushAll();
    [a, b, c] = await Promise.all([1, 2, 3].map(() => tiers.make(server.url)));
  });
  afterEach(() => tiers.closeAll());

  it('runs the work once across instances: the others answer with the value the holder stored', async () => {
    const work = [new GatedWork(() => 'from a'), new GatedWork(() => 'from b'), new GatedWork(() => 'from c')];
    const first = lead(a.lease, 'k', work[0]);
    await until(() => work[0].runs === 1, 'a holding the lease');
    const others = [lead(b.lease, 'k', work[1]), lead(c.lease, 'k', work[2])];
    work[0].open();

    await expect(Promise.all([first, ...others].map((l) => l.answer))).resolves.toEqual(['from a', 'from a', 'from a']);
    expect(work.map((w) => w.runs)).toEqual([1, 0, 0]);
    expect(await holdsLease('k')).toBe(false);
    expect([a, b, c].map((tier) => tier.subscriber.listenedKeys)).toEqual([0, 0, 0]);
    expect(await raw.pTTL(KEYS.value('k'))).toBeGreaterThan(0);
  });

  it('tells a value found stored on the first look (a hit) from one waited for from another holder (collapsed)', async () => {
    const found: string[] = [];
    const watching = (name: string): CoordinatedWrite<string> => ({
      ...write<string>(),
      found: (entry) => found.push(`${name}:${entry.v as string}`),
    });
    const holderWork = new GatedWork(() => 'computed');
    const holder = lead(a.lease, 'k', holderWork, watching('a'));
    await until(() => holderWork.runs === 1, 'a holding the lease');
    const waiter = lead(b.lease, 'k', new GatedWork(() => 'not run'), watching('b'));
    await until(() => b.subscriber.listenedKeys === 1, 'b waiting on the holder');
    holderWork.open();
    await expect(Promise.all([holder.answer, waiter.answer])).resolves.toEqual(['computed', 'computed']);
    expect(found).toEqual([]);

    const late = lead(c.lease, 'k', new GatedWork(() => 'not run'), watching('c'));
    await expect(late.answer).resolves.toBe('computed');
    expect(found).toEqual(['c:computed']);
  });

  it('refuses the write of a holder whose lease expired: it cannot overwrite the newer value (fencing)', async () => {
    const slow = await tiers.make(server.url, { leaseTtl: 200 });
    const late = new GatedWork(() => 'old');
    const stale = lead(slow.lease, 'k', late);
    await until(() => late.runs === 1, 'the slow holder running');
    await until(async () => !(await holdsLease('k')), 'its lease expiring');

    const fresh = new GatedWork(() => 'new');
    const newer = lead(b.lease, 'k', fresh);
    fresh.open();
    await expect(newer.answer).resolves.toBe('new');
    const stored = await valueOf('k');

    late.open();
    await expect(stale.answer).resolves.toBe('old'); // Its own callers are still answered.
    expect(await valueOf('k')).toBe(stored);
    expect((await b.store.get('k'))?.v).toBe('new');
  });

  it('refuses the write of a holder whose key was invalidated meanwhile', async () => {
    const work = new GatedWork(() => 'computed before the invalidation');
    const holder = lead(a.lease, 'k', work);
    await until(() => work.runs === 1, 'a holding the lease');
    await b.store.delete('k');
    work.open();
    await expect(holder.answer).resolves.toBe('computed before the invalidation');
    expect(await valueOf('k')).toBeUndefined();
  });

  it('when the holder fails, one waiter takes the lease and tries once; the other answers with its value', async () => {
    const failing = new GatedWork<string>(() => Promise.reject(new Error('origin down')));
    const holder = lead(a.lease, 'k', failing);
    await until(() => failing.runs === 1, 'a holding the lease');
    const retries = [new GatedWork(() => 'from b'), new GatedWork(() => 'from c')];
    const waiters = [lead(b.lease, 'k', retries[0]), lead(c.lease, 'k', retries[1])];
    retries.forEach((w) => w.open());
    failing.open();

    await expect(holder.answer).rejects.toThrow('origin down');
    const answers = await Promise.all(waiters.map((w) => w.answer));
    expect(retries[0].runs + retries[1].runs).toBe(1);
    expect(new Set(answers).size).toBe(1);
  });

  it('when the result may not be stored, the waiters take turns: one attempt at a time', async () => {
    const never = write<string>(() => false);
    const works = [new GatedWork(() => 'a'), new GatedWork(() => 'b'), new GatedWork(() => 'c')];
    const first = lead(a.lease, 'k', works[0], never);
    await until(() => works[0].runs === 1, 'a holding the lease');
    const rest = [lead(b.lease, 'k', works[1], never), lead(c.lease, 'k', works[2], never)];
    works.forEach((w) => w.open());
    await expect(Promise.all([first, ...rest].map((l) => l.answer))).resolves.toEqual(['a', 'b', 'c']);
    expect(works.map((w) => w.runs)).toEqual([1, 1, 1]);
    expect(await valueOf('k')).toBeUndefined();
  });

  it('after lockTimeout a waiter runs the work itself and stores nothing', async () => {
    const impatient = await tiers.make(server.url, { lockTimeout: 200 });
    const slow = new GatedWork(() => 'slow');
    const holder = lead(a.lease, 'k', slow);
    await until(() => slow.runs === 1, 'a holding the lease');
    const own = new GatedWork(() => 'own');
    own.open();
    await expect(lead(impatient.lease, 'k', own).answer).resolves.toBe('own');
    expect(await valueOf('k')).toBeUndefined();
    slow.open();
    await expect(holder.answer).resolves.toBe('slow');
  });

  it('finds the value by polling when the wake-up message is lost', async () => {
    const deaf = new RedisLease(b.store, undefined, { lockTimeout: 10_000 });
    const work = new GatedWork(() => 'from a');
    const holder = lead(a.lease, 'k', work);
    await until(() => work.runs === 1, 'a holding the lease');
    const unused = new GatedWork(() => 'from b');
    const waiter = lead(deaf, 'k', unused);
    work.open();
    await expect(Promise.all([holder.answer, waiter.answer])).resolves.toEqual(['from a', 'from a']);
    expect(unused.runs).toBe(0);
  });

  it('lets the lease go when every caller of the holder left, so a waiter takes over', async () => {
    const abandoned = new GatedWork(() => 'never');
    const subscription: Subscription = a.lease.lead('k', abandoned.run, write()).subscribe();
    await until(() => abandoned.runs === 1, 'a holding the lease');
    const next = new GatedWork(() => 'from b');
    next.open();
    const waiter = lead(b.lease, 'k', next);
    subscription.unsubscribe();
    await expect(waiter.answer).resolves.toBe('from b');
    expect(next.runs).toBe(1);
  });

  it('runs the work at once, uncoordinated, while Redis cannot be reached, and logs that once', async () => {
    const logger = new RecordingLogger();
    const nowhere = await tiers.make(`redis://127.0.0.1:${await freePort()}`, {}, logger, 200);
    for (let i = 0; i < 5; i++) {
      const work = new GatedWork(() => i);
      work.open();
      await expect(lead(nowhere.lease, 'k', work).answer).resolves.toBe(i);
      expect(work.runs).toBe(1);
    }
    expect(logger.count(/Redis unreachable/)).toBe(1);
  });

  it('runs the work rather than wait for a Redis that hangs', async () => {
    server.pause();
    try {
      const work = new GatedWork(() => 'served');
      work.open();
      await expect(lead(a.lease, 'k', work).answer).resolves.toBe('served');
    } finally {
      server.resume();
    }
  });

  it('spans the coalescers of three instances: one execution for all their callers', async () => {
    const logger = new RecordingLogger();
    const coalescers = [a, b, c].map((tier) => new Coalescer({ store: tier.store, coordinator: tier.lease, logger }));
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const work = async () => {
      runs++;
      await gate;
      return { answer: 42, at: new Date(0) };
    };
    const callers = coalescers.flatMap((coalescer) =>
      Array.from({ length: 10 }, () =>
        lastValueFrom(coalescer.run$('k', work, { ttl: 60_000 }).pipe(map((lookup) => lookup.value))),
      ),
    );
    await until(() => runs === 1 && coalescers.every((co) => co.waiters('k') === 10), 'every caller waiting');
    release();
    const values = await Promise.all(callers);
    expect(runs).toBe(1);
    expect(values).toEqual(Array(30).fill({ answer: 42, at: new Date(0) }));
  });
});
