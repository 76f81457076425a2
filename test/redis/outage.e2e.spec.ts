import { setTimeout as sleep } from 'node:timers/promises';
import { Instance, startInstance } from './support/instances';
import { json, send } from './support/http';
import { until } from '../helpers/deferred';
import { RedisServer, startRedisServer } from '../helpers/redis-server';
import { TcpProxy, startTcpProxy } from '../helpers/tcp-proxy';

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

/** Three app processes on a real Redis that is frozen (SIGSTOP) for 5 s under load, then resumed. */
describe('many instances through a 5 s Redis stall (SIGSTOP) under load', () => {
  let redis: RedisServer;
  let instances: Instance[] = [];
  const figures: string[] = [];

  const state = (instance: Instance, id: string) =>
    json<State & { waiters: number }>(`${instance.url}/admin/state/${id}`);
  const states = (id: string) => Promise.all(instances.map((instance) => state(instance, id)));
  const allUp = async () => (await states('-')).every((s) => s.redisUp && s.subscribed);
  const post = (path: string) => Promise.all(instances.map((instance) => json(`${instance.url}${path}`, 'POST')));

  beforeAll(async () => {
    redis = await startRedisServer();
    // A lease left behind by the stall would hold its key this long: longer than the test.
    instances = await Promise.all(
      [1, 2, 3].map(() => startInstance({ redisUrl: redis.url, ttl: TTL, leaseTtl: 60_000, lockTimeout: 30_000 })),
    );
    await until(allUp, 'every instance connected to Redis');
  });

  afterAll(async () => {
    redis?.resume();
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await redis?.stop();
    if (figures.length > 0) console.log(`stall figures:\n${figures.join('\n')}`);
  });

  it('answers every request within 3 s before, during and after, and coalesces cold bursts across instances again after', async () => {
    let slowest = 0;
    const failures: string[] = [];
    let running = true;
    let completed = 0;
    const clients = Array.from({ length: 20 }, async (_, client) => {
      for (let round = 0; running; round++) {
        const instance = instances[(client + round) % instances.length];
        // Hot keys (shared by every client) and cold ones (new each time).
        const path = round % 2 === 0 ? `/item/hot-${client % 5}` : `/item/cold-${client}-${round}`;
        const start = performance.now();
        try {
          const reply = await send(`${instance.url}${path}`);
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.text}`);
        } catch (error) {
          failures.push(String(error));
        }
        slowest = Math.max(slowest, performance.now() - start);
        completed++;
      }
    });
    await until(() => completed >= 300, 'load under way');
    const slowestBefore = slowest;

    redis.pause();
    const pausedAt = performance.now();
    // A stall is a span of time by definition: nothing to await but the clock.
    await sleep(OUTAGE_MS);
    const slowestDuring = slowest;
    redis.resume();
    const resumedAt = performance.now();
    await until(allUp, 'every instance back on Redis');
    const rejoinMs = performance.now() - resumedAt;
    const atResume = completed;
    await until(() => completed >= atResume + 300, 'load after the stall');
    running = false;
    await Promise.all(clients);

    // Cold bursts after the stall: one origin call for 3 x 30 concurrent requests, each time.
    const perBurst: number[] = [];
    for (let burst = 0; burst < 3; burst++) {
      const id = `after-stall-${burst}`;
      await post(`/admin/hold/${id}`);
      const replies = instances.flatMap((instance) =>
        Array.from({ length: 30 }, () => send(`${instance.url}/item/${id}`)),
      );
      await until(async () => (await states(id)).every((s) => s.waiters === 30), '30 waiters on every instance');
      await post(`/admin/open/${id}`);
      expect((await Promise.all(replies)).every((reply) => reply.status === 200)).toBe(true);
      perBurst.push((await states(id)).reduce((n, s) => n + s.executions, 0));
    }

    figures.push(
      `stall ${Math.round(resumedAt - pausedAt)} ms: ${completed} requests, ${failures.length} failed; slowest ` +
        `${Math.round(slowestBefore)} ms before, ${Math.round(slowestDuring)} ms up to the resume, ${Math.round(slowest)} ms overall; ` +
        `every instance back on Redis ${Math.round(rejoinMs)} ms after the resume; origin calls per cold burst after: ${perBurst.join(', ')}`,
    );
    expect(failures).toEqual([]);
    expect(slowest).toBeLessThan(3_000);
    expect(perBurst).toEqual([1, 1, 1]);
  });
});
