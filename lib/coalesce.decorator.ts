import { COALESCE_METADATA, SKIP_COALESCE_METADATA } from './stampede.constants';
import { CoalesceOptions, validateCoalesceOptions } from './stampede.options';

/**
 * Per-route or per-controller coalescing settings for `StampedeInterceptor`:
 * route settings override the controller's, which override the module's.
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
 * ```
 */
export function Coalesce(options: CoalesceOptions = {}): ClassDecorator & MethodDecorator {
  const settings = Object.freeze({ ...validateCoalesceOptions(options) });
  return (target: object, _propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    Reflect.defineMetadata(COALESCE_METADATA, settings, descriptor ? (descriptor.value as object) : target);
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
