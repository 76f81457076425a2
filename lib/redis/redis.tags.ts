import { StoredEntry } from '../core/store';
import { LuaScript, RedisConnection } from './redis.connection';
import { parseInvalidation } from './redis.invalidation';
import { RedisKeys } from './redis.keys';
import { RetryQueue } from './redis.retry';
import { RedisSubscriber } from './redis.subscriber';

/** Milliseconds invalidation times are kept at least (longer if entries live longer). */
export const TAG_KEEP = 24 * 60 * 60 * 1_000;

/** Tag invalidations kept for replay at most; beyond, `dropAll` replaces them. */
const MAX_REPLAYS = 10_000;

/** Milliseconds after which a clock offset is measured anew even if the new sample is less precise. */
const OFFSET_AGE = 60_000;

/** Milliseconds between two clock samples in the background (clocks drift). */
const CALIBRATE_EVERY = 30_000;

/** Clock samples taken at most per calibration, stopping at one this precise (ms). */
const SAMPLES = 5;
const PRECISE = 2;

// Redis's clock decides when a tag was invalidated, whoever asks. ARGV[1] is the time (Redis
// clock) of an invalidation replayed after an outage, or 0 for now; a later time kept wins (GT).
// KEYS: tags. ARGV: at, keep ms, channel, instance, tag...
const INVALIDATE = new LuaScript(`
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local at = tonumber(ARGV[1])
if at <= 0 or at > ms then at = ms end
local tags = {}
for i = 5, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', at, ARGV[i])
  tags[#tags + 1] = ARGV[i]
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', ms - tonumber(ARGV[2])))
local message = '{"g":' .. cjson.encode(tags) .. ',"a":' .. string.format('%d', at) .. ',"o":' .. cjson.encode(ARGV[4]) .. '}'
redis.call('PUBLISH', ARGV[3], message)
return {string.format('%d', at), string.format('%d', ms)}
`);

// Every invalidation still kept, and Redis's clock. KEYS: tags. ARGV: keep ms.
const LOAD = new LuaScript(`
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return {string.format('%d', ms), redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%d', ms - tonumber(ARGV[1])), '+inf', 'WITHSCORES')}
`);

// Redis's clock where the tag times are kept (on a cluster, the node of that key's slot). KEYS: tags.
const CLOCK = new LuaScript(`return redis.call('TIME')`);

/**
 * Tag invalidation shared by every instance on one Redis: the same three
 * calls as the core's in-process `TagClock`, so the coalescer uses either.
 *
 * When each tag was last invalidated lives in Redis (a sorted set, Redis's
 * own clock, `ZADD GT`: the later time wins). Each instance keeps a copy in
 * process, so `isValid` stays synchronous; an invalidation reaches the
 * other copies by pub/sub within a round trip, and every copy is read again
 * from Redis after a reconnection (a message may have been missed). An
 * invalidation made while Redis is unreachable applies here at once and is
 * sent when Redis answers again, with its original time.
 *
 * Clocks: an entry's start time `t` is on the reader's clock (the codec moves
 * it there by Redis's TTL). Redis's times are moved to this clock by the
 * offset `TIME` shows, measured with its round trip; an entry that started
 * within that uncertainty (+1 ms) after an invalidation counts as before it:
 * skew costs at worst one extra origin call, never a value served past its
 * invalidation.
 *
 * @example
 * ```ts
 * const tags = new RedisTags(connection, new RedisKeys('stampede:'), subscriber, 'instance-1');
 * new Coalescer({ store, coordinator, logger, tags });
 * tags.invalidate(['products']); // every instance drops entries tagged 'products'
 * ```
 */
