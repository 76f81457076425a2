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

/**
 * A node-redis Sentinel client as the one-connection `RedisClientLike` the
 * tier speaks to. Every command goes to the current primary; node-redis
 * follows the failovers Sentinel announces (`+switch-master`) and moves its
 * pub/sub connection along. A Sentinel client has no `duplicate()`: `create`
 * makes another one for the tier's pub/sub connection.
 *
 * @example
 * ```ts
 * const options = { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.5', port: 26379 }] };
 * const client = new SentinelClient(() => createSentinel(options));
 * await client.connect();
 * ```
 */
export class SentinelClient implements RedisClientLike {
  readonly sentinel: RedisSentinelLike;

  constructor(private readonly create: () => RedisSentinelLike) {
    this.sentinel = create();
  }

  get isOpen(): boolean {
    return this.sentinel.isOpen;
  }

  get isReady(): boolean {
    return this.sentinel.isReady;
  }

  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T> {
    return this.sentinel.sendCommand<T>(false, args);
  }

  duplicate(): RedisClientLike {
    return new SentinelClient(this.create);
  }

  connect(): Promise<unknown> {
    return this.sentinel.connect();
  }

  close(): Promise<unknown> {
    return this.sentinel.close();
  }

  destroy(): void {
    void Promise.resolve(this.sentinel.destroy()).catch(() => undefined);
  }

  // 'ready': a new primary was picked (after a failover too); 'error': the Sentinel client's and its nodes'.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): this {
    for (const [name, wrapped] of this.wrap(event, listener)) this.sentinel.on(name, wrapped);
    return this;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): this {
    for (const [name, wrapped] of this.wrap(event, listener)) this.sentinel.off(name, wrapped);
    this.wrapped.delete(listener);
    return this;
  }

  subscribe(channels: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.sentinel.subscribe(channels, listener);
  }

  pSubscribe(pattern: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.sentinel.pSubscribe(pattern, listener);
  }

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
