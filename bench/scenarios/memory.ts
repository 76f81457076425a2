import { setImmediate as tick } from 'node:timers/promises';
import { serveParent, startChild } from '../shared/child';
import { BenchOptions, Check, ScenarioReport, Target, atMost } from '../shared/report';
import { num } from '../shared/stats';

/**
 * memory: (1) many distinct keys through `StampedeService.run` with a bounded
 * store must leave a heap bounded by `maxEntries`, not by the key count;
 * (2) many flights (successes, async errors, sync throws, cancellations) with
 * nothing stored must leave no flight behind and the heap where it started.
 * Runs in a child with --expose-gc, so heap figures are taken after full GCs.
 */

const MAX_ENTRIES = 10_000;
const VALUE_BYTES = 1024;
/** Calls in flight at once, so the run takes seconds rather than minutes. */
const WAVE = 1000;
/** Per retained entry, beyond the 1 KB value: key, envelope, Map slot. Generous on purpose. */
const ENTRY_BUDGET_BYTES = 2 * VALUE_BYTES;
const BASELINE_TOLERANCE = 0.05;

interface Params {
  keys: number;
  flights: number;
}

interface MemoryResult {
  keys: number;
  baselineBytes: number;
  afterKeysBytes: number;
  peakBytes: number;
  storeEntries: number;
  flights: number;
  flightsBaselineBytes: number;
  afterFlightsBytes: number;
  inFlightAfter: number;
  outcomes: Record<string, number>;
}

async function heapAfterGc(): Promise<number> {
  const gc = global.gc;
  if (!gc) throw new Error('memory scenario needs --expose-gc');
  // Several passes with turns of the event loop between, so finalizers and weak maps settle.
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
  return process.memoryUsage().heapUsed;
}

/** A distinct, flat 1 KB string on the JS heap (a Buffer would live off-heap and hide the cost). */
function value(i: number): string {
  return Buffer.alloc(VALUE_BYTES, i % 251).toString('latin1');
}

async function measure({ keys, flights }: Params): Promise<MemoryResult> {
  const { NestFactory } = await import('@nestjs/core');
  const { Module } = await import('@nestjs/common');
  const { StampedeModule, StampedeService } = await import('../../lib');

  @Module({ imports: [StampedeModule.forRoot({ ttl: 10 * 60_000, maxEntries: MAX_ENTRIES })] })
  class MemoryModule {}
  const app = await NestFactory.createApplicationContext(MemoryModule, { logger: ['error'] });
  const stampede = app.get(StampedeService);

  // (1) distinct keys, each stored. Warm up first so compiled code is in the baseline.
  const throughKeys = async (prefix: string, count: number, onWave?: () => void) => {
    for (let base = 0; base < count; base += WAVE) {
      const wave: Promise<unknown>[] = [];
      for (let i = base; i < Math.min(count, base + WAVE); i++) {
        wave.push(stampede.run(`${prefix}:${i}`, async () => value(i)));
      }
      await Promise.all(wave);
      onWave?.();
    }
  };
  await throughKeys('warm', 2 * MAX_ENTRIES);
  await stampede.invalidate({ prefix: '' });
  const baselineBytes = await heapAfterGc();
  let peakBytes = 0;
  let wave = 0;
  await throughKeys('key', keys, () => {
    if (wave++ % 50 === 0) peakBytes = Math.max(peakBytes, process.memoryUsage().heapUsed);
  });
  const afterKeysBytes = await heapAfterGc();
  // Through the public API: how many of the most recent keys (and a few more) are still stored.
  let storeEntries = 0;
  for (let i = Math.max(0, keys - MAX_ENTRIES - 100); i < keys; i++) {
    if ((await stampede.get(`key:${i}`)) !== undefined) storeEntries++;
  }

  // (2) flights with ttl 0 (nothing stored): every 10th throws synchronously, every 4th rejects,
  // every 7th is abandoned by all its callers (cancelled), the rest succeed; each key has 2 callers.
  await stampede.invalidate({ prefix: '' });
  const outcomes: Record<string, number> = { ok: 0, rejected: 0, thrown: 0, cancelled: 0 };
  const throughFlights = async (prefix: string, count: number, tally: boolean) => {
    for (let base = 0; base < count; base += WAVE) {
      const wave: Promise<unknown>[] = [];
      for (let i = base; i < Math.min(count, base + WAVE); i++) {
        const key = `${prefix}:${i}`;
        const kind = i % 10 === 0 ? 'thrown' : i % 7 === 0 ? 'cancelled' : i % 4 === 0 ? 'rejected' : 'ok';
        if (tally) outcomes[kind]++;
        const work = async () => {
          if (kind === 'rejected') throw new Error(`failed ${i}`);
          return value(i);
        };
        const syncThrow = () => {
          throw new Error(`thrown ${i}`);
        };
        if (kind === 'cancelled') {
          const a = stampede.run$(key, work, { ttl: 0 }).subscribe();
          const b = stampede.run$(key, work, { ttl: 0 }).subscribe();
          a.unsubscribe();
          b.unsubscribe();
          continue;
        }
        const fn = kind === 'thrown' ? syncThrow : work;
        for (let caller = 0; caller < 2; caller++) {
          wave.push(stampede.run(key, fn, { ttl: 0 }).catch(() => undefined));
        }
      }
      await Promise.all(wave);
    }
  };
  await throughFlights('warm', 20_000, false);
  const flightsBaselineBytes = await heapAfterGc();
  await throughFlights('flight', flights, true);
  const inFlightAfter = stampede.inFlight();
  const afterFlightsBytes = await heapAfterGc();
  await app.close();
  return {
    keys,
    baselineBytes,
    afterKeysBytes,
    peakBytes,
    storeEntries,
    flights,
    flightsBaselineBytes,
    afterFlightsBytes,
    inFlightAfter,
    outcomes,
  };
}

