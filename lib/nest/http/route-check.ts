import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ApplicationConfig, DiscoveryService } from '@nestjs/core';
import { COALESCE_METADATA, SKIP_COALESCE_METADATA } from '../../stampede.constants';
import { StampedeInterceptor } from './stampede.interceptor';

// Nest's own metadata keys (`@nestjs/common/constants`).
const PATH_METADATA = 'path';
const INTERCEPTORS_METADATA = '__interceptors__';

function isStampede(interceptor: unknown): boolean {
  if (typeof interceptor === 'function')
    return interceptor === StampedeInterceptor || interceptor.prototype instanceof StampedeInterceptor;
  return interceptor instanceof StampedeInterceptor;
}

/**
 * At bootstrap, warns once per route that has `@Coalesce()` (on itself or
 * its controller) but no `StampedeInterceptor` in its chain: such a route
 * would silently never be coalesced.
 */
@Injectable()
export class StampedeRouteCheck implements OnApplicationBootstrap {
  private readonly logger = new Logger('Stampede');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly config: ApplicationConfig,
  ) {}

  onApplicationBootstrap(): void {
    const global = [
      ...this.config.getGlobalInterceptors(),
      ...this.config.getGlobalRequestInterceptors().map((wrapper) => wrapper.metatype),
    ];
    if (global.some(isStampede)) return;
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as (new (...args: never[]) => object) | undefined;
      if (typeof controller !== 'function') continue;
      const onClass = (Reflect.getMetadata(INTERCEPTORS_METADATA, controller) as unknown[] | undefined) ?? [];
      if (onClass.some(isStampede) || Reflect.getMetadata(SKIP_COALESCE_METADATA, controller)) continue;
      const classCoalesced = Reflect.getMetadata(COALESCE_METADATA, controller) !== undefined;
      const prototype = controller.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(prototype)) {
        const handler = Object.getOwnPropertyDescriptor(prototype, name)?.value as object | undefined;
        if (name === 'constructor' || typeof handler !== 'function') continue;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (!classCoalesced && Reflect.getMetadata(COALESCE_METADATA, handler) === undefined) continue;
        const onRoute = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? [];
        if (onRoute.some(isStampede) || Reflect.getMetadata(SKIP_COALESCE_METADATA, handler)) continue;
        this.logger.warn(
          `@Coalesce() on ${controller.name}.${name} has no effect: no StampedeInterceptor in its chain. ` +
            `Add @UseInterceptors(StampedeInterceptor) to the route or its controller, ` +
            `or register it for every route: { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }.`,
        );
      }
    }
  }
}
