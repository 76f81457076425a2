import { MAX_TIMER_MS } from '../core/deadline';
import type { Duration } from '../core/duration';
import { StampedeOptionsError } from '../errors';
import type { RedisClusterLike } from './redis.cluster';
import { isClusterClient } from './redis.cluster';
import {
  RedisClusterOptions,
  RedisSentinelOptions,
  checkCluster,
  checkOneServer,
  checkSentinel,
} from './redis.servers';

export type { RedisClusterOptions, RedisSentinelOptions } from './redis.servers';

/** What every node-redis v5 client the tier takes has (a client, a cluster, a Sentinel): its lifecycle, events and pub/sub. */
export interface RedisConnectionLike {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): unknown;
  subscribe(channels: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
  pSubscribe(pattern: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
}

/**
 * The part of a node-redis v5 client (`createClient()` from `redis` or
 * `@redis/client`) the Redis tier uses. Structural, so the library's types
 * never import the optional `redis` package: any node-redis v5 client fits.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: RedisClientLike = await createClient({ url: 'redis://cache:6379' }).connect();
 * ```
 */
export interface RedisClientLike extends RedisConnectionLike {
  readonly isReady: boolean;
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T>;
  duplicate(): RedisClientLike;
  destroy(): void;
  /** A Redis Cluster's primaries (each a client of its own): where a `SCAN` must go one by one. */
  primaries?(): Promise<RedisClientLike[]>;
  /** The tier's own wrappers (Cluster, Sentinel) try again after a failed start: this ends that, connected or not. */
  stopRetrying?(): void;
  /** Its pub/sub connection may resubscribe without a 'ready' (Cluster, Sentinel): it emits 'pubsub-lost' at its drop. */
  readonly resubscribesSilently?: boolean;
  /** Sharded pub/sub (a `ClusterClient`): the channel is subscribed on the primary of its slot. */
  sSubscribe?(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
  sUnsubscribe?(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
}

/**
 * The `redis` option of `StampedeModule.forRoot()`: one origin call per key
 * across every instance sharing a Redis. Values are kept in Redis; a miss
 * takes a per-key lease, and the other instances wait for the holder's value
 * instead of calling the origin themselves.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ ttl: 30_000, redis: { url: process.env.REDIS_URL } })
 * // or with a client you manage (it is not closed on shutdown):
 * StampedeModule.forRoot({ redis: { client: myNodeRedisClient, keyPrefix: 'shop:' } })
 * ```
 */
export interface RedisOptions {
  /** `redis://` or `rediss://` URL; a client is created, connected and closed on shutdown. */
  url?: string;
  /**
   * A node-redis v5 client you created: `createClient()`, or `createCluster()`
   * for a Redis Cluster (told apart by its shape). Never closed by the module.
   */
  client?: RedisClientLike | RedisClusterLike;
  /** A Redis Cluster: a cluster client is created from these options, connected and closed on shutdown. */
  cluster?: RedisClusterOptions;
  /** A Sentinel-managed primary: a Sentinel client is created, connected and closed on shutdown. */
  sentinel?: RedisSentinelOptions;
  /**
   * Prefix of every Redis key and channel written (no braces: they would
   * pick the Redis Cluster slot of every key). Default `'stampede:'`. Give
   * each app version that changes the shape of cached values its own.
   */
  keyPrefix?: string;
  /**
   * Milliseconds a lease lasts: how long the other instances trust a holder
   * that stopped answering (crashed, partitioned) before one of them takes
   * over. Must exceed the time the work normally takes: a holder still
   * working when it expires may see a second execution start elsewhere
   * (its own write is then refused). Default 10 000.
   */
  leaseTtl?: Duration;
  /**
   * Milliseconds an instance waits for the holder's value before it runs the
   * work itself, without storing the result (as nginx's
   * `proxy_cache_lock_timeout`). Default 5000.
   */
  lockTimeout?: Duration;
  /**
   * Milliseconds values read from Redis are also kept in process (a small L1
   * tier, bounded by `maxEntries`), so hot keys are served without a round
   * trip. `invalidate` reaches every instance's L1 through Redis pub/sub.
   * Default 0 (off).
   */
  l1Ttl?: Duration;
  /**
   * Bytes one value may take in Redis (its JSON). A bigger value is shared
   * with the callers of the instance that computed it but not written, and
   * one found in Redis is not read (a miss, not an outage). Default 8 MiB.
   */
  maxValueBytes?: number;
  /**
   * How a lease holder wakes the instances waiting for its value.
   * `'pattern'` (default): classic pub/sub, which every instance hears
   * through one pattern subscription and a Redis Cluster broadcasts to every
   * node. `'sharded'`: on a Redis Cluster of Redis >= 7 only, sharded pub/sub
   * (`SPUBLISH` on the key's own slot, `SSUBSCRIBE` by the instances waiting),
   * so a wake-up stays on the node of its key. Give every instance the same:
   * instances of the other mode are not woken, they find the value by polling.
   */
  wake?: RedisWakeMode;
}

/**
 * How holders wake their waiters (see `RedisOptions.wake`).
 *
 * @example
 * ```ts
 * const wake: RedisWakeMode = 'sharded'; // on a Redis Cluster of Redis >= 7 only
 * StampedeModule.forRoot({ redis: { cluster: { rootNodes }, wake } });
 * ```
 */
export type RedisWakeMode = 'pattern' | 'sharded';

/**
 * `RedisOptions` after validation, with every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedRedisOptions = validateRedisOptions({ url: 'redis://cache:6379' });
 * ```
 */
export interface ResolvedRedisOptions {
  url?: string;
  client?: RedisClientLike | RedisClusterLike;
  cluster?: RedisClusterOptions;
  sentinel?: RedisSentinelOptions;
  keyPrefix: string;
  leaseTtl: number;
  lockTimeout: number;
  l1Ttl: number;
  maxValueBytes: number;
  wake: RedisWakeMode;
}

/** Defaults of the `redis` options. */
export const DEFAULT_REDIS_KEY_PREFIX = 'stampede:';
export const DEFAULT_LEASE_TTL = 10_000;
export const DEFAULT_LOCK_TIMEOUT = 5_000;
export const DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024;

const REDIS_KEYS = [
  'url',
  'client',
  'cluster',
  'sentinel',
  'keyPrefix',
  'leaseTtl',
  'lockTimeout',
  'l1Ttl',
  'maxValueBytes',
  'wake',
] as const;

function isClient(value: unknown): value is RedisClientLike | RedisClusterLike {
  const client = value as Partial<RedisClientLike> | null;
  return (
    client !== null &&
    typeof client === 'object' &&
    typeof client.sendCommand === 'function' &&
    typeof client.duplicate === 'function' &&
    typeof client.pSubscribe === 'function'
  );
}

function checkMilliseconds(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const bound = max === Number.MAX_SAFE_INTEGER ? '' : ` and <= ${max} (a Node timer's limit)`;
    throw new StampedeOptionsError(`redis.${name}`, value, `an integer number of milliseconds >= ${min}${bound}`);
  }
}

function requireRedisPackage(): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('redis');
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'MODULE_NOT_FOUND') throw error;
    const expected = 'the redis package installed (npm install redis)';
    throw new StampedeOptionsError('redis', '(an options object)', expected, 'StampedeModule.forRoot');
  }
}

