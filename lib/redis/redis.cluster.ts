import type { RedisClientLike, RedisConnectionLike } from './redis.options';

/** One node of a node-redis cluster client (`cluster.masters`). */
interface ClusterNodeLike {
  readonly client?: RedisClientLike & { readonly options?: unknown };
}

/**
 * The part of a node-redis v5 cluster client (`createCluster()` from `redis`)
 * the Redis tier uses. Structural, so the library's types never import the
 * optional `redis` package.
 *
 * @example
 * ```ts
 * import { createCluster } from 'redis';
 * const cluster: RedisClusterLike = createCluster({ rootNodes: [{ url: 'redis://10.0.0.1:6379' }] });
 * StampedeModule.forRoot({ redis: { client: cluster } });
 * ```
 */
export interface RedisClusterLike extends RedisConnectionLike {
  readonly masters: readonly ClusterNodeLike[];
  sendCommand<T = unknown>(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
  ): Promise<T>;
  nodeClient(node: ClusterNodeLike): Promise<RedisClientLike>;
  getSlotMaster(slot: number): ClusterNodeLike;
  duplicate(): RedisClusterLike;
  sSubscribe(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
  sUnsubscribe(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
  /** The node client carrying its classic pub/sub, once it has one. */
  readonly pubSubNode?: { client?: { isReady?: boolean } };
}

/** True for a node-redis cluster client (told apart from a single-node client by its shape). */
export function isClusterClient(value: unknown): value is RedisClusterLike {
  const cluster = value as Partial<RedisClusterLike> | null;
  return (
    cluster !== null &&
    typeof cluster === 'object' &&
    typeof cluster.nodeClient === 'function' &&
    typeof cluster.getSlotMaster === 'function' &&
    typeof cluster.sendCommand === 'function'
  );
}

/** Commands that name no key: sent to any node. */
const KEYLESS = new Set(['TIME', 'PUBLISH', 'ECHO', 'INFO']);

/** Commands sent to every primary. */
const EVERY_PRIMARY = new Set(['SCRIPT', 'PING']);

/** Milliseconds between two topology refreshes asked for by failures. */
const REDISCOVER_EVERY = 250;

/** Milliseconds between two attempts to reach a cluster none of whose root nodes answered. */
const CONNECT_RETRY = 1_000;

/** The key a command is routed by: the first key of a script, else its first argument. */
function firstKey(args: ReadonlyArray<string | Buffer>): string | undefined {
  const name = String(args[0]).toUpperCase();
  if (KEYLESS.has(name)) return undefined;
  if (name === 'EVALSHA' || name === 'EVAL') return Number(args[2]) > 0 ? String(args[3]) : undefined;
  return args[1] === undefined ? undefined : String(args[1]);
}

/**
 * A node-redis cluster client as the one-connection `RedisClientLike` the
 * tier speaks to: each command goes to the primary of its first key's slot
 * (node-redis follows `MOVED`/`ASK`), `SCRIPT LOAD` and `PING` to every primary, and
 * `primaries()` gives the node clients a `SCAN` must visit one by one.
 *
 * node-redis learns the topology anew only on a `MOVED` reply, which a dead
 * primary never sends: after a node error, or a command that failed without
 * an answer, this asks for a refresh (at most every 250 ms), so the replica
 * promoted in its place is found. A cluster that could not be reached at
 * start is tried again every second until it answers.
 *
 * @example
 * ```ts
 * const client = new ClusterClient(createCluster({ rootNodes: [{ url: 'redis://10.0.0.1:6379' }] }));
 * await client.connect();
 * await client.sendCommand(['GET', 'stampede:v:{1a2b3c4d}GET /prices']);
 * ```
 */
export class ClusterClient implements RedisClientLike {
  private nextRediscover = 0;
  private rediscovering?: Promise<void>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closed = false;
  private readonly onNodeError = () => this.rediscover();
  private readonly rediscovered = new Set<() => void>();

  constructor(readonly cluster: RedisClusterLike) {
    cluster.on('node-error', this.onNodeError);
  }

  get isOpen(): boolean {
    return this.cluster.isOpen;
  }

  get isReady(): boolean {
    return this.cluster.isOpen && this.cluster.masters.length > 0;
  }

  async sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T> {
    if (!this.isReady) throw new Error('The cluster client is not connected');
    try {
      // A script is loaded on every primary; a PING (the outage probe, the health check) answers
      // only if every primary does, so the tier is not back while some slots have none.
      if (EVERY_PRIMARY.has(String(args[0]).toUpperCase())) {
        const replies = await Promise.all((await this.primaries()).map((node) => node.sendCommand<T>(args)));
        return replies[0];
      }
      return await this.cluster.sendCommand<T>(firstKey(args), false, args);
    } catch (error) {
      if (!isReply(error)) this.rediscover();
      throw error;
    }
  }

  /** The client of every primary (connected by node-redis on demand). */
  primaries(): Promise<RedisClientLike[]> {
    return Promise.all(this.cluster.masters.map((node) => this.cluster.nodeClient(node)));
  }

  duplicate(): ClusterClient {
    return new ClusterClient(this.cluster.duplicate());
  }

  connect(): Promise<unknown> {
    clearTimeout(this.retryTimer);
    return this.cluster.connect().catch((error: unknown) => {
      if (!this.closed && !this.cluster.isOpen) {
        this.retryTimer = setTimeout(() => void this.connect().catch(() => undefined), CONNECT_RETRY);
        this.retryTimer.unref();
      }
      throw error;
    });
  }

  async close(): Promise<unknown> {
    this.stop();
    // A refresh still running would open node connections after the close.
    await this.rediscovering;
    return this.cluster.close();
  }

  destroy(): void {
    this.stop();
    this.cluster.destroy();
  }

  /** Its classic pub/sub connection may come back, and resubscribe, without a 'ready' to say so. */
  readonly resubscribesSilently = true;

  // 'ready' and 'error' of the cluster and of each of its nodes; 'pubsub-lost' of its pub/sub node.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): this {
    if (event === 'pubsub-lost') {
      this.cluster.on('node-reconnecting', this.pubSubLost(listener));
      return this;
    }
    for (const name of events(event)) this.cluster.on(name, listener);
    return this;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): this {
    if (event === 'pubsub-lost') {
      this.cluster.off('node-reconnecting', this.pubSubLost(listener));
      this.lostListeners.delete(listener);
      return this;
    }
    for (const name of events(event)) this.cluster.off(name, listener);
    return this;
  }

  private readonly lostListeners = new Map<() => void, () => void>();

  // 'node-reconnecting' comes from every node client, at each retry: only the pub/sub one's matters.
  private pubSubLost(listener: () => void): () => void {
    let filtered = this.lostListeners.get(listener);
    if (!filtered) {
      filtered = () => {
        const pubSub = this.cluster.pubSubNode?.client;
        if (pubSub !== undefined && pubSub.isReady === false) listener();
      };
      this.lostListeners.set(listener, filtered);
    }
    return filtered;
  }

  subscribe(channels: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.cluster.subscribe(channels, listener);
  }

  pSubscribe(pattern: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.cluster.pSubscribe(pattern, listener);
  }

  /** Ends the retries of a failed start, and the slot map refreshes (at close, connected or not). */
  stopRetrying(): void {
    this.stop();
  }

  /** `SSUBSCRIBE` on the primary of the channel's slot (node-redis opens a pub/sub connection there if needed). */
  sSubscribe(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.cluster.sSubscribe(channel, listener);
  }

  /** `SUNSUBSCRIBE` of `listener` (node-redis closes that node's pub/sub connection after its last channel). */
  sUnsubscribe(channel: string, listener: (message: string, channel: string) => unknown): Promise<unknown> {
    return this.cluster.sUnsubscribe(channel, listener);
  }

  /** Calls `listener` after each slot map refresh this asked for (node-redis may have dropped nodes' connections). */
  onRediscovered(listener: () => void): void {
    this.rediscovered.add(listener);
  }

  private stop(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.cluster.off('node-error', this.onNodeError);
  }

  /** Asks node-redis to read the slot map again, starting from a node that answers. */
  private rediscover(): void {
    const now = Date.now();
    if (this.closed || this.rediscovering || now < this.nextRediscover) return;
    // Not part of node-redis's typed API; the refresh it runs itself after a MOVED reply.
    const slots = (this.cluster as { _slots?: { rediscover?(start: unknown): Promise<void> } })._slots;
    const nodes = this.cluster.masters.map((node) => node.client).filter((client) => client !== undefined);
    const start = nodes.find((client) => client.isReady) ?? nodes[0];
    if (typeof slots?.rediscover !== 'function' || !start) return;
    this.nextRediscover = now + REDISCOVER_EVERY;
    this.rediscovering = slots
      .rediscover(start)
      .catch(() => undefined)
      .finally(() => {
        this.rediscovering = undefined;
        if (!this.closed) for (const listener of this.rediscovered) listener();
      });
  }
}

function events(event: string): string[] {
  if (event === 'ready') return ['connect', 'node-ready'];
  if (event === 'error') return ['error', 'node-error'];
  return [event];
}

/** An error the server answered with (as opposed to a connection failure). */
function isReply(error: unknown): boolean {
  return error instanceof Error && /^(ERR|WRONGTYPE|NOSCRIPT|BUSY|LOADING)\b/.test(error.message);
}
