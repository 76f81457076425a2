import { promiseDeadline } from '../core/deadline';
import { CoreLogger } from '../core/guarded-store';
import { ClusterClient, isClusterClient } from './redis.cluster';
import { COMMAND_TIMEOUT, RedisConnection } from './redis.connection';
import { RedisKeys } from './redis.keys';
import { RedisLease } from './redis.lease';
import { RedisClientLike, ResolvedRedisOptions } from './redis.options';
import { RedisSentinelLike, SentinelClient } from './redis.sentinel';
import { ShardedWakes } from './redis.shard-wakes';
import { RedisStore } from './redis.store';
import { RedisSubscriber } from './redis.subscriber';
import { RedisTags } from './redis.tags';

/** Milliseconds a connection attempt may take. */
const CONNECT_TIMEOUT = 2_000;

/** Milliseconds the app's start waits for Redis; then it starts anyway and Redis joins when it answers. */
export const STARTUP_WAIT = 3_000;

/** Milliseconds `close` waits for pending commands before dropping the connection. */
const CLOSE_WAIT = 1_000;

/** Reconnects forever: quickly at first, then every 2 s at most, jittered so instances do not reconnect in step. */
function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries, 2_000) + Math.floor(Math.random() * 100);
}

/**
 * What the tier needs from the module.
 *
 * @example
 * ```ts
 * new RedisTier(options, { logger: new Logger('Stampede'), maxEntries: 10_000 });
 * ```
 */
export interface RedisTierDeps {
  logger: CoreLogger;
  /** Entries kept in process at most (L1, and during an outage): the module's `maxEntries`. */
  maxEntries: number;
  /** Milliseconds a Redis call may take (the module's `storeTimeout`); 0 or absent: 1 s. */
  commandTimeout?: number;
}

type ClusterClientArg = ConstructorParameters<typeof ClusterClient>[0];

/** `promise`, or `undefined` after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return promiseDeadline<T, undefined>(promise, ms, () => undefined, { resolve: true });
}

/**
 * Everything the `redis` option sets up: the connection (the user's client,
 * or one made from `url`, `cluster` or `sentinel`; a cluster client works
 * through a `ClusterClient`, a Sentinel one through a `SentinelClient`), a
 * pub/sub connection (and with `wake: 'sharded'` a cluster connection for the
 * wake-ups, `ShardedWakes`), the `RedisStore`, the `RedisLease` and the
 * shared tag clock `RedisTags`. Closes on shutdown only the connections it made.
 *
 * @example
 * ```ts
 * const tier = new RedisTier(validateRedisOptions({ url: 'redis://localhost:6379' }), {
 *   logger: new Logger('Stampede'),
 *   maxEntries: 10_000,
 * });
 * await tier.ready();
 * const coalescer = new Coalescer({ store: tier.store, coordinator: tier.lease, tags: tier.tags, logger });
 * // on shutdown:
 * await tier.close();
 * ```
 */
export class RedisTier {
  readonly connection: RedisConnection;
  readonly subscriber: RedisSubscriber;
  readonly store: RedisStore;
  readonly lease: RedisLease;
  readonly tags: RedisTags;
  private readonly client: RedisClientLike;
  private readonly ownsClient: boolean;
  private closed = false;

  constructor(options: ResolvedRedisOptions, deps: RedisTierDeps) {
    this.ownsClient = options.client === undefined;
    const given = options.client;
    this.client =
      given === undefined ? RedisTier.createClient(options) : isClusterClient(given) ? new ClusterClient(given) : given;
    const keys = new RedisKeys(options.keyPrefix);
    this.connection = new RedisConnection(this.client, deps.logger, deps.commandTimeout || COMMAND_TIMEOUT);
    // Sharded wake-ups: a cluster connection of their own (its node connections come and go with the keys waited on).
    const shards =
      options.wake === 'sharded' && this.client instanceof ClusterClient
        ? new ShardedWakes(this.client.duplicate(), (channel, message) => this.subscriber.wake(channel, message))
        : undefined;
    this.subscriber = new RedisSubscriber(this.client.duplicate(), keys, shards, () => this.connection.isDown);
    this.store = new RedisStore(this.connection, {
      keyPrefix: options.keyPrefix,
      l1Ttl: options.l1Ttl,
      maxEntries: deps.maxEntries,
      maxValueBytes: options.maxValueBytes,
      subscriber: this.subscriber,
    });
    this.tags = new RedisTags(this.connection, keys, this.subscriber, this.store.instance, () =>
      this.store.deletePrefix(''),
    );
    this.lease = new RedisLease(this.store, this.subscriber, {
      leaseTtl: options.leaseTtl,
      lockTimeout: options.lockTimeout,
      tags: this.tags,
    });
  }

