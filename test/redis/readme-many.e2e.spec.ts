import { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StampedeModule, StampedeService } from '../../lib';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { RedisCluster, startRedisCluster } from '../helpers/redis-cluster';
import { RedisSentinelSetup, startRedisSentinel } from '../helpers/redis-sentinel';

// README:cluster
export function clusterCache(rootNodes: { url: string }[]) {
  return StampedeModule.forRoot({
    ttl: 30_000,
    redis: {
      cluster: { rootNodes }, // a few nodes of the cluster are enough: the others are found
      keyPrefix: 'shop:v2:', // a new one for each deploy that changes what is cached
    },
  });
}
// README:end

// README:sentinel
export function sentinelCache(sentinelRootNodes: { host: string; port: number }[]) {
  return StampedeModule.forRoot({
    ttl: 30_000,
    redis: { sentinel: { name: 'mymaster', sentinelRootNodes } },
  });
}
// README:end

jest.setTimeout(60_000);

/** Two app instances with `imports`: a value computed by one is answered by the other. */
async function sharedOnce(imports: () => ReturnType<typeof clusterCache>): Promise<{ runs: number; values: string[] }> {
  const apps: INestApplicationContext[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const moduleRef = await Test.createTestingModule({ imports: [imports()] }).compile();
      apps.push(await moduleRef.init());
    }
    let runs = 0;
    const work = async () => `computed ${++runs}`;
    const values: string[] = [];
    for (const app of apps) values.push(await app.get(StampedeService).run('GET /prices', work));
    return { runs, values };
  } finally {
    await Promise.all(apps.map((app) => app.close()));
  }
}

describe('README, Many instances: the Cluster and Sentinel setups', () => {
  let cluster: RedisCluster;
  let sentinel: RedisSentinelSetup;

  beforeAll(async () => {
    [cluster, sentinel] = await Promise.all([startRedisCluster(), startRedisSentinel()]);
  });
  afterAll(async () => {
    await Promise.all([cluster?.stop(), sentinel?.stop()]);
  });

  it('shares values on a Redis Cluster, under the prefix given', async () => {
    expect(await sharedOnce(() => clusterCache(cluster.rootNodes))).toEqual({
      runs: 1,
      values: ['computed 1', 'computed 1'],
    });
    const name = new RedisKeys('shop:v2:').value('GET /prices');
    // -c: redis-cli follows the MOVED reply to the primary of the key's slot.
    expect(await cluster.cli('-c', 'EXISTS', name)).toBe('1');
  });

  it('shares values through a Sentinel-managed primary', async () => {
    expect(await sharedOnce(() => sentinelCache(sentinel.options.sentinelRootNodes))).toEqual({
      runs: 1,
      values: ['computed 1', 'computed 1'],
    });
    const primary = await sentinel.primaryPort();
    expect(await sentinel.cli(primary, 'EXISTS', new RedisKeys('stampede:').value('GET /prices'))).toBe('1');
  });

  it.each(['cluster', 'sentinel'])('is shown in the README as tested here (%s)', (name) => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const source = readFileSync(__filename, 'utf8');
    expect(readme).toContain(source.split(`// README:${name}\n`)[1].split('// README:end')[0].trim());
  });
});
