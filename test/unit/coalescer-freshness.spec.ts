import { Observable, lastValueFrom, tap } from 'rxjs';
import { Coalescer, Lookup, RunPolicy } from '../../lib/core/coalescer';
import { FlightCoordinator } from '../../lib/core/coordinator';
import { StampedeEvent, StampedeStats } from '../../lib/core/events';
import { MemoryStore } from '../../lib/core/memory-store';
import { Deferred, deferred, flush } from '../helpers/deferred';
import { RecordingLogger } from '../helpers/logger';
import { record } from '../helpers/record';
import { mulberry32 } from '../helpers/random';

const T0 = 1_700_000_000_000;
const TTL = 10_000;
const STALE = 5_000;
const SIE = 20_000;
/** The coalescer waits min(5 s, max(100 ms, ttl / 10)) after a failed refresh: 1 s for TTL. */
const BACKOFF = 1_000;

/** A clock the test moves by hand. */
class Clock {
  constructor(public time = T0) {}
  readonly now = () => this.time;
}

/** Work whose every call the test settles by hand. */
function controlledWork<T>() {
  const calls: Deferred<T>[] = [];
  const work = () => {
    const call = deferred<T>();
    calls.push(call);
    return call.promise;
  };
  return { work, calls };
}

const never = (): number => {
  throw new Error('random() must not be drawn');
};

