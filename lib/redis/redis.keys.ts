/**
 * Escapes the glob characters of a Redis `PSUBSCRIBE` / `SCAN MATCH` pattern.
 *
 * @example
 * ```ts
 * `${escapeGlob('GET /a*')}*`; // 'GET /a\\**': keys starting with the literal 'GET /a*'
 * ```
 */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Where the Redis tier keeps things, all under one prefix. Values and leases
 * have their own namespaces (`v:`, `lock:`), so no key a caller picks can
 * land on another key's lease.
 *
 * @example
 * ```ts
 * const keys = new RedisKeys('stampede:');
 * keys.value('GET /prices'); // 'stampede:v:GET /prices'
 * keys.lock('GET /prices'); // 'stampede:lock:GET /prices'
 * keys.wake('GET /prices'); // 'stampede:wake:GET /prices' (a pub/sub channel)
 * keys.tags; // 'stampede:tags' (when each tag was last invalidated)
 * ```
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** The value of `key`. */
  value(key: string): string {
    return `${this.prefix}v:${key}`;
  }

  /** The lease of `key`: who is computing it now. */
  lock(key: string): string {
    return `${this.prefix}lock:${key}`;
  }

  /** The channel the holder of `key` publishes on when it is done. */
  wake(key: string): string {
    return `${this.prefix}wake:${key}`;
  }

  /** The `PSUBSCRIBE` pattern of every wake-up channel. */
  get wakePattern(): string {
    return `${escapeGlob(this.prefix)}wake:*`;
  }

  /** The channel invalidations are published on (for the other instances' in-process copies). */
  get invalidation(): string {
    return `${this.prefix}invalidate`;
  }

  /** The sorted set of tag invalidation times (member: tag, score: epoch ms on Redis's clock). */
  get tags(): string {
    return `${this.prefix}tags`;
  }
}
