import { normalizeEarlyRefresh } from './core/policy';
import { isStoreInput } from './core/store-adapter';
import { validateRedisOptions } from './redis/redis.options';
import { DEFAULTS } from './stampede.defaults';
import { StampedeOptionsError } from './stampede.options-error';
import { CoalesceOptions, ResolvedStampedeOptions, StampedeModuleOptions } from './stampede.options';

export { normalizeEarlyRefresh };

/**
 * Validation of every option, driven by one table: which surfaces accept it
 * and how its value is checked. Module options at bootstrap, `@Coalesce`
 * options where the decorator is applied (and, for provider methods, again at
 * bootstrap, where it is known whether the method is a route), `run` options
 * per call. Every error names the option, the value and where it was given.
 */

/** Where options are given. */
export type Surface = 'module' | 'route' | 'method' | 'run' | 'batch';

type Check = (value: unknown, name: string, where: string) => void;

// RFC 9110 token: what a header name may be made of.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// The methods Node's HTTP parser accepts that a cache can make sense of (RFC 9110 §9, the QUERY draft).
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'SEARCH',
  'QUERY',
  'PROPFIND',
  'REPORT',
]);

const fail = (name: string, value: unknown, expected: string, where: string): never => {
  throw new StampedeOptionsError(name, value, expected, where);
};
const milliseconds: Check = (value, name, where) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(name, value, 'a finite number of milliseconds >= 0', where);
  }
};
const count =
  (min: number): Check =>
  (value, name, where) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      fail(name, value, `an integer >= ${min}`, where);
    }
  };
const boolean: Check = (value, name, where) => {
  if (typeof value !== 'boolean') fail(name, value, 'a boolean', where);
};
const fn: Check = (value, name, where) => {
  if (typeof value !== 'function') fail(name, value, 'a function', where);
};
const oneOf =
  (...allowed: string[]): Check =>
  (value, name, where) => {
    if (!allowed.includes(value as string)) fail(name, value, allowed.map((a) => `'${a}'`).join(' or '), where);
  };
const headerNames: Check = (value, name, where) => {
  if (!Array.isArray(value) || !value.every((h) => typeof h === 'string' && TOKEN.test(h))) {
    fail(name, value, 'an array of header names', where);
  }
};
const jitter: Check = (value, name, where) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(name, value, 'a fraction of the ttl (0 to < 1) or milliseconds (>= 1)', where);
  }
};
const earlyRefresh: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const beta = (value as { beta?: unknown } | null)?.beta;
  if (typeof value !== 'object' || typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0) {
    fail(name, value, 'true, false or { beta: a number > 0 }', where);
  }
};
const tags: Check = (value, name, where) => {
  if (typeof value === 'function') return;
  if (!Array.isArray(value) || !value.every((tag) => typeof tag === 'string')) {
    fail(name, value, 'an array of strings or a function', where);
  }
};
const statusTtl: Check = (value, name, where) => {
  if (typeof value === 'function') return;
  const valid =
    typeof value === 'object' &&
    value !== null &&
    Object.entries(value).every(
      ([status, ms]) => /^[1-5]\d\d$/.test(status) && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0,
    );
  if (!valid) fail(name, value, 'a map of HTTP status to ms >= 0, or a function', where);
};
const keyBody: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const maxBytes = (value as { maxBytes?: unknown } | null)?.maxBytes;
  if (typeof value !== 'object' || !Number.isSafeInteger(maxBytes) || (maxBytes as number) <= 0) {
    fail(name, value, 'true, false or { maxBytes: an integer > 0 }', where);
  }
};
const methods: Check = (value, name, where) => {
  if (
    !Array.isArray(value) ||
    !value.every((m) => typeof m === 'string' && TOKEN.test(m) && KNOWN_METHODS.has(m.toUpperCase()))
  ) {
    fail(name, value, `an array of HTTP methods (${[...KNOWN_METHODS].join(', ')})`, where);
  }
};
const metrics: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const prefix = (value as { prefix?: unknown } | null)?.prefix;
  if (
    typeof value !== 'object' ||
    value === null ||
    (prefix !== undefined && (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)))
  ) {
    fail(name, value, 'true, false or { prefix?: a metric name prefix, registry? }', where);
  }
};
const openTelemetry: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const known = ['traces', 'metrics', 'tracer', 'meter'];
  const given = value as Record<string, unknown> | null;
  if (
    typeof value !== 'object' ||
    given === null ||
    Object.keys(given).some((key) => !known.includes(key)) ||
    (given.traces !== undefined && typeof given.traces !== 'boolean') ||
    (given.metrics !== undefined && typeof given.metrics !== 'boolean')
  ) {
    fail(name, value, 'true, false or { traces?: boolean, metrics?: boolean, tracer?, meter? }', where);
  }
};
const store: Check = (value, name, where) => {
  if (!isStoreInput(value)) fail(name, value, 'a cache-manager Cache, a Keyv instance, a Keyv store or a Map', where);
};
const anything: Check = () => undefined;

