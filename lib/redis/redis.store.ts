import { randomUUID } from 'node:crypto';
import { MemoryStore } from '../core/memory-store';
import { MaybePromise, STAMPEDE_STORE, StampedeStore, StoredEntry } from '../core/store';
import { decodeEntry, encodeEntry, lastUse } from './redis.codec';
import { RedisConnection } from './redis.connection';
import { Fill, PendingFills } from './redis.fills';
import { InvalidationMessage, parseInvalidation } from './redis.invalidation';
import { DEFAULT_MAX_VALUE_BYTES } from './redis.options';
import { RedisKeys } from './redis.keys';
import { unlinkMatching } from './redis.scan';
import { RetryQueue } from './redis.retry';
import { READ, READ_MANY, asText, bySlot } from './redis.reads';
import { RedisSubscriber } from './redis.subscriber';

/** Invalidations kept for replay at most; beyond, one delete of everything replaces them. */
const MAX_REPLAYS = 10_000;

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
  /** Entries kept in process at most (L1 and what is cached during an outage). Default 10 000. */
  maxEntries?: number;
  /** Bytes one value may take in Redis; bigger ones are not written, and not read. Default 8 MiB. */
  maxValueBytes?: number;
  /** Carries invalidations to the other instances' in-process copies. */
  subscriber?: RedisSubscriber;
}

