import { randomUUID } from 'node:crypto';
import { Instance, startInstance } from './support/instances';
import { Fleet } from './support/fleet';
import { Reply, json, send } from './support/http';
import { until } from '../helpers/deferred';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

/** What an instance says about one id (see `apps/instance.ts`). */
interface State {
  pid: number;
  executions: number;
  waiters: number;
  redisUp: boolean;
  subscribed: boolean;
}

const PER_INSTANCE = 100;
const TRIALS = 20;

jest.setTimeout(60_000);

describe('many instances on one Redis', () => {
  let redis: RedisServer;
  let instances: Instance[] = [];
  const figures: string[] = [];

  const state = (instance: Instance, id: string) => json<State>(`${instance.url}/admin/state/${id}`);
  const states = (id: string, on = instances) => Promise.all(on.map((instance) => state(instance, id)));
  const executions = async (id: string, on = instances) =>
    (await states(id, on)).reduce((total, s) => total + s.executions, 0);
  const hold = (id: string, on = instances) =>
    Promise.all(on.map((instance) => json(`${instance.url}/admin/hold/${id}`, 'POST')));
  const open = (id: string, on = instances) =>
    Promise.all(on.map((instance) => json(`${instance.url}/admin/open/${id}`, 'POST')));
  const allUp = async (on = instances) => (await states('-', on)).every((s) => s.redisUp && s.subscribed);

  /**
   * `perInstance` concurrent GETs of `id` on each instance while the handler
   * is held everywhere; opens once every instance has all of them waiting.
   */
  async function coldBurst(id: string, perInstance: number, on = instances): Promise<Reply[]> {
    await hold(id, on);
    const replies = on.flatMap((instance) =>
      Array.from({ length: perInstance }, () => send(`${instance.url}/item/${id}`)),
    );
    await until(
      async () => (await states(id, on)).every((s) => s.waiters === perInstance),
      `${perInstance} waiters on every instance`,
    );
    await open(id, on);
    return Promise.all(replies);
  }

  beforeAll(async () => {
    redis = await startRedisServer();
    instances = await Promise.all([1, 2, 3].map(() => startInstance({ redisUrl: redis.url })));
    await until(() => allUp(), 'every instance connected to Redis');
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await redis?.stop();
    if (figures.length > 0) console.log(`multi-instance figures:\n${figures.join('\n')}`);
  });

  it(`runs the handler once for ${3 * PER_INSTANCE} concurrent cold requests spread over 3 instances, ${TRIALS} times`, async () => {
    const perTrial: number[] = [];
    for (let trial = 1; trial <= TRIALS; trial++) {
      const id = `burst-${trial}-${randomUUID()}`;
      const replies = await coldBurst(id, PER_INSTANCE);
      const failed = replies.filter((reply) => reply.status !== 200);
      const total = await executions(id);
      perTrial.push(total);
      figures.push(`trial ${trial}: ${replies.length} requests, ${total} origin call(s), ${failed.length} failed`);
      expect(failed).toEqual([]);
      expect(total).toBe(1);
      const bodies = new Set(replies.map((reply) => reply.text));
      expect(bodies.size).toBe(1);
      expect(JSON.parse([...bodies][0])).toEqual({ id, execution: expect.any(String) });
    }
    expect(perTrial).toEqual(Array(TRIALS).fill(1));
  });

  it('answers from Redis on every instance once one of them stored the value', async () => {
    const id = `warm-${randomUUID()}`;
    const first = await send(`${instances[0].url}/item/${id}`);
    const others = await Promise.all(instances.slice(1).map((instance) => send(`${instance.url}/item/${id}`)));
    expect(others.map((reply) => reply.text)).toEqual([first.text, first.text]);
    expect(others.map((reply) => reply.cacheStatus)).toEqual([
      expect.stringMatching(/; hit; ttl=/),
      expect.stringMatching(/; hit; ttl=/),
    ]);
    expect(await executions(id)).toBe(1);
  });

  it('serves every request while Redis is stopped mid-load, logs the outage once, and shares again after a restart', async () => {
    // 30 clients in a loop over every instance; keys change every round, so misses go on during the outage.
    const load = new Fleet(instances).load(30, 'load');
    const completed = () => load.completed();
    const failures = load.failures;

    await until(() => completed() >= 300, 'load under way');
    const logsBefore = instances.map((instance) => instance.output().length);
    await redis.stop();
    const atStop = completed();
    await until(() => completed() >= atStop + 600, '600 requests served without Redis');
    await redis.restart();
    await until(() => allUp(), 'every instance reconnected to Redis');
    const outageLogs = instances.map((instance, i) => instance.output().slice(logsBefore[i]));
    const atRestart = completed();
    await until(() => completed() >= atRestart + 300, 'load after the restart');
    await load.stop();

    figures.push(`Redis stopped mid-load: ${completed()} requests, ${failures.length} failed`);
    expect(failures).toEqual([]);
    // One warning when the outage starts and one line when it ends, per instance, whatever the request count.
    for (const output of outageLogs) {
      expect(output.match(/Redis unreachable/g)).toHaveLength(1);
      expect(output.match(/Redis answers again/g)).toHaveLength(1);
    }

    // Cross-instance coalescing and caching are back.
    const id = `after-restart-${randomUUID()}`;
    const replies = await coldBurst(id, 30);
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    expect(new Set(replies.map((reply) => reply.text)).size).toBe(1);
    expect(await executions(id)).toBe(1);
    const again = await send(`${instances[2].url}/item/${id}`);
    expect(again.cacheStatus).toMatch(/; hit; ttl=/);
  });
});

