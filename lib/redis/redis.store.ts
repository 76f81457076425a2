import { randomUUID } from 'node:crypto';
import { MaybePromise, STAMPEDE_STORE, StampedeStore, StoredEntry } from '../core/store';
import { decodeEntry, encodeEntry } from './redis.codec';
import { LuaScript, RedisConnection } from './redis.connection';
import { L1Cache } from './redis.l1';
import { RedisKeys, escapeGlob } from './redis.keys';
import { RedisSubscriber } from './redis.subscriber';

/** Keys deleted per `UNLINK` and asked per `SCAN` step by `deletePrefix`. */
const SCAN_COUNT = 500;

// The value and its remaining time in one round trip: Redis's clock, not the writer's, says how fresh it is.
const READ = new LuaScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
`);

/**
 * Options of a `RedisStore`.
 *
 * @example
 * ```ts
 * new RedisStore(connection, { keyPrefix: 'shop:', l1Ttl: 1_000, subscriber });
 * ```
 */
export interface RedisStoreOptions {
  /** Prefix of every key. Default `'stampede:'`. */
  keyPrefix?: string;
  /** Milliseconds values are also kept in process; 0 (default): no L1. */
  l1Ttl?: number;
  /** Entries the L1 tier keeps at most. Default 10 000. */
  l1MaxEntries?: number;
  /** Required with `l1Ttl`: carries invalidations to the other instances' L1. */
  subscriber?: RedisSubscriber;
}

/** An invalidation message: a key or a prefix, and the instance that sent it (which has already applied it). */
type Invalidation = ({ k: string } | { p: string }) & { o: string };

/**
 * Epoch ms after which nothing in `entry` is of use: the last of its fresh,
 * stale and fallback windows.
 *
 * @example
 * ```ts
 * lastUse({ v: 1, e: 1_000, s: 5_000 }); // 5000
 * ```
 */
export function lastUse(entry: StoredEntry): number {
  return Math.max(entry.e, entry.s ?? 0, entry.f ?? 0);
}

/** A Redis reply, as node-redis gives it (a RESP3 client with a Buffer type mapping gives Buffers). */
function asText(reply: unknown): string | undefined {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString();
  return undefined;
}

/**
 * A `StampedeStore` in Redis (node-redis v5). Entries are JSON with the types
 * JSON would lose tagged (Buffer, Uint8Array, Date, BigInt, Map, Set), under
 * `<keyPrefix>v:<key>`, expiring by `PX`. An entry read back has its times
 * moved to the reader's clock by comparing the writer's expected expiry with
 * Redis's remaining TTL, so instances' clocks need not agree. What cannot be read
 * back (garbage, another program's data) is a miss. It never throws: a call
 * that fails (Redis down, slow, restarted) is a miss or a no-op, and the
 * outage is logged once by its `RedisConnection`.
 *
 * With `l1Ttl`, values read or written are also kept in process for that
 * long (never past their own expiry); `delete` / `deletePrefix` reach every
 * instance's L1 by pub/sub.
 *
 * @example
 * ```ts
 * const connection = new RedisConnection(await createClient({ url }).connect(), new Logger('Stampede'));
 * const store = new RedisStore(connection, { keyPrefix: 'shop:' });
 * StampedeModule.forRoot({ store }); // shared cache without the cross-instance lease
 * ```
 */
export class RedisStore implements StampedeStore {
  readonly [STAMPEDE_STORE] = true;
  readonly keys: RedisKeys;
  private readonly l1?: L1Cache;
  private readonly l1Ttl: number;
  private readonly subscriber?: RedisSubscriber;
  private readonly instance = randomUUID();

  constructor(
    readonly connection: RedisConnection,
    options: RedisStoreOptions = {},
  ) {
    this.keys = new RedisKeys(options.keyPrefix ?? 'stampede:');
    this.l1Ttl = options.l1Ttl ?? 0;
    this.subscriber = options.subscriber;
    if (this.l1Ttl > 0) {
      const l1 = new L1Cache(options.l1MaxEntries ?? 10_000);
      this.l1 = l1;
      this.subscriber?.onInvalidation((message) => this.forget(message));
      this.subscriber?.onResubscribed(() => l1.clear());
    }
  }

  get(key: string): MaybePromise<StoredEntry | undefined> {
    const near = this.l1?.get(key);
    if (near) return near;
    return this.read(key);
  }

  /** Reads `key` from Redis (not L1); `undefined` for a miss, garbage or a failure. */
  async read(key: string): Promise<StoredEntry | undefined> {
    let reply: unknown;
    try {
      reply = await this.connection.run<unknown>(READ, [this.keys.value(key)], []);
    } catch {
      return undefined;
    }
    if (!Array.isArray(reply)) return undefined;
    return this.accept(key, asText(reply[0]), Number(reply[1]));
  }

  /**
   * Turns what Redis holds for `key` (and its `PTTL`) into an entry, keeping
   * it in L1; `undefined` if it cannot be read back.
   */
  accept(key: string, text: string | undefined, pttl: number): StoredEntry | undefined {
    const entry = decodeEntry(text, pttl);
    if (entry) this.remember(key, entry);
    return entry;
  }

  /** Keeps `entry` in L1, if there is one, for `l1Ttl` at most (never past the entry's last use). */
  remember(key: string, entry: StoredEntry): void {
    if (!this.l1) return;
    this.l1.set(key, entry, Math.min(lastUse(entry), Date.now() + this.l1Ttl));
  }

  async set(key: string, entry: StoredEntry, ttl: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttl));
    let text: string;
    try {
      text = encodeEntry(entry, Date.now() + px);
    } catch {
      return false; // A value JSON cannot hold (circular) is not stored.
    }
    this.l1?.delete(key);
    try {
      await this.connection.command(['SET', this.keys.value(key), text, 'PX', String(px)]);
      this.remember(key, entry);
      await this.broadcast({ k: key, o: this.instance });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Deletes the value of `key`, and its lease if one is held: a holder still
   * computing it cannot write the value it computed before the delete.
   */
  async delete(key: string): Promise<boolean> {
    this.l1?.delete(key);
    try {
      const deleted = await this.connection.command<number>(['DEL', this.keys.value(key), this.keys.lock(key)]);
      await this.broadcast({ k: key, o: this.instance });
      return deleted > 0;
    } catch {
      return false;
    }
  }

  /** `delete` for every key that starts with `prefix` (`SCAN` + `UNLINK`); resolves with the values deleted. */
  async deletePrefix(prefix: string): Promise<number> {
    this.l1?.deletePrefix(prefix);
    try {
      const deleted = await this.unlinkMatching(`${escapeGlob(this.keys.value(prefix))}*`);
      await this.unlinkMatching(`${escapeGlob(this.keys.lock(prefix))}*`);
      await this.broadcast({ p: prefix, o: this.instance });
      return deleted;
    } catch {
      return 0;
    }
  }

  private async unlinkMatching(pattern: string): Promise<number> {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await this.connection.command<[string, string[]]>([
        'SCAN',
        cursor,
        'MATCH',
        pattern,
        'COUNT',
        String(SCAN_COUNT),
      ]);
      cursor = String(next);
      if (keys.length > 0) deleted += await this.connection.command<number>(['UNLINK', ...keys]);
    } while (cursor !== '0');
    return deleted;
  }

  /** Tells the other instances' L1 to drop what changed; without L1 there is nothing to tell. */
  private async broadcast(message: Invalidation): Promise<void> {
    if (!this.l1 || !this.subscriber) return;
    try {
      await this.connection.command(['PUBLISH', this.keys.invalidation, JSON.stringify(message)]);
    } catch {
      // Lost: the other instances' L1 copies live out their l1Ttl.
    }
  }

  private forget(message: string): void {
    let parsed: Partial<{ k: unknown; p: unknown; o: unknown }>;
    try {
      parsed = JSON.parse(message) as Partial<{ k: unknown; p: unknown; o: unknown }>;
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || parsed.o === this.instance) return;
    if (typeof parsed.k === 'string') this.l1?.delete(parsed.k);
    else if (typeof parsed.p === 'string') this.l1?.deletePrefix(parsed.p);
  }
}
