import { isStoreInput } from './core/store-adapter';
import { validateRedisOptions } from './redis/redis.options';
import {
  DEFAULT_CREDENTIAL_HEADERS,
  DEFAULT_KEY_BODY_BYTES,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTRIES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_WAITERS,
  DEFAULT_METHODS,
  DEFAULT_STORE_TIMEOUT,
  DEFAULT_TTL,
} from './stampede.constants';
import { StampedeOptionsError } from './stampede.options-error';
import { CoalesceOptions, ResolvedStampedeOptions, StampedeModuleOptions } from './stampede.options';

/**
 * Validation of every option, with the error naming the option and the
 * value, and the defaults: module options at bootstrap, `@Coalesce` options
 * where the decorator is applied, `run` options per call.
 */

// RFC 9110 token: what a header name may be made of.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// The methods Node's HTTP parser accepts that a cache can make sense of (RFC 9110 §9, the QUERY draft).
const HTTP_METHODS: ReadonlySet<string> = new Set([
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

const COALESCE_KEYS = [
  'ttl',
  'keyHeaders',
  'key',
  'timeout',
  'waitTimeout',
  'onWaitTimeout',
  'maxBodyBytes',
  'staleTtl',
  'staleIfError',
  'earlyRefresh',
  'tags',
  'statusTtl',
  'respectCacheControl',
  'keyBody',
  'credentialHeaders',
  'keyUser',
] as const;
const MODULE_KEYS = [
  ...COALESCE_KEYS,
  'maxEntries',
  'store',
  'methods',
  'cacheStatusHeader',
  'maxInFlight',
  'maxWaiters',
  'storeTimeout',
  'redis',
  'invalidateOnWrite',
  'metrics',
  'isGlobal',
] as const;

function checkKnown(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new StampedeOptionsError(
        name,
        (options as Record<string, unknown>)[name],
        `one of ${known.join(', ')} (${where})`,
      );
    }
  }
}

function checkTtl(value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new StampedeOptionsError('ttl', value, 'a finite number of milliseconds >= 0');
  }
}

function checkMilliseconds(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new StampedeOptionsError(name, value, 'a finite number of milliseconds >= 0');
  }
}

function checkCount(name: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new StampedeOptionsError(name, value, `an integer >= ${min}`);
  }
}

function checkHeaderNames(option: string, value: unknown): void {
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && TOKEN.test(name))) {
    throw new StampedeOptionsError(option, value, 'an array of header names');
  }
}

function checkKey(value: unknown): void {
  if (typeof value !== 'function') throw new StampedeOptionsError('key', value, 'a function');
}

/** Validates what `@Coalesce()` was given; throws a `StampedeOptionsError` naming the option. */
export function validateCoalesceOptions(options: unknown): CoalesceOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new StampedeOptionsError('@Coalesce', options, 'an options object');
  }
  checkKnown(options, COALESCE_KEYS, '@Coalesce');
  const { ttl, keyHeaders, key, timeout, waitTimeout, onWaitTimeout, maxBodyBytes } = options as CoalesceOptions;
  if (ttl !== undefined) checkTtl(ttl);
  if (keyHeaders !== undefined) checkHeaderNames('keyHeaders', keyHeaders);
  if (key !== undefined) checkKey(key);
  if (timeout !== undefined) checkMilliseconds('timeout', timeout);
  if (waitTimeout !== undefined) checkMilliseconds('waitTimeout', waitTimeout);
  if (onWaitTimeout !== undefined && onWaitTimeout !== 'run' && onWaitTimeout !== 'fail') {
    throw new StampedeOptionsError('onWaitTimeout', onWaitTimeout, `'run' or 'fail'`);
  }
  if (maxBodyBytes !== undefined) checkCount('maxBodyBytes', maxBodyBytes, 0);
  const { staleTtl, staleIfError, earlyRefresh, tags, statusTtl, respectCacheControl, keyBody } =
    options as CoalesceOptions;
  if (staleTtl !== undefined) checkMilliseconds('staleTtl', staleTtl);
  if (staleIfError !== undefined) checkMilliseconds('staleIfError', staleIfError);
  if (
    earlyRefresh !== undefined &&
    typeof earlyRefresh !== 'boolean' &&
    !(
      typeof earlyRefresh === 'object' &&
      earlyRefresh !== null &&
      typeof earlyRefresh.beta === 'number' &&
      Number.isFinite(earlyRefresh.beta) &&
      earlyRefresh.beta > 0
    )
  ) {
    throw new StampedeOptionsError('earlyRefresh', earlyRefresh, 'true, false or { beta: a number > 0 }');
  }
  if (
    tags !== undefined &&
    typeof tags !== 'function' &&
    !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string'))
  ) {
    throw new StampedeOptionsError('tags', tags, 'an array of strings or a function');
  }
  if (statusTtl !== undefined && typeof statusTtl !== 'function') {
    const valid =
      typeof statusTtl === 'object' &&
      statusTtl !== null &&
      Object.entries(statusTtl).every(
        ([status, ms]) => /^[1-5]\d\d$/.test(status) && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0,
      );
    if (!valid)
      throw new StampedeOptionsError('statusTtl', statusTtl, 'a map of HTTP status to ms >= 0, or a function');
  }
  if (respectCacheControl !== undefined && typeof respectCacheControl !== 'boolean') {
    throw new StampedeOptionsError('respectCacheControl', respectCacheControl, 'a boolean');
  }
  if (
    keyBody !== undefined &&
    typeof keyBody !== 'boolean' &&
    !(typeof keyBody === 'object' && keyBody !== null && Number.isSafeInteger(keyBody.maxBytes) && keyBody.maxBytes > 0)
  ) {
    throw new StampedeOptionsError('keyBody', keyBody, 'true, false or { maxBytes: an integer > 0 }');
  }
  const { credentialHeaders, keyUser } = options as CoalesceOptions;
  if (credentialHeaders !== undefined) checkHeaderNames('credentialHeaders', credentialHeaders);
  if (keyUser !== undefined && typeof keyUser !== 'function') {
    throw new StampedeOptionsError('keyUser', keyUser, 'a function of request.user');
  }
  return options as CoalesceOptions;
}

