import { COALESCED_METHODS_METADATA, COALESCE_METADATA, SKIP_COALESCE_METADATA } from '../stampede.constants';
import { coalescedMethod } from './stampede.method-runner';
import { CoalesceOptions } from '../options/stampede.options';
import { validateCoalesceOptions } from '../options/stampede.validation';

type Method = (...args: unknown[]) => unknown;
type Class = { name: string; prototype: object };

/**
 * Coalescing settings, in two places:
 *
 * - On a route or a controller, for `StampedeInterceptor`: route settings
 *   override the controller's, which override the module's. The same on a
 *   GraphQL resolver (a query or a field resolver; never a mutation or a
 *   subscription) or its class, and on a `@MessagePattern` handler or its
 *   controller.
 * - On a method of any `@Injectable()` provider: concurrent calls with equal
 *   arguments share one execution, and the result is kept for `ttl` ms in the
 *   module's store. The key is class name + method name + a stable
 *   serialization of the arguments, or what `key(...args)` returns.
 *
 * Invalid options throw where the decorator is applied, naming the option.
 *
 * @example
 * ```ts
 * @Controller('articles')
 * @UseInterceptors(StampedeInterceptor)
 * @Coalesce({ ttl: 10_000 })
 * export class ArticlesController {
 *   @Get(':id')
 *   @Coalesce({ ttl: 2_000, keyHeaders: ['accept-language'] })
 *   byId(@Param('id') id: string) { return this.articles.byId(id); }
 * }
 *
 * @Injectable()
 * export class ArticlesRepository {
 *   @Coalesce({ ttl: 1_000 })
 *   async byId(id: string): Promise<Article> { return this.db.findOne(id); }
 * }
 * ```
 */
export function Coalesce(options: CoalesceOptions = {}): ClassDecorator & MethodDecorator {
  const settings = Object.freeze({ ...validateCoalesceOptions(options) });
  return (target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (!descriptor || propertyKey === undefined) {
      Reflect.defineMetadata(COALESCE_METADATA, settings, target);
      return undefined as never;
    }
    const original = descriptor.value as Method;
    if (typeof original !== 'function') {
      throw new TypeError(`@Coalesce() decorates methods and classes; ${String(propertyKey)} is not a method`);
    }
    const declaringClass = (typeof target === 'function' ? target : target.constructor) as Class;
    const wrapper = coalescedMethod(original, declaringClass, String(propertyKey), settings);
    // Keep what decorators applied before this one wrote on the method (route
    // path, HTTP method, guards...): without it the route would vanish.
    for (const key of Reflect.getOwnMetadataKeys(original)) {
      Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapper);
    }
    Reflect.defineMetadata(COALESCE_METADATA, settings, wrapper);
    const methods = (Reflect.getOwnMetadata(COALESCED_METHODS_METADATA, declaringClass) as string[] | undefined) ?? [];
    Reflect.defineMetadata(COALESCED_METHODS_METADATA, [...methods, String(propertyKey)], declaringClass);
    descriptor.value = wrapper;
    return descriptor as never;
  };
}

/**
 * Opts a route (or a whole controller) out of `StampedeInterceptor`: its
 * requests pass through as if the interceptor were not there.
 *
 * @example
 * ```ts
 * @Get('me')
 * @SkipCoalesce()
 * me(@Req() req: Request) { return req.user; }
 * ```
 */
export function SkipCoalesce(): ClassDecorator & MethodDecorator {
  return (target: object, _propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    Reflect.defineMetadata(SKIP_COALESCE_METADATA, true, descriptor ? (descriptor.value as object) : target);
    return descriptor as never;
  };
}
