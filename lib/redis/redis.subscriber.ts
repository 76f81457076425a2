import { promiseDeadline } from '../core/deadline';
import { RedisKeys } from './redis.keys';
import { RedisClientLike } from './redis.options';

type Listener = (message: string) => void;

/**
 * The one pub/sub connection of an instance (a subscribed Redis connection
 * can do nothing else). It is subscribed once to the invalidation channel
 * (classic pub/sub: every instance hears it, a cluster broadcasts it) and,
 * on a single Redis, to the pattern of every per-key wake-up channel
 * (`<prefix>wake:*`), so waiting on a key costs no round trip. On a Redis
 * Cluster that has sharded pub/sub (Redis >= 7) a wake-up goes only to the
 * node of its key's slot (`SPUBLISH`): a key's channel is subscribed there
 * (`SSUBSCRIBE`) while this instance has waiters on it, and the waiters look
 * again once it is. Messages can be lost (e.g. while reconnecting): waiters
 * poll as well, and `onResubscribed` tells the L1 tier to forget what it may
 * have missed.
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
    // A connection that came back may have missed messages while it was away.
    if (this.subscribed) for (const listener of this.resubscribedListeners) listener();
    void this.subscribe();
  };
  private readonly resubscribedListeners = new Set<() => void>();
  /** Wake-ups by sharded pub/sub (decided when subscribing: a cluster whose nodes know `SPUBLISH`). */
  private shardedWakes = false;
  /** The sharded subscription of each key with waiters, while it may still be in progress. */
  private readonly shardSubscriptions = new Map<string, Promise<unknown>>();

  constructor(
    readonly client: RedisClientLike,
    private readonly keys: RedisKeys,
  ) {
    this.wakePattern = keys.wakePattern;
    this.invalidationChannel = keys.invalidation;
    // Errors of this connection are the main connection's to report (same server); without a
    // listener node-redis would crash the process on the first one.
    client.on('error', () => undefined);
    client.on('ready', this.onReady);
  }

  /** True once the subscriptions are in place. */
  get isSubscribed(): boolean {
    return this.subscribed;
  }

  /** Connects (if needed) and subscribes; resolves when subscribed, rejects if it could not. */
  async start(): Promise<void> {
    if (!this.client.isOpen) await this.client.connect();
    await this.subscribe();
    if (!this.subscribed) throw new Error('could not subscribe');
  }

  /** True when holders wake their waiters with `SPUBLISH` (see the class comment). */
  get sharded(): boolean {
    return this.shardedWakes;
  }

  /**
   * Calls `listener` with every wake-up message of `key` until the returned
   * function is called (and, with sharded wake-ups, once its channel is
   * subscribed: a message sent before that was not heard).
   */
  listen(key: string, listener: Listener): () => void {
    let set = this.listeners.get(key);
    if (!set) {
      this.listeners.set(key, (set = new Set()));
      if (this.shardedWakes) this.subscribeKey(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size !== 0 || this.listeners.get(key) !== set) return;
      this.listeners.delete(key);
      if (this.shardedWakes) this.unsubscribeKey(key);
    };
  }

  private subscribeKey(key: string, set: Set<Listener>): void {
    const subscribed = this.client.sSubscribe!(this.keys.wake(key), (message) => this.wake(key, message)).then(
      () => {
        if (this.listeners.get(key) === set) for (const listener of [...set]) listener('subscribed');
      },
      () => undefined, // the waiters poll
    );
    this.shardSubscriptions.set(key, subscribed);
  }

  // After the subscription it may still be making: an unsubscribe sent first would be a no-op, and the
  // channel would stay subscribed. Not if the key has waiters again by then (they use that subscription).
  private unsubscribeKey(key: string): void {
    const subscribed = this.shardSubscriptions.get(key);
    this.shardSubscriptions.delete(key);
    void Promise.resolve(subscribed).then(() => {
      if (!this.listeners.has(key)) return this.client.sUnsubscribe?.(this.keys.wake(key)).catch(() => undefined);
    });
  }

  private wake(key: string | undefined, message: string): void {
    const listeners = key === undefined ? undefined : this.listeners.get(key);
    if (listeners) for (const listener of [...listeners]) listener(message);
  }

  /** Calls `listener` with every message on the invalidation channel. */
  onInvalidation(listener: Listener): void {
    this.invalidationListeners.add(listener);
  }

  /** Calls `listener` whenever the connection came back after a loss (messages may have been missed). */
  onResubscribed(listener: () => void): void {
    this.resubscribedListeners.add(listener);
  }

  /** Number of keys with local listeners (for tests and leak checks). */
  get listenedKeys(): number {
    return this.listeners.size;
  }

  private subscribe(): Promise<void> {
    if (this.subscribed || !this.client.isReady) return Promise.resolve();
    this.subscribing ??= this.subscribeAll().then(
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

  private async subscribeAll(): Promise<void> {
    this.shardedWakes = await this.hasShardedPubSub();
    await Promise.all([
      this.shardedWakes
        ? Promise.resolve()
        : this.client.pSubscribe(this.wakePattern, (message, channel) =>
            this.wake(this.keys.wakeKey(channel), message),
          ),
      this.client.subscribe(this.invalidationChannel, (message) => {
        for (const listener of this.invalidationListeners) listener(message);
      }),
    ]);
  }

  /** A cluster client whose server knows `SPUBLISH` (Redis >= 7). */
  private async hasShardedPubSub(): Promise<boolean> {
    if (typeof this.client.sSubscribe !== 'function') return false;
    try {
      const info = await this.client.sendCommand<unknown[]>(['COMMAND', 'INFO', 'SPUBLISH']);
      return Array.isArray(info) && info[0] !== null && info[0] !== undefined;
    } catch {
      return false;
    }
  }

  /** Closes the connection (it is always the tier's own). */
  async close(): Promise<void> {
    this.client.off('ready', this.onReady);
    this.listeners.clear();
    if (!this.client.isOpen) return;
    try {
      await promiseDeadline(this.client.close(), 1_000, () => undefined, { resolve: true });
    } finally {
      if (this.client.isOpen) this.client.destroy();
    }
  }
}
