import { MemoryStore } from '../../lib/core/memory-store';
import { StampedeStore, StoredEntry } from '../../lib/core/store';
import { Deferred, deferred } from './deferred';

/** A Keyv storage adapter over a Map that rejects every call while `failing` is set. */
export class FlakyAdapter {
  failing = false;
  private readonly map = new Map<string, unknown>();
  private async run<R>(operation: string, call: () => R): Promise<R> {
    if (this.failing) throw new Error(`adapter ${operation} down`);
    return call();
  }
  get(key: string) {
    return this.run('get', () => this.map.get(key));
  }
  set(key: string, value: unknown) {
    return this.run('set', () => void this.map.set(key, value));
  }
  delete(key: string) {
    return this.run('delete', () => this.map.delete(key));
  }
  clear() {
    return this.run('clear', () => this.map.clear());
  }
}

/**
 * A store whose writes wait until the test resolves them (`writes`, in
 * order); reads answer at once, synchronously or (with `asyncReads`) as
 * Promises, from an in-process store.
 */
export class SlowWriteStore implements StampedeStore {
  readonly inner: MemoryStore;
  readonly writes: Deferred<void>[] = [];

  constructor(
    now: () => number = () => Date.now(),
    private readonly options: { asyncReads?: boolean } = {},
  ) {
    this.inner = new MemoryStore(100, now);
  }
  get(key: string) {
    const entry = this.inner.get(key);
    return this.options.asyncReads ? Promise.resolve(entry) : entry;
  }
  async set(key: string, entry: StoredEntry) {
    const write = deferred<void>();
    this.writes.push(write);
    await write.promise;
    this.inner.set(key, entry);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}