/** `earlyRefresh` as the core takes it: `{ beta }` or off. */
export function normalizeEarlyRefresh(value: CoalesceOptions['earlyRefresh']): { beta: number } | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? { beta: 1 } : { beta: value.beta };
}

/** `keyBody` as the interceptor takes it: `{ maxBytes }` or off. */
export function normalizeKeyBody(value: CoalesceOptions['keyBody']): { maxBytes: number } | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? { maxBytes: DEFAULT_KEY_BODY_BYTES } : { maxBytes: value.maxBytes };
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
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new StampedeOptionsError('options', options, 'an options object');
  }
  checkKnown(options, MODULE_KEYS, 'StampedeModule.forRoot');
  const given = options as StampedeModuleOptions;
  validateCoalesceOptions(Object.fromEntries(COALESCE_KEYS.filter((k) => k in given).map((k) => [k, given[k]])));
  const { maxEntries, store, methods, cacheStatusHeader, maxInFlight, maxWaiters, storeTimeout } = given;
  if (maxEntries !== undefined) checkCount('maxEntries', maxEntries, 1);
  if (maxInFlight !== undefined) checkCount('maxInFlight', maxInFlight, 1);
  if (maxWaiters !== undefined) checkCount('maxWaiters', maxWaiters, 1);
  if (storeTimeout !== undefined) checkMilliseconds('storeTimeout', storeTimeout);
  const metrics = given.metrics;
  if (
    metrics !== undefined &&
    typeof metrics !== 'boolean' &&
    !(
      typeof metrics === 'object' &&
      metrics !== null &&
      (metrics.prefix === undefined ||
        (typeof metrics.prefix === 'string' && /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(metrics.prefix)))
    )
  ) {
    throw new StampedeOptionsError('metrics', metrics, 'true, false or { prefix?: a metric name prefix, registry? }');
  }
  if (given.invalidateOnWrite !== undefined && typeof given.invalidateOnWrite !== 'boolean') {
    throw new StampedeOptionsError('invalidateOnWrite', given.invalidateOnWrite, 'a boolean');
  }
  if (store !== undefined && given.redis !== undefined) {
    throw new StampedeOptionsError('store', store, 'no store with the redis option (Redis is the store)');
  }
  if (store !== undefined && !isStoreInput(store)) {
    throw new StampedeOptionsError('store', store, 'a cache-manager Cache, a Keyv instance or a Keyv store');
  }
  if (
    methods !== undefined &&
    (!Array.isArray(methods) || !methods.every((m) => typeof m === 'string' && HTTP_METHODS.has(m.toUpperCase())))
  ) {
    throw new StampedeOptionsError('methods', methods, `an array of HTTP methods (${[...HTTP_METHODS].join(', ')})`);
  }
  if (cacheStatusHeader !== undefined && typeof cacheStatusHeader !== 'boolean') {
    throw new StampedeOptionsError('cacheStatusHeader', cacheStatusHeader, 'a boolean');
  }
  return {
    ttl: given.ttl ?? DEFAULT_TTL,
    keyHeaders: normalizeKeyHeaders(given.keyHeaders ?? []),
    key: given.key,
    maxEntries: maxEntries ?? DEFAULT_MAX_ENTRIES,
    store,
    methods: new Set((methods ?? DEFAULT_METHODS).map((m) => m.toUpperCase())),
    cacheStatusHeader: cacheStatusHeader ?? true,
    timeout: given.timeout ?? 0,
    waitTimeout: given.waitTimeout ?? 0,
    onWaitTimeout: given.onWaitTimeout ?? 'run',
    maxBodyBytes: given.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    maxInFlight: maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    maxWaiters: maxWaiters ?? DEFAULT_MAX_WAITERS,
    storeTimeout: storeTimeout ?? DEFAULT_STORE_TIMEOUT,
    redis: given.redis === undefined ? undefined : validateRedisOptions(given.redis),
    staleTtl: given.staleTtl ?? 0,
    staleIfError: given.staleIfError ?? 0,
    earlyRefresh: normalizeEarlyRefresh(given.earlyRefresh),
    tags: given.tags,
    statusTtl: given.statusTtl,
    respectCacheControl: given.respectCacheControl ?? false,
    keyBody: normalizeKeyBody(given.keyBody),
    credentialHeaders: normalizeKeyHeaders(given.credentialHeaders ?? DEFAULT_CREDENTIAL_HEADERS),
    keyUser: given.keyUser,
    invalidateOnWrite: given.invalidateOnWrite ?? false,
    metrics:
      metrics === undefined || metrics === false
        ? undefined
        : metrics === true
          ? { prefix: 'stampede_' }
          : { prefix: metrics.prefix ?? 'stampede_', registry: metrics.registry },
  };
}
