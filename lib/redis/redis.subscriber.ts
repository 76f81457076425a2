import { promiseDeadline } from '../core/deadline';
import { RedisKeys } from './redis.keys';
import { RedisClientLike } from './redis.options';
import { ResubscribeCheck } from './redis.resubscribe-check';
import { SUBSCRIBED, type ShardedWakes } from './redis.shard-wakes';

type Listener = (message: string) => void;

/**
 * The pub/sub connection of an instance (a subscribed Redis connection can
 * do nothing else). It is subscribed once to the invalidation channel and,
 * with `redis.wake: 'pattern'`, to the pattern of every per-key wake-up
 * channel (`<prefix>wake:*`; classic pub/sub, which a Redis Cluster
 * broadcasts to every node), and hands each message to the local listeners
 * of its key, so waiting on a key costs no round trip. With `'sharded'`, the
 * channels of the keys listened to are subscribed by `ShardedWakes` on a
 * cluster connection of its own instead. Messages can be lost (e.g. while
 * reconnecting): waiters poll as well, and `onResubscribed` (this
 * connection only: it carries the invalidations) tells the L1 tier to
 * forget what it may have missed.
 *
 * @example
 * ```ts
 * const subscriber = new RedisSubscriber(client.duplicate(), new RedisKeys('stampede:'));
 * await subscriber.start();
 * const stop = subscriber.listen('GET /prices', (message) => console.log('holder done:', message));
 * ```
 */
export class RedisSubscriber {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly invalidationListeners = new Set<Listener>();
  private readonly wakePattern: string;
  readonly invalidationChannel: string;
  private subscribing?: Promise<void>;
  private subscribed = false;
  private readonly onReady = () => {
    // A connection that came back may have missed messages while it was away (on a cluster its
    // node client may be new, its SUBSCRIBE not sent yet: the probe says when it is).
    if (this.subscribed) {
      this.resubscribed();
      this.check?.lost();
    }
    void this.subscribe();
  };
  private readonly resubscribedListeners = new Set<() => void>();
  // Cluster, Sentinel: node-redis resubscribes a pub/sub connection that came back without a 'ready'.
  private readonly check?: ResubscribeCheck;
  // At the start of a round, L1 is dropped unless Redis is away (then it holds what the outage
  // computed, and the rest of the cluster cannot invalidate either); what was missed meanwhile is
  // dropped once this instance hears its probe, proof that it hears again.
  private readonly onLost = () => {
    if (this.subscribed && this.check?.lost() && !this.outage()) this.resubscribed();
  };

  constructor(
    readonly client: RedisClientLike,
    private readonly keys: RedisKeys,
    /** With `redis.wake: 'sharded'`: the per-key subscriptions (closed with this). */
    readonly shards?: ShardedWakes,
    /** True while Redis is unreachable (the tier's connection says). */
    private readonly outage: () => boolean = () => false,
  ) {
    this.wakePattern = keys.wakePattern;
    this.invalidationChannel = keys.invalidation;
    // Errors of this connection are the main connection's to report (same server); without a
    // listener node-redis would crash the process on the first one.
    client.on('error', () => undefined);
    client.on('ready', this.onReady);
    if (client.resubscribesSilently) {
      this.check = new ResubscribeCheck(client, this.invalidationChannel, () => this.resubscribed());
      client.on('pubsub-lost', this.onLost);
    }
  }

  /** True once the subscriptions are in place (and, sharded, the wake-up connection is up). */
  get isSubscribed(): boolean {
    return this.subscribed && (this.shards?.isReady ?? true);
  }

  /** Connects (if needed) and subscribes; resolves when subscribed, rejects if it could not. */
  async start(): Promise<void> {
    const sharded = this.shards?.start();
    sharded?.catch(() => undefined); // awaited below, unless the connection fails first
    if (!this.client.isOpen) await this.client.connect();
    await Promise.all([this.subscribe(), sharded]);
    if (!this.subscribed) throw new Error('could not subscribe');
  }

  /**
   * Calls `listener` with every wake-up message of `key` until the returned
   * function is called. Sharded: also with `'subscribed'` once the key's
   * channel is (a wake-up sent before was not heard), and at once if the
   * channel, already subscribed, heard one after `since` (epoch ms).
   */
  listen(key: string, listener: Listener, since?: number): () => void {
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    if (set.size === 1) this.shards?.hold(this.keys.wake(key));
    if (since !== undefined && this.shards?.heardSince(this.keys.wake(key), since)) {
      queueMicrotask(() => set.has(listener) && listener(SUBSCRIBED));
    }
    return () => {
      if (!set.delete(listener) || set.size > 0 || this.listeners.get(key) !== set) return;
      this.listeners.delete(key);
      this.shards?.release(this.keys.wake(key));
    };
  }

  /** Hands a wake-up message of `channel` to the local listeners of its key. */
  readonly wake = (channel: string, message: string): void => {
    const key = this.keys.wakeKey(channel);
    const listeners = key === undefined ? undefined : this.listeners.get(key);
    if (listeners) for (const listener of [...listeners]) listener(message);
  };

  /** Calls `listener` with every message on the invalidation channel. */
  onInvalidation(listener: Listener): void {
    this.invalidationListeners.add(listener);
  }

  /** Calls `listener` whenever the connection came back after a loss (messages may have been missed). */
  onResubscribed(listener: () => void): void {
    this.resubscribedListeners.add(listener);
  }

  private resubscribed(): void {
    for (const listener of this.resubscribedListeners) listener();
  }

  /** Number of keys with local listeners (for tests and leak checks). */
  get listenedKeys(): number {
    return this.listeners.size;
  }

  private subscribe(): Promise<void> {
    if (this.subscribed || !this.client.isReady) return Promise.resolve();
    this.subscribing ??= Promise.all([
      // Sharded: the pattern would hear nothing (SPUBLISH reaches shard subscribers only).
      this.shards
        ? undefined
        : this.client.pSubscribe(this.wakePattern, (message, channel) => this.wake(channel, message)),
      this.client.subscribe(this.invalidationChannel, (message) => {
        if (this.check?.heard(message)) return;
        for (const listener of this.invalidationListeners) listener(message);
      }),
    ]).then(
      () => {
        // node-redis keeps the listeners and subscribes again by itself after a reconnection.
        this.subscribed = true;
        this.subscribing = undefined;
      },
      () => {
        this.subscribing = undefined;
      },
    );
    return this.subscribing;
  }

  /** Closes the connection (it is always the tier's own). */
  async close(): Promise<void> {
    this.client.off('ready', this.onReady);
    this.client.off('pubsub-lost', this.onLost);
    this.check?.close();
    this.listeners.clear();
    await this.shards?.close();
    if (!this.client.isOpen) return;
    try {
      await promiseDeadline(this.client.close(), 1_000, () => undefined, { resolve: true });
    } finally {
      if (this.client.isOpen) this.client.destroy();
    }
  }
}
