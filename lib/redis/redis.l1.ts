import { StoredEntry } from '../core/store';

/**
 * The optional in-process tier in front of Redis: entries kept until a time
 * of their own (`l1Ttl`, never past the entry's last use), at most
 * `maxEntries`, least recently used first out. Synchronous, so a hit in it
 * costs no `await`.
 *
 * @example
 * ```ts
 * const l1 = new L1Cache(10_000);
 * l1.set('k', { v: 1, e: Date.now() + 5_000 }, Date.now() + 1_000);
 * l1.get('k'); // { v: 1, e: ... } for one second
 * ```
 */
export class L1Cache {
  private readonly entries = new Map<string, { entry: StoredEntry; until: number }>();

  constructor(readonly maxEntries: number) {}

  get(key: string): StoredEntry | undefined {
    const held = this.entries.get(key);
    if (held === undefined) return undefined;
    this.entries.delete(key);
    if (held.until <= Date.now()) return undefined;
    this.entries.set(key, held);
    return held.entry;
  }

  /** Keeps `entry` until `until` (epoch ms). */
  set(key: string, entry: StoredEntry, until: number): void {
    this.entries.delete(key);
    this.entries.set(key, { entry, until });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  deletePrefix(prefix: string): void {
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
