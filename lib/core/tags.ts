import { StoredEntry } from './store';

/**
 * When each tag was last invalidated. An entry whose work started at or
 * before the invalidation of one of its tags is dead: invalidating a tag is
 * O(1) and needs no index of keys. Times older than the longest time any
 * entry can live are pruned, so the map stays bounded.
 */
export class TagClock {
  private readonly invalidatedAt = new Map<string, number>();
  private longestLife = 0;

  constructor(private readonly now: () => number) {}

  /** Notes how long stored entries may live, for pruning. */
  noteLife(ms: number): void {
    if (ms > this.longestLife) this.longestLife = ms;
  }

  invalidate(tags: readonly string[]): void {
    const now = this.now();
    for (const tag of tags) this.invalidatedAt.set(tag, now);
    this.prune(now);
  }

  /** False if a tag of `entry` was invalidated after its work started. */
  isValid(entry: StoredEntry): boolean {
    if (!entry.g || this.invalidatedAt.size === 0) return true;
    const started = entry.t ?? 0;
    for (const tag of entry.g) {
      const at = this.invalidatedAt.get(tag);
      if (at !== undefined && at >= started) return false;
    }
    return true;
  }

  get size(): number {
    return this.invalidatedAt.size;
  }

  private prune(now: number): void {
    for (const [tag, at] of this.invalidatedAt) {
      if (at < now - this.longestLife) this.invalidatedAt.delete(tag);
    }
  }
}

/** What the engine asks of a tag clock: the in-process `TagClock`, or the Redis tier's, shared by every instance. */
export type TagIndex = Pick<TagClock, 'invalidate' | 'isValid' | 'noteLife'>;
