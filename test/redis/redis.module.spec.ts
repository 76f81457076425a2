import { INestApplication } from '@nestjs/common';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient, createCluster } from 'redis';
import { StampedeOptionsError, StampedeService } from '../../lib';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { RedisClientLike, validateRedisOptions } from '../../lib/redis/redis.options';
import { StampedeEngine } from '../../lib/nest/stampede.engine';
import { createRedisApp } from './apps/redis-app';
import { until } from '../helpers/deferred';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

const ROOT = join(__dirname, '..', '..');

describe('redis options', () => {
  it('fills in the defaults', () => {
    expect(validateRedisOptions({ url: 'redis://cache:6379' })).toEqual({
      url: 'redis://cache:6379',
      client: undefined,
      keyPrefix: 'stampede:',
      leaseTtl: 10_000,
      lockTimeout: 5_000,
      l1Ttl: 0,
      maxValueBytes: 8 * 1024 * 1024,
      wake: 'pattern',
    });
    expect(validateRedisOptions({})).toMatchObject({ url: undefined, keyPrefix: 'stampede:' });
  });

  it.each([
    [null, 'redis'],
    [{ lockTimeout: -1 }, 'redis.lockTimeout'],
    [{ lockTimeout: 1.5 }, 'redis.lockTimeout'],
    [{ leaseTtl: 0 }, 'redis.leaseTtl'],
    [{ leaseTtl: '10s' }, 'redis.leaseTtl'],
    [{ l1Ttl: -5 }, 'redis.l1Ttl'],
    [{ maxValueBytes: 0 }, 'redis.maxValueBytes'],
    [{ maxValueBytes: '8mb' }, 'redis.maxValueBytes'],
    [{ keyPrefix: 1 }, 'redis.keyPrefix'],
    [{ url: 'http://cache' }, 'redis.url'],
    [{ url: undefined }, 'redis.url'],
    [{ client: {} }, 'redis.client'],
    [{ url: 'redis://a', client: createClient() }, 'redis.client'],
    [{ host: 'cache' }, 'redis.host'],
    [{ keyPrefix: 'app{1}:' }, 'redis.keyPrefix'],
    [{ wake: 'broadcast' }, 'redis.wake'],
    [{ url: 'redis://a', wake: 'sharded' }, 'redis.wake'],
    [{ client: createClient(), wake: 'sharded' }, 'redis.wake'],
    [{ sentinel: { name: 'm', sentinelRootNodes: [{ host: 'a', port: 1 }] }, wake: 'sharded' }, 'redis.wake'],
    [{ cluster: { rootNodes: [] } }, 'redis.cluster.rootNodes'],
    [{ cluster: {} }, 'redis.cluster.rootNodes'],
    [{ cluster: 'redis://a' }, 'redis.cluster'],
    [{ cluster: { rootNodes: ['redis://a'] } }, 'redis.cluster.rootNodes[0]'],
    [{ cluster: { rootNodes: [{ url: 'http://a' }] } }, 'redis.cluster.rootNodes[0].url'],
    [{ url: 'redis://a', cluster: { rootNodes: [{ url: 'redis://b' }] } }, 'redis.cluster'],
    [
      { cluster: { rootNodes: [{ url: 'redis://b' }] }, sentinel: { name: 'm', sentinelRootNodes: [] } },
      'redis.sentinel',
    ],
    [{ sentinel: { sentinelRootNodes: [{ host: 'a', port: 26379 }] } }, 'redis.sentinel.name'],
    [{ sentinel: { name: 'm', sentinelRootNodes: [] } }, 'redis.sentinel.sentinelRootNodes'],
    [{ sentinel: { name: 'm', sentinelRootNodes: [{ host: 'a' }] } }, 'redis.sentinel.sentinelRootNodes[0].port'],
    [{ sentinel: { name: 'm', sentinelRootNodes: [{ port: 1 }] } }, 'redis.sentinel.sentinelRootNodes[0].host'],
    [
      { client: createClient(), sentinel: { name: 'm', sentinelRootNodes: [{ host: 'a', port: 1 }] } },
      'redis.sentinel',
    ],
  ])('rejects %j naming %s', (value, option) => {
    let thrown: unknown;
    try {
      validateRedisOptions(value);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StampedeOptionsError);
    expect((thrown as StampedeOptionsError).option).toBe(option);
  });
});