const mb = (bytes: number) => `${num(bytes / 2 ** 20, 1)} MB`;

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const count = options.quick ? 100_000 : 1_000_000;
  const child = await startChild(__filename, [], ['--expose-gc']);
  let r: MemoryResult;
  try {
    r = await child.call<MemoryResult>('measure', { keys: count, flights: count } satisfies Params);
  } finally {
    await child.stop();
  }
  const retained = r.afterKeysBytes - r.baselineBytes;
  const flightDrift = (r.afterFlightsBytes - r.flightsBaselineBytes) / r.flightsBaselineBytes;
  const keysLabel = `${num(r.keys)} distinct keys`;
  const table = {
    title: `memory: StampedeService.run, maxEntries ${num(MAX_ENTRIES)}, ${VALUE_BYTES} B values (heap after full GC)`,
    columns: ['measure', 'value'],
    rows: [
      [`${keysLabel}: heap baseline`, mb(r.baselineBytes)],
      [`${keysLabel}: heap after`, mb(r.afterKeysBytes)],
      [`${keysLabel}: retained`, mb(retained)],
      [`${keysLabel}: retained per store entry`, `${num(retained / r.storeEntries)} B`],
      [`${keysLabel}: store entries after`, num(r.storeEntries)],
      [`${keysLabel}: peak heapUsed (no forced GC)`, mb(r.peakBytes)],
      [`${num(r.flights)} flights, ttl 0: heap baseline`, mb(r.flightsBaselineBytes)],
      [`${num(r.flights)} flights, ttl 0: heap after`, mb(r.afterFlightsBytes)],
      [`${num(r.flights)} flights, ttl 0: drift`, `${(flightDrift * 100).toFixed(2)} %`],
      [`${num(r.flights)} flights, ttl 0: in flight after`, num(r.inFlightAfter)],
    ],
    notes: [
      `flight outcomes: ${Object.entries(r.outcomes)
        .map(([k, v]) => `${num(v)} ${k}`)
        .join(', ')}; 2 callers per flight, ${WAVE} flights at a time.`,
    ],
  };
  const budget = MAX_ENTRIES * (VALUE_BYTES + ENTRY_BUDGET_BYTES);
  const targets: Target[] = [
    atMost(`memory: heap retained after ${keysLabel}`, retained / 2 ** 20, budget / 2 ** 20, ' MB'),
    atMost(`memory: heap drift after ${num(r.flights)} flights`, flightDrift * 100, BASELINE_TOLERANCE * 100, ' %', 2),
    atMost(`memory: flights left in flight`, r.inFlightAfter, 0, '', 0),
  ];
  const checks: Check[] = [
    {
      name: 'memory: no flight left behind',
      pass: r.inFlightAfter === 0,
      detail: `inFlight() = ${r.inFlightAfter}`,
    },
  ];
  return { tables: [table], targets, checks, raw: { maxEntries: MAX_ENTRIES, valueBytes: VALUE_BYTES, ...r } };
}

if (require.main === module) serveParent({ measure });
