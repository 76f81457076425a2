import { GuardedStore } from '../../lib/core/guarded-store';
import { MemoryStore } from '../../lib/core/memory-store';
import { MaybePromise, StampedeStore, StoredEntry } from '../../lib/core/store';
import { RecordingLogger } from '../helpers/logger';

const T0 = 1_700_000_000_000;
const entry: StoredEntry = { v: 'value', e: T0 + 1000 };

/** A store over a MemoryStore that fails on purpose while `failure` is set. */
class SwitchableStore implements StampedeStore {
  failure: 'none' | 'throw' | 'reject' | 'throw-string' = 'none';
  readonly inner = new MemoryStore(10, () => T0);
  private run<R>(call: () => R): MaybePromise<R> {
    switch (this.failure) {
      case 'none':
        return call();
      case 'throw':
        throw new Error('ECONNREFUSED');
      case 'throw-string':
        throw 'plain string failure';
      case 'reject':
        return Promise.reject(new Error('timeout'));
    }
  }
  get(key: string) {
    return this.run(() => this.inner.get(key));
  }
  set(key: string, value: StoredEntry) {
    return this.run(() => this.inner.set(key, value));
  }
  delete(key: string) {
    return this.run(() => this.inner.delete(key));
  }
  deletePrefix(prefix: string) {
    return this.run(() => this.inner.deletePrefix(prefix));
  }
}

/** An async store without deletePrefix. */
class AsyncStore implements StampedeStore {
  private readonly inner = new Map<string, StoredEntry>();
  async get(key: string) {
    return this.inner.get(key);
  }
  async set(key: string, value: StoredEntry) {
    this.inner.set(key, value);
    return 'set-result';
  }
  async delete(key: string) {
    return this.inner.delete(key);
  }
}

describe('GuardedStore', () => {
  let inner: SwitchableStore;
  let logger: RecordingLogger;
  let guarded: GuardedStore;

  beforeEach(() => {
    inner = new SwitchableStore();
    logger = new RecordingLogger();
    guarded = new GuardedStore(inner, logger);
  });

  describe('while the store works', () => {
    it('passes synchronous answers through synchronously', () => {
      guarded.set('k', entry, 1000);
      expect(guarded.get('k')).toEqual(entry);
      expect(guarded.deletePrefix!('k')).toBe(1);
      expect(guarded.delete('k')).toBe(false);
      expect(guarded.isDown).toBe(false);
      expect(logger.warnings).toEqual([]);
    });

    it('passes asynchronous answers through as Promises', async () => {
      const store = new GuardedStore(new AsyncStore(), logger);
      const written = store.set('k', entry, 1000);
      expect(written).toBeInstanceOf(Promise);
      // Accepted: the store answered without failing (a store's own `false` would be a refusal).
      expect(await written).toBe(true);
      expect(await store.get('k')).toEqual(entry);
      expect(await store.delete('k')).toBe(true);
      expect(await store.get('k')).toBeUndefined();
    });

    it('has no deletePrefix when the store has none', () => {
      expect(new GuardedStore(new AsyncStore(), logger).deletePrefix).toBeUndefined();
    });

    it('calls the store deletePrefix as a method of the store', () => {
      const store = new MemoryStore(10, () => T0);
      store.set('a:1', entry);
      store.set('b:1', entry);
      const { deletePrefix } = new GuardedStore(store, logger);
      expect(deletePrefix!('a:')).toBe(1);
      expect(store.size).toBe(1);
    });
  });

  describe('when the store throws', () => {
    beforeEach(() => {
      inner.failure = 'throw';
    });

    it('answers each operation with its "nothing" value instead of throwing', () => {
      expect(guarded.get('k')).toBeUndefined();
      expect(guarded.set('k', entry, 1000)).toBe(false);
      expect(guarded.delete('k')).toBe(false);
      expect(guarded.deletePrefix!('k')).toBe(0);
      expect(guarded.isDown).toBe(true);
    });

    it('warns once per outage, naming the operation and the reason', () => {
      guarded.get('k');
      guarded.set('k', entry, 1000);
      guarded.delete('k');
      guarded.get('k');
      expect(logger.warnings).toHaveLength(1);
      expect(logger.warnings[0]).toContain('store get failed (ECONNREFUSED)');
    });

    it('reports a non-Error failure as text', () => {
      inner.failure = 'throw-string';
      guarded.set('k', entry, 1000);
      expect(logger.warnings[0]).toContain('store set failed (plain string failure)');
    });
  });

  describe('when the store rejects', () => {
    beforeEach(() => {
      inner.failure = 'reject';
    });

    it('resolves each operation with its "nothing" value instead of rejecting', async () => {
      await expect(guarded.get('k')).resolves.toBeUndefined();
      await expect(guarded.set('k', entry, 1000)).resolves.toBe(false);
      await expect(guarded.delete('k')).resolves.toBe(false);
      await expect(guarded.deletePrefix!('k')).resolves.toBe(0);
      expect(guarded.isDown).toBe(true);
    });

    it('warns once for many rejected calls', async () => {
      await Promise.all([guarded.get('a'), guarded.get('b'), guarded.set('c', entry, 1000)]);
      expect(logger.warnings).toHaveLength(1);
      expect(logger.warnings[0]).toContain('(timeout)');
    });
  });

  describe('recovery', () => {
    it('logs once when the store answers again, and warns again on the next outage', async () => {
      inner.failure = 'throw';
      guarded.get('k');
      guarded.get('k');
      inner.failure = 'none';
      guarded.set('k', entry, 1000);
      expect(guarded.get('k')).toEqual(entry);
      expect(logger.logs).toHaveLength(1);
      expect(guarded.isDown).toBe(false);

      inner.failure = 'reject';
      await guarded.get('k');
      expect(logger.warnings).toHaveLength(2);
      inner.failure = 'none';
      guarded.get('k');
      guarded.get('k');
      expect(logger.logs).toHaveLength(2);
    });

    it('does not log recovery when the store never failed', () => {
      guarded.get('k');
      guarded.set('k', entry, 1000);
      expect(logger.logs).toEqual([]);
    });
  });
});
