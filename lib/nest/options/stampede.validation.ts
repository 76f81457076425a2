import { normalizeEarlyRefresh } from '../../core/policy';
import { validateRedisOptions } from '../../redis/redis.options';
import {
  Check,
  anything,
  boolean,
  count,
  earlyRefresh,
  fail,
  fn,
  headerNames,
  jitter,
  keyBody,
  methods,
  metrics,
  milliseconds,
  timerMilliseconds,
  oneOf,
  openTelemetry,
  statusTtl,
  store,
  tags,
} from './stampede.option-checks';
import { InMilliseconds } from '../../core/duration';
import { edgeOption } from '../http/edge/edge-option';
import {
  CoalesceOptions,
  ResolvedCoalesceOptions,
  ResolvedStampedeOptions,
  StampedeModuleOptions,
} from './stampede.options';

/**
 * The default of every module option, in one table (the Redis tier's own
 * options have theirs in `redis/redis.options.ts`). A route, controller,
 * method or `run()` option left unset takes the module's value, and a module
 * option left unset takes the value here.
 */
export const DEFAULTS = {
  ttl: 5_000,
  jitter: 0,
  timeout: 0,
  waitTimeout: 0,
  onWaitTimeout: 'run' as 'run' | 'fail',
  staleTtl: 0,
  staleIfError: 0,
  softTimeout: 0,
  /** Varnish's `uncacheable_ttl` is 2 minutes; a minute keeps a route that turned shareable again waiting less. */
  uncacheableTtl: 60_000,
  maxEntries: 10_000,
  methods: ['GET', 'HEAD'] as readonly string[],
  cacheStatusHeader: true,
  maxBodyBytes: 1024 * 1024,
  maxInFlight: 10_000,
  maxWaiters: 10_000,
  storeTimeout: 1_000,
  respectCacheControl: false,
  invalidateOnWrite: false,
  keyBodyBytes: 64 * 1024,
  /** Request headers that carry a caller's credentials, besides Authorization, Proxy-Authorization and Cookie. */
  credentialHeaders: [
    'x-api-key',
    'api-key',
    'x-auth-token',
    'x-access-token',
    'x-session-token',
    'x-csrf-token',
    'x-xsrf-token',
  ] as readonly string[],
};

/**
 * Validation of every option, driven by one table: which surfaces accept it
 * and how its value is checked. Module options at bootstrap, `@Coalesce`
 * options where the decorator is applied (and, for provider methods, again at
 * bootstrap, where it is known whether the method is a route), `run` options
 * per call. Every error names the option, the value and where it was given.
 */

/** Where options are given. */
export type Surface = 'module' | 'route' | 'method' | 'run' | 'batch';

const EVERYWHERE: readonly Surface[] = ['module', 'route', 'method', 'run', 'batch'];
/** What a single call honours, and not a batch (`runMany`, `loader`). */
const SINGLE: readonly Surface[] = ['module', 'route', 'method', 'run'];
const DECORATED: readonly Surface[] = ['module', 'route', 'method'];
const HTTP: readonly Surface[] = ['module', 'route'];
const MODULE: readonly Surface[] = ['module'];

/** Every option: where it may be given and how it is checked (its default, if any, is in `DEFAULTS` above). */
const RULES: Record<string, { surfaces: readonly Surface[]; check: Check }> = {
  ttl: { surfaces: EVERYWHERE, check: milliseconds },
  jitter: { surfaces: EVERYWHERE, check: jitter },
  timeout: { surfaces: EVERYWHERE, check: timerMilliseconds },
  waitTimeout: { surfaces: SINGLE, check: timerMilliseconds },
  onWaitTimeout: { surfaces: SINGLE, check: oneOf('run', 'fail') },
  staleTtl: { surfaces: EVERYWHERE, check: milliseconds },
  staleIfError: { surfaces: EVERYWHERE, check: milliseconds },
  softTimeout: { surfaces: SINGLE, check: timerMilliseconds },
  failSafeThrottle: { surfaces: EVERYWHERE, check: milliseconds },
  earlyRefresh: { surfaces: SINGLE, check: earlyRefresh },
  tags: { surfaces: EVERYWHERE, check: tags },
  uncacheableTtl: { surfaces: HTTP, check: milliseconds },
  cancelWhenAbandoned: { surfaces: ['run'], check: boolean },
  key: { surfaces: DECORATED, check: fn },
  keyHeaders: { surfaces: HTTP, check: headerNames },
  credentialHeaders: { surfaces: HTTP, check: headerNames },
  keyUser: { surfaces: HTTP, check: fn },
  maxBodyBytes: { surfaces: HTTP, check: count(0) },
  statusTtl: { surfaces: HTTP, check: statusTtl },
  respectCacheControl: { surfaces: HTTP, check: boolean },
  keyBody: { surfaces: HTTP, check: keyBody },
  edge: { surfaces: HTTP, check: edgeOption },
  maxEntries: { surfaces: MODULE, check: count(1) },
  store: { surfaces: MODULE, check: store },
  methods: { surfaces: MODULE, check: methods },
  cacheStatusHeader: { surfaces: MODULE, check: boolean },
  maxInFlight: { surfaces: MODULE, check: count(1) },
  maxWaiters: { surfaces: MODULE, check: count(1) },
  storeTimeout: { surfaces: MODULE, check: timerMilliseconds },
  redis: { surfaces: MODULE, check: anything },
  invalidateOnWrite: { surfaces: MODULE, check: boolean },
  metrics: { surfaces: MODULE, check: metrics },
  openTelemetry: { surfaces: MODULE, check: openTelemetry },
  isGlobal: { surfaces: MODULE, check: boolean },
};

