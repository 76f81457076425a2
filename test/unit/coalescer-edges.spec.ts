import { Observable, of } from 'rxjs';
import { Coalescer } from '../../lib/core/coalescer';
import type { FlightCoordinator } from '../../lib/core/coordinator';
import { MemoryStore } from '../../lib/core/memory-store';
import { StampedeStore, StoredEntry } from '../../lib/core/store';
import { currentWork } from '../../lib/core/work-context';
import { deferred, flush } from '../helpers/deferred';
import { RecordingLogger } from '../helpers/logger';
import { SlowWriteStore } from '../helpers/stores';

/** Where the engine's parts meet: each of these answered a caller wrongly or lost work before. */
describe('Coalescer edges', () => {
  const logger = new RecordingLogger();
  afterEach(() => jest.useRealTimers());

  it('arms no waitTimeout for a caller the flight already answered: the work runs once', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    const store = new SlowWriteStore();
    const c = new Coalescer({ store, logger });
    let runs = 0;
    const work = () => (runs++, of(runs));
    const policy = { ttl: 10_000, waitTimeout: 20 };
    const first = c.run('k', work, policy); // answered once its write (held) lands
    await flush();
    const second = await c.run('k', work, policy); // joins the flight kept while the write is pending
    expect(second.outcome).toBe('collapsed');
    await jest.advanceTimersByTimeAsync(100);
    store.writes.forEach((write) => write.resolve());
    await first;
    expect(runs).toBe(1);
  });

  it('keeps the work of a soft timeout going even with cancelWhenAbandoned, and stores its result', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    let now = 1_000_000;
    const c = new Coalescer({ store: new MemoryStore(100, () => now), logger, now: () => now });
    await c.run('k', () => 'old', { ttl: 10, staleIfError: 100_000 });
    now += 20; // past ttl, within staleIfError
    let aborted = false;
    const gate = deferred<string>();
    const answer = c.run('k', (signal) => (signal.addEventListener('abort', () => (aborted = true)), gate.promise), {
      ttl: 10_000,
      staleIfError: 100_000,
      softTimeout: 10,
      cancelWhenAbandoned: true,
    });
    await jest.advanceTimersByTimeAsync(10);
    expect(await answer).toMatchObject({ value: 'old', outcome: 'stale', staleReason: 'timeout' });
    gate.resolve('new');
    await flush();
    expect(aborted).toBe(false);
    expect(c.get('k')).toBe('new');
  });

  it('gives a call that runs alone inside another flight its own work context', async () => {
    const c = new Coalescer({ store: new MemoryStore(100), logger, maxInFlight: 1 });
    const outer = await c.run(
      'outer',
      async () => {
        // maxInFlight 1: the inner call runs alone (bypass); its skipStore is its own.
        await c.run('inner', async () => (currentWork()?.skipStore(), 'i'), { ttl: 10_000 });
        return 'o';
      },
      { ttl: 10_000 },
    );
    expect(outer.value).toBe('o');
    expect(c.get('outer')).toBe('o');
  });

  it('lets no work store what its policy refuses (setFreshness on a result cacheable refuses)', async () => {
    const c = new Coalescer({ store: new MemoryStore(100), logger });
    await c.run('k', () => (currentWork()?.setFreshness({ ttl: 5_000 }), 'not for the store'), {
      ttl: 10_000,
      cacheable: () => false,
    });
    expect(c.get('k')).toBeUndefined();
  });

  it('fetches in runMany only the keys whose work the coordinator runs; a failure of the others is no crash', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (error: unknown) => unhandled.push(error);
    process.on('unhandledRejection', onUnhandled);
    try {
      const answered = deferred<void>();
      // Answers every key from "another instance", never running the work here.
      const coordinator: FlightCoordinator = {
        lead: <T>() =>
          new Observable<T>((subscriber) => {
            void answered.promise.then(() => {
              subscriber.next('from another instance' as T);
              subscriber.complete();
            });
          }),
      };
      const c = new Coalescer({ store: new MemoryStore(100), logger, coordinator });
      let fetched = 0;
      const values = c.runMany(['a'], async () => (fetched++, Promise.reject(new Error('db down'))), { ttl: 10_000 });
      answered.resolve();
      expect(await values).toEqual(['from another instance']);
      await flush();
      expect(fetched).toBe(0);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('lands invalidate({ prefix }) after the writes in progress under that prefix', async () => {
    const inner = new MemoryStore(100);
    const write = deferred<void>();
    const store: StampedeStore = {
      get: (key) => Promise.resolve(inner.get(key)),
      set: async (key: string, entry: StoredEntry) => {
        await write.promise;
        inner.set(key, entry);
      },
      delete: (key) => inner.delete(key),
      deletePrefix: (prefix) => inner.deletePrefix(prefix),
    };
    const c = new Coalescer({ store, logger });
    const led = c.run('user:1', async () => 'old', { ttl: 60_000 });
    await flush(); // the work is done, its write is pending
    const invalidated = c.invalidatePrefix('user:');
    write.resolve();
    await Promise.all([invalidated, led]);
    expect(await c.get('user:1')).toBeUndefined();
  });
});
