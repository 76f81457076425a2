/**
 * Keys marked until a time, bounded (the oldest marks go first). The engine
 * keeps two: keys whose last result could not be shared (hit-for-miss, as
 * Varnish's `uncacheable_ttl`: their callers run their own work at once
 * instead of queueing behind a leader whose answer they cannot use), and keys
 * whose last call failed (fail-safe throttle: their stale value stands in
 * until the mark ends, instead of every caller retrying a failing origin).
 */
export class KeyMarks {
  private readonly until = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.until.size;
  }

  mark(key: string, ms: number, now: number): void {
    if (ms <= 0) return;
    this.until.delete(key);
    this.until.set(key, now + ms);
    if (this.until.size > this.maxEntries) this.until.delete(this.until.keys().next().value as string);
  }

  has(key: string, now: number): boolean {
    if (this.until.size === 0) return false;
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.until.delete(key);
    return false;
  }

  forget(key: string): void {
    this.until.delete(key);
  }

  forgetPrefix(prefix: string): void {
    for (const key of this.until.keys()) if (key.startsWith(prefix)) this.until.delete(key);
  }
}
