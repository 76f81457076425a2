import { setTimeout as sleep } from 'node:timers/promises';
import { Instance, startInstance } from './support/instances';
import { json, send, until } from './support/http';
import { RedisServer, startRedisServer } from './support/redis-server';
import { TcpProxy, startTcpProxy } from './support/tcp-proxy';

interface State {
  executions: number;
  redisUp: boolean;
  subscribed: boolean;
}

const KEYS = 20;
const OUTAGE_MS = 5_000;
const TTL = 60_000;

jest.setTimeout(120_000);

/**
 * Three app processes reach a real Redis through a TCP proxy; the proxy is
 * cut for 5 s under load (Redis itself keeps its data, as in a network
 * partition), then restored.
 */
describe('many instances through a 5 s Redis outage under load', () => {
  let redis: RedisServer;
  let proxy: TcpProxy;
  let instances: Instance[] = [];
  const figures: string[] = [];

  const state = (instance: Instance, id: string) => json<State>(`${instance.url}/admin/state/${id}`);
  const executions = async (id: string) =>
    (await Promise.all(instances.map((instance) => state(instance, id)))).reduce((n, s) => n + s.executions, 0);
  const allUp = async () =>
    (await Promise.all(instances.map((i) => state(i, '-')))).every((s) => s.redisUp && s.subscribed);
  const body = async (instance: Instance, path: string) => (await send(`${instance.url}${path}`)).text;

  beforeAll(async () => {
    redis = await startRedisServer();
    proxy = await startTcpProxy(redis.port);
    instances = await Promise.all([1, 2, 3].map(() => startInstance({ redisUrl: proxy.url, ttl: TTL })));
    await until(allUp, 'every instance connected to Redis');
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await proxy?.close();
    await redis?.stop();
    if (figures.length > 0) console.log(`outage figures:\n${figures.join('\n')}`);
  });

  it('keeps caching per instance (origin calls per key <= instances), fails no request, and honours an invalidation made during it', async () => {
    const ids = Array.from({ length: KEYS }, (_, i) => `load-${i}`);
    // Shared before the outage: one value per path in Redis, the same on every instance.
    const before = { key: await body(instances[0], '/item/inv-key'), tag: await body(instances[0], '/tagged/inv-tag') };
    for (const instance of instances) {
      expect(await body(instance, '/item/inv-key')).toBe(before.key);
      expect(await body(instance, '/tagged/inv-tag')).toBe(before.tag);
    }

    let completed = 0;
    const failures: string[] = [];
    let running = true;
    const clients = Array.from({ length: 30 }, async (_, client) => {
      for (let round = 0; running; round++) {
        const instance = instances[(client + round) % instances.length];
        try {
          const reply = await send(`${instance.url}/item/${ids[(client * 7 + round) % KEYS]}`);
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.text}`);
        } catch (error) {
          failures.push(String(error));
        }
        completed++;
      }
    });
    await until(async () => completed >= 300 && (await executions(ids[KEYS - 1])) > 0, 'load under way');

    const logsBefore = instances.map((instance) => instance.output().length);
    const callsBefore = await Promise.all(ids.map(executions));
    const requestsBefore = completed;
    proxy.cut();
    const cutAt = performance.now();
    await until(async () => !(await state(instances[0], '-')).redisUp, 'the outage noticed');
    await json(`${instances[0].url}/admin/invalidate/inv-key`, 'POST');
    await json(`${instances[0].url}/admin/invalidate-tag/inv-tag`, 'POST');
    // The outage is a span of time by definition: nothing to await but the clock.
    await sleep(Math.max(0, OUTAGE_MS - (performance.now() - cutAt)));
    const callsDuring = (await Promise.all(ids.map(executions))).map((n, i) => n - callsBefore[i]);
    const requestsDuring = completed - requestsBefore;
    proxy.restore();
    const outageMs = performance.now() - cutAt;
    await until(allUp, 'every instance back on Redis');
    const outageLogs = instances.map((instance, i) => instance.output().slice(logsBefore[i]));

    const atRestore = completed;
    await until(() => completed >= atRestore + 300, 'load after the outage');
    running = false;
    await Promise.all(clients);

    const windows = Math.ceil(outageMs / TTL);
    figures.push(
      `outage ${Math.round(outageMs)} ms: ${requestsDuring} requests served by 3 instances, ` +
        `${callsDuring.reduce((a, b) => a + b, 0)} origin calls for ${KEYS} keys (max ${Math.max(...callsDuring)} per key; ` +
        `bound instances x TTL windows = ${3 * windows}); without in-process caching: one per request (${requestsDuring})`,
      `requests in all: ${completed}, failed: ${failures.length}`,
    );
    expect(failures).toEqual([]);
    for (const calls of callsDuring) expect(calls).toBeLessThanOrEqual(instances.length * windows);
    for (const output of outageLogs) {
      expect(output.match(/Redis unreachable/g)).toHaveLength(1);
      expect(output.match(/Redis answers again/g)).toHaveLength(1);
    }

    // Instances 1 and 2 never heard of the invalidations: they learn of them from Redis, replayed by instance 0.
    for (const instance of instances) {
      await until(async () => (await body(instance, '/item/inv-key')) !== before.key, 'the key invalidated everywhere');
      await until(
        async () => (await body(instance, '/tagged/inv-tag')) !== before.tag,
        'the tag invalidated everywhere',
      );
    }
  });
});