export class RedisTags {
  /** Per tag, epoch ms on this process's clock. */
  private readonly invalidatedAt = new Map<string, number>();
  private longestLife = 0;
  /** Redis's clock minus this one's, and half the round trip it was measured with. */
  private offset = 0;
  private offsetError = Infinity;
  private offsetMeasuredAt = 0;
  /**
   * Set when Redis answers again (after an outage or a resubscription) until
   * the tag times are read again: others may have invalidated tags meanwhile,
   * so no tagged entry is valid until this copy knows.
   */
  private rereading = false;
  /** Counts the times the copy became suspect: a read begun before the last one does not clear `rereading`. */
  private suspected = 0;
  private reading?: Promise<void>;
  private readonly replays: RetryQueue;
  private readonly calibrator: ReturnType<typeof setInterval>;

  constructor(
    private readonly connection: RedisConnection,
    private readonly keys: RedisKeys,
    subscriber: RedisSubscriber | undefined,
    private readonly instance: string,
    /**
     * Deletes every value (in Redis and in every instance's copies): what
     * replaces the pending tag invalidations when there are too many to keep.
     * Without it the oldest pending one is dropped.
     */
    dropAll?: () => Promise<unknown>,
  ) {
    // Deleting every value is a safe stand-in for any number of tag invalidations: whatever
    // they would have rejected is gone, and what is computed afterwards started after them.
    this.replays = new RetryQueue(MAX_REPLAYS, dropAll && (() => ['*', dropAll]));
    connection.preload(INVALIDATE);
    connection.preload(LOAD);
    connection.preload(CLOCK);
    connection.onBack(() => {
      this.suspect();
      void this.rejoin();
    });
    subscriber?.onInvalidation((message) => this.hear(message));
    subscriber?.onResubscribed(() => {
      this.suspect();
      this.reread(true);
    });
    this.calibrator = setInterval(() => void this.calibrate(1), CALIBRATE_EVERY);
    this.calibrator.unref();
  }

  /** Stops the background clock samples. */
  close(): void {
    clearInterval(this.calibrator);
  }

  /** Tags whose invalidation time this instance knows. */
  get size(): number {
    return this.invalidatedAt.size;
  }

  /** Tag invalidations waiting for Redis to answer again. */
  get pendingReplays(): number {
    return this.replays.size;
  }

  /** Notes how long stored entries may live: invalidation times are kept that long (at least `TAG_KEEP`). */
  noteLife(ms: number): void {
    if (ms > this.longestLife) this.longestLife = ms;
  }

  /** Invalidates `tags` here at once, and everywhere through Redis (now, or when it answers again). */
  invalidate(tags: readonly string[]): void {
    if (tags.length === 0) return;
    const now = Date.now();
    for (const tag of tags) this.merge(tag, now);
    this.prune(now);
    void this.send([...tags], 0, now, true).catch(() => undefined);
  }

  /** False if a tag of `entry` was invalidated after (or about when) its work started. */
  isValid(entry: StoredEntry): boolean {
    if (!entry.g) return true;
    // Until the times are read again after a reconnection (while Redis is down, what is kept here holds).
    if (this.rereading && !this.connection.isDown) {
      // A read that failed with Redis up is tried again, or tagged entries would stay invalid.
      if (this.reading === undefined) this.reread();
      return false;
    }
    if (this.invalidatedAt.size === 0) return true;
    const started = entry.t ?? 0;
    // Not capped: a poorly measured offset costs extra origin calls, never an old value answered.
    const margin = (this.offsetError === Infinity ? 0 : this.offsetError) + 1;
    for (const tag of entry.g) {
      const at = this.invalidatedAt.get(tag);
      if (at !== undefined && at + margin >= started) return false;
    }
    return true;
  }

  /** Reads every invalidation time kept in Redis into the copy here (and measures the clock offset). */
  async load(): Promise<void> {
    await this.calibrate(SAMPLES);
    const sent = Date.now();
    const reply = await this.connection.run<[string, string[]]>(LOAD, [this.keys.tags], [String(this.keep)]);
    this.measure(Number(reply[0]), sent, Date.now());
    const pairs = reply[1];
    for (let i = 0; i + 1 < pairs.length; i += 2) this.merge(String(pairs[i]), Number(pairs[i + 1]) - this.offset);
  }