/**
 * Validates the `redis` option and fills in its defaults; throws a
 * `StampedeOptionsError` naming the option (e.g. `redis.lockTimeout`).
 *
 * @example
 * ```ts
 * validateRedisOptions({ url: 'redis://localhost:6379' });
 * // => { url: 'redis://localhost:6379', keyPrefix: 'stampede:', leaseTtl: 10000, lockTimeout: 5000, l1Ttl: 0, maxValueBytes: 8388608, wake: 'pattern' }
 * validateRedisOptions({ lockTimeout: -1 }); // throws: invalid option "redis.lockTimeout"
 * ```
 */
export function validateRedisOptions(value: unknown): ResolvedRedisOptions {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StampedeOptionsError(
      'redis',
      value,
      'an options object ({ url }, { client }, { cluster } or { sentinel })',
    );
  }
  const given = value as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (!(REDIS_KEYS as readonly string[]).includes(name)) {
      throw new StampedeOptionsError(`redis.${name}`, given[name], `one of ${REDIS_KEYS.join(', ')}`);
    }
  }
  const { url, client, cluster, sentinel, keyPrefix, leaseTtl, lockTimeout, l1Ttl, maxValueBytes, wake } =
    given as RedisOptions;
  // `{ url: process.env.REDIS_URL }` with the variable unset must not quietly connect to localhost.
  const other = client ?? cluster ?? sentinel;
  if ('url' in (given as object) && url === undefined && other === undefined) {
    throw new StampedeOptionsError(
      'redis.url',
      undefined,
      'a redis:// or rediss:// URL (is the environment variable it comes from set?); omit it for localhost',
    );
  }
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw new StampedeOptionsError('redis.url', url, 'a redis:// or rediss:// URL');
  }
  if (client !== undefined && !isClient(client) && !isClusterClient(client)) {
    throw new StampedeOptionsError(
      'redis.client',
      client,
      'a node-redis v5 client (createClient() or createCluster())',
    );
  }
  // The module creates the client from the `redis` package (an optional peer): say so at bootstrap if it is absent.
  if (client === undefined) requireRedisPackage();
  if (url !== undefined && client !== undefined) {
    throw new StampedeOptionsError('redis.client', '(a client)', 'either redis.url or redis.client, not both');
  }
  checkOneServer(given);
  if (cluster !== undefined) checkCluster(cluster);
  if (sentinel !== undefined) checkSentinel(sentinel);
  if (keyPrefix !== undefined && (typeof keyPrefix !== 'string' || /[{}]/.test(keyPrefix))) {
    throw new StampedeOptionsError('redis.keyPrefix', keyPrefix, 'a string without { or } (they pick a cluster slot)');
  }
  if (leaseTtl !== undefined) checkMilliseconds('leaseTtl', leaseTtl, 1);
  if (lockTimeout !== undefined) checkMilliseconds('lockTimeout', lockTimeout, 1, MAX_TIMER_MS);
  if (l1Ttl !== undefined) checkMilliseconds('l1Ttl', l1Ttl, 0);
  if (
    maxValueBytes !== undefined &&
    (typeof maxValueBytes !== 'number' || !Number.isSafeInteger(maxValueBytes) || maxValueBytes < 1)
  ) {
    throw new StampedeOptionsError('redis.maxValueBytes', maxValueBytes, 'an integer number of bytes >= 1');
  }
  if (wake !== undefined) checkWake(wake, cluster !== undefined || isClusterClient(client));
  return {
    url,
    client,
    ...(cluster !== undefined && { cluster }),
    ...(sentinel !== undefined && { sentinel }),
    keyPrefix: keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX,
    // Checked above as numbers: the module's validation turned duration strings into milliseconds before.
    leaseTtl: (leaseTtl as number | undefined) ?? DEFAULT_LEASE_TTL,
    lockTimeout: (lockTimeout as number | undefined) ?? DEFAULT_LOCK_TIMEOUT,
    l1Ttl: (l1Ttl as number | undefined) ?? 0,
    maxValueBytes: maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES,
    wake: wake ?? 'pattern',
  };
}

/** `redis.wake`: one of the modes, and `'sharded'` only on a Redis Cluster (a single node or Sentinel has no shards). */
function checkWake(wake: unknown, onCluster: boolean): void {
  if (wake !== 'pattern' && wake !== 'sharded') {
    throw new StampedeOptionsError('redis.wake', wake, "'pattern' or 'sharded'");
  }
  if (wake === 'sharded' && !onCluster) {
    throw new StampedeOptionsError(
      'redis.wake',
      wake,
      "'pattern' (the default): 'sharded' needs a Redis Cluster (redis.cluster, or a createCluster() client)",
    );
  }
}
