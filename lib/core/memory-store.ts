import { STAMPEDE_STORE, StampedeStore, StoredEntry } from './store';

/**
 * The default store: in-process, synchronous, bounded to `maxEntries` with
 * least-recently-used eviction. A `Map` keeps insertion order, so moving a key
 * to the end on every hit makes the first key the least recently used one.
 * Entries past the TTL they were set with go when they are read or when they
 * reach the front.
 *
 * @example
 * ```ts
 * // Exported as StampedeMemoryStore: a bound of your own, shared with a test.
 * const store = new StampedeMemoryStore(50_000);
 * StampedeModule.forRoot({ store });
 * ```
 */
export class MemoryStore implements StampedeStore {
  readonly [STAMPEDE_STORE] = true;
  // `until` is when the store drops it: the TTL it was set with, which covers
  // the stale windows, not only the entry's freshness.
  private readonly entries = new Map<string, { entry: StoredEntry; until: number; touched: number }>();
  // Re-inserting a key into a large Map on every hit costs microseconds in V8:
  // a hit moves its key to the back only once it has left the newest quarter,
  // so eviction is least-recently-used to within a quarter of maxEntries.
  private tick = 0;
  private readonly touchEvery: number;
  // Eviction walks one live iterator instead of asking `keys().next()` each
  // time: a Map keeps deleted slots until it rehashes, and a fresh iterator
  // steps over every one of them (in a full store: thousands per write).
  // Every key behind it has been evicted, so its next key is the oldest.
  private oldest?: Iterator<string>;

  constructor(
    readonly maxEntries: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.touchEvery = maxEntries >> 2;
  }

  /** Answers synchronously: the coalescer serves its hits without an `await`. */
  readonly synchronous = true;

  get size(): number {
    return this.entries.size;
  }

  get(key: string): StoredEntry | undefined {
    const held = this.entries.get(key);
    if (held === undefined) return undefined;
    if (held.until <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    if (this.tick - held.touched > this.touchEvery) {
      this.entries.delete(key);
      this.entries.set(key, held);
      held.touched = ++this.tick;
    }
    return held.entry;
  }

  getMany(keys: readonly string[]): (StoredEntry | undefined)[] {
    return keys.map((key) => this.get(key));
  }

  /** Keeps `entry` for `ttl` ms (default: until it stops being fresh). */
  set(key: string, entry: StoredEntry, ttl?: number): void {
    this.entries.delete(key);
    this.entries.set(key, { entry, until: ttl === undefined ? entry.e : this.now() + ttl, touched: ++this.tick });
    while (this.entries.size > this.maxEntries) this.evictOldest();
  }

  private evictOldest(): void {
    let next = this.oldest?.next();
    if (next === undefined || next.done) {
      // An iterator that reached the end stays there; the keys added since are all newer.
      this.oldest = this.entries.keys();
      next = this.oldest.next();
    }
    this.entries.delete(next.value as string);
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  deletePrefix(prefix: string): number {
    let deleted = 0;
    for (const key of this.entries.keys()) {
      if (key.startsWith(prefix)) {
        this.entries.delete(key);
        deleted++;
      }
    }
    return deleted;
  }

  clear(): void {
    this.entries.clear();
    this.oldest = undefined;
  }
}
