/** Injection token of the validated, defaulted module options. */
export const STAMPEDE_OPTIONS = Symbol('STAMPEDE_OPTIONS');

/** Metadata key written by `@Coalesce()`. */
export const COALESCE_METADATA = 'nestjs-stampede:coalesce';

/** Metadata key on a class: the names of its methods `@Coalesce()` wraps. */
export const COALESCED_METHODS_METADATA = 'nestjs-stampede:methods';

/** Metadata key written by `@SkipCoalesce()`. */
export const SKIP_COALESCE_METADATA = 'nestjs-stampede:skip';

/** Nest's own metadata keys the interceptor reads (from `@nestjs/common/constants`). */
export const ROUTE_ARGS_METADATA = '__routeArguments__';
export const RESPONSE_PASSTHROUGH_METADATA = '__responsePassthrough__';
export const SSE_METADATA = '__sse__';

export const VERSION_METADATA = '__version__';

/** Route parameter types of `@Res()`, `@Next()`, `@Headers()` and `@Ip()` (Nest's `RouteParamtypes`). */
export const RESPONSE_PARAMTYPE = 1;
export const NEXT_PARAMTYPE = 2;
export const HEADERS_PARAMTYPE = 6;
export const IP_PARAMTYPE = 11;
