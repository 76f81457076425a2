import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { STAMPEDE_OPTIONS } from '../stampede.constants';
import { StampedeEngine } from '../stampede.engine';
import { ResolvedStampedeOptions } from '../options/stampede.options';
import { StampedeOptionsError } from '../../errors';

/** The part of a prom-client `Registry` this needs. */
interface RegistryLike {
  removeSingleMetric(name: string): void;
}

/** The part of the prom-client module this needs (an optional peer dependency). */
interface PromClient {
  register: RegistryLike;
  Counter: new (config: { name: string; help: string; labelNames: string[]; registers: RegistryLike[] }) => {
    inc(labels: Record<string, string>): void;
  };
  Gauge: new (config: {
    name: string;
    help: string;
    registers: RegistryLike[];
    collect(this: { set(value: number): void }): void;
  }) => {
    set(value: number): void;
  };
}

/**
 * With `metrics: true`, exports the engine's events as Prometheus metrics
 * through `prom-client` (an optional peer dependency, loaded only then):
 * `stampede_events_total{type,reason}` and the gauges `stampede_in_flight`
 * and `stampede_waiting`. They are removed from the registry on shutdown.
 */
@Injectable()
export class StampedeMetrics implements OnModuleInit, OnApplicationShutdown {
  private readonly names: string[] = [];
  private registry?: RegistryLike;
  private stop?: () => void;

  constructor(
    @Inject(STAMPEDE_OPTIONS) private readonly options: ResolvedStampedeOptions,
    private readonly engine: StampedeEngine,
  ) {}

  onModuleInit(): void {
    const metrics = this.options.metrics;
    if (!metrics) return;
    let client: PromClient;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      client = require('prom-client') as PromClient;
    } catch {
      throw new StampedeOptionsError('metrics', true, 'prom-client installed (npm install prom-client)');
    }
    const registry = (this.registry = (metrics.registry as RegistryLike | undefined) ?? client.register);
    const prefix = metrics.prefix;
    const coalescer = this.engine.coalescer;
    const events = new client.Counter({
      name: `${prefix}events_total`,
      help: 'nestjs-stampede events by type (hit, miss, coalesced, stored, stale, refresh, error, timeout, bypass)',
      labelNames: ['type', 'reason'],
      registers: [registry],
    });
    this.stop = coalescer.on((event) => events.inc({ type: event.type, reason: event.reason ?? '' }));
    new client.Gauge({
      name: `${prefix}in_flight`,
      help: 'keys whose work is in progress',
      registers: [registry],
      collect() {
        this.set(coalescer.inFlight());
      },
    });
    new client.Gauge({
      name: `${prefix}waiting`,
      help: 'callers waiting on work in progress',
      registers: [registry],
      collect() {
        this.set(coalescer.stats().waiting);
      },
    });
    this.names.push(`${prefix}events_total`, `${prefix}in_flight`, `${prefix}waiting`);
  }

  onApplicationShutdown(): void {
    this.stop?.();
    for (const name of this.names) this.registry?.removeSingleMetric(name);
    this.names.length = 0;
  }
}
