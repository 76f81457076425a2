import type { ApplicationConfig } from '@nestjs/core';

// Nest's own metadata key (`@nestjs/common/constants`).
const INTERCEPTORS_METADATA = '__interceptors__';

/** True for `StampedeInterceptor` (or a subclass), as a class or an instance; `stampede` is the class. */
export function isStampede(interceptor: unknown, stampede: abstract new (...args: never[]) => object): boolean {
  if (typeof interceptor === 'function') {
    return interceptor === stampede || interceptor.prototype instanceof stampede;
  }
  return interceptor instanceof stampede;
}

/**
 * The interceptors of a route, outermost first, as Nest runs them: global
 * ones, then the controller's, then the route's.
 */
export function interceptorChain(
  config: ApplicationConfig | undefined,
  controller: object,
  handler: object,
): readonly unknown[] {
  const global = config
    ? [...config.getGlobalInterceptors(), ...config.getGlobalRequestInterceptors().map((wrapper) => wrapper.metatype)]
    : [];
  const onClass = (Reflect.getMetadata(INTERCEPTORS_METADATA, controller) as unknown[] | undefined) ?? [];
  const onRoute = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? [];
  return [...global, ...onClass, ...onRoute];
}

/**
 * True when some interceptor runs outside the first `StampedeInterceptor` of
 * the route: it sees (and may map) what ours answers, so what ours stores is
 * not yet what is sent (`ClassSerializerInterceptor` registered first).
 */
export function hasInterceptorOutside(
  chain: readonly unknown[],
  stampede: abstract new (...args: never[]) => object,
): boolean {
  const ours = chain.findIndex((interceptor) => isStampede(interceptor, stampede));
  return ours > 0;
}
