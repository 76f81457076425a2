import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import { createCache } from 'cache-manager';
import { StampedeModule, StampedeService } from '../../lib';
import { BenchOptions, Check, ScenarioReport, Target } from '../shared/report';
import { num } from '../shared/stats';
import { mulberry32 } from '../../test/helpers/random';

/**
 * run-many: concurrent requests each load a random set of keys (the N+1
 * case a DataLoader solves) from an origin that answers a batch in 20 ms.
 * Compares `StampedeService.runMany` with a hand-written DataLoader (one
 * batch per tick) in front of a cache-manager cache, on the same schedule:
 * origin calls, keys fetched, and keys fetched more than once.
 */

const TTL = 60_000;
const UNIVERSE = 200;
const PER_REQUEST = 10;
const ORIGIN_MS = 20;

interface Origin {
  calls: number;
  fetched: Map<string, number>;
  fetch(keys: string[]): Promise<Map<string, string>>;
}

function origin(): Origin {
  const o: Origin = {
    calls: 0,
    fetched: new Map(),
    async fetch(keys) {
      o.calls++;
      for (const key of keys) o.fetched.set(key, (o.fetched.get(key) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, ORIGIN_MS));
      return new Map(keys.map((key) => [key, `value of ${key}`]));
    },
  };
  return o;
}

/** The DataLoader pattern by hand: keys asked in one tick go in one batch; a cache-manager cache in front. */
function dataLoaderWithCache(o: Origin) {
  const cache = createCache({ ttl: TTL });
  let queue: { key: string; resolve(value: string): void; reject(error: unknown): void }[] = [];
  const dispatch = async () => {
    const batch = queue;
    queue = [];
    const keys = [...new Set(batch.map((item) => item.key))];
    try {
      const values = await o.fetch(keys);
      await Promise.all(keys.map((key) => cache.set(key, values.get(key), TTL)));
      for (const item of batch) item.resolve(values.get(item.key)!);
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  };
  const load = async (key: string): Promise<string> => {
    const cached = await cache.get<string>(key);
    if (cached !== undefined && cached !== null) return cached;
    return new Promise((resolve, reject) => {
      if (queue.length === 0) process.nextTick(dispatch);
      queue.push({ key, resolve, reject });
    });
  };
  return { loadMany: (keys: string[]) => Promise.all(keys.map(load)), close: () => cache.disconnect() };
}

@Module({ imports: [StampedeModule.forRoot({ ttl: TTL })] })
class BenchModule {}

/** `waves` waves of `concurrency` requests, each loading PER_REQUEST random keys; waves 5 ms apart. */
function schedule(seed: number, waves: number, concurrency: number): string[][][] {
  const random = mulberry32(seed);
  return Array.from({ length: waves }, () =>
    Array.from({ length: concurrency }, () =>
      Array.from({ length: PER_REQUEST }, () => `item:${Math.floor(random() * UNIVERSE)}`),
    ),
  );
}

async function play(plan: string[][][], loadMany: (keys: string[]) => Promise<string[]>): Promise<number> {
  const started = performance.now();
  const all: Promise<string[]>[] = [];
  for (const wave of plan) {
    for (const keys of wave) all.push(loadMany(keys));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const answers = (await Promise.all(all)).flat();
  const asked = plan.flat(2);
  const wrong = answers.filter((value, i) => value !== `value of ${asked[i]}`).length;
  if (wrong > 0) throw new Error(`${wrong} wrong answers`);
  return performance.now() - started;
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const waves = options.quick ? 4 : 12;
  const concurrencies = options.quick ? [20] : [10, 50, 200];
  const rows: string[][] = [];
  const checks: Check[] = [];
  const targets: Target[] = [];
  const raw: unknown[] = [];
  for (const concurrency of concurrencies) {
    const plan = schedule(concurrency, waves, concurrency);
    const distinct = new Set(plan.flat(2)).size;

    const dl = origin();
    const loader = dataLoaderWithCache(dl);
    const dlMs = await play(plan, loader.loadMany);
    await loader.close();

    const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
    const stampede = app.get(StampedeService);
    const st = origin();
    const shared = stampede.loader((missing: string[]) => st.fetch(missing));
    const stMs = await play(plan, (keys) => shared.loadMany(keys));
    await app.close();

    const twice = (o: Origin) => [...o.fetched.values()].filter((n) => n > 1).length;
    const keysFetched = (o: Origin) => [...o.fetched.values()].reduce((a, b) => a + b, 0);
    rows.push(
      [
        `${concurrency} x ${waves}`,
        'DataLoader + cache-manager',
        num(dl.calls),
        num(keysFetched(dl)),
        num(twice(dl)),
        num(distinct),
        `${dlMs.toFixed(0)} ms`,
      ],
      [
        `${concurrency} x ${waves}`,
        'StampedeService.loader (runMany)',
        num(st.calls),
        num(keysFetched(st)),
        num(twice(st)),
        num(distinct),
        `${stMs.toFixed(0)} ms`,
      ],
    );
    checks.push({
      name: `run-many ${concurrency} x ${waves}: every key fetched exactly once`,
      pass: twice(st) === 0 && keysFetched(st) === distinct,
      detail: `${keysFetched(st)} keys fetched for ${distinct} distinct`,
    });
    targets.push({
      name: `run-many ${concurrency} x ${waves}: origin calls vs DataLoader + cache-manager`,
      measured: `${st.calls} vs ${dl.calls}`,
      goal: '<=',
      pass: st.calls <= dl.calls,
    });
    raw.push({
      concurrency,
      waves,
      distinct,
      dataLoader: { calls: dl.calls, keys: keysFetched(dl) },
      runMany: { calls: st.calls, keys: keysFetched(st) },
    });
  }
  return {
    tables: [
      {
        title: `run-many: concurrent requests loading ${PER_REQUEST} of ${UNIVERSE} keys each, waves 5 ms apart, a ${ORIGIN_MS} ms batch origin`,
        columns: [
          'requests',
          'system',
          'origin calls',
          'keys fetched',
          'keys fetched twice+',
          'distinct keys',
          'wall time',
        ],
        rows,
      },
    ],
    targets,
    checks,
    raw,
  };
}
