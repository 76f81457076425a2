import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ApplicationConfig, DiscoveryService } from '@nestjs/core';
import { COALESCE_METADATA, SKIP_COALESCE_METADATA } from '../stampede.constants';
import { StampedeInterceptor } from './stampede.interceptor';

import { interceptorChain, isStampede } from './interceptor-chain';

// Nest's own metadata key (`@nestjs/common/constants`).
const PATH_METADATA = 'path';

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
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as (new (...args: never[]) => object) | undefined;
      if (typeof controller !== 'function' || Reflect.getMetadata(SKIP_COALESCE_METADATA, controller)) continue;
      const classCoalesced = Reflect.getMetadata(COALESCE_METADATA, controller) !== undefined;
      const prototype = controller.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(prototype)) {
        const handler = Object.getOwnPropertyDescriptor(prototype, name)?.value as object | undefined;
        if (name === 'constructor' || typeof handler !== 'function') continue;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (!classCoalesced && Reflect.getMetadata(COALESCE_METADATA, handler) === undefined) continue;
        if (Reflect.getMetadata(SKIP_COALESCE_METADATA, handler)) continue;
        const chain = interceptorChain(this.config, controller, handler);
        if (chain.some((interceptor) => isStampede(interceptor, StampedeInterceptor))) continue;
        this.logger.warn(
          `@Coalesce() on ${controller.name}.${name} has no effect: no StampedeInterceptor in its chain. ` +
            `Add @UseInterceptors(StampedeInterceptor) to the route or its controller, ` +
            `or register it for every route: { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }.`,
        );
      }
    }
  }
}
