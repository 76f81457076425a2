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

/** Characters of a hash tag's content (8 hex digits). */
const TAG_LENGTH = 8;

/**
 * The hash tag of a cache key: 8 hex digits of its FNV-1a hash. Derived from
 * the key, never taken from it, so braces in a key cannot pick its slot.
 *
 * @example
 * ```ts
 * slotTag('GET /prices'); // e.g. '3f1c9a07', the same on every instance
 * ```
 */
export function slotTag(key: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(TAG_LENGTH, '0');
}

/**
 * Where the Redis tier keeps things, all under one prefix. Values and leases
 * have their own namespaces (`v:`, `lock:`), so no key a caller picks can
 * land on another key's lease. Each name carries the key's hash tag
 * (`{<8 hex>}`, the first braces of the name: the prefix has none), so the
 * value, lease and wake-up channel of one key share one Redis Cluster slot.
 *
 * @example
 * ```ts
 * const keys = new RedisKeys('stampede:');
 * keys.value('GET /prices'); // 'stampede:v:{<tag>}GET /prices'
 * keys.lock('GET /prices'); // 'stampede:lock:{<tag>}GET /prices'
 * keys.wake('GET /prices'); // 'stampede:wake:{<tag>}GET /prices' (a pub/sub channel)
 * keys.tags; // 'stampede:tags' (when each tag was last invalidated)
 * ```
 */
export class RedisKeys {
  constructor(readonly prefix: string) {
    // A brace of the prefix would come first in every name and pick one slot for all keys.
    if (/[{}]/.test(prefix)) throw new Error(`a Redis key prefix must not contain braces: ${JSON.stringify(prefix)}`);
  }

  /** The value of `key`. */
  value(key: string): string {
    return `${this.prefix}v:{${slotTag(key)}}${key}`;
  }

  /** The lease of `key`: who is computing it now. */
  lock(key: string): string {
    return `${this.prefix}lock:{${slotTag(key)}}${key}`;
  }

  /** The channel the holder of `key` publishes on when it is done. */
  wake(key: string): string {
    return `${this.prefix}wake:{${slotTag(key)}}${key}`;
  }

  /** The cache key of a wake-up `channel` (`undefined` if it is not one). */
  wakeKey(channel: string): string | undefined {
    const start = this.prefix.length + 'wake:'.length;
    if (!channel.startsWith(`${this.prefix}wake:{`) || channel[start + TAG_LENGTH + 1] !== '}') return undefined;
    return channel.slice(start + TAG_LENGTH + 2);
  }

  /** The `SCAN MATCH` pattern of the values of every key starting with `prefix`. */
  valuesMatching(prefix: string): string {
    return `${escapeGlob(this.prefix)}v:{${'?'.repeat(TAG_LENGTH)}}${escapeGlob(prefix)}*`;
  }

  /** The `SCAN MATCH` pattern of the leases of every key starting with `prefix`. */
  locksMatching(prefix: string): string {
    return `${escapeGlob(this.prefix)}lock:{${'?'.repeat(TAG_LENGTH)}}${escapeGlob(prefix)}*`;
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