/** The option names a surface accepts. */
export function optionsOf(surface: Surface): string[] {
  return Object.keys(RULES).filter((name) => RULES[name].surfaces.includes(surface));
}

/**
 * Checks `options` for `surface`: unknown names, names the surface cannot
 * honour (an HTTP option on a method, say), and every value. Returns a copy
 * with every value in its normal form (durations as milliseconds), the only
 * form the library reads past this point.
 */
export function validateOptions(options: unknown, surface: Surface, where: string): Record<string, unknown> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    fail(surface === 'module' ? 'options' : where, options, 'an options object', where);
  }
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options as Record<string, unknown>)) {
    const rule = RULES[name];
    if (rule === undefined) fail(name, value, `one of ${optionsOf(surface).join(', ')}`, where);
    if (!rule.surfaces.includes(surface)) {
      const honoured = rule.surfaces.length === 1 ? `${rule.surfaces[0]} options` : rule.surfaces.join(' and ');
      fail(name, value, `no such option here: it applies to ${honoured} only`, where);
    }
    resolved[name] = value === undefined ? undefined : rule.check(value, name, where);
  }
  return resolved;
}

/** Validates what `@Coalesce()` was given (a route's or a method's: both are known only later). */
export function validateCoalesceOptions(options: unknown, where = '@Coalesce'): ResolvedCoalesceOptions {
  return validateOptions(options, 'route', where) as ResolvedCoalesceOptions;
}

/** The HTTP-only options among `options`, which a provider method cannot honour. */
export function httpOnlyOptions(options: object): string[] {
  return Object.keys(options).filter((name) => RULES[name] !== undefined && !RULES[name].surfaces.includes('method'));
}

/** `keyBody` as the interceptor takes it: `{ maxBytes }` or off. */
export function normalizeKeyBody(value: CoalesceOptions['keyBody']): { maxBytes: number } | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? { maxBytes: DEFAULTS.keyBodyBytes } : { maxBytes: value.maxBytes };
}

/** Lowercase, deduplicated, sorted: the form keys are built from. */
export function normalizeKeyHeaders(names: readonly string[]): readonly string[] {
  return [...new Set(names.map((name) => name.toLowerCase()))].sort();
}

/**
 * Validates the module options and fills in the defaults. Runs when the
 * module's providers are created, so a bad option fails app creation.
 */
export function resolveStampedeOptions(options: unknown = {}): ResolvedStampedeOptions {
  const where = 'StampedeModule.forRoot';
  const given = validateOptions(options, 'module', where) as InMilliseconds<StampedeModuleOptions>;
  if (given.store !== undefined && given.redis !== undefined) {
    fail('store', given.store, 'no store with the redis option (Redis is the store)', where);
  }
  // Every option with a default takes it; the others are passed through as given (or normalized below).
  const withDefaults = Object.fromEntries(
    Object.entries(DEFAULTS).map(([name, value]) => [name, (given as Record<string, unknown>)[name] ?? value]),
  ) as typeof DEFAULTS;
  const metricsOption = given.metrics;
  return {
    ...withDefaults,
    keyHeaders: normalizeKeyHeaders(given.keyHeaders ?? []),
    credentialHeaders: normalizeKeyHeaders(given.credentialHeaders ?? DEFAULTS.credentialHeaders),
    keyUser: given.keyUser,
    edge: given.edge,
    key: given.key,
    store: given.store,
    tags: given.tags,
    statusTtl: given.statusTtl,
    failSafeThrottle: given.failSafeThrottle,
    methods: new Set(withDefaults.methods.map((m) => m.toUpperCase())),
    redis: given.redis === undefined ? undefined : validateRedisOptions(redisDurations(given.redis, where)),
    earlyRefresh: normalizeEarlyRefresh(given.earlyRefresh),
    keyBody: normalizeKeyBody(given.keyBody),
    openTelemetry: openTelemetryOf(given.openTelemetry),
    metrics:
      metricsOption === undefined || metricsOption === false
        ? undefined
        : metricsOption === true
          ? { prefix: 'stampede_' }
          : { prefix: metricsOption.prefix ?? 'stampede_', registry: metricsOption.registry },
  };
}

/** The `redis` options that are milliseconds, which take durations like every other one. */
const REDIS_DURATIONS = ['leaseTtl', 'lockTimeout', 'l1Ttl'];

/** `redis` with its duration strings as milliseconds (the Redis tier checks the rest, and the ranges). */
function redisDurations(redis: unknown, where: string): unknown {
  if (redis === null || typeof redis !== 'object' || Array.isArray(redis)) return redis;
  const resolved: Record<string, unknown> = { ...redis };
  for (const name of REDIS_DURATIONS) {
    if (typeof resolved[name] === 'string') resolved[name] = milliseconds(resolved[name], `redis.${name}`, where);
  }
  return resolved;
}

function openTelemetryOf(value: StampedeModuleOptions['openTelemetry']): ResolvedStampedeOptions['openTelemetry'] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { traces: true, metrics: true, hitEvents: true };
  return {
    traces: value.traces ?? true,
    metrics: value.metrics ?? true,
    tracer: value.tracer,
    meter: value.meter,
    hitEvents: value.hitEvents ?? true,
  };
}