describe('Coalescer freshness', () => {
  let clock: Clock;
  let store: MemoryStore;
  let logger: RecordingLogger;
  let coalescer: Coalescer;
  let events: StampedeEvent[];
  let random: () => number;
  let seeded: StampedeStats | undefined;

  const build = (deps: Partial<ConstructorParameters<typeof Coalescer>[0]> = {}) => {
    coalescer = new Coalescer({ store, logger, now: clock.now, random: () => random(), ...deps });
    events = [];
    coalescer.on((event) => events.push(event));
  };

  beforeEach(() => {
    clock = new Clock();
    store = new MemoryStore(1_000_000, clock.now);
    logger = new RecordingLogger();
    random = never;
    seeded = undefined;
    build();
  });

  const run$ = <T>(key: string, work: () => T | Promise<T> | Observable<T>, policy: RunPolicy<T>) =>
    coalescer.run$(key, work, policy);
  const run = <T>(key: string, work: () => T | Promise<T> | Observable<T>, policy: RunPolicy<T>) =>
    lastValueFrom(run$(key, work, policy));
  const types = () => events.map((e) => e.type);
  const count = (type: StampedeEvent['type']) => events.filter((e) => e.type === type).length;

  /** Stores `value` for `key` with `policy`, its work started and stored at the current time. */
  const seed = async <T>(key: string, value: T, policy: RunPolicy<T>) => {
    expect(await run(key, () => value, policy)).toMatchObject({ outcome: 'miss', stored: true });
    events.length = 0;
    seeded = coalescer.stats();
  };
  /** The counts since the last `seed`. */
  const stats = () => {
    const now = coalescer.stats();
    const since = { ...now };
    for (const name of Object.keys(now) as (keyof StampedeStats)[]) since[name] = now[name] - (seeded?.[name] ?? 0);
    return since;
  };

  describe('stale-while-revalidate', () => {
    const policy: RunPolicy<string> = { ttl: TTL, staleTtl: STALE };
    const staleV1: Lookup<string> = {
      value: 'v1',
      outcome: 'stale',
      staleReason: 'revalidate',
      expiresAt: T0 + TTL,
      storedAt: T0,
    };

    beforeEach(async () => {
      await seed('k', 'v1', policy);
      clock.time = T0 + TTL;
    });

    it('answers the caller that finds the value stale at once and starts exactly one refresh', () => {
      const { work, calls } = controlledWork<string>();
      const r = record(run$('k', work, policy));
      expect(r.values).toEqual([staleV1]);
      expect(r.completed).toBe(true);
      expect(calls).toHaveLength(1);
      expect(coalescer.inFlight()).toBe(1);
      expect(events).toEqual([
        { type: 'refresh', key: 'k', trigger: 'stale' },
        { type: 'stale', key: 'k', staleReason: 'revalidate' },
      ]);
      expect(stats()).toMatchObject({ stale: 1, refreshes: 1, hits: 0, misses: 0 });
    });

    it('answers 10 concurrent callers with the stale value at once and runs one refresh', () => {
      const { work, calls } = controlledWork<string>();
      const recordings = Array.from({ length: 10 }, () => record(run$('k', work, policy)));
      expect(recordings.map((r) => r.values)).toEqual(Array.from({ length: 10 }, () => [staleV1]));
      expect(recordings.every((r) => r.completed)).toBe(true);
      expect(calls).toHaveLength(1);
      expect(count('refresh')).toBe(1);
    });

    it('replaces the entry with the refreshed value: the next caller hits it', async () => {
      const { work, calls } = controlledWork<string>();
      record(run$('k', work, policy));
      calls[0].resolve('v2');
      await flush();
      expect(coalescer.inFlight()).toBe(0);

      clock.time += 1;
      expect(await run('k', work, policy)).toEqual({
        value: 'v2',
        outcome: 'hit',
        expiresAt: T0 + 2 * TTL,
        storedAt: T0 + TTL,
      });
      expect(calls).toHaveLength(1);
      expect(stats()).toMatchObject({ stored: 1, refreshes: 1, hits: 1 });
    });

    it('answers a caller arriving while the refresh runs with the stale value, never its error', async () => {
      const { work, calls } = controlledWork<string>();
      record(run$('k', work, policy));
      await flush();
      const late = record(run$('k', work, policy));
      expect(late.values).toEqual([staleV1]);
      expect(late.completed).toBe(true);
      calls[0].reject(new Error('db down'));
      await flush();
      expect(late.errored).toBe(false);
      expect(calls).toHaveLength(1);
    });

    // A background refresh carries the stale entry as its fallback.
    it('answers a caller that joins the refresh after the stale window with the fallback when it fails', async () => {
      const windows: RunPolicy<string> = { ...policy, staleIfError: SIE };
      clock.time = T0;
      await seed('w', 'v1', windows);
      clock.time = T0 + TTL + STALE - 1;
      const { work, calls } = controlledWork<string>();
      expect((await run('w', work, windows)).outcome).toBe('stale');
      // The stale window ends while the refresh runs: the next caller waits on
      // it, and the entry is still good in place of an error.
      clock.time += 1;
      const late = record(run$('w', work, windows));
      expect(late.values).toEqual([]);
      calls[0].reject(new Error('db down'));
      await flush();
      expect(late.errored).toBe(false);
      expect(late.values).toEqual([
        { value: 'v1', outcome: 'stale', staleReason: 'error', expiresAt: T0 + TTL, storedAt: T0 },
      ]);
      expect(calls).toHaveLength(1);
    });

    it('is still stale 1 ms before the stale window ends', async () => {
      clock.time = T0 + TTL + STALE - 1;
      expect(await run('k', () => 'v2', policy)).toEqual(staleV1);
    });

    it('lets a caller lead (miss) once the stale window has ended', async () => {
      clock.time = T0 + TTL + STALE;
      const { work, calls } = controlledWork<string>();
      const r = record(run$('k', work, policy));
      expect(r.values).toEqual([]);
      expect(calls).toHaveLength(1);
      calls[0].resolve('v2');
      await flush();
      expect(r.values).toEqual([{ value: 'v2', outcome: 'miss', stored: true }]);
      expect(types()).toEqual(['miss', 'stored']);
    });

    it('keeps the stale value when the refresh fails, warns once, and backs off before trying again', async () => {
      const { work, calls } = controlledWork<string>();
      const key = 'user:42';
      clock.time = T0;
      await seed(key, 'v1', policy);
      clock.time = T0 + TTL;

      expect((await run(key, work, policy)).outcome).toBe('stale');
      calls[0].reject(new Error('db down'));
      await flush();
      expect(logger.warnings).toHaveLength(1);
      expect(logger.warnings[0]).toMatch(/^refresh of key #[\w-]{12} failed \(db down\); serving the stale value$/);
      expect(logger.warnings[0]).not.toContain(key); // keys may hold arguments: hashed
      expect(coalescer.inFlight()).toBe(0);

      // Right after the failure, and until the backoff ends: stale, no refresh.
      expect(await run(key, work, policy)).toMatchObject({ value: 'v1', outcome: 'stale' });
      clock.time += BACKOFF - 1;
      expect(await run(key, work, policy)).toMatchObject({ value: 'v1', outcome: 'stale' });
      expect(calls).toHaveLength(1);
      expect(count('refresh')).toBe(1);

      // After it: one new refresh, which succeeds.
      clock.time += 1;
      expect(await run(key, work, policy)).toMatchObject({ value: 'v1', outcome: 'stale' });
      expect(calls).toHaveLength(2);
      calls[1].resolve('v2');
      await flush();
      expect(await run(key, work, policy)).toMatchObject({ value: 'v2', outcome: 'hit' });
      expect(logger.warnings).toHaveLength(1);
      expect(stats()).toMatchObject({ refreshes: 2, stale: 4 });
    });
  });

  describe('stale-if-error', () => {
    const policy: RunPolicy<string> = { ttl: TTL, staleIfError: SIE };
    const fallback: Lookup<string> = {
      value: 'v1',
      outcome: 'stale',
      staleReason: 'error',
      expiresAt: T0 + TTL,
      storedAt: T0,
    };

    beforeEach(async () => {
      await seed('k', 'v1', policy);
      clock.time = T0 + TTL;
    });

    it('answers the leader and every collapsed follower of a failed flight with the stale value', async () => {
      const { work, calls } = controlledWork<string>();
      const recordings = Array.from({ length: 3 }, () => record(run$('k', work, policy)));
      expect(calls).toHaveLength(1);
      expect(recordings.every((r) => r.values.length === 0)).toBe(true);

      const failure = new Error('upstream down');
      calls[0].reject(failure);
      await flush();
      for (const r of recordings) {
        expect(r.values).toEqual([fallback]);
        expect(r.completed).toBe(true);
        expect(r.errored).toBe(false);
      }
      expect(events.filter((e) => e.type === 'stale')).toEqual(
        Array.from({ length: 3 }, () => ({ type: 'stale', key: 'k', staleReason: 'error', error: failure })),
      );
      expect(stats()).toMatchObject({ misses: 1, coalesced: 2, errors: 1, stale: 3, stored: 0 });
      expect(count('stored')).toBe(0);
      // The fallback stays for the next failure.
      expect(store.get('k')?.v).toBe('v1');
    });

    it('falls back 1 ms before the window ends', async () => {
      clock.time = T0 + TTL + SIE - 1;
      const lookup = await run('k', () => Promise.reject(new Error('down')), policy);
      expect(lookup).toEqual(fallback);
    });

    it('lets the error reach the leader and followers once the window has ended', async () => {
      clock.time = T0 + TTL + SIE;
      const { work, calls } = controlledWork<string>();
      const recordings = [record(run$('k', work, policy)), record(run$('k', work, policy))];
      const failure = new Error('upstream down');
      calls[0].reject(failure);
      await flush();
      for (const r of recordings) {
        expect(r.values).toEqual([]);
        expect(r.error).toBe(failure);
      }
      expect(stats()).toMatchObject({ errors: 1, stale: 0 });
    });

    it('judges the window when the flight fails, not when it started', async () => {
      clock.time = T0 + TTL + SIE - 1;
      const { work, calls } = controlledWork<string>();
      const r = record(run$('k', work, policy));
      clock.time += 1;
      calls[0].reject(new Error('late failure'));
      await flush();
      expect(r.errored).toBe(true);
    });

    it('does not stand in for a successful result', async () => {
      expect(await run('k', () => 'v2', policy)).toEqual({ value: 'v2', outcome: 'miss', stored: true });
    });

    describe('isFailure', () => {
      interface Response {
        status: number;
        body: string;
      }
      const httpPolicy: RunPolicy<Response> = {
        ttl: TTL,
        staleIfError: SIE,
        isFailure: (response) => response.status >= 500,
        cacheable: (response) => response.status < 300,
      };
      const ok: Response = { status: 200, body: 'old' };

      beforeEach(async () => {
        clock.time = T0;
        await seed('r', ok, httpPolicy);
        clock.time = T0 + TTL;
      });

      it('replaces a failure value with the stale value for the leader and followers', async () => {
        const { work, calls } = controlledWork<Response>();
        const recordings = [record(run$('r', work, httpPolicy)), record(run$('r', work, httpPolicy))];
        calls[0].resolve({ status: 503, body: 'unavailable' });
        await flush();
        for (const r of recordings) {
          expect(r.values).toEqual([
            { value: ok, outcome: 'stale', staleReason: 'error', expiresAt: T0 + TTL, storedAt: T0 },
          ]);
          expect(r.completed).toBe(true);
        }
        expect(events.filter((e) => e.type === 'stale')).toEqual([
          { type: 'stale', key: 'r', staleReason: 'error', error: undefined },
          { type: 'stale', key: 'r', staleReason: 'error', error: undefined },
        ]);
        expect(store.get('r')?.v).toEqual(ok);
      });

      it('passes a failure value through once there is no fallback', async () => {
        clock.time = T0 + TTL + SIE;
        const failure = { status: 503, body: 'unavailable' };
        expect(await run('r', () => failure, httpPolicy)).toEqual({ value: failure, outcome: 'miss', stored: false });
      });

      it('passes values that are not failures through', async () => {
        const notFound = { status: 404, body: 'none' };
        expect(await run('r', () => notFound, httpPolicy)).toEqual({ value: notFound, outcome: 'miss', stored: false });
      });
    });
  });

  describe('early refresh (XFetch)', () => {
    const D = 1_000;
    const policy: RunPolicy<string> = { ttl: TTL, earlyRefresh: { beta: 1 } };
    /** Where the value stops being fresh: its work took D ms from T0. */
    const E = T0 + D + TTL;

    beforeEach(async () => {
      const { work, calls } = controlledWork<string>();
      const r = record(run$('k', work, policy));
      clock.time = T0 + D;
      calls[0].resolve('v1');
      await flush();
      expect(r.values).toEqual([{ value: 'v1', outcome: 'miss', stored: true }]);
      expect(store.get('k')).toMatchObject({ e: E, t: T0, d: D });
      events.length = 0;
      // A gap of one duration before expiry: refresh when r <= e^-1 (about 0.368).
      clock.time = E - D;
    });

    it('refreshes in the background and still answers the hit when the seeded draw says so', async () => {
      const draw = mulberry32(7)();
      expect(draw).toBeLessThan(Math.exp(-1));
      random = mulberry32(7);

      const { work, calls } = controlledWork<string>();
      const r = record(run$('k', work, policy));
      expect(r.values).toEqual([{ value: 'v1', outcome: 'hit', expiresAt: E, storedAt: T0 }]);
      expect(r.completed).toBe(true);
      expect(calls).toHaveLength(1);
      expect(events).toEqual([
        { type: 'refresh', key: 'k', trigger: 'early' },
        { type: 'hit', key: 'k' },
      ]);
      expect(stats()).toMatchObject({ hits: 1, refreshes: 1, stale: 0 });

      calls[0].resolve('v2');
      await flush();
      random = never; // the new entry took 0 ms: no draw
      expect(await run('k', work, policy)).toMatchObject({ value: 'v2', outcome: 'hit', expiresAt: E - D + TTL });
      expect(calls).toHaveLength(1);
    });

    it('does not refresh when the seeded draw says not to', async () => {
      const draw = mulberry32(1)();
      expect(draw).toBeGreaterThan(Math.exp(-1));
      random = mulberry32(1);

      const { work, calls } = controlledWork<string>();
      expect(await run('k', work, policy)).toEqual({ value: 'v1', outcome: 'hit', expiresAt: E, storedAt: T0 });
      expect(calls).toHaveLength(0);
      expect(types()).toEqual(['hit']);
    });

    it('answers a caller arriving during the early refresh with a hit, not by waiting on it', () => {
      random = () => 0.01;
      const { work, calls } = controlledWork<string>();
      record(run$('k', work, policy));
      const next = record(run$('k', work, policy));
      expect(next.values).toEqual([{ value: 'v1', outcome: 'hit', expiresAt: E, storedAt: T0 }]);
      expect(calls).toHaveLength(1);
    });

    it('draws nothing without earlyRefresh', async () => {
      random = never;
      expect((await run('k', () => 'v2', { ttl: TTL })).outcome).toBe('hit');
    });

    it('refreshes at the rate exp(-gap / (d * beta)) over 4,000 seeded hits', () => {
      const keys = 4_000;
      const beta = 2;
      random = mulberry32(2024);
      for (let i = 0; i < keys; i++) store.set(`x${i}`, { v: i, e: E, t: T0, d: D }, TTL);
      for (let i = 0; i < keys; i++) record(run$(`x${i}`, () => -i, { ttl: TTL, earlyRefresh: { beta } }));
      const early = events.filter((e) => e.type === 'refresh' && e.trigger === 'early').length;
      expect(count('hit')).toBe(keys);
      expect(Math.abs(early / keys - Math.exp(-D / (D * beta)))).toBeLessThanOrEqual(0.03);
    });
  });

  describe('tags', () => {
    const policy: RunPolicy<{ id: number }> = { ttl: TTL, tags: (value) => [`user:${value.id}`, 'users'] };

    it('stores the tags of each result in its entry', async () => {
      const tags = jest.fn(policy.tags!);
      await run('u1', () => ({ id: 1 }), { ...policy, tags });
      expect(tags).toHaveBeenCalledWith({ id: 1 });
      expect(store.get('u1')).toMatchObject({ v: { id: 1 }, g: ['user:1', 'users'] });
    });

    it('makes the next caller of an invalidated tag miss, and leaves other tags alone', async () => {
      await seed('u1', { id: 1 }, policy);
      await seed('u2', { id: 2 }, policy);
      clock.time += 1;
      coalescer.invalidateTags(['user:1']);
      clock.time += 1;
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'miss', stored: true });
      expect(await run('u2', () => ({ id: 2 }), policy)).toMatchObject({ outcome: 'hit' });
      // The entry stored after the invalidation is served.
      clock.time += 1;
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'hit' });
    });

    it('neither serves an invalidated entry stale nor uses it in place of an error', async () => {
      const windows = { ...policy, staleTtl: STALE, staleIfError: SIE };
      await seed('u1', { id: 1 }, windows);
      clock.time = T0 + TTL;
      coalescer.invalidateTags(['users']);
      const failure = new Error('down');
      const r = record(run$('u1', () => Promise.reject(failure), windows));
      await flush();
      expect(r.error).toBe(failure);
      expect(count('stale')).toBe(0);
    });

    it('does not serve the result of a flight that started before the invalidation and stored after it', async () => {
      const { work, calls } = controlledWork<{ id: number }>();
      const r = record(run$('u1', work, policy));
      clock.time = T0 + 5;
      coalescer.invalidateTags(['user:1']);
      clock.time = T0 + 10;
      calls[0].resolve({ id: 1 });
      await flush();
      expect(r.values).toEqual([{ value: { id: 1 }, outcome: 'miss', stored: true }]);
      expect(store.get('u1')).toMatchObject({ t: T0, g: ['user:1', 'users'] }); // stored, but dead

      clock.time = T0 + 20;
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'miss' });
    });

    it('serves the result of a flight that started after the invalidation', async () => {
      coalescer.invalidateTags(['user:1']);
      clock.time += 1;
      await seed('u1', { id: 1 }, policy);
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'hit' });
    });

    it('counts a flight started in the same millisecond as the invalidation as started before it', async () => {
      coalescer.invalidateTags(['user:1']);
      await seed('u1', { id: 1 }, policy);
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'miss' });
    });

    // Invalidation times are kept as long as an entry whose work started before them can live.
    it('does not resurrect a straddling flight result when an unrelated tag is invalidated later', async () => {
      const short: RunPolicy<{ id: number }> = { ...policy, ttl: 1_000 };
      const { work, calls } = controlledWork<{ id: number }>();
      record(run$('u1', work, short));
      clock.time = T0 + 1;
      coalescer.invalidateTags(['user:1']);
      clock.time = T0 + 500;
      calls[0].resolve({ id: 1 }); // fresh until T0 + 1500
      await flush();

      clock.time = T0 + 1_200;
      coalescer.invalidateTags(['user:999']);
      expect(await run('u1', () => ({ id: 2 }), short)).toMatchObject({ outcome: 'miss', value: { id: 2 } });
    });

    it('stores tags through a coordinator too', async () => {
      const coordinator: FlightCoordinator = {
        lead: (key, work, write) =>
          work().pipe(
            tap((value) => {
              if (write.storable(value)) store.set(key, write.entry(value), write.ttl);
            }),
          ),
      };
      build({ coordinator });
      await run('u1', () => ({ id: 1 }), policy);
      expect(store.get('u1')?.g).toEqual(['user:1', 'users']);
      clock.time += 1;
      coalescer.invalidateTags(['user:1']);
      expect(await run('u1', () => ({ id: 1 }), policy)).toMatchObject({ outcome: 'miss' });
    });
  });

  describe('freshnessFor', () => {
    it('overrides the ttl per value', async () => {
      const policy: RunPolicy<string> = {
        ttl: TTL,
        freshnessFor: (value) => (value === 'short' ? { ttl: 1_000 } : undefined),
      };
      await run('a', () => 'short', policy);
      await run('b', () => 'long', policy);
      expect(store.get('a')?.e).toBe(T0 + 1_000);
      expect(store.get('b')?.e).toBe(T0 + TTL);
      clock.time = T0 + 1_000;
      expect((await run('a', () => 'short', policy)).outcome).toBe('miss');
      expect((await run('b', () => 'long', policy)).outcome).toBe('hit');
    });

    it('stores nothing for a value it gives ttl 0', async () => {
      const policy: RunPolicy<string> = { ttl: TTL, freshnessFor: () => ({ ttl: 0 }) };
      expect(await run('k', () => 'v', policy)).toEqual({ value: 'v', outcome: 'miss', stored: false });
      expect(store.size).toBe(0);
      expect(count('stored')).toBe(0);
      expect((await run('k', () => 'v', policy)).outcome).toBe('miss');
    });

    it('stores a value it gives a ttl although the policy ttl is 0', async () => {
      const policy: RunPolicy<string> = { ttl: 0, freshnessFor: () => ({ ttl: 1_000 }) };
      expect(await run('k', () => 'v', policy)).toEqual({ value: 'v', outcome: 'miss', stored: true });
      expect(await run('k', () => 'w', policy)).toMatchObject({ value: 'v', outcome: 'hit' });
      expect(events.find((e) => e.type === 'stored')).toEqual({ type: 'stored', key: 'k', ttl: 1_000 });
    });

    it('sets the stale windows per value, keeping the policy fields it does not name', async () => {
      const policy: RunPolicy<string> = { ttl: TTL, staleIfError: SIE, freshnessFor: () => ({ staleTtl: STALE }) };
      await run('k', () => 'v', policy);
      expect(store.get('k')).toMatchObject({ e: T0 + TTL, s: T0 + TTL + STALE, f: T0 + TTL + SIE });
      clock.time = T0 + TTL + STALE - 1;
      expect(await run('k', () => 'w', policy)).toMatchObject({ value: 'v', outcome: 'stale' });
    });
  });
});
