import { randomUUID } from 'node:crypto';
import { createCluster } from 'redis';
import { RedisKeys } from '../../../lib/redis/redis.keys';
import { keySlot } from '../../../lib/redis/redis.slot';
import { RedisTier } from '../../../lib/redis/redis.tier';
import { until } from '../../helpers/deferred';
import { ClusterNode, RedisCluster, startRedisCluster } from '../../helpers/redis-cluster';
import { Fleet } from './fleet';
import { Instance, InstanceSettings, itemKey, startInstance } from './instances';
import { Tiers } from './tiers';

const keys = new RedisKeys('stampede:');

/** The primary serving the value of `/item/<id>` now. */
export function primaryOfItem(cluster: RedisCluster, id: string): Promise<ClusterNode> {
  return cluster.primaryOf(keySlot(keys.value(itemKey(id))));
}

/**
 * Kills the primary of a fixed key's slot while 30 clients load the fleet,
 * and waits until the cluster and every instance are back and 300 more
 * requests went through. Returns the load's figures and the promoted replica.
 */
export async function killPrimaryUnderLoad(
  cluster: RedisCluster,
  fleet: Fleet,
): Promise<{ completed: number; failures: string[]; victim: ClusterNode; promoted: ClusterNode }> {
  const load = fleet.load(30, `failover-${randomUUID()}`);
  await until(() => load.completed() >= 300, 'load under way');
  const victim = await primaryOfItem(cluster, 'victim');
  await victim.kill();
  const atKill = load.completed();
  await cluster.healthy();
  await until(() => load.completed() >= atKill + 600, '600 requests served across the failover');
  await until(() => fleet.allUp(), 'every instance back on the cluster');
  const atBack = load.completed();
  await until(() => load.completed() >= atBack + 300, 'load after the failover');
  await load.stop();
  return {
    completed: load.completed(),
    failures: load.failures,
    victim,
    promoted: await primaryOfItem(cluster, 'victim'),
  };
}

/** A fresh id whose `/item/<id>` value lives on `node`. */
export async function idServedBy(cluster: RedisCluster, node: ClusterNode, prefix: string): Promise<string> {
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}-${randomUUID()}`;
    if ((await primaryOfItem(cluster, id)).port === node.port) return id;
  }
}

/** A 6-node cluster and 3 instances on it (with `settings`), once every instance is connected. */
export async function startClusterFleet(
  settings: Omit<InstanceSettings, 'cluster'>,
): Promise<{ cluster: RedisCluster; instances: Instance[]; fleet: Fleet; stop(): Promise<void> }> {
  const cluster = await startRedisCluster();
  const instances = await Promise.all([1, 2, 3].map(() => startInstance({ cluster: cluster.rootNodes, ...settings })));
  const fleet = new Fleet(instances);
  await until(() => fleet.allUp(), 'every instance connected to the cluster');
  return {
    cluster,
    instances,
    fleet,
    stop: async () => {
      await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
      await cluster.stop();
    },
  };
}

/** A node-redis cluster client of the test's own (to inspect the nodes), never reconnecting. */
export type RawCluster = ReturnType<typeof createCluster>;

/**
 * Connects a `RawCluster` to `cluster`. No reconnection: a test that kills a
 * primary would otherwise leave its client retrying after the test ends.
 */
export async function connectRaw(cluster: RedisCluster): Promise<RawCluster> {
  const raw = createCluster({ rootNodes: cluster.rootNodes, defaults: { socket: { reconnectStrategy: false } } });
  raw.on('error', () => undefined);
  await raw.connect();
  return raw;
}

/** Destroys `raw`, if any (a node client closed when its server was killed cannot be destroyed again). */
export function destroyRaw(raw: RawCluster | undefined): void {
  try {
    raw?.destroy();
  } catch {
    // Already gone.
  }
}

/** What `clusterTiers` gives a spec: its cluster, a raw client on it, and tiers made on it. */
export interface ClusterTiers {
  cluster: RedisCluster;
  raw: RawCluster;
  /** A connected tier on the cluster (closed after all tests), waking its waiters by `wake`. */
  tier(l1Ttl?: number, wake?: 'pattern' | 'sharded'): Promise<RedisTier>;
}

/**
 * A cluster for one spec file: started before its tests, with a raw client,
 * and stopped after them with every tier a test made. Call at describe level.
 */
export function clusterTiers(defaultWake: 'pattern' | 'sharded'): ClusterTiers {
  const tiers = new Tiers();
  const suite: ClusterTiers = {
    cluster: undefined as unknown as RedisCluster,
    raw: undefined as unknown as RawCluster,
    async tier(l1Ttl = 0, wake = defaultWake) {
      const made = await tiers.make(undefined, { cluster: { rootNodes: suite.cluster.rootNodes }, l1Ttl, wake });
      expect(await made.ready(10_000)).toBe(true);
      return made;
    },
  };
  beforeAll(async () => {
    suite.cluster = await startRedisCluster();
    suite.raw = await connectRaw(suite.cluster);
  });
  afterAll(async () => {
    await tiers.closeAll();
    destroyRaw(suite.raw);
    await suite.cluster?.stop();
  });
  return suite;
}
