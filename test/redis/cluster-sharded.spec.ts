import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { lastValueFrom } from 'rxjs';
import { Coalescer } from '../../lib/core/coalescer';
import { StoredEntry } from '../../lib/core/store';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { keySlot } from '../../lib/redis/redis.slot';
import { RedisTier } from '../../lib/redis/redis.tier';
import { until } from '../helpers/deferred';
import { GatedWork } from '../helpers/gated-work';
import { RecordingLogger } from '../helpers/logger';
import { RedisCluster } from '../helpers/redis-cluster';
import { RawCluster, clusterTiers } from './support/cluster';

jest.setTimeout(90_000);

const run = promisify(execFile);

describe("sharded wake-ups on a Redis Cluster (redis.wake: 'sharded')", () => {
  const suite = clusterTiers('sharded');
  let cluster: RedisCluster;
  let raw: RawCluster;
  const tier = suite.tier;
  const keys = new RedisKeys('stampede:');
  const figures: string[] = [];

  const coalescer = (made: RedisTier) =>
    new Coalescer({ store: made.store, coordinator: made.lease, tags: made.tags, logger: new RecordingLogger() });

  /** Instances subscribed to `channel` on the primary of its slot (`PUBSUB SHARDNUMSUB`). */
  const shardSubscribers = async (channel: string) =>
    Number(((await raw.sendCommand(channel, true, ['PUBSUB', 'SHARDNUMSUB', channel])) as unknown[])[1]);

  /** Connections each primary accepted so far (`INFO stats`), summed. */
  async function connectionsReceived(): Promise<number> {
    const counts = await Promise.all(
      raw.masters.map(async (node) => {
        const info = String(await (await raw.nodeClient(node)).sendCommand(['INFO', 'stats']));
        return Number(/total_connections_received:(\d+)/.exec(info)?.[1]);
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  beforeAll(() => {
    ({ cluster, raw } = suite);
  });

  afterAll(() => {
    if (figures.length > 0) console.log(`sharded wake-up figures:\n${figures.join('\n')}`);
  });

  it("wakes another instance's waiter by SPUBLISH on the key's slot: its channel subscribed there, no pattern anywhere", async () => {
    const [a, b] = await Promise.all([tier(), tier()]);
    const [holder, waiter] = [coalescer(a), coalescer(b)];
    // The waiter never polls within a round: only the wake-up can answer it before its lockTimeout,
    // after which it would run the work itself (a second run, and no 'collapsed').
    b.lease.pollDelay = () => 60_000;
    const latencies: number[] = [];
    for (let round = 0; round < 20; round++) {
      const key = `GET /sharded-wake/${round}`;
      const channel = keys.wake(key);
      const gated = new GatedWork(() => 'fresh');
      const work = gated.run;
      const held = lastValueFrom(holder.run$(key, work, { ttl: 60_000 }));
      await until(() => gated.runs === 1, 'the holder running the work');
      let answeredAt = 0;
      const waited = lastValueFrom(waiter.run$(key, work, { ttl: 60_000 })).then((answer) => {
        answeredAt = performance.now();
        return answer;
      });
      // The waiter's instance only: the holder's took the lease and needs no wake-up.
      await until(async () => (await shardSubscribers(channel)) === 1, "the waiter's channel subscribed on its node");
      const heard: string[] = [];
      if (round === 0) await raw.sSubscribe(channel, (message) => heard.push(message));
      // Its first look and the look once subscribed are done: what follows is the wake-up (or a poll).
      await new Promise((resolve) => setTimeout(resolve, 30));
      const releasedAt = performance.now();
      gated.open();
      const [first, second] = await Promise.all([held, waited]);
      expect([first.value, second.value, gated.runs]).toEqual(['fresh', 'fresh', 1]);
      expect(second.outcome).toBe('collapsed');
      latencies.push(answeredAt - releasedAt);
      if (round === 0) {
        await until(() => heard.length > 0, 'the wake-up heard on the shard channel');
        expect(heard).toEqual(['stored']);
        await raw.sUnsubscribe(channel);
      }
    }
    latencies.sort((x, y) => x - y);
    const [p50, max] = [latencies[10], latencies[19]];
    figures.push(`wake-up to waiter answer (2 tiers, 20 rounds): p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    // No instance listens to a pattern of wake-ups (a cluster would broadcast every one to every node).
    const patterns = await Promise.all(
      raw.masters.map(async (node) => (await raw.nodeClient(node)).sendCommand(['PUBSUB', 'NUMPAT'])),
    );
    expect(patterns.map(Number)).toEqual(raw.masters.map(() => 0));
    expect(b.subscriber.shards!.counts.unsubscribes).toBe(0);
  });

  it('clears no L1 and reloads no tag times over many flights, while node pub/sub connections come and go', async () => {
    const made = await Promise.all([tier(60_000), tier(60_000), tier(60_000)]);
    const resubscribed = made.map(() => 0);
    made.forEach((each, i) => each.subscriber.onResubscribed(() => resubscribed[i]++));
    const kept: StoredEntry = { v: 'kept', e: Date.now() + 60_000, t: Date.now() };
    await made[0].store.set('GET /kept-in-l1', kept, 60_000);
    expect(made[0].store.local.get('GET /kept-in-l1')).toBeDefined();
    const coalescers = made.map(coalescer);
    let origin = 0;
    const flights = async (name: string, count: number, key = (i: number) => `GET /${name}/${i}`) => {
      for (let i = 0; i < count; i++) {
        const work = async () => {
          origin++;
          await new Promise((resolve) => setTimeout(resolve, 5));
          return i;
        };
        const answers = await Promise.all(coalescers.map((c) => lastValueFrom(c.run$(key(i), work, { ttl: 60_000 }))));
        expect(answers.map((answer) => answer.value)).toEqual([i, i, i]);
        // The next flight of a hot key is a miss again.
        await made[0].store.delete(key(i));
        await until(() => made.every((each) => each.store.local.get(key(i)) === undefined), 'the L1 copies dropped');
      }
    };
    const counts = () => made.map((each) => ({ ...each.subscriber.shards!.counts }));
    // Keys of every primary.
    const slots = new Set(
      Array.from({ length: 150 }, (_, i) => Math.floor(keySlot(keys.value(`GET /many/${i}`)) / 5462)),
    );
    expect(slots.size).toBe(3);

    const before = await connectionsReceived();
    await flights('many', 150);
    const kept1 = counts();
    const opened1 = (await connectionsReceived()) - before;
    // A hot key: one SSUBSCRIBE per waiting instance for 50 flights, none after.
    await flights('hot', 50, () => 'GET /hot');
    const hot = counts().map((c, i) => c.subscribes - kept1[i].subscribes);
    expect(hot.every((sent) => sent <= 1)).toBe(true);

    // Every channel unsubscribed as soon as its last listener leaves: node connections close and open per flight.
    for (const each of made) each.subscriber.shards!.maxIdle = 0;
    const before2 = await connectionsReceived();
    await flights('flapping', 60);
    const opened2 = (await connectionsReceived()) - before2;
    const flapped = counts();
    // The node connections did come and go (about one per instance per flight)...
    expect(opened2).toBeGreaterThan(60);
    const dropped = flapped.reduce((total, c, i) => total + c.unsubscribes - kept1[i].unsubscribes, 0);
    expect(dropped).toBeGreaterThanOrEqual(60);
    figures.push(
      `150 cold flights over 3 instances, channels kept: SSUBSCRIBE ${kept1.map((c) => c.subscribes).join('/')}, ` +
        `SUNSUBSCRIBE ${kept1.map((c) => c.unsubscribes).join('/')}, connections opened on the primaries ${opened1}; ` +
        `hot key, 50 flights: SSUBSCRIBE ${hot.join('/')}; 60 flights unsubscribing at once: ` +
        `SUNSUBSCRIBE ${dropped}, connections opened ${opened2}`,
    );
    // ...and none of it looked like the invalidation connection coming back.
    expect(resubscribed).toEqual([0, 0, 0]);
    expect(made[0].store.local.get('GET /kept-in-l1')?.v).toBe('kept');
    expect(origin).toBe(150 + 50 + 60);
  });

  it('keeps a channel subscribed when a key is listened to again right after its last listener left', async () => {
    const made = await tier();
    const shards = made.subscriber.shards!;
    const key = 'GET /unlisten-listen';
    const channel = keys.wake(key);
    const heard: string[] = [];
    let stop = made.subscriber.listen(key, (message) => heard.push(message));
    await until(() => heard.includes('subscribed'), 'the channel subscribed');
    // Kept a while (the default): leaving and coming back sends nothing.
    const sent = { ...shards.counts };
    stop();
    stop = made.subscriber.listen(key, (message) => heard.push(message));
    expect(shards.counts).toEqual(sent);
    stop();
    // Unsubscribed at once: the SUNSUBSCRIBE is in flight when the key is listened to again.
    shards.maxIdle = 0;
    stop = made.subscriber.listen(key, (message) => heard.push(message));
    stop();
    expect(shards.counts.unsubscribes).toBe(sent.unsubscribes + 1);
    heard.length = 0;
    stop = made.subscriber.listen(key, (message) => heard.push(message));
    await until(() => heard.includes('subscribed'), 'the channel subscribed again');
    expect(await shardSubscribers(channel)).toBe(1);
    await raw.sPublish(channel, 'wake');
    await until(() => heard.includes('wake'), 'a wake-up heard after unlisten and listen');
    // And the other way round: a listen undone while its SSUBSCRIBE is in flight ends unsubscribed.
    stop();
    const other = 'GET /listen-unlisten';
    made.subscriber.listen(other, () => undefined)();
    await until(() => shards.size === 0, 'nothing subscribed');
    expect([await shardSubscribers(channel), await shardSubscribers(keys.wake(other))]).toEqual([0, 0]);
  });

  it('still makes one origin call with a fleet of both modes: the other mode is not woken, it polls', async () => {
    const [sharded, pattern] = await Promise.all([tier(), tier(0, 'pattern')]);
    const late: number[] = [];
    for (const [holder, waiter] of [
      [sharded, pattern],
      [pattern, sharded],
    ]) {
      const key = `GET /mixed/${late.length}`;
      const gated = new GatedWork(() => 'fresh');
      const work = gated.run;
      const held = lastValueFrom(coalescer(holder).run$(key, work, { ttl: 60_000 }));
      await until(() => gated.runs === 1, 'the holder running the work');
      const waited = lastValueFrom(coalescer(waiter).run$(key, work, { ttl: 60_000 }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const releasedAt = performance.now();
      gated.open();
      await held;
      const answer = await waited;
      late.push(performance.now() - releasedAt);
      expect([answer.value, answer.outcome, gated.runs]).toEqual(['fresh', 'collapsed', 1]);
    }
    figures.push(
      `mixed fleet: the waiter of the other mode answered ${late.map((ms) => ms.toFixed(0)).join(' / ')} ms after`,
    );
  });

  it("follows a key's slot moved to another primary: its channel is subscribed there", async () => {
    const made = await tier();
    const key = 'GET /moved-wake';
    const channel = keys.wake(key);
    const slot = String(keySlot(channel));
    const heard: string[] = [];
    made.subscriber.listen(key, (message) => heard.push(message));
    await until(() => heard.includes('subscribed'), 'the channel subscribed');
    const on = async (port: number, ...args: string[]) =>
      (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim();
    const source = await cluster.primaryOf(Number(slot));
    const roles = await Promise.all(cluster.nodes.map(async (node) => ({ node, role: await on(node.port, 'ROLE') })));
    const destination = roles.find(({ node, role }) => role.startsWith('master') && node !== source)!.node;
    const [sourceId, destinationId] = await Promise.all([
      on(source.port, 'CLUSTER', 'MYID'),
      on(destination.port, 'CLUSTER', 'MYID'),
    ]);
    await on(destination.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
    await on(source.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', destinationId);
    for (const node of [destination, source]) await on(node.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', destinationId);
    await until(async () => (await cluster.primaryOf(Number(slot))).port === destination.port, 'the slot moved');
    const onDestination = async () =>
      Number((await on(destination.port, 'PUBSUB', 'SHARDNUMSUB', channel)).split('\n')[1]);
    await until(async () => (await onDestination()) === 1, 'the channel subscribed on the new primary', 20_000);
    heard.length = 0;
    await on(destination.port, 'SPUBLISH', channel, 'after-move');
    await until(() => heard.includes('after-move'), 'a wake-up heard after the move');
    await cluster.healthy();
  });

  // Last: it leaves the cluster with a replica promoted.
  it("subscribes a key's channel again on the promoted replica after its primary is killed", async () => {
    const made = await tier();
    const key = 'GET /failover-wake';
    const channel = keys.wake(key);
    const heard: string[] = [];
    made.subscriber.listen(key, (message) => heard.push(message));
    await until(() => heard.includes('subscribed'), 'the channel subscribed');
    const victim = await cluster.primaryOf(keySlot(channel));
    await victim.kill();
    const killedAt = Date.now();
    await cluster.healthy();
    const promoted = await cluster.primaryOf(keySlot(channel));
    expect(promoted.port).not.toBe(victim.port);
    const onPromoted = async () => {
      const { stdout } = await run('redis-cli', ['-p', String(promoted.port), 'PUBSUB', 'SHARDNUMSUB', channel]);
      return Number(stdout.trim().split('\n')[1]);
    };
    await until(async () => (await onPromoted()) === 1, 'the channel subscribed on the promoted replica', 20_000);
    figures.push(`failover: channel subscribed on the promoted replica ${Date.now() - killedAt} ms after the kill`);
    heard.length = 0;
    await cluster.cli('-c', 'SPUBLISH', channel, 'after-failover');
    await until(() => heard.includes('after-failover'), 'a wake-up heard after the failover');
  });
});
