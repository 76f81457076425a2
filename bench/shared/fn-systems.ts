import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createCache as createDedupeCache } from 'async-cache-dedupe';
import { createCache as createCacheManager } from 'cache-manager';
import { Cacheable } from 'cacheable';
import { coalesceAsync } from 'promise-coalesce';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { Coalesce, StampedeModule, StampedeService } from '../../lib';

/**
 * The function-level systems the fn-* scenarios compare, each put in front of
 * the same `origin(key)` with its documented API and a long TTL.
 */

/** The work being cached: the scenario swaps it (slow, instant, held) as it goes. */
export type Origin = (key: string) => Promise<unknown>;

export const TTL_MS = 10 * 60_000;

export interface FnSystem {
  name: string;
  /** Keeps results (a hit means something). */
  caches: boolean;
  /** Concurrent calls of one key share one execution (a join means something). */
  coalesces: boolean;
  get(key: string): Promise<unknown>;
}

/** Where `@Coalesce` goes: a method of an @Injectable() provider. */
@Injectable()
class Loader {
  static origin: Origin = () => Promise.resolve(undefined);

  @Coalesce({ ttl: TTL_MS })
  load(key: string): Promise<unknown> {
    return Loader.origin(key);
  }
}

@Module({ imports: [StampedeModule.forRoot({ ttl: TTL_MS })], providers: [Loader] })
class FnModule {}

/** The same engine with OpenTelemetry on: a real SDK tracer that records spans to nowhere (issue #14's cost row). */
function tracedModule() {
  const tracer = new BasicTracerProvider().getTracer('bench');
  const meter = new MeterProvider().getMeter('bench');
  @Module({ imports: [StampedeModule.forRoot({ ttl: TTL_MS, openTelemetry: { tracer, meter } })] })
  class TracedModule {}
  return TracedModule;
}

export interface FnSystems {
  systems: FnSystem[];
  /** For the memory scenario and sanity checks. */
  stampede: StampedeService;
  close(): Promise<void>;
}

export async function createFnSystems(origin: Origin): Promise<FnSystems> {
  // Bootstrapped like an app, so the explorer binds @Coalesce to the module's engine.
  const app = await NestFactory.createApplicationContext(FnModule, { logger: ['error'] });
  const stampede = app.get(StampedeService);
  const traced = await NestFactory.createApplicationContext(tracedModule(), { logger: ['error'] });
  const tracedStampede = traced.get(StampedeService);
  const loader = app.get(Loader);
  Loader.origin = origin;

  const cacheManager = createCacheManager({ ttl: TTL_MS });
  const cacheable = new Cacheable({ ttl: TTL_MS });
  const cacheableLoad = cacheable.wrap((key: string) => origin(key), { ttl: TTL_MS, keyPrefix: 'bench' });
  const dedupe = createDedupeCache({
    ttl: TTL_MS / 1000,
    storage: { type: 'memory', options: { size: 10_000 } },
  }).define('load', (key: string) => origin(key));

  const systems: FnSystem[] = [
    { name: 'plain (no dedupe)', caches: false, coalesces: false, get: (key) => origin(key) },
    {
      name: 'cache-manager wrap',
      caches: true,
      coalesces: true,
      get: (key) => cacheManager.wrap(key, () => origin(key), TTL_MS),
    },
    { name: 'cacheable wrap', caches: true, coalesces: true, get: (key) => cacheableLoad(key) },
    { name: 'async-cache-dedupe', caches: true, coalesces: true, get: (key) => dedupe.load(key) },
    { name: 'promise-coalesce', caches: false, coalesces: true, get: (key) => coalesceAsync(key, () => origin(key)) },
    {
      name: 'StampedeService.run',
      caches: true,
      coalesces: true,
      get: (key) => stampede.run(key, () => origin(key), { ttl: TTL_MS }),
    },
    { name: '@Coalesce method', caches: true, coalesces: true, get: (key) => loader.load(key) },
    {
      name: 'StampedeService.run, OpenTelemetry on',
      caches: true,
      coalesces: true,
      get: (key) => tracedStampede.run(key, () => origin(key), { ttl: TTL_MS }),
    },
  ];
  return {
    systems,
    stampede,
    close: async () => {
      await app.close();
      await traced.close();
      await cacheManager.disconnect();
    },
  };
}