const EVERYWHERE: readonly Surface[] = ['module', 'route', 'method', 'run', 'batch'];
/** What a single call honours, and not a batch (`runMany`, `loader`). */
const SINGLE: readonly Surface[] = ['module', 'route', 'method', 'run'];
const DECORATED: readonly Surface[] = ['module', 'route', 'method'];
const HTTP: readonly Surface[] = ['module', 'route'];
const MODULE: readonly Surface[] = ['module'];

/** Every option: where it may be given and how it is checked. Its default is in `DEFAULTS`. */
const RULES: Record<string, { surfaces: readonly Surface[]; check: Check }> = {
  ttl: { surfaces: EVERYWHERE, check: milliseconds },
  jitter: { surfaces: EVERYWHERE, check: jitter },
  timeout: { surfaces: EVERYWHERE, check: milliseconds },
  waitTimeout: { surfaces: SINGLE, check: milliseconds },
  onWaitTimeout: { surfaces: SINGLE, check: oneOf('run', 'fail') },
  staleTtl: { surfaces: EVERYWHERE, check: milliseconds },
  staleIfError: { surfaces: EVERYWHERE, check: milliseconds },
  softTimeout: { surfaces: SINGLE, check: milliseconds },
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
  maxEntries: { surfaces: MODULE, check: count(1) },
  store: { surfaces: MODULE, check: store },
  methods: { surfaces: MODULE, check: methods },
  cacheStatusHeader: { surfaces: MODULE, check: boolean },
  maxInFlight: { surfaces: MODULE, check: count(1) },
  maxWaiters: { surfaces: MODULE, check: count(1) },
  storeTimeout: { surfaces: MODULE, check: milliseconds },
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
 * honour (an HTTP option on a method, say), and every value.
 */
export function validateOptions(options: unknown, surface: Surface, where: string): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    fail(surface === 'module' ? 'options' : where, options, 'an options object', where);
  }
  for (const [name, value] of Object.entries(options as Record<string, unknown>)) {
    const rule = RULES[name];
    if (rule === undefined) fail(name, value, `one of ${optionsOf(surface).join(', ')}`, where);
    if (!rule.surfaces.includes(surface)) {
      const honoured = rule.surfaces.length === 1 ? `${rule.surfaces[0]} options` : rule.surfaces.join(' and ');
      fail(name, value, `no such option here: it applies to ${honoured} only`, where);
    }
    if (value !== undefined) rule.check(value, name, where);
  }
}

/** Validates what `@Coalesce()` was given (a route's or a method's: both are known only later). */
export function validateCoalesceOptions(options: unknown, where = '@Coalesce'): CoalesceOptions {
  validateOptions(options, 'route', where);
  return options as CoalesceOptions;
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
  validateOptions(options, 'module', where);
  const given = options as StampedeModuleOptions;
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
    key: given.key,
    store: given.store,
    tags: given.tags,
    statusTtl: given.statusTtl,
    failSafeThrottle: given.failSafeThrottle,
    methods: new Set(withDefaults.methods.map((m) => m.toUpperCase())),
    redis: given.redis === undefined ? undefined : validateRedisOptions(given.redis),
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

function openTelemetryOf(value: StampedeModuleOptions['openTelemetry']): ResolvedStampedeOptions['openTelemetry'] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { traces: true, metrics: true };
  return { traces: value.traces ?? true, metrics: value.metrics ?? true, tracer: value.tracer, meter: value.meter };
}
