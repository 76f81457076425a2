import { MiddlewareConsumer, Module, NestModule, Optional } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { STAMPEDE_OPTIONS } from './stampede.constants';
import { StampedeEngine } from './stampede.engine';
import { StampedeExplorer } from './methods/stampede.explorer';
import { StampedeHealthIndicator } from './observability/stampede.health';
import { StampedeRouteCheck } from './http/route-check';
import { StampedeEdgeTier } from './http/edge/edge-tier';
import { StampedeInterceptor } from './http/stampede.interceptor';
import { StampedeMetrics } from './observability/stampede.metrics';
import { StampedeEntryPointCheck } from './entry-points.check';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableStampedeModule,
  OPTIONS_TYPE,
  STAMPEDE_MODULE_OPTIONS,
} from './stampede.module-definition';
import { StampedeModuleOptions } from './options/stampede.options';
import { resolveStampedeOptions } from './options/stampede.validation';
import { StampedeService } from './stampede.service';

/**
 * Registers the coalescing engine (`StampedeService`) and `StampedeInterceptor`
 * with their defaults. Global unless `isGlobal: false`. Options are validated
 * when the app is created: a bad one fails bootstrap with its name and value.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [StampedeModule.forRoot({ ttl: 5_000 })],
 *   providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
 * })
 * export class AppModule {}
 *
 * // or from configuration:
 * StampedeModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ ttl: config.get('CACHE_TTL_MS') }),
 * })
 * ```
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: STAMPEDE_OPTIONS,
      useFactory: (options: StampedeModuleOptions) => resolveStampedeOptions(options),
      inject: [STAMPEDE_MODULE_OPTIONS],
    },
    StampedeEngine,
    StampedeService,
    StampedeInterceptor,
    StampedeExplorer,
    StampedeMetrics,
    StampedeHealthIndicator,
    StampedeEntryPointCheck,
    StampedeRouteCheck,
    StampedeEdgeTier,
  ],
  exports: [STAMPEDE_OPTIONS, StampedeEngine, StampedeService, StampedeInterceptor, StampedeHealthIndicator],
})
export class StampedeModule extends ConfigurableStampedeModule implements NestModule {
  constructor(@Optional() private readonly edge?: StampedeEdgeTier) {
    super();
  }

  /** Runs when the app initialises, before Nest registers its routes: where the edge tier is checked and installed. */
  configure(_consumer: MiddlewareConsumer): void {
    this.edge?.install();
  }

  /** Registers the module with `options` (all optional). */
  static override forRoot(options: typeof OPTIONS_TYPE = {}) {
    return super.forRoot(options);
  }

  /** Registers the module with options from a factory (`useFactory`/`inject`, `useClass` or `useExisting`). */
  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE) {
    return super.forRootAsync(options);
  }
}