  /**
   * A node-redis client that fails fast while disconnected (no offline queue:
   * a request must not wait for a reconnection) and reconnects forever.
   */
  private static createClient(options: ResolvedRedisOptions): RedisClientLike {
    // Loaded only here: an app without the `redis` option never loads the `redis` package.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const redis = require('redis') as typeof import('redis');
    const node = {
      disableOfflineQueue: true,
      socket: { connectTimeout: CONNECT_TIMEOUT, reconnectStrategy: reconnectDelay },
    };
    let client: RedisClientLike;
    if (options.cluster) {
      const { defaults, ...cluster } = options.cluster as { defaults?: object };
      const made = redis.createCluster({ ...cluster, defaults: { ...node, ...defaults } } as never);
      client = new ClusterClient(made as unknown as ClusterClientArg);
    } else if (options.sentinel) {
      const { nodeClientOptions, sentinelClientOptions, ...sentinel } = options.sentinel as Record<string, object>;
      const settings = {
        ...sentinel,
        nodeClientOptions: { ...node, ...nodeClientOptions },
        sentinelClientOptions: { socket: node.socket, ...sentinelClientOptions },
      };
      client = new SentinelClient(
        (overrides) => redis.createSentinel({ ...settings, ...overrides } as never) as unknown as RedisSentinelLike,
      );
    } else {
      client = redis.createClient({ url: options.url, ...node }) as unknown as RedisClientLike;
    }
    // Stays after the connection's own listener is detached at close: an unheard 'error' would crash the process.
    client.on('error', () => undefined);
    return client;
  }

  /**
   * Connects (a client passed in that is not open yet is connected too) and
   * subscribes, waiting `wait` ms at most: resolves `true` when Redis is
   * ready, `false` when the app should start without it for now (requests are
   * then served per instance until it answers; the outage is logged).
   */
  async ready(wait = STARTUP_WAIT): Promise<boolean> {
    const connecting = this.client.isOpen ? Promise.resolve() : this.client.connect();
    // Keeps retrying in the background after `wait`; a failure is reported through 'error' events.
    const connected = connecting.then(
      () => true,
      () => false,
    );
    const subscribed = this.subscriber.start().then(
      () => true,
      () => false,
    );
    // The tag invalidations made before this instance started.
    const loaded = connected.then(
      (ok) =>
        ok &&
        this.tags.load().then(
          () => true,
          () => false,
        ),
    );
    const both = Promise.all([loaded, subscribed]).then(([a, b]) => a && b && this.client.isReady);
    const ok = (await within(both, wait)) ?? false;
    if (!ok && !this.connection.isDown) {
      // Makes the outage visible (once) even if no request reaches Redis for a while.
      this.connection.command(['PING']).catch(() => undefined);
    }
    return ok;
  }

  /** Closes the pub/sub connection and, if the tier made it, the main connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tags.close();
    this.connection.detach();
    // A connection that never came up is not closed below, but may still be trying to.
    this.client.stopRetrying?.();
    this.subscriber.client.stopRetrying?.();
    await this.subscriber.close();
    if (!this.ownsClient || !this.client.isOpen) return;
    try {
      await within(this.client.close(), CLOSE_WAIT);
    } catch {
      // Closing a broken connection may fail; it is destroyed below.
    } finally {
      if (this.client.isOpen) this.client.destroy();
    }
  }
}
