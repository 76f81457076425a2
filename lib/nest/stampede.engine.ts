import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Meter, Tracer } from '@opentelemetry/api';
import { Coalescer } from '../core/coalescer';
import { FlightObserver } from '../core/observer';
import { MemoryStore } from '../core/memory-store';
import { toStampedeStore } from '../core/store-adapter';
import type { RedisTier } from '../redis/redis.tier';
import { STAMPEDE_OPTIONS } from './stampede.constants';
import type { MethodEngine } from './methods/stampede.method-runner';
import { ResolvedStampedeOptions } from './options/stampede.options';

/**
 * The module's one coalescer, shared by the interceptor (every module's
 * instance of it), `@Coalesce` methods and `StampedeService`. A singleton
 * provider: in-flight state must not live on the interceptor, which Nest
 * instantiates once per module that uses it.
 */
@Injectable()
export class StampedeEngine implements MethodEngine, OnModuleInit, OnApplicationShutdown {
  readonly coalescer: Coalescer;
  readonly defaultTtl: number;
  readonly defaults: ResolvedStampedeOptions;
  /** With the `redis` option: the store, lease and connections shared by every instance. */
  readonly redis?: RedisTier;

  constructor(@Inject(STAMPEDE_OPTIONS) options: ResolvedStampedeOptions) {
    this.defaultTtl = options.ttl;
    this.defaults = options;
    const logger = new Logger('Stampede');
    const redis = options.redis;
    if (redis) {
      // Loaded only with the option, so an app without it never loads the optional `redis` package.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { RedisTier: Tier } = require('../redis/redis.tier') as typeof import('../redis/redis.tier');
      // Its connection bounds every Redis call by `storeTimeout` and logs its outages: the store is not bounded twice.
      this.redis = new Tier(redis, { logger, maxEntries: options.maxEntries, commandTimeout: options.storeTimeout });
    }
    this.coalescer = new Coalescer({
      store:
        this.redis?.store ?? (options.store ? toStampedeStore(options.store) : new MemoryStore(options.maxEntries)),
      coordinator: this.redis?.lease,
      tags: this.redis?.tags,
      logger,
      maxInFlight: options.maxInFlight,
      maxWaiters: options.maxWaiters,
      storeTimeout: this.redis ? 0 : options.storeTimeout,
      observer: options.openTelemetry ? this.instrument(options.openTelemetry) : undefined,
    });
  }

  /** The OpenTelemetry observer (and metrics), from the optional `@opentelemetry/api`, loaded only here. */
  private instrument(settings: NonNullable<ResolvedStampedeOptions['openTelemetry']>): FlightObserver {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const otel = require('./observability/stampede.otel') as typeof import('./observability/stampede.otel');
    const api = otel.loadOtel();
    let durations = {};
    if (settings.metrics) {
      const meter = (settings.meter as Meter | undefined) ?? api.metrics.getMeter(otel.SCOPE);
      const instruments = otel.otelMetrics(meter, {
        inFlight: () => this.coalescer.inFlight(),
        stats: () => this.coalescer.stats(),
      });
      durations = { work: instruments.work, wait: instruments.wait };
    }
    // Metrics alone still need the timings: a tracer that records nothing.
    const tracer = settings.traces
      ? (settings.tracer as Tracer | undefined)
      : new api.ProxyTracerProvider().getTracer(otel.SCOPE);
    return otel.tracingObserver(api, tracer, durations, settings.traces, settings.hitEvents);
  }

  /** Waits (a few seconds at most) for Redis, so the first requests are already coordinated. */
  async onModuleInit(): Promise<void> {
    await this.redis?.ready();
  }

  /** Closes the Redis connections the module opened (never a client that was passed in). */
  async onApplicationShutdown(): Promise<void> {
    await this.redis?.close();
  }
}
