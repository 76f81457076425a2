import { Inject, Injectable, Logger } from '@nestjs/common';
import { Coalescer } from './core/coalescer';
import { MemoryStore } from './core/memory-store';
import { toStampedeStore } from './core/store-adapter';
import { STAMPEDE_OPTIONS } from './stampede.constants';
import type { MethodEngine } from './stampede.method-runner';
import { ResolvedStampedeOptions } from './stampede.options';

/**
 * The module's one coalescer, shared by the interceptor (every module's
 * instance of it), `@Coalesce` methods and `StampedeService`. A singleton
 * provider: in-flight state must not live on the interceptor, which Nest
 * instantiates once per module that uses it.
 */
@Injectable()
export class StampedeEngine implements MethodEngine {
  readonly coalescer: Coalescer;
  readonly defaultTtl: number;
  readonly defaults: ResolvedStampedeOptions;

  constructor(@Inject(STAMPEDE_OPTIONS) options: ResolvedStampedeOptions) {
    this.defaultTtl = options.ttl;
    this.defaults = options;
    this.coalescer = new Coalescer({
      store: options.store ? toStampedeStore(options.store) : new MemoryStore(options.maxEntries),
      logger: new Logger('Stampede'),
      maxInFlight: options.maxInFlight,
      maxWaiters: options.maxWaiters,
      storeTimeout: options.storeTimeout,
    });
  }
}