describe('many instances on one Redis, when the lease holder dies', () => {
  let redis: RedisServer;
  let instances: Instance[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    // A short lease: a dead holder's lease runs out long before the waiters' lockTimeout.
    instances = await Promise.all(
      [1, 2, 3].map(() => startInstance({ redisUrl: redis.url, leaseTtl: 3_000, lockTimeout: 10_000 })),
    );
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await redis?.stop();
  });

  it('lets the others take over once its lease expires, and they all answer 200', async () => {
    const id = `killed-${randomUUID()}`;
    const stateOf = (instance: Instance) => json<State>(`${instance.url}/admin/state/${id}`);
    await until(
      async () => (await Promise.all(instances.map(stateOf))).every((s) => s.redisUp && s.subscribed),
      'every instance connected to Redis',
    );
    await Promise.all(instances.map((instance) => json(`${instance.url}/admin/hold/${id}`, 'POST')));
    const replies = instances.map((instance) =>
      Array.from({ length: 30 }, () => send(`${instance.url}/item/${id}`).catch((error: unknown) => error)),
    );
    // Mid-flight: the holder's handler runs (held at the gate) and every instance has callers waiting.
    let seen: State[] = [];
    await until(async () => {
      seen = await Promise.all(instances.map(stateOf));
      return seen.some((s) => s.executions > 0) && seen.every((s) => s.waiters > 0);
    }, 'a holder running and callers waiting everywhere');
    const holders = seen.filter((s) => s.executions > 0);
    expect(holders).toHaveLength(1);
    const holder = instances.find((instance) => instance.pid === holders[0].pid)!;
    const survivors = instances.filter((instance) => instance !== holder);

    // The holder dies while its handler waits on the gate: its lease stays in Redis until it expires.
    await holder.kill('SIGKILL');
    await Promise.all(survivors.map((instance) => json(`${instance.url}/admin/open/${id}`, 'POST')));

    const answered = (
      await Promise.all(survivors.map((instance) => Promise.all(replies[instances.indexOf(instance)])))
    ).flat();
    expect(answered.map((reply) => (reply as Reply).status)).toEqual(Array(60).fill(200));
    // One survivor took the lease over; the other answered with its value.
    expect(new Set(answered.map((reply) => (reply as Reply).text)).size).toBe(1);
    const survivorExecutions = (await Promise.all(survivors.map(stateOf))).reduce((n, s) => n + s.executions, 0);
    expect(survivorExecutions).toBe(1);
  });
});