  /** Milliseconds this clock may be off Redis's, as measured (`Infinity` before any measure). */
  get clockUncertainty(): number {
    return this.offsetError;
  }

  /** Takes up to `samples` readings of Redis's clock (`TIME` on the node of the tag times), stopping at a precise one; never rejects. */
  private async calibrate(samples: number): Promise<void> {
    for (let i = 0; i < samples; i++) {
      const sent = Date.now();
      let reply: [string, string];
      try {
        reply = await this.connection.run<[string, string]>(CLOCK, [this.keys.tags], []);
      } catch {
        return;
      }
      const received = Date.now();
      // The sample is kept when it is the most precise so far (or the last one is old).
      this.measure(Number(reply[0]) * 1_000 + Number(reply[1]) / 1_000, sent, received);
      if ((received - sent) / 2 + 1 <= PRECISE) return;
    }
  }

  private get keep(): number {
    return Math.max(this.longestLife, TAG_KEEP);
  }

  private async rejoin(): Promise<void> {
    await this.replays.flush();
    this.reread(true);
  }

  /** Others may have invalidated tags unheard: no tagged entry is valid until the times are read again. */
  private suspect(): void {
    this.suspected++;
    this.rereading = true;
  }

  /**
   * `load`, never rejecting; `fresh`: a new read even if one is in progress
   * (it may have begun before what made the copy suspect). Only a read begun
   * after the last suspicion clears it.
   */
  private reread(fresh = false): void {
    if (this.reading !== undefined && !fresh) return;
    const suspected = this.suspected;
    const reading: Promise<void> = this.load()
      .then(() => {
        if (this.suspected === suspected) this.rereading = false;
      })
      .catch(() => undefined)
      .finally(() => {
        if (this.reading === reading) this.reading = undefined;
      });
    this.reading = reading;
  }

  /**
   * Records the invalidation of `tags` in Redis at `at` (Redis's clock; 0:
   * now) and publishes it. `localAt`: when it happened on this clock, for a
   * replay if Redis fails and `queue` is set.
   */
  private async send(tags: string[], at: number, localAt: number, queue: boolean): Promise<void> {
    const sent = Date.now();
    let reply: [string, string];
    try {
      reply = await this.connection.run<[string, string]>(
        INVALIDATE,
        [this.keys.tags],
        [String(at), String(this.keep), this.keys.invalidation, this.instance, ...tags],
      );
    } catch (error) {
      if (queue) {
        // Its original time on Redis's clock if the offset is known, else whenever it is replayed (later: safe).
        const redisAt = this.offsetError === Infinity ? 0 : Math.round(localAt + this.offset);
        for (const tag of tags) this.replays.add(tag, () => this.send([tag], redisAt, localAt, false));
      }
      throw error;
    }
    this.measure(Number(reply[1]), sent, Date.now());
    for (const tag of tags) this.merge(tag, Number(reply[0]) - this.offset);
  }

  private hear(text: string): void {
    const message = parseInvalidation(text);
    if (!message || !('g' in message) || message.o === this.instance) return;
    for (const tag of message.g) this.merge(tag, message.a - this.offset);
  }

  private merge(tag: string, at: number): void {
    const known = this.invalidatedAt.get(tag);
    if (known === undefined || at > known) this.invalidatedAt.set(tag, at);
  }

  /** Takes a sample of Redis's clock: kept if more precise than the last one, or that one is old. */
  private measure(redisMs: number, sent: number, received: number): void {
    if (!Number.isFinite(redisMs)) return;
    const error = (received - sent) / 2 + 1; // + 1: TIME is floored to the millisecond
    if (error > this.offsetError && received - this.offsetMeasuredAt < OFFSET_AGE) return;
    this.offset = redisMs - (sent + received) / 2;
    this.offsetError = error;
    this.offsetMeasuredAt = received;
  }

  private prune(now: number): void {
    const oldest = now - this.keep;
    for (const [tag, at] of this.invalidatedAt) if (at < oldest) this.invalidatedAt.delete(tag);
  }
}
