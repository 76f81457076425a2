import * as api from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import { lastValueFrom } from 'rxjs';
import { CoordinatedWrite } from '../../lib/core/coordinator';
import { FlightTrace } from '../../lib/core/observer';
import { RedisKeys } from '../../lib/redis/redis.keys';
import { leaseValue } from '../../lib/redis/redis.lease-flight';
import { RedisTier } from '../../lib/redis/redis.tier';
import { parseTraceparent } from '../../lib/nest/observability/stampede.otel-flight';
import type { SpanLine } from './apps/tracing';
import { Instance, startInstance } from './support/instances';
import { Tiers } from './support/tiers';
import { json, send } from './support/http';
import { GatedWork } from '../helpers/gated-work';
import { until } from '../helpers/deferred';
import { RawClient, RedisServer, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';

jest.setTimeout(60_000);

const KEYS = new RedisKeys('stampede:');
const TOKEN = /^[0-9a-f-]{36}$/;

/** A flight's observer record as the lease sees it: what it shares, and what it was told. */
class SharedTrace implements FlightTrace {
  readonly told: [holder: string | undefined, waited: boolean][] = [];
  constructor(private readonly text: string | undefined) {}
  end(): void {}
  share(): string | undefined {
    return this.text;
  }
  ranElsewhere(holder: string | undefined, waited: boolean): void {
    this.told.push([holder, waited]);
  }
}

function write<T>(trace?: FlightTrace): CoordinatedWrite<T> {
  return { ttl: 60_000, storable: () => true, entry: (v) => ({ v, e: Date.now() + 60_000 }), trace };
}

describe('the lease carries what the holder shares of its trace', () => {
  let server: RedisServer;
  let raw: RawClient;
  const tiers = new Tiers();
  let a: RedisTier;
  let b: RedisTier;
  let c: RedisTier;
  const lead = (tier: RedisTier, key: string, work: GatedWork<string>, trace?: FlightTrace) =>
    lastValueFrom(tier.lease.lead(key, work.run, write<string>(trace)));
  const lockOf = async (key: string) => (await raw.get(KEYS.lock(key))) ?? undefined;

  beforeAll(async () => {
    ({ server, raw } = await startRedisWithClient());
    [a, b, c] = await Promise.all([1, 2, 3].map(() => tiers.make(server.url)));
  });
  afterAll(async () => {
    await tiers.closeAll();
    await stopRedisWithClient(server, raw);
  });

  it('without tracing the lease is a bare token: nothing extra is written', async () => {
    const key = `plain-${randomUUID()}`;
    const work = new GatedWork(() => 'v');
    const answer = lead(a, key, work);
    await until(() => work.runs === 1, 'a holding the lease');
    expect(await lockOf(key)).toMatch(TOKEN);
    work.open();
    await expect(answer).resolves.toBe('v');
  });

  it("a waiter learns the holder's text from the lease and is told it before its answer; a late caller is told it found the value", async () => {
    const key = `traced-${randomUUID()}`;
    const holderWork = new GatedWork(() => 'computed');
    const [holding, waiting, late] = [new SharedTrace('tp-of-a'), new SharedTrace('tp-of-b'), new SharedTrace('c')];
    const holder = lead(a, key, holderWork, holding);
    await until(() => holderWork.runs === 1, 'a holding the lease');
    const lock = await lockOf(key);
    expect(lock?.split(' ')).toEqual([expect.stringMatching(TOKEN), 'tp-of-a']);
    const waiter = lead(b, key, new GatedWork(() => 'not run'), waiting);
    await until(() => b.subscriber.listenedKeys === 1, 'b waiting on the holder');
    expect(waiting.told).toEqual([]);
    holderWork.open();
    await expect(Promise.all([holder, waiter])).resolves.toEqual(['computed', 'computed']);
    expect(holding.told).toEqual([]);
    expect(waiting.told).toEqual([['tp-of-a', true]]);
    await expect(lead(c, key, new GatedWork(() => 'not run'), late)).resolves.toBe('computed');
    expect(late.told).toEqual([[undefined, false]]);
  });

  it('shares nothing it could not parse back: text with a space or over 128 characters is left out', () => {
    expect(leaseValue('t', 'a b')).toBe('t');
    expect(leaseValue('t', 'x'.repeat(129))).toBe('t');
    expect(leaseValue('t', '')).toBe('t');
    expect(leaseValue('t', undefined)).toBe('t');
    expect(leaseValue('t', '00-abc')).toBe('t 00-abc');
  });

  it('a foreign lease value (another writer, with spaces) is waited out and breaks nothing', async () => {
    const key = `foreign-${randomUUID()}`;
    await raw.set(KEYS.lock(key), 'someone else 00-not-a-traceparent', { PX: 300 });
    const trace = new SharedTrace('tp-of-b');
    const work = new GatedWork(() => 'own', true);
    // It waits for the foreign lease to expire, then takes it and runs the work itself.
    await expect(lead(b, key, work, trace)).resolves.toBe('own');
    expect(work.runs).toBe(1);
    expect(trace.told).toEqual([]);
  });

  it('parses only a well-formed traceparent of a valid span context', () => {
    const good = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(parseTraceparent(api, good)).toEqual({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
      isRemote: true,
    });
    for (const bad of [
      undefined,
      '',
      'else 00-not-a-traceparent',
      `${good} `,
      good.toUpperCase(),
      '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
    ]) {
      expect(parseTraceparent(api, bad)).toBeUndefined();
    }
  });
});

describe('a trace across 3 instances on one Redis (the real SDK in each)', () => {
  const PER_INSTANCE = 20;
  let server: RedisServer;
  let raw: RawClient;
  let instances: Instance[] = [];

  const states = (id: string) =>
    Promise.all(instances.map((i) => json<{ waiters: number; executions: number }>(`${i.url}/admin/state/${id}`)));
  const onAll = (path: string) => Promise.all(instances.map((i) => json(`${i.url}${path}`, 'POST')));
  /** The spans an instance finished so far, from its stdout. */
  const spansOf = (instance: Instance): SpanLine[] =>
    instance
      .output()
      .split('\n')
      .filter((line) => line.startsWith('span {'))
      .map((line) => JSON.parse(line.slice('span '.length)) as SpanLine);

  beforeAll(async () => {
    ({ server, raw } = await startRedisWithClient());
    instances = await Promise.all([1, 2, 3].map(() => startInstance({ redisUrl: server.url, tracing: true })));
    await until(
      async () =>
        (await Promise.all(instances.map((i) => json<{ subscribed: boolean }>(`${i.url}/admin/state/-`)))).every(
          (s) => s.subscribed,
        ),
      'every instance subscribed',
    );
  });
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')));
    await stopRedisWithClient(server, raw);
  });

  it(`a cold burst of ${3 * PER_INSTANCE}: one stampede.flight span in all, every other request span links to it`, async () => {
    const id = `secret-${randomUUID()}`;
    await onAll(`/admin/hold/${id}`);
    const replies = instances.flatMap((instance) =>
      Array.from({ length: PER_INSTANCE }, () => send(`${instance.url}/item/${id}`)),
    );
    await until(async () => (await states(id)).every((s) => s.waiters === PER_INSTANCE), 'every caller waiting');
    // The holder's lease value: its token and the traceparent of its flight span.
    const lease = await raw.get(KEYS.lock(`GET http://api.example/item/${id}`));
    expect(lease).toMatch(/^[0-9a-f-]{36} 00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await onAll(`/admin/open/${id}`);
    const answered = await Promise.all(replies);
    expect(answered.map((reply) => reply.status)).toEqual(Array(3 * PER_INSTANCE).fill(200));
    expect(new Set(answered.map((reply) => reply.text)).size).toBe(1);
    expect((await states(id)).reduce((sum, s) => sum + s.executions, 0)).toBe(1);

    // Every instance's request spans end after their answers; the admin routes make spans too.
    const burst = (instance: Instance) =>
      spansOf(instance).filter((span) => span.name !== 'request' || span.attributes.controller === 'ItemsController');
    await until(
      () => instances.every((i) => burst(i).filter((span) => span.name === 'request').length === PER_INSTANCE),
      `${PER_INSTANCE} request spans from every instance`,
    );
    const all = instances.flatMap(burst);
    const flights = all.filter((span) => span.name === 'stampede.flight');
    expect(flights).toHaveLength(1);
    const [flight] = flights;
    expect(lease?.split(' ')[1]).toBe(`00-${flight.traceId}-${flight.spanId}-01`);
    const requests = all.filter((span) => span.name === 'request');
    const leader = requests.find((span) => span.spanId === flight.parentSpanId);
    expect(leader?.pid).toBe(flight.pid);
    const followers = requests.filter((span) => span !== leader);
    expect(followers).toHaveLength(3 * PER_INSTANCE - 1);
    const linked = (span: SpanLine) =>
      span.links.length === 1 && span.links[0].traceId === flight.traceId && span.links[0].spanId === flight.spanId;
    const unlinked = followers.filter((span) => !linked(span));
    expect(unlinked).toEqual([]);
    expect(
      followers.every((span) =>
        span.events.some((e) => e.name === 'stampede.wait' && e.attributes?.['stampede.outcome'] === 'collapsed'),
      ),
    ).toBe(true);
    const otherInstances = new Set(followers.filter((span) => span.pid !== flight.pid).map((span) => span.pid));
    expect(otherInstances.size).toBe(2);
    // Each other instance waited on the lease once: a stampede.lease span, linked to the flight.
    const leases = all.filter((span) => span.name === 'stampede.lease');
    expect(new Set(leases.map((span) => span.pid))).toEqual(otherInstances);
    expect(leases).toHaveLength(2);
    expect(leases.every(linked)).toBe(true);
    expect(leases.every((span) => span.attributes['stampede.outcome'] === 'collapsed')).toBe(true);
    expect(flight.attributes).toMatchObject({ 'stampede.stored': true, 'stampede.flight.kind': 'lead' });
    expect(flight.attributes['stampede.key_hash']).toEqual(leases[0].attributes['stampede.key_hash']);

    const everything = JSON.stringify(all.map((span) => [span.attributes, span.events, span.links]));
    expect(everything).not.toContain(id);
    expect(everything).not.toContain('/item/');
    // Nor is the lease value (or any part of it) ever logged.
    for (const instance of instances) {
      const logs = instance
        .output()
        .split('\n')
        .filter((line) => !line.startsWith('span {'));
      expect(logs.join('\n')).not.toContain(lease!.split(' ')[0]);
    }
  });
});
