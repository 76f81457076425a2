import type { RedisClientLike, RedisConnectionLike } from './redis.options';

/**
 * The part of a node-redis v5 Sentinel client (`createSentinel()` from
 * `redis`) the Redis tier uses. Structural, so the library's types never
 * import the optional `redis` package.
 *
 * @example
 * ```ts
 * const sentinel: RedisSentinelLike = createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host, port }] });
 * ```
 */
export interface RedisSentinelLike extends RedisConnectionLike {
  readonly isReady: boolean;
  sendCommand<T = unknown>(isReadonly: boolean | undefined, args: ReadonlyArray<string | Buffer>): Promise<T>;
}

/** Settings a `SentinelClient` may lay over the user's when it makes a client (its quiet probes). */
export type SentinelFactory = (overrides?: { maxCommandRediscovers?: number }) => RedisSentinelLike;

/** Milliseconds between two attempts to reach a Sentinel that did not answer. */
const CONNECT_RETRY = 1_000;

/**
 * A node-redis Sentinel client as the one-connection `RedisClientLike` the
 * tier speaks to. Every command goes to the current primary; node-redis
 * follows the failovers Sentinel announces (`+switch-master`) and moves its
 * pub/sub connection along. A Sentinel client has no `duplicate()`: `create`
 * makes another one for the tier's pub/sub connection.
 *
 * A Sentinel that cannot be reached at start is tried again every second
 * until it answers: node-redis gives up after its own attempts (each one
 * printed to the console) and cannot open that client again. So each attempt
 * is first a quiet probe (a client with no rediscovery loop), and the client
 * the tier uses is connected once a probe got through; one whose connect
 * failed is replaced, its listeners moved to the new one.
 *
 * @example
 * ```ts
 * const options = { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.5', port: 26379 }] };
 * const client = new SentinelClient((overrides) => createSentinel({ ...options, ...overrides }));
 * await client.connect();
 * ```
 */
export class SentinelClient implements RedisClientLike {
  private current: RedisSentinelLike;
  // Set once `current` failed to connect: node-redis keeps it "opening" for good.
  private spent = false;
  private opening?: Promise<void>;
  private probing?: RedisSentinelLike;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closed = false;

  constructor(private readonly create: SentinelFactory) {
    this.current = create();
  }

  /** The node-redis client in use now (another one after a failed start). */
  get sentinel(): RedisSentinelLike {
    return this.current;
  }

  /** node-redis's pub/sub proxy reconnects and resubscribes reporting only an 'error'. */
  readonly resubscribesSilently = true;

  get isOpen(): boolean {
    return !this.spent && this.current.isOpen;
  }

  get isReady(): boolean {
    return !this.spent && this.current.isReady;
  }

  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T> {
    return this.current.sendCommand<T>(false, args);
  }

  duplicate(): RedisClientLike {
    return new SentinelClient(this.create);
  }

  /** Connects; when no Sentinel answers, rejects and goes on trying every second until it does (or `close`). */
  connect(): Promise<unknown> {
    clearTimeout(this.retryTimer);
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening.catch((error: unknown) => {
      if (!this.closed && this.retryTimer === undefined) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          // Nobody awaits this attempt: its success is announced as 'ready' (node-redis's own came
          // while the client was not ready yet, too early for a listener to use it).
          this.connect().then(
            () => !this.closed && this.readyListeners.forEach((listener) => listener()),
            () => undefined,
          );
        }, CONNECT_RETRY);
        this.retryTimer.unref();
      }
      throw error;
    });
  }

  private async open(): Promise<void> {
    if (this.closed) throw new Error('closed');
    await this.probe();
    if (this.closed) throw new Error('closed');
    if (this.spent) this.replace();
    try {
      await this.current.connect();
    } catch (error) {
      this.spent = true;
      throw error;
    }
  }

  /**
   * One attempt that prints nothing: a client that gives up on the first
   * failure, closed at once. Every start pays it (a Sentinel and a primary
   * connection, once), so that a failed one is never a console full of traces.
   */
  private async probe(): Promise<void> {
    const probe = (this.probing = this.create({ maxCommandRediscovers: 0 }));
    probe.on('error', () => undefined);
    try {
      await probe.connect();
    } finally {
      if (this.probing === probe) this.probing = undefined;
      quietly(() => probe.destroy());
    }
  }

  /** A new client in place of a spent one, with every listener moved over. */
  private replace(): void {
    const old = this.current;
    this.current = this.create();
    this.spent = false;
    for (const pairs of this.wrapped.values()) {
      for (const [name, listener] of pairs) {
        old.off(name, listener);
        this.current.on(name, listener);
      }
    }
    quietly(() => old.destroy());
  }

  /** Stops trying to connect (the tier calls it when it closes, whether or not a connection was made). */
  stopRetrying(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const probing = this.probing;
    this.probing = undefined;
    if (probing) quietly(() => probing.destroy());
  }

  close(): Promise<unknown> {
    this.stopRetrying();
    if (!this.isOpen) return Promise.resolve(quietly(() => this.current.destroy()));
    return this.current.close();
  }

  destroy(): void {
    this.stopRetrying();
    quietly(() => this.current.destroy());
  }

  // 'ready': a new primary was picked (after a failover too); 'error': the Sentinel client's and its nodes'.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): this {
    if (event === 'ready') this.readyListeners.add(listener);
    for (const [name, wrapped] of this.wrap(event, listener)) this.current.on(name, wrapped);
    return this;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): this {
    if (event === 'ready') this.readyListeners.delete(listener);
    for (const [name, wrapped] of this.wrap(event, listener)) this.current.off(name, wrapped);
    this.wrapped.delete(listener);
    return this;
  }

  subscribe(channels: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.current.subscribe(channels, listener);
  }

  pSubscribe(pattern: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.current.pSubscribe(pattern, listener);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly readyListeners = new Set<(...args: any[]) => void>();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly wrapped = new Map<(...args: any[]) => void, Array<[string, (...args: any[]) => void]>>();

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private wrap(event: string, listener: (...args: any[]) => void): Array<[string, (...args: any[]) => void]> {
    let known = this.wrapped.get(listener);
    if (known) return known;
    if (event === 'ready') {
      const onChange = (change: { type?: string }) => {
        if (change?.type === 'MASTER_CHANGE') listener();
      };
      known = [['topology-change', onChange]];
    } else if (event === 'pubsub-lost') {
      // The pub/sub proxy's errors; with `passthroughClientErrorEvents` node-redis also passes on every
      // node client's, named by the client (those are not the pub/sub connection's).
      known = [['error', (error: unknown) => !fromNodeClient(error) && listener()]];
    } else if (event === 'error') {
      known = [
        ['error', listener],
        ['client-error', (event: { error?: unknown }) => listener(event?.error ?? event)],
      ];
    } else {
      known = [[event, listener]];
    }
    this.wrapped.set(listener, known);
    return known;
  }
}

/** Runs a teardown that may throw or reject (a client never opened, or already gone). */
function quietly(teardown: () => unknown): void {
  try {
    void Promise.resolve(teardown()).catch(() => undefined);
  } catch {
    // Nothing to tear down.
  }
}

/** True for an error node-redis passes on from one of the Sentinel client's node clients. */
function fromNodeClient(error: unknown): boolean {
  if (!(error instanceof Error)) return true;
  return /^(Master|Replica|Sentinel) Client \(/.test(error.message);
}
