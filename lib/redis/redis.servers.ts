import { StampedeOptionsError } from '../errors';

/**
 * `redis.cluster`: node-redis `createCluster()` options (its `rootNodes`,
 * `defaults`, `useReplicas`...). The module fills in `defaults` so that a
 * request never waits for a reconnection (no offline queue) and nodes are
 * reconnected forever; what you give in `defaults` wins.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ redis: { cluster: { rootNodes: [{ url: 'redis://10.0.0.1:6379' }] } } })
 * ```
 */
export interface RedisClusterOptions {
  /** Some nodes of the cluster (`{ url }` each); the others are found from them. */
  rootNodes: ReadonlyArray<{ url?: string; [option: string]: unknown }>;
  [option: string]: unknown;
}

/**
 * `redis.sentinel`: node-redis `createSentinel()` options, for a primary
 * managed by Redis Sentinel (`name`, `sentinelRootNodes`,
 * `nodeClientOptions`...). node-redis follows the failovers Sentinel announces.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({
 *   redis: { sentinel: { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.5', port: 26379 }] } },
 * })
 * ```
 */
export interface RedisSentinelOptions {
  /** The name Sentinel knows the primary by (`sentinel monitor <name> ...`). */
  name: string;
  /** Some of the Sentinels; the others are found from them. */
  sentinelRootNodes: ReadonlyArray<{ host: string; port: number }>;
  [option: string]: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A non-empty array of objects, or it throws naming `option`. */
function checkNodes(option: string, value: unknown, expected: string): Record<string, unknown>[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new StampedeOptionsError(option, value, `a non-empty array of ${expected}`);
  }
  value.forEach((node, i) => {
    if (!isRecord(node)) throw new StampedeOptionsError(`${option}[${i}]`, node, expected);
  });
  return value as Record<string, unknown>[];
}

/** Checks `redis.cluster`, naming the option at fault (`redis.cluster.rootNodes[0].url`...). */
export function checkCluster(cluster: unknown): void {
  if (!isRecord(cluster)) throw new StampedeOptionsError('redis.cluster', cluster, 'createCluster() options');
  checkNodes('redis.cluster.rootNodes', cluster.rootNodes, 'nodes ({ url })').forEach((node, i) => {
    if (node.url !== undefined && (typeof node.url !== 'string' || !/^rediss?:\/\//.test(node.url))) {
      throw new StampedeOptionsError(`redis.cluster.rootNodes[${i}].url`, node.url, 'a redis:// or rediss:// URL');
    }
  });
}

/** Checks `redis.sentinel`, naming the option at fault (`redis.sentinel.name`...). */
export function checkSentinel(sentinel: unknown): void {
  if (!isRecord(sentinel)) throw new StampedeOptionsError('redis.sentinel', sentinel, 'createSentinel() options');
  if (typeof sentinel.name !== 'string' || sentinel.name === '') {
    throw new StampedeOptionsError('redis.sentinel.name', sentinel.name, 'the name Sentinel monitors the primary by');
  }
  const option = 'redis.sentinel.sentinelRootNodes';
  checkNodes(option, sentinel.sentinelRootNodes, 'Sentinels ({ host, port })').forEach((node, i) => {
    if (typeof node.host !== 'string' || node.host === '') {
      throw new StampedeOptionsError(`${option}[${i}].host`, node.host, 'a host name or address');
    }
    const { port } = node;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new StampedeOptionsError(`${option}[${i}].port`, port, 'a port number (1-65535)');
    }
  });
}

/** Throws unless at most one of the ways to reach Redis is given. */
export function checkOneServer(given: Record<string, unknown>): void {
  const ways = (['url', 'client', 'cluster', 'sentinel'] as const).filter((name) => given[name] !== undefined);
  if (ways.length > 1) {
    throw new StampedeOptionsError(
      `redis.${ways[1]}`,
      ways[1] === 'client' ? '(a client)' : given[ways[1]],
      `one of redis.url, redis.client, redis.cluster, redis.sentinel, not both redis.${ways[0]} and redis.${ways[1]}`,
    );
  }
}
