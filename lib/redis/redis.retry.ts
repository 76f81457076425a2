/** One call waiting for Redis to answer again. */
interface Pending {
  run: () => Promise<unknown>;
  /** Epoch ms after which it is of no use any more (e.g. the lease it releases expired). */
  until: number;
}

/**
 * Calls that failed to reach Redis and must not be lost (an invalidation,
 * the release of a lease), run again when Redis answers. One per id, the
 * last one added wins: invalidating a key twice during an outage replays one
 * delete. Bounded: past `max`, `overflow` decides (by default the oldest goes).
 *
 * @example
 * ```ts
 * const queue = new RetryQueue(10_000);
 * queue.add('k:GET /prices', () => store.delete('GET /prices'));
 * connection.onBack(() => void queue.flush());
 * ```
 */
export class RetryQueue {
  private readonly pending = new Map<string, Pending>();
  private flushing?: Promise<void>;
  private again = false;

  constructor(
    private readonly max: number,
    /** Called with the queue full: may replace what is pending by one call that covers it all. */
    private readonly overflow?: () => [string, () => Promise<unknown>],
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Keeps `run` until it succeeds (or `until`), replacing what was pending under `id`. */
  add(id: string, run: () => Promise<unknown>, until = Infinity): void {
    this.pending.delete(id);
    this.pending.set(id, { run, until });
    if (this.pending.size <= this.max) return;
    if (this.overflow) {
      const [coverId, cover] = this.overflow();
      this.pending.clear();
      this.pending.set(coverId, { run: cover, until: Infinity });
    } else {
      this.pending.delete(this.pending.keys().next().value as string);
    }
  }

  /**
   * Runs what is pending, oldest first, one at a time; stops at the first
   * failure (Redis went away again), which stays for the next flush.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      for (const [id, item] of [...this.pending]) {
        if (this.pending.get(id) !== item) continue;
        if (item.until <= Date.now()) {
          this.pending.delete(id);
          continue;
        }
        try {
          await item.run();
        } catch {
          return;
        }
        if (this.pending.get(id) === item) this.pending.delete(id);
      }
    } while (this.again);
  }
}
