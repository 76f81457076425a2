import { lastValueFrom } from 'rxjs';
import { Coalescer } from '../../lib/core/coalescer';
import { MemoryStore } from '../../lib/core/memory-store';
import { StampedeTimeoutError } from '../../lib/core/deadline';

import { StampedeStore } from '../../lib/core/store';
import { deferred, flush } from '../helpers/deferred';
import { SlowWriteStore } from '../helpers/stores';

const logger = { warn: () => undefined, log: () => undefined };

/** An async store whose writes finish when the test says so. */
describe('Coalescer hardening', () => {
  afterEach(() => jest.useRealTimers());

  it('bounds a caller that ran its own call (over maxWaiters) by the same timeout', async () => {
    jest.useFakeTimers();
    const coalescer = new Coalescer({ store: new MemoryStore(10), logger, maxWaiters: 1 });
    const never = () => new Promise<never>(() => undefined);
    const leader = lastValueFrom(coalescer.run$('k', never, { ttl: 0, timeout: 20 }));
    const own = lastValueFrom(coalescer.run$('k', never, { ttl: 0, timeout: 20 }));
    const settled = Promise.allSettled([leader, own]);
    jest.advanceTimersByTime(20);
    const [a, b] = await settled;
    expect(a).toMatchObject({ status: 'rejected', reason: expect.any(StampedeTimeoutError) });
    expect(b).toMatchObject({ status: 'rejected', reason: expect.any(StampedeTimeoutError) });
  });

  it('lands an invalidation after a store write still in progress, so the old value does not come back', async () => {
    const store = new SlowWriteStore(undefined, { asyncReads: true });
    const coalescer = new Coalescer({ store, logger });
    const answer = lastValueFrom(coalescer.run$('k', () => 'old', { ttl: 10_000 }));
    await flush();
    expect(store.writes).toHaveLength(1);
    const invalidated = coalescer.invalidate('k');
    store.writes.shift()!.resolve();
    await invalidated;
    expect((await answer).value).toBe('old');
    expect(store.inner.get('k')).toBeUndefined();
  });

  it('with strict, rejects an invalidation the store failed, instead of answering false', async () => {
    const failing: StampedeStore = {
      get: () => undefined,
      set: () => undefined,
      delete: () => Promise.reject(new Error('store down')),
    };
    const coalescer = new Coalescer({ store: failing, logger });
    await expect(Promise.resolve(coalescer.invalidate('k', true))).rejects.toThrow('store down');
    await expect(Promise.resolve(coalescer.invalidate('k'))).resolves.toBe(false);
  });

  it('treats a stored value that fails the policy’s isValid as a miss', async () => {
    const store = new MemoryStore(10);
    store.set('k', { v: { broken: true }, e: Date.now() + 10_000 }, 10_000);
    const coalescer = new Coalescer({ store, logger });
    const gate = deferred<string>();
    const lookup = lastValueFrom(
      coalescer.run$('k', () => gate.promise, { ttl: 10_000, isValid: (v) => typeof v === 'string' }),
    );
    gate.resolve('fresh');
    expect(await lookup).toMatchObject({ value: 'fresh', outcome: 'miss' });
  });
});