describe('redis options for a cluster or a Sentinel', () => {
  it('accepts a cluster client made with createCluster, told apart by its shape', () => {
    const cluster = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] });
    expect(validateRedisOptions({ client: cluster }).client).toBe(cluster);
  });

  it('keeps the cluster and sentinel options as given', () => {
    const cluster = { rootNodes: [{ url: 'redis://10.0.0.1:6379' }], useReplicas: false };
    expect(validateRedisOptions({ cluster })).toMatchObject({ cluster, keyPrefix: 'stampede:' });
    const sentinel = { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.5', port: 26379 }] };
    expect(validateRedisOptions({ sentinel })).toMatchObject({ sentinel });
  });

  it("takes wake: 'sharded' on a cluster only, and refuses it elsewhere at bootstrap naming the option", async () => {
    const rootNodes = [{ url: 'redis://10.0.0.1:6379' }];
    expect(validateRedisOptions({ cluster: { rootNodes }, wake: 'sharded' }).wake).toBe('sharded');
    expect(validateRedisOptions({ client: createCluster({ rootNodes }), wake: 'sharded' }).wake).toBe('sharded');
    expect(validateRedisOptions({ cluster: { rootNodes } }).wake).toBe('pattern');
    await expect(createRedisApp({}, {}, { url: 'redis://a', wake: 'sharded' })).rejects.toThrow(
      /invalid option "redis.wake".*'sharded' needs a Redis Cluster/,
    );
  });

  it('names both options when two ways to reach Redis are given, at bootstrap', async () => {
    await expect(
      createRedisApp({}, {}, { url: 'redis://a', cluster: { rootNodes: [{ url: 'redis://b' }] } }),
    ).rejects.toThrow(/invalid option "redis.cluster".*not both redis.url and redis.cluster/);
  });
});

describe('StampedeModule with the redis option', () => {
  let server: RedisServer;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await server?.stop();
  });

  async function app(redis: Parameters<typeof createRedisApp>[2]): Promise<INestApplication> {
    const made = await createRedisApp({}, { ttl: 60_000 }, redis);
    apps.push(made);
    await made.init();
    return made;
  }

  it('shares one run across apps, and closes the connections it opened on shutdown', async () => {
    const [one, two] = await Promise.all([app({ url: server.url }), app({ url: server.url })]);
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fn = async () => {
      runs++;
      await gate;
      return { total: 7n };
    };
    const first = one.get(StampedeService).run('report', fn);
    const second = two.get(StampedeService).run('report', fn);
    const engine = two.get(StampedeEngine);
    await until(() => engine.redis!.subscriber.listenedKeys > 0, 'the second app waiting on the first');
    release();
    await expect(Promise.all([first, second])).resolves.toEqual([{ total: 7n }, { total: 7n }]);
    expect(runs).toBe(1);

    const tier = one.get(StampedeEngine).redis!;
    await one.close();
    expect(tier.connection.client.isOpen).toBe(false);
    expect(tier.subscriber.client.isOpen).toBe(false);
  });

  it('leaves a client it was given open', async () => {
    const client = createClient({ url: server.url });
    client.on('error', () => undefined);
    await client.connect();
    const made = await app({ client: client as unknown as RedisClientLike, keyPrefix: 'mine:' });
    await made.get(StampedeService).run('k', () => 'v');
    expect(await client.keys('mine:*')).toEqual([new RedisKeys('mine:').value('k')]);
    await made.close();
    expect(client.isOpen).toBe(true);
    expect(await client.ping()).toBe('PONG');
    client.destroy();
  });

  it('never loads the redis package in an app without the option', async () => {
    const script = `
      require('reflect-metadata');
      const { Test } = require('@nestjs/testing');
      const { StampedeModule, StampedeService } = require('./lib');
      (async () => {
        const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ ttl: 1000 })] }).compile();
        const app = moduleRef.createNestApplication({ logger: false });
        await app.init();
        await app.get(StampedeService).run('k', () => 1);
        await app.close();
        const loaded = Object.keys(require.cache).filter((file) => /node_modules\\/(redis|@redis)\\//.test(file));
        console.log(JSON.stringify(loaded));
      })();
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', join(__dirname, 'apps', 'register.cjs'), '-e', script],
      { cwd: ROOT },
    );
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual([]);
  });
});
