import Keyv from 'keyv';
import { Observable, Subject, firstValueFrom, lastValueFrom } from 'rxjs';
import { Coalescer, Lookup, RunPolicy } from '../../lib/core/coalescer';
import { MemoryStore } from '../../lib/core/memory-store';
import { MaybePromise, StampedeStore, StoredEntry } from '../../lib/core/store';
import { toStampedeStore } from '../../lib/core/store-adapter';
import { deferred, flush } from '../helpers/deferred';
import { FlakyAdapter, SlowWriteStore } from '../helpers/stores';
import { RecordingLogger } from '../helpers/logger';
import { record } from '../helpers/record';

const T0 = 1_700_000_000_000;
const TTL = 10_000;

/** A clock the test moves by hand. */
class Clock {
  constructor(public time = T0) {}
  readonly now = () => this.time;
}

/** A store that fails on purpose while `failing` is set: throws, or rejects when `async`. */
class FaultyStore implements StampedeStore {
  failing = true;
  calls = 0;
  readonly inner: MemoryStore;
  constructor(
    now: () => number,
    private readonly async = false,
  ) {
    this.inner = new MemoryStore(100, now);
  }
  private run<R>(call: () => R): MaybePromise<R> {
    this.calls++;
    if (!this.failing) return call();
    const error = new Error('connection refused');
    if (this.async) return Promise.reject(error);
    throw error;
  }
  get(key: string) {
    return this.run(() => this.inner.get(key));
  }
  set(key: string, entry: StoredEntry) {
    return this.run(() => this.inner.set(key, entry));
  }
  delete(key: string) {
    return this.run(() => this.inner.delete(key));
  }
}

/** A MemoryStore whose writes complete only when the test says so. */
/** Work that counts its runs and settles when the test resolves `gate`. */
function gatedWork<T>() {
  const gate = deferred<T>();
  const work = Object.assign(
    () => {
      work.runs++;
      return gate.promise;
    },
    { runs: 0 },
  );
  return { gate, work };
}

function counter(start = 0) {
  const work = Object.assign(() => ++work.runs + start, { runs: 0 });
  return work;
}

const policy: RunPolicy<unknown> = { ttl: TTL };

