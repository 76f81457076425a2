import { randomUUID } from 'node:crypto';
import { Instance, startInstance } from './support/instances';
import { json, send } from './support/http';
import { until } from '../helpers/deferred';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

interface State {
  executions: number;
  redisUp: boolean;
  subscribed: boolean;
}

/** Trials per kind of invalidation. */
const TRIALS = 100;

jest.setTimeout(180_000);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Three instances on one Redis, each with an L1 copy of what it read: an
 * invalidation on one instance must reach the copies of all of them. The
 * delay until every instance answers fresh is measured (printed), not
 * asserted: the bound asserted is that they all do.
 */
describe('invalidation across instances (3 app processes, L1 on)', () => {
  let redis: RedisServer;
  let instances: Instance[] = [];
  const figures: string[] = [];

  const body = async (instance: Instance, path: string) => (await send(`${instance.url}${path}`)).text;
  const post = (instance: Instance, path: string) => json(`${instance.url}${path}`, 'POST');

  beforeAll(async () => {
    redis = await startRedisServer();
    instances = await Promise.all(
      [1, 2, 3].map(() => startInstance({ redisUrl: redis.url, l1Ttl: 60_000, invalidateOnWrite: true })),
    );
    await until(
      async () =>
        (await Promise.all(instances.map((i) => json<State>(`${i.url}/admin/state/-`)))).every(
          (s) => s.redisUp && s.subscribed,
        ),
      'every instance connected to Redis',
    );
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await redis?.stop();
    if (figures.length > 0)
      console.log(`invalidation delay until all 3 instances answer fresh:\n${figures.join('\n')}`);
  });

  /**
   * Warms `path` on every instance (one shared body), invalidates with
   * `invalidate` on instance 0, and resolves with the milliseconds until
   * every instance answered something else.
   */
  async function trial(path: string, invalidate: () => Promise<unknown>): Promise<number> {
    const old = await body(instances[0], path);
    for (const instance of instances.slice(1)) expect(await body(instance, path)).toBe(old);
    // Held in L1 now: a second read is answered in process.
    for (const instance of instances) expect(await body(instance, path)).toBe(old);
    const start = performance.now();
    await invalidate();
    const seen = await Promise.all(
      instances.map(async (instance) => {
        await until(async () => (await body(instance, path)) !== old, `${path} fresh on ${instance.url}`);
        return performance.now() - start;
      }),
    );
    return Math.max(...seen);
  }

  const kinds: [string, (id: string) => [string, () => Promise<unknown>]][] = [
    ['invalidate(key)', (id) => [`/item/${id}`, () => post(instances[0], `/admin/invalidate/${id}`)]],
    ['invalidate({ prefix })', (id) => [`/item/${id}`, () => post(instances[0], `/admin/invalidate-prefix/${id}`)]],
    ['invalidateTags', (id) => [`/tagged/${id}`, () => post(instances[0], `/admin/invalidate-tag/${id}`)]],
    ['invalidateOnWrite (POST)', (id) => [`/item/${id}`, () => post(instances[0], `/item/${id}`)]],
  ];

  it.each(kinds)(`%s on one instance: every instance answers fresh (${TRIALS} trials)`, async (name, make) => {
    const delays: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const [path, invalidate] = make(`${i}-${randomUUID()}`);
      delays.push(await trial(path, invalidate));
    }
    expect(delays).toHaveLength(TRIALS);
    delays.sort((a, b) => a - b);
    figures.push(
      `${name}: p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${percentile(delays, 99).toFixed(1)} ms, max ${delays[delays.length - 1].toFixed(1)} ms`,
    );
  });
});
