import { until } from '../../helpers/deferred';
import { Instance } from './instances';
import { Reply, json, send } from './http';

/** What an instance says about one id (see `apps/instance.ts`). */
export interface State {
  pid: number;
  executions: number;
  waiters: number;
  redisUp: boolean;
  subscribed: boolean;
  /** `redis.wake: 'sharded'`: the SSUBSCRIBE / SUNSUBSCRIBE commands sent. */
  shards?: { subscribes: number; unsubscribes: number; resubscribes: number };
  /** Times the instance dropped its L1 and reloaded tag times for a reconnection of its pub/sub connection. */
  resubscribed: number;
}

/** The admin routes of a set of app instances (see `apps/instance.ts`), driven from the test. */
export class Fleet {
  constructor(readonly instances: Instance[]) {}

  states(id: string, on = this.instances): Promise<State[]> {
    return Promise.all(on.map((instance) => json<State>(`${instance.url}/admin/state/${id}`)));
  }

  /** Origin calls for `id`, summed over the instances. */
  async executions(id: string, on = this.instances): Promise<number> {
    return (await this.states(id, on)).reduce((total, s) => total + s.executions, 0);
  }

  /** True when every instance has Redis up and its subscription in place. */
  async allUp(on = this.instances): Promise<boolean> {
    return (await this.states('-', on)).every((s) => s.redisUp && s.subscribed);
  }

  post(instance: Instance, path: string): Promise<unknown> {
    return json(`${instance.url}${path}`, 'POST');
  }

  /**
   * `perInstance` concurrent GETs of `/item/<id>` on each instance while the
   * handler is held everywhere; opens once every instance has all of them waiting.
   */
  async coldBurst(id: string, perInstance: number, on = this.instances): Promise<Reply[]> {
    await Promise.all(on.map((instance) => this.post(instance, `/admin/hold/${id}`)));
    const replies = on.flatMap((instance) =>
      Array.from({ length: perInstance }, () => send(`${instance.url}/item/${id}`)),
    );
    await until(
      async () => (await this.states(id, on)).every((s) => s.waiters === perInstance),
      `${perInstance} waiters on every instance`,
    );
    await Promise.all(on.map((instance) => this.post(instance, `/admin/open/${id}`)));
    return Promise.all(replies);
  }

  /**
   * `clients` concurrent loops of GETs over every instance until `stop()`,
   * on keys that change every round (misses keep coming); counts what completed and what failed.
   */
  load(clients: number, name: string): { completed(): number; failures: string[]; stop(): Promise<void> } {
    let completed = 0;
    let running = true;
    const failures: string[] = [];
    const loops = Array.from({ length: clients }, async (_, client) => {
      for (let round = 0; running; round++) {
        const instance = this.instances[(client + round) % this.instances.length];
        const path = `/item/${name}-${round % 50}-${Math.floor(round / 50)}-${client % 5}`;
        try {
          const reply = await send(`${instance.url}${path}`);
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.text}`);
        } catch (error) {
          failures.push(String(error));
        }
        completed++;
      }
    });
    return {
      completed: () => completed,
      failures,
      stop: async () => {
        running = false;
        await Promise.all(loops);
      },
    };
  }
}