describe('Coalescer', () => {
  let clock: Clock;
  let store: MemoryStore;
  let logger: RecordingLogger;
  let coalescer: Coalescer;

  beforeEach(() => {
    clock = new Clock();
    store = new MemoryStore(100, clock.now);
    logger = new RecordingLogger();
    coalescer = new Coalescer({ store, logger, now: clock.now });
  });

  const run = <T>(key: string, work: () => T | Promise<T> | Observable<T>, p: RunPolicy<T> = policy) =>
    lastValueFrom(coalescer.run$(key, work, p));

  describe('outcomes', () => {
    it('answers the first caller with a miss, stores the value, and answers the next with a hit', async () => {
      const work = counter();
      expect(await run('k', work)).toEqual({ value: 1, outcome: 'miss', stored: true });
      expect(store.get('k')).toMatchObject({ v: 1, e: T0 + TTL });

      clock.time += 1000;
      expect(await run('k', work)).toMatchObject({ value: 1, outcome: 'hit', expiresAt: T0 + TTL });
      expect(work.runs).toBe(1);
    });

    it('runs the work once for 100 concurrent callers: one miss and 99 collapsed, all with the same value', async () => {
      const { gate, work } = gatedWork<string>();
      const answers = Array.from({ length: 100 }, () => run('k', work));
      expect(work.runs).toBe(1);
      expect(coalescer.inFlight()).toBe(1);
      expect(coalescer.waiters('k')).toBe(100);

      gate.resolve('v');
      const lookups = await Promise.all(answers);
      expect(work.runs).toBe(1);
      expect(lookups.filter((l) => l.outcome === 'miss')).toEqual([{ value: 'v', outcome: 'miss', stored: true }]);
      expect(lookups.filter((l) => l.outcome === 'collapsed')).toHaveLength(99);
      expect(lookups.every((l) => l.value === 'v')).toBe(true);
      expect(coalescer.inFlight()).toBe(0);
      expect(coalescer.waiters('k')).toBe(0);
    });

    it('does not run the work before the Observable is subscribed', () => {
      const work = counter();
      coalescer.run$('k', work, policy);
      expect(work.runs).toBe(0);
    });

    it('reports a miss for every value of an Observable work and stores the last one', () => {
      const source = new Subject<number>();
      const r = record(coalescer.run$('k', () => source, policy));
      source.next(1);
      source.next(2);
      source.complete();
      expect(r.values.map((l) => l.value)).toEqual([1, 2]);
      expect(r.values.every((l) => l.outcome === 'miss')).toBe(true);
      expect(store.get('k')?.v).toBe(2);
    });

    it('stores nothing for an Observable work that completes without a value', () => {
      const r = record(coalescer.run$('k', () => new Observable<number>((s) => s.complete()), policy));
      expect(r.completed).toBe(true);
      expect(r.values).toEqual([]);
      expect(store.size).toBe(0);
    });
  });

  describe('ttl', () => {
    it('with ttl 0 coalesces concurrent callers but stores nothing', async () => {
      const { gate, work } = gatedWork<number>();
      const answers = [run('k', work, { ttl: 0 }), run('k', work, { ttl: 0 })];
      gate.resolve(5);
      const lookups = await Promise.all(answers);
      expect(work.runs).toBe(1);
      expect(lookups.map((l) => l.outcome)).toEqual(['miss', 'collapsed']);
      expect(lookups[0].stored).toBe(false);
      expect(store.size).toBe(0);

      await run('k', work, { ttl: 0 });
      expect(work.runs).toBe(2);
    });

    it('with ttl 0 ignores a fresh value already in the store', async () => {
      coalescer.set('k', 'stored', TTL);
      const lookup = await run('k', () => 'fresh', { ttl: 0 });
      expect(lookup).toEqual({ value: 'fresh', outcome: 'miss', stored: false });
    });

    it('serves the stored value until just before ttl elapses and runs the work again from then on', async () => {
      const work = counter();
      await run('k', work);
      clock.time = T0 + TTL - 1;
      expect((await run('k', work)).outcome).toBe('hit');
      clock.time = T0 + TTL;
      expect(await run('k', work)).toEqual({ value: 2, outcome: 'miss', stored: true });
      expect(work.runs).toBe(2);
    });

    it('treats a stored entry past its expiry as a miss even when the store still returns it', async () => {
      // A store that ignores TTLs: a plain Keyv entry with no TTL of its own.
      const keyv = new Keyv();
      const c = new Coalescer({ store: toStampedeStore(keyv), logger, now: clock.now });
      await keyv.set('k', { v: 'stale', e: T0 - 1 });
      const lookup = await lastValueFrom(c.run$('k', () => 'fresh', policy));
      expect(lookup).toEqual({ value: 'fresh', outcome: 'miss', stored: true });
    });
  });

  describe('what is stored', () => {
    it('never stores an error; every waiter gets it and the next caller runs the work again', async () => {
      const { gate, work } = gatedWork<number>();
      const a = record(coalescer.run$('k', work, policy));
      const b = record(coalescer.run$('k', work, policy));
      const failure = new Error('upstream down');
      gate.reject(failure);
      await flush();

      expect(a.error).toBe(failure);
      expect(b.error).toBe(failure);
      expect(store.size).toBe(0);
      expect(coalescer.inFlight()).toBe(0);
      expect(await run('k', () => 'ok')).toEqual({ value: 'ok', outcome: 'miss', stored: true });
    });

    it('does not store a value the cacheable predicate refuses, and says so', async () => {
      const cacheable = (value: { status: number }) => value.status < 300;
      const work = jest.fn(() => ({ status: 503 }));
      expect(await run('k', work, { ttl: TTL, cacheable })).toEqual({
        value: { status: 503 },
        outcome: 'miss',
        stored: false,
      });
      expect(store.size).toBe(0);
      await run('k', work, { ttl: TTL, cacheable });
      expect(work).toHaveBeenCalledTimes(2);
    });

    it('stores a value the cacheable predicate accepts', async () => {
      const cacheable = (value: { status: number }) => value.status < 300;
      const lookup = await run('k', () => ({ status: 200 }), { ttl: TTL, cacheable });
      expect(lookup.stored).toBe(true);
      expect(store.get('k')?.v).toEqual({ status: 200 });
    });

    it('keeps the flight joinable while the store write is pending, so a caller arriving then joins it', async () => {
      const slow = new SlowWriteStore(clock.now);
      const c = new Coalescer({ store: slow, logger, now: clock.now });
      const work = counter();
      const first = lastValueFrom(c.run$('k', work, policy));
      await flush();
      expect(slow.writes).toHaveLength(1);
      expect(c.inFlight()).toBe(1);

      const second = await lastValueFrom(c.run$('k', work, policy));
      expect(second).toEqual({ value: 1, outcome: 'collapsed' });
      expect(work.runs).toBe(1);

      slow.writes[0].resolve();
      // The leader is answered once the store has the value: its `stored` is the store's word.
      expect(await first).toEqual({ value: 1, outcome: 'miss', stored: true });
      await flush();
      expect(c.inFlight()).toBe(0);
      expect(await lastValueFrom(c.run$('k', work, policy))).toMatchObject({
        value: 1,
        outcome: 'hit',
        expiresAt: T0 + TTL,
      });
    });
  });

  describe('unsubscribing', () => {
    it('keeps the work going and stores its value when only the leader unsubscribes', async () => {
      const { gate, work } = gatedWork<number>();
      const leader = record(coalescer.run$('k', work, policy));
      const joiner = record(coalescer.run$('k', work, policy));
      leader.subscription.unsubscribe();
      gate.resolve(3);
      await flush();
      expect(joiner.values).toEqual([{ value: 3, outcome: 'collapsed' }]);
      expect(store.get('k')?.v).toBe(3);
    });

    /** Observable work whose runs and teardowns the test can see and drive. */
    function cancellableWork() {
      const runs: Subject<number>[] = [];
      const work = Object.assign(
        () =>
          new Observable<number>((subscriber) => {
            const source = new Subject<number>();
            runs.push(source);
            source.subscribe(subscriber);
            return () => {
              work.teardowns++;
            };
          }),
        { runs, teardowns: 0 },
      );
      return work;
    }

    it('cancels the work when the only caller unsubscribes, and the next caller runs it again', async () => {
      const work = cancellableWork();
      const a = record(coalescer.run$('k', work, policy));
      a.subscription.unsubscribe();
      await Promise.resolve(); // cancellation waits for the current microtasks
      expect(work.teardowns).toBe(1);
      expect(coalescer.inFlight()).toBe(0);

      const b = record(coalescer.run$('k', work, policy));
      expect(work.runs).toHaveLength(2);
      work.runs[1].next(9);
      work.runs[1].complete();
      expect(b.values).toEqual([{ value: 9, outcome: 'miss', stored: true }]);
      expect(store.get('k')?.v).toBe(9);
    });

    it('stops counting a collapsed caller that joined after an async store lookup once it unsubscribes', async () => {
      const c = new Coalescer({ store: toStampedeStore(new Keyv()), logger, now: clock.now });
      const work = cancellableWork();
      const a = record(c.run$('k', work, policy));
      const b = record(c.run$('k', work, policy));
      await flush();
      expect(c.waiters('k')).toBe(2);
      b.subscription.unsubscribe();
      expect(c.waiters('k')).toBe(1);
      a.subscription.unsubscribe();
      await Promise.resolve(); // cancellation waits for the current microtasks
      expect(work.teardowns).toBe(1);
      expect(c.inFlight()).toBe(0);
    });

    it('stops counting a collapsed caller once it unsubscribes', () => {
      const work = cancellableWork();
      record(coalescer.run$('k', work, policy));
      const joiner = record(coalescer.run$('k', work, policy));
      expect(coalescer.waiters('k')).toBe(2);
      joiner.subscription.unsubscribe();
      expect(coalescer.waiters('k')).toBe(1);
    });

    it('cancels the work and stores nothing when the leader and every collapsed caller unsubscribe', async () => {
      const work = cancellableWork();
      const a = record(coalescer.run$('k', work, policy));
      const b = record(coalescer.run$('k', work, policy));
      a.subscription.unsubscribe();
      b.subscription.unsubscribe();
      await Promise.resolve(); // cancellation waits for the current microtasks
      expect(work.teardowns).toBe(1);
      expect(coalescer.inFlight()).toBe(0);
    });

    // A caller that takes only the first answer unsubscribes before the completion arrives.
    it('stores a value it reported as stored to a caller that takes only the first answer', async () => {
      const lookup = await firstValueFrom(coalescer.run$('k', () => Promise.resolve('v'), policy));
      expect(lookup.stored).toBe(true);
      await flush();
      expect(store.get('k')?.v).toBe('v');
    });
  });

  describe('invalidation', () => {
    it('invalidate during a flight: the waiters get the result but it is not stored, and a new caller starts afresh', async () => {
      const first = gatedWork<string>();
      const a = record(coalescer.run$('k', first.work, policy));
      const b = record(coalescer.run$('k', first.work, policy));
      coalescer.invalidate('k');
      expect(coalescer.inFlight()).toBe(0);

      const second = gatedWork<string>();
      const c = record(coalescer.run$('k', second.work, policy));
      expect(second.work.runs).toBe(1);

      first.gate.resolve('before');
      await flush();
      expect(a.values.map((l) => l.value)).toEqual(['before']);
      expect(b.values).toEqual([{ value: 'before', outcome: 'collapsed' }]);
      expect(store.get('k')).toBeUndefined();
      expect(coalescer.inFlight()).toBe(1);

      second.gate.resolve('after');
      await flush();
      expect(c.values).toEqual([{ value: 'after', outcome: 'miss', stored: true }]);
      expect(store.get('k')?.v).toBe('after');
    });

    it('tells the leader its value was not stored when the key was invalidated during the flight', async () => {
      const { gate, work } = gatedWork<string>();
      const leader = lastValueFrom(coalescer.run$('k', work, policy));
      coalescer.invalidate('k');
      gate.resolve('v');
      expect(await leader).toEqual({ value: 'v', outcome: 'miss', stored: false });
    });

    it('invalidate drops a stored value so the next caller runs the work', async () => {
      const work = counter();
      await run('k', work);
      expect(coalescer.invalidate('k')).toBe(true);
      expect(await run('k', work)).toEqual({ value: 2, outcome: 'miss', stored: true });
    });

    it('invalidatePrefix drops every stored key with the prefix, keeps the others, and returns the count', async () => {
      for (const key of ['user:1', 'user:2', 'post:1']) await run(key, () => key);
      expect(await coalescer.invalidatePrefix('user:')).toBe(2);
      expect(coalescer.get('user:1')).toBeUndefined();
      expect(coalescer.get('user:2')).toBeUndefined();
      expect(coalescer.get('post:1')).toBe('post:1');
    });

    it('invalidatePrefix forgets flights in progress under the prefix, so their results are not stored', async () => {
      const { gate, work } = gatedWork<string>();
      const r = record(coalescer.run$('user:1', work, policy));
      expect(await coalescer.invalidatePrefix('user:')).toBe(0);
      expect(coalescer.inFlight()).toBe(0);
      gate.resolve('v');
      await flush();
      expect(r.values.map((l) => l.value)).toEqual(['v']);
      expect(store.size).toBe(0);
    });

    it('invalidatePrefix rejects with an explanation when the store cannot list its keys', async () => {
      const c = new Coalescer({ store: toStampedeStore(new Keyv()), logger });
      await expect(c.invalidatePrefix('user:')).rejects.toThrow(/cannot list its keys/);
    });
  });

  describe('get and set', () => {
    it('get returns a value put with set until its ttl elapses', () => {
      coalescer.set('k', { a: 1 }, 500);
      expect(coalescer.get('k')).toEqual({ a: 1 });
      clock.time += 500;
      expect(coalescer.get('k')).toBeUndefined();
    });

    it('a value put with set is served as a hit by run$', async () => {
      coalescer.set('k', 'preset', TTL);
      expect(await run('k', () => 'computed')).toMatchObject({ value: 'preset', outcome: 'hit', expiresAt: T0 + TTL });
    });

    it('get answers with a Promise for an async store', async () => {
      const c = new Coalescer({ store: toStampedeStore(new Keyv()), logger, now: clock.now });
      await c.set('k', 'v', TTL);
      const got = c.get('k');
      expect(got).toBeInstanceOf(Promise);
      expect(await got).toBe('v');
      expect(await c.get('missing')).toBeUndefined();
    });
  });

  describe('with an async store (Keyv via toStampedeStore)', () => {
    let keyv: Keyv;
    let asyncCoalescer: Coalescer;
    beforeEach(() => {
      keyv = new Keyv();
      asyncCoalescer = new Coalescer({ store: toStampedeStore(keyv), logger, now: clock.now });
    });
    const runAsync = <T>(key: string, work: () => T | Promise<T>) =>
      lastValueFrom(asyncCoalescer.run$(key, work, policy));

    it('runs the work once for callers that all arrive while the store lookup is pending', async () => {
      const { gate, work } = gatedWork<string>();
      const answers: Promise<Lookup<string>>[] = Array.from({ length: 20 }, () => runAsync('k', work));
      expect(work.runs).toBe(0);
      await flush();
      expect(work.runs).toBe(1);
      expect(asyncCoalescer.waiters('k')).toBe(20);

      gate.resolve('v');
      const lookups = await Promise.all(answers);
      expect(work.runs).toBe(1);
      expect(lookups.filter((l) => l.outcome === 'miss')).toHaveLength(1);
      expect(lookups.filter((l) => l.outcome === 'collapsed')).toHaveLength(19);
      await flush(); // the store write
      expect(await runAsync('k', work)).toMatchObject({ value: 'v', outcome: 'hit', expiresAt: T0 + TTL });
    });

    it('stores the value in Keyv for a later hit', async () => {
      await runAsync('k', () => Promise.resolve(42));
      await flush(); // the store write
      expect(await keyv.get('k')).toMatchObject({ v: 42, e: T0 + TTL });
      expect((await runAsync('k', () => 0)).outcome).toBe('hit');
    });

    it('never runs the work for a caller that unsubscribes while the store lookup is pending', async () => {
      const work = counter();
      const r = record(asyncCoalescer.run$('k', work, policy));
      r.subscription.unsubscribe();
      await flush();
      expect(work.runs).toBe(0);
      expect(r.values).toEqual([]);
      expect(asyncCoalescer.inFlight()).toBe(0);
    });

    it.each([
      ['a string', 'garbage'],
      ['an object without e', { v: 'no expiry' }],
      ['an object whose e is not a number', { v: 'x', e: String(T0 + TTL) }],
      ['an object without v', { e: T0 + TTL }],
      ['an array', [1, 2]],
    ])('treats %s in the store as a miss and replaces it', async (_label, garbage) => {
      await keyv.set('k', garbage);
      expect(await runAsync('k', () => 'real')).toEqual({ value: 'real', outcome: 'miss', stored: true });
      expect(await keyv.get('k')).toMatchObject({ v: 'real', e: T0 + TTL });
    });
  });

  describe('when the store fails', () => {
    it.each([
      ['throws', false],
      ['rejects', true],
    ])(
      'still runs the work once for concurrent callers, caches nothing, and warns once when the store %s',
      async (_label, async) => {
        const faulty = new FaultyStore(clock.now, async);
        const c = new Coalescer({ store: faulty, logger, now: clock.now });
        const { gate, work } = gatedWork<string>();
        const answers = Array.from({ length: 10 }, () => lastValueFrom(c.run$('k', work, policy)));
        await flush();
        gate.resolve('v');
        const lookups = await Promise.all(answers);
        expect(work.runs).toBe(1);
        expect(lookups.map((l) => l.value)).toEqual(Array(10).fill('v'));
        expect(lookups.filter((l) => l.outcome === 'miss')).toHaveLength(1);

        // Still down: every caller runs the work, nothing was cached.
        await flush();
        expect((await lastValueFrom(c.run$('k', () => 'again', policy))).outcome).toBe('miss');
        expect(faulty.inner.size).toBe(0);
        expect(faulty.calls).toBeGreaterThan(2);
        expect(logger.warnings).toHaveLength(1);
        expect(logger.warnings[0]).toContain('connection refused');
        expect(logger.logs).toHaveLength(0);
        expect(c.store.isDown).toBe(true);

        // Back up: one line, and caching resumes.
        await flush();
        faulty.failing = false;
        expect((await lastValueFrom(c.run$('k', () => 'up', policy))).outcome).toBe('miss');
        await flush();
        expect((await lastValueFrom(c.run$('k', () => 'unused', policy))).value).toBe('up');
        expect(logger.logs).toHaveLength(1);
        expect(logger.warnings).toHaveLength(1);
        expect(c.store.isDown).toBe(false);
      },
    );

    // Keyv 5.6 reads a failed get as a miss: only a value read back proves the store healthy.
    it('warns once, not once per request, when the adapter under a Keyv instance is down', async () => {
      const adapter = new FlakyAdapter();
      adapter.failing = true;
      const c = new Coalescer({ store: toStampedeStore(new Keyv({ store: adapter })), logger, now: clock.now });
      for (let i = 0; i < 3; i++) {
        await lastValueFrom(c.run$('k', () => i, policy));
        await flush();
      }
      expect(logger.warnings).toHaveLength(1);
      expect(logger.logs).toHaveLength(0);
    });

    it('answers invalidate with false instead of throwing when the store is down', () => {
      const c = new Coalescer({ store: new FaultyStore(clock.now), logger, now: clock.now });
      expect(c.invalidate('k')).toBe(false);
      expect(logger.warnings).toHaveLength(1);
    });
  });
});