/**
 * A `StampedeStore` in Redis (node-redis v5). Entries are JSON with the types
 * JSON would lose tagged (Buffer, Uint8Array, Date, BigInt, Map, Set), under
 * `<keyPrefix>v:{<tag>}<key>` (the tag, a hash of the key, keeps the value, lease
 * and wake-up channel of a key in one Redis Cluster slot), expiring by `PX`. An entry read back has its times
 * moved to the reader's clock by comparing the writer's expected expiry with
 * Redis's remaining TTL, so instances' clocks need not agree. What cannot be
 * read back (garbage, another program's data, a key of another type, a value
 * over `maxValueBytes`) is a miss. It never throws: a call that fails (Redis
 * down, slow, restarted) is a miss or a no-op, and the outage is logged once
 * by its `RedisConnection`.
 *
 * In process, one LRU (`maxEntries`) holds the L1 copies (with `l1Ttl`, never
 * past the entry's own expiry) and, while Redis is unreachable, what this
 * instance computed, for its full time: an outage costs one origin call per
 * key per instance, not one per request. When Redis answers again every
 * in-process copy is dropped (it may have been invalidated meanwhile) and the
 * invalidations this instance could not send are replayed, last one per key.
 * `delete` / `deletePrefix` / `set` reach every instance's copies by pub/sub.
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
  /** The in-process copies: L1, and what was cached while Redis was unreachable. */
  readonly local: MemoryStore;
  /** This instance, as named in its invalidation messages. */
  readonly instance = randomUUID();
  readonly maxValueBytes: number;
  /** Reads, writes and lease flights in progress, which an invalidation keeps out of the in-process copies. */
  readonly fills: PendingFills;
  private readonly l1Ttl: number;
  private readonly replays = new RetryQueue(MAX_REPLAYS, () => ['p:', () => this.sendPrefix('')]);

  constructor(
    readonly connection: RedisConnection,
    options: RedisStoreOptions = {},
  ) {
    this.keys = new RedisKeys(options.keyPrefix ?? 'stampede:');
    this.l1Ttl = options.l1Ttl ?? 0;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.local = new MemoryStore(options.maxEntries ?? 10_000);
    this.fills = new PendingFills(this.local);
    connection.preload(READ);
    connection.preload(READ_MANY);
    connection.onBack(() => this.rejoin());
    options.subscriber?.onInvalidation((message) => this.forget(message));
    // Messages may have been missed while the subscription was away.
    options.subscriber?.onResubscribed(() => this.fills.dropAll());
  }

  /** Invalidations waiting for Redis to answer again. */
  get pendingReplays(): number {
    return this.replays.size;
  }

  get(key: string): MaybePromise<StoredEntry | undefined> {
    const near = this.local.get(key);
    if (near) return near;
    return this.read(key);
  }

  /** Reads `key` from Redis (not the in-process copies); `undefined` for a miss, garbage or a failure. */
  async read(key: string): Promise<StoredEntry | undefined> {
    let reply: unknown;
    const sentAt = Date.now();
    const fill = this.fills.begin(key);
    try {
      reply = await this.connection.run<unknown>(READ, [this.keys.value(key)], [String(this.maxValueBytes)]);
    } catch {
      return undefined;
    } finally {
      this.fills.end(key, fill);
    }
    if (!Array.isArray(reply)) return undefined;
    return this.accept(key, asText(reply[0]), Number(reply[1]), sentAt, fill);
  }

  /** `get` for many keys: the in-process copies first, the rest from Redis in one script call. */
  getMany(keys: readonly string[]): MaybePromise<(StoredEntry | undefined)[]> {
    const found = keys.map((key) => this.local.get(key));
    const far = keys.filter((_, i) => found[i] === undefined);
    if (far.length === 0) return found;
    return this.readMany(far).then((entries) => {
      let next = 0;
      return found.map((entry) => entry ?? entries[next++]);
    });
  }

  private async readMany(keys: string[]): Promise<(StoredEntry | undefined)[]> {
    if (!this.connection.isCluster) return this.readSlot(keys);
    // A script may only touch keys of one slot: one call per slot, all at once.
    const groups = bySlot(keys, (key) => this.keys.value(key));
    const read = await Promise.all(groups.map((group) => this.readSlot(group)));
    const found = new Map<string, StoredEntry | undefined>();
    groups.forEach((group, g) => group.forEach((key, i) => found.set(key, read[g][i])));
    return keys.map((key) => found.get(key));
  }

  /** Reads `keys` (of one slot on a cluster) in one script call. */
  private async readSlot(keys: string[]): Promise<(StoredEntry | undefined)[]> {
    let reply: unknown;
    const sentAt = Date.now();
    const fills = keys.map((key) => this.fills.begin(key));
    try {
      reply = await this.connection.run<unknown>(
        READ_MANY,
        keys.map((key) => this.keys.value(key)),
        [String(this.maxValueBytes)],
      );
    } catch {
      return keys.map(() => undefined);
    } finally {
      keys.forEach((key, i) => this.fills.end(key, fills[i]));
    }
    if (!Array.isArray(reply)) return keys.map(() => undefined);
    return keys.map((key, i) => this.accept(key, asText(reply[2 * i]), Number(reply[2 * i + 1]), sentAt, fills[i]));
  }

  /**
   * Turns what Redis holds for `key` (and its `PTTL`, measured after
   * `sentAt`) into an entry, keeping it in L1 unless `fill` (begun before
   * the call) was dropped; `undefined` if it cannot be read back.
   */
  accept(key: string, text: string | undefined, pttl: number, sentAt: number, fill?: Fill): StoredEntry | undefined {
    const entry = decodeEntry(text, pttl, sentAt);
    if (entry) this.remember(key, entry, fill);
    return entry;
  }

  /**
   * Keeps `entry` in L1, if there is one, for `l1Ttl` at most (never past the
   * entry's last use); not when `fill` was dropped (the key was invalidated since it began).
   */
  remember(key: string, entry: StoredEntry, fill?: Fill): void {
    if (this.l1Ttl <= 0 || fill?.dropped) return;
    const now = Date.now();
    const ttl = Math.min(lastUse(entry), now + this.l1Ttl) - now;
    if (ttl > 0) this.local.set(key, entry, ttl);
  }

  /**
   * Keeps `entry` in process for as long as it is of use, if Redis is still
   * unreachable in the outage `epoch` (`connection.epoch` when the work
   * began): a value computed before Redis came back is not kept after, nor
   * one whose `fill` was dropped (invalidated while it was computed).
   */
  keepDuringOutage(key: string, entry: StoredEntry, epoch: number, fill?: Fill): void {
    if (!this.connection.isDown || this.connection.epoch !== epoch || fill?.dropped) return;
    const ttl = lastUse(entry) - Date.now();
    if (ttl > 0) this.local.set(key, entry, ttl);
  }

  /** The JSON of `entry` for Redis, or `undefined` when it cannot be stored there (circular, too big). */
  encode(entry: StoredEntry, expiresAt: number): string | undefined {
    let text: string;
    try {
      text = encodeEntry(entry, expiresAt);
    } catch {
      return undefined; // A value JSON cannot hold (circular) is not stored.
    }
    // A UTF-16 unit takes 3 bytes at most: count the bytes only when it could matter.
    if (text.length * 3 > this.maxValueBytes && Buffer.byteLength(text) > this.maxValueBytes) return undefined;
    return text;
  }

  async set(key: string, entry: StoredEntry, ttl: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttl));
    const text = this.encode(entry, Date.now() + px);
    if (text === undefined) {
      // Not storable in Redis (circular, too big): at least no older value answers in its place.
      await this.delete(key);
      return false;
    }
    // Reads of the key in flight hold the value this write replaces.
    this.fills.drop(key);
    const epoch = this.connection.epoch;
    const fill = this.fills.begin(key);
    try {
      await this.connection.command(['SET', this.keys.value(key), text, 'PX', String(px)]);
    } catch {
      this.keepDuringOutage(key, entry, epoch, fill);
      return false;
    } finally {
      this.fills.end(key, fill);
    }
    this.remember(key, entry, fill);
    await this.publish({ k: key, o: this.instance }).catch(() => undefined);
    return true;
  }

  /**
   * Deletes the value of `key`, and its lease if one is held: a holder still
   * computing it cannot write the value it computed before the delete. While
   * Redis is unreachable it applies in process at once, and in Redis when it
   * answers again.
   */
  async delete(key: string): Promise<boolean> {
    this.fills.drop(key);
    const id = `k:${key}`;
    try {
      return (await this.sendKey(key)) > 0;
    } catch {
      this.replays.add(id, () => this.sendKey(key));
      return false;
    }
  }

  /** `delete` for every key that starts with `prefix` (`SCAN` + `UNLINK`); resolves with the values deleted. */
  async deletePrefix(prefix: string): Promise<number> {
    this.fills.dropPrefix(prefix);
    try {
      return await this.sendPrefix(prefix);
    } catch {
      this.replays.add(`p:${prefix}`, () => this.sendPrefix(prefix));
      return 0;
    }
  }

  /** Redis answers again: what is held in process may be outdated, and what could not be sent is sent now. */
  private rejoin(): void {
    this.fills.dropAll();
    void this.replays.flush();
  }

  private async sendKey(key: string): Promise<number> {
    const deleted = await this.connection.command<number>(['DEL', this.keys.value(key), this.keys.lock(key)]);
    // Read from Redis before it ran the delete (a replay, after an outage): not kept.
    this.fills.drop(key);
    await this.publish({ k: key, o: this.instance });
    return deleted;
  }

  private async sendPrefix(prefix: string): Promise<number> {
    const deleted = await unlinkMatching(this.connection, this.keys.valuesMatching(prefix));
    await unlinkMatching(this.connection, this.keys.locksMatching(prefix));
    this.fills.dropPrefix(prefix);
    await this.publish({ p: prefix, o: this.instance });
    return deleted;
  }

  /** Tells the other instances' in-process copies what changed. */
  private async publish(message: InvalidationMessage): Promise<void> {
    await this.connection.command(['PUBLISH', this.keys.invalidation, JSON.stringify(message)]);
  }

  private forget(text: string): void {
    const message = parseInvalidation(text);
    if (!message || message.o === this.instance) return;
    if ('k' in message) this.fills.drop(message.k);
    else if ('p' in message) this.fills.dropPrefix(message.p);
  }
}
