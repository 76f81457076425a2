import { CoreContext } from './context';
import { makeEntry } from './freshness';
import { Decision } from './policy';
import { StoredEntry, isPromiseLike } from './store';

/**
 * The write path: a result and its decision become an entry, handed to the
 * store (or to the coordinator, which writes it fenced by its lease). Writes
 * in progress are kept per key, so an invalidation lands after them, not
 * before (a late write would bring the value back).
 */
export class Writes {
  private readonly pending = new Map<string, PromiseLike<unknown>>();

  constructor(private readonly core: CoreContext) {}

  /** The entry for `value`, whose work started at `startedAt`; notes its life for the tag clock. */
  entryFor<T>(value: T, decision: Decision, startedAt: number): { entry: StoredEntry<T>; storeTtl: number } {
    const now = this.core.now();
    const made = makeEntry(value, now, startedAt, decision.store!, decision.tags);
    // Tags judge an entry by when its work started: keep invalidations that long.
    if (made.entry.g) this.core.tags.noteLife(now - startedAt + made.storeTtl);
    return made;
  }

  /** Stores `value` under `key`; resolves (or returns) whether the store accepted it. */
  write<T>(key: string, value: T, decision: Decision, startedAt: number): boolean | Promise<boolean> {
    const { entry, storeTtl } = this.entryFor(value, decision, startedAt);
    const ttl = decision.store!.ttl;
    const written = this.core.store.set(key, entry, storeTtl);
    if (!isPromiseLike(written)) {
      if (written) this.core.events.stored(key, ttl);
      return written;
    }
    const settled: Promise<boolean> = Promise.resolve(written).then((accepted) => {
      if (this.pending.get(key) === settled) this.pending.delete(key);
      if (accepted) this.core.events.stored(key, ttl);
      return accepted;
    });
    this.pending.set(key, settled);
    return settled;
  }

  /** The writes in progress for keys that start with `prefix`. */
  pendingWithPrefix(prefix: string): PromiseLike<unknown>[] {
    const found: PromiseLike<unknown>[] = [];
    for (const [key, write] of this.pending) if (key.startsWith(prefix)) found.push(write);
    return found;
  }

  /** The write in progress for `key`, if any. */
  pendingFor(key: string): PromiseLike<unknown> | undefined {
    return this.pending.get(key);
  }
}
