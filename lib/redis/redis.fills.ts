import { MemoryStore } from '../core/memory-store';

/** One write to the in-process copies still to come; `dropped` once its key was invalidated meanwhile. */
export interface Fill {
  dropped: boolean;
}

/**
 * The in-process copies (L1, and what an outage keeps) and what may still
 * land in them after an invalidation of its key: a read of Redis whose reply
 * is on its way, a write or a lease flight in progress. Dropping a key (a
 * prefix, everything) drops its copy and marks those fills, and a marked fill
 * is not made: a reply sent before the invalidation must not bring the old
 * value back. Holds only what is in progress, so it is bounded by the calls
 * in flight.
 */
export class PendingFills {
  private readonly byKey = new Map<string, Set<Fill>>();

  constructor(private readonly local: MemoryStore) {}

  /** A fill of `key` from now on; `end` it when it is done, made or not. */
  begin(key: string): Fill {
    const fill: Fill = { dropped: false };
    let fills = this.byKey.get(key);
    if (fills === undefined) this.byKey.set(key, (fills = new Set()));
    fills.add(fill);
    return fill;
  }

  end(key: string, fill: Fill): void {
    const fills = this.byKey.get(key);
    if (fills !== undefined && fills.delete(fill) && fills.size === 0) this.byKey.delete(key);
  }

  drop(key: string): void {
    this.local.delete(key);
    const fills = this.byKey.get(key);
    if (fills !== undefined) for (const fill of fills) fill.dropped = true;
  }

  dropPrefix(prefix: string): void {
    this.local.deletePrefix(prefix);
    for (const [key, fills] of this.byKey) if (key.startsWith(prefix)) for (const fill of fills) fill.dropped = true;
  }

  dropAll(): void {
    this.local.clear();
    for (const fills of this.byKey.values()) for (const fill of fills) fill.dropped = true;
  }

  /** Fills in progress (for tests). */
  get size(): number {
    let size = 0;
    for (const fills of this.byKey.values()) size += fills.size;
    return size;
  }
}
