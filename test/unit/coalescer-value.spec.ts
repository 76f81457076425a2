import Keyv from 'keyv';
import { Observable, of } from 'rxjs';
import { Coalescer, RunPolicy } from '../../lib/core/coalescer';
import { StampedeTimeoutError } from '../../lib/core/deadline';
import { StampedeEvent } from '../../lib/core/events';
import { MemoryStore } from '../../lib/core/memory-store';
import { StampedeStore } from '../../lib/core/store';
import { toStampedeStore } from '../../lib/core/store-adapter';
import { deferred, flush } from '../helpers/deferred';
import { RecordingLogger } from '../helpers/logger';
import { SlowWriteStore } from '../helpers/stores';

/**
 * `Coalescer.value`, the path of `StampedeService.run` and `@Coalesce`
 * methods: its leader of a key with nothing stored takes the flight's own
 * Promise, without a sink. These tests hold it to what the full path answers.
 */

const TTL = 10_000;
const policy: RunPolicy<unknown> = { ttl: TTL };

/** Reads answered at once, writes that complete when the test says so. */
class SyncReadSlowWriteStore extends SlowWriteStore {
  readonly synchronous = true;
}

function engine(store: StampedeStore = new MemoryStore(100), extra: { maxInFlight?: number } = {}) {
  const coalescer = new Coalescer({ store, logger: new RecordingLogger(), ...extra });
  const events: StampedeEvent[] = [];
  coalescer.on((event) => events.push(event));
  return { coalescer, events, types: () => events.map((e) => e.type) };
}

describe('Coalescer.value', () => {
  it('answers 100 concurrent callers with one run: one miss, 99 coalesced, one store write', async () => {
    const { coalescer } = engine();
    const gate = deferred<string>();
    let runs = 0;
    const work = () => (runs++, gate.promise);
    const calls = Array.from({ length: 100 }, () => coalescer.value('k', work, policy));
    gate.resolve('v');
    expect(await Promise.all(calls)).toEqual(Array(100).fill('v'));
    expect(runs).toBe(1);
    expect(coalescer.stats()).toMatchObject({ misses: 1, coalesced: 99, stored: 1, inFlight: 0, waiting: 0 });
    expect(coalescer.value('k', work, policy)).toBe('v');
  });

  it('keeps a synchronous work synchronous, and throws its synchronous error once reported', () => {
    const { coalescer, types } = engine();
    expect(coalescer.value('a', () => 7, policy)).toBe(7);
    const boom = new Error('boom');
    expect(() =>
      coalescer.value(
        'b',
        () => {
          throw boom;
        },
        policy,
      ),
    ).toThrow(boom);
    expect(types()).toEqual(['miss', 'stored', 'miss', 'error']);
  });

  it('reports a rejected work once as an error and a timed-out one as a timeout', async () => {
    const { coalescer, events } = engine();
    const failed = coalescer.value('a', () => Promise.reject(new Error('down')), policy);
    await expect(failed).rejects.toThrow('down');
    const slow = coalescer.value('b', () => new Promise<never>(() => undefined), { ttl: TTL, timeout: 5 });
    await expect(slow).rejects.toBeInstanceOf(StampedeTimeoutError);
    expect(events.filter((e) => e.type !== 'miss').map((e) => [e.type, e.key])).toEqual([
      ['error', 'a'],
      ['timeout', 'b'],
    ]);
  });

  it('resolves undefined for an Observable work that completes without a value, in a synchronous and an asynchronous store', async () => {
    const empty = () => new Observable<number>((subscriber) => subscriber.complete());
    for (const store of [new MemoryStore(100), toStampedeStore(new Keyv())]) {
      const { coalescer } = engine(store);
      await expect(Promise.resolve(coalescer.value('k', empty, policy))).resolves.toBeUndefined();
      expect(coalescer.stats().stored).toBe(0);
    }
  });

  it('answers the leader once its write is known, when a store reads at once but writes later', async () => {
    const store = new SyncReadSlowWriteStore();
    const { coalescer } = engine(store);
    let answered = false;
    const leader = Promise.resolve(coalescer.value('k', () => Promise.resolve('v'), policy)).then((value) => {
      answered = true;
      return value;
    });
    await flush();
    expect(store.writes).toHaveLength(1);
    expect(answered).toBe(false);
    store.writes[0].resolve();
    expect(await leader).toBe('v');
    expect(store.inner.get('k')?.v).toBe('v');
  });

  it('answers a synchronous work once its write is known too, when the store writes later', async () => {
    const store = new SyncReadSlowWriteStore();
    const { coalescer } = engine(store);
    const full = coalescer.run('full', () => 7, policy);
    const fast = coalescer.value('fast', () => 7, policy);
    expect(full).toBeInstanceOf(Promise);
    expect(fast).toBeInstanceOf(Promise);
    store.writes.forEach((write) => write.resolve());
    expect(await fast).toBe(7);
    expect(store.inner.get('fast')?.v).toBe(7);
  });

  it('answers a synchronous Observable work at once, as the full path does, with its last value', () => {
    const { coalescer } = engine();
    expect(coalescer.value('k', () => of(1, 2), policy)).toBe(2);
    expect(coalescer.value('none', () => of(1), { ttl: 0 })).toBe(1);
    expect(coalescer.run('full', () => of(1, 2), policy)).toMatchObject({ value: 2, outcome: 'miss' });
  });

  it('runs a caller beyond maxInFlight on its own, as the full path does', async () => {
    const { coalescer, types } = engine(new MemoryStore(100), { maxInFlight: 1 });
    const gate = deferred<string>();
    const first = coalescer.value('a', () => gate.promise, policy);
    const second = coalescer.value('b', () => Promise.resolve('own'), policy);
    gate.resolve('v');
    expect(await Promise.all([first, second])).toEqual(['v', 'own']);
    expect(types().slice(0, 2)).toEqual(['miss', 'bypass']);
  });

  it('lets callers of a key whose result was not shareable through at once (hit-for-miss)', async () => {
    const { coalescer, events } = engine();
    const unshareable: RunPolicy<string> = {
      ttl: TTL,
      shareable: (value) => value !== 'private',
      uncacheableTtl: 60_000,
    };
    expect(await coalescer.value('k', () => Promise.resolve('private'), unshareable)).toBe('private');
    expect(await coalescer.value('k', () => Promise.resolve('private'), unshareable)).toBe('private');
    expect(events.map((e) => [e.type, e.reason])).toEqual([
      ['miss', undefined],
      ['bypass', 'uncacheable'],
    ]);
  });
});
