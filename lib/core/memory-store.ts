import { STAMPEDE_STORE, StampedeStore, StoredEntry } from './store';

/**
 * The default store: in-process, synchronous, bounded to `maxEntries` with
 * least-recently-used eviction. A `Map` keeps insertion order, so moving a key
 * to the end on every hit makes the first key the least recently used one.
 * Expired entries go when they are read or when they reach the front.
 */
export class MemoryStore implements StampedeStore {
  readonly [STAMPEDE_STORE] = true;
  private readonly entries = new Map<string, StoredEntry>();

  constructor(
    readonly maxEntries: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): StoredEntry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.e <= this.now()) return undefined;
    this.entries.set(key, entry);
    return entry;
  }

  set(key: string, entry: StoredEntry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value as string);
    }
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
  }
}
