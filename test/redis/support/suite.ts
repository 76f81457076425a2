import { Coalescer } from '../../../lib/core/coalescer';
import { RedisTier } from '../../../lib/redis/redis.tier';
import { RecordingLogger } from '../../helpers/logger';
import { RawClient, RedisServer, startRedisWithClient, stopRedisWithClient } from '../../helpers/redis-server';
import { TcpProxy, startTcpProxy } from '../../helpers/tcp-proxy';
import { Tiers } from './tiers';

/** An instance: its tier and the coalescer on it, as the engine wires them. */
export interface RedisNode {
  tier: RedisTier;
  coalescer: Coalescer;
  logger: RecordingLogger;
}

/** What a suite on one real Redis has: read in tests (set by the hooks `redisSuite` registers). */
export interface RedisSuite {
  readonly server: RedisServer;
  readonly raw: RawClient;
  /** A TCP proxy in front of the server, new for each test. */
  readonly proxy: TcpProxy;
  readonly tiers: Tiers;
  /** An instance on `url` (the server's, or the proxy's), closed after the test. */
  node(url: string, options?: { l1Ttl?: number }): Promise<RedisNode>;
}

/**
 * Registers a suite's hooks: one redis-server for the suite; before each
 * test its data flushed and a new proxy; after each, every tier made and the
 * proxy closed.
 */
export function redisSuite(): RedisSuite {
  const state = {} as { server: RedisServer; raw: RawClient; proxy: TcpProxy };
  const tiers = new Tiers();
  beforeAll(async () => Object.assign(state, await startRedisWithClient()));
  afterAll(async () => {
    await tiers.closeAll();
    await stopRedisWithClient(state.server, state.raw);
  });
  beforeEach(async () => {
    await state.raw.flushAll();
    state.proxy = await startTcpProxy(state.server.port);
  });
  afterEach(async () => {
    await tiers.closeAll();
    await state.proxy.close();
  });
  return {
    get server() {
      return state.server;
    },
    get raw() {
      return state.raw;
    },
    get proxy() {
      return state.proxy;
    },
    tiers,
    async node(url, options = {}) {
      const logger = new RecordingLogger();
      const tier = await tiers.make(url, options, logger);
      const coalescer = new Coalescer({ store: tier.store, coordinator: tier.lease, tags: tier.tags, logger });
      return { tier, coalescer, logger };
    },
  };
}
