import { StatusTtl } from './core/http-cache-rules';
import { StoreInput, isStoreInput } from './core/store-adapter';
import { RedisOptions, ResolvedRedisOptions, validateRedisOptions } from './redis/redis.options';
import {
  DEFAULT_KEY_BODY_BYTES,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTRIES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_WAITERS,
  DEFAULT_METHODS,
  DEFAULT_STORE_TIMEOUT,
  DEFAULT_TTL,
} from './stampede.constants';

/**
 * A custom key part. On a route it receives the `ExecutionContext` and its
 * result is added to the key (`undefined` = do not coalesce this request).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KeyFunction = (...args: any[]) => string | undefined;

/**
 * Per-route (or per-controller) settings given to `@Coalesce()`. Unset
 * fields fall back to the controller's, then the module's.
 *
 * @example
 * ```ts
 * @Coalesce({ ttl: 2_000, keyHeaders: ['accept-language'] })
 * @Get('articles/:id')
 * article(@Param('id') id: string) { return this.articles.byId(id); }
 * ```
 */
export interface CoalesceOptions {
  /** Milliseconds to keep a successful result; `0` coalesces only, storing nothing. */
  ttl?: number;
  /**
   * Request headers whose values split the key (case-insensitive names; the
   * values are SHA-256 hashed, never stored in clear). Listing `authorization`
   * or `cookie` lets requests carrying them be coalesced per credential.
   */
  keyHeaders?: string[];
  /**
   * Adds a part to the key; for HTTP it is called with the `ExecutionContext`.
   * Returning `undefined` lets the request through uncoalesced. A route with a
   * `key` function is trusted to separate callers: requests with
   * `Authorization` or `Cookie` are coalesced by it.
   */
  key?: KeyFunction;
  /**
   * Milliseconds the work (handler, method, `run` function) may take; then
   * every waiter gets a timeout error (HTTP: 504 Gateway Timeout), nothing is
   * stored, and the work's `AbortSignal` (given to `run` functions) aborts.
   * `0`: no limit (default).
   */
  timeout?: number;
  /**
   * Milliseconds a caller waits on another caller's work before giving up on
   * it: it then runs its own, uncached call (`onWaitTimeout: 'run'`, default,
   * as nginx's `proxy_cache_lock_timeout`) or fails with a timeout error
   * (`'fail'`). `0`: wait as long as the work takes (default).
   */
  waitTimeout?: number;
  /** What a caller does after `waitTimeout`: `'run'` (default) or `'fail'`. */
  onWaitTimeout?: 'run' | 'fail';
  /**
   * HTTP: responses whose body is larger (bytes, as JSON for objects) are
   * shared with the callers waiting on them but not stored. Default 1 MiB.
   */
  maxBodyBytes?: number;
  /**
   * Milliseconds after `ttl` during which the old value is served at once
   * while exactly one refresh runs in the background (stale-while-revalidate).
   * `0`: none (default).
   */
  staleTtl?: number;
  /**
   * Milliseconds after `ttl` during which the old value is served in place of
   * a failed call (HTTP: a thrown error or a 5xx response). `0`: none (default).
   */
  staleIfError?: number;
  /**
   * XFetch early refresh: a caller may refresh a fresh value in the background
   * before it expires, with a probability that rises near expiry and with the
   * time the work took. `true` = `{ beta: 1 }`; a larger beta refreshes earlier.
   */
  earlyRefresh?: boolean | { beta: number };
  /**
   * Tags stored with a result, for `StampedeService.invalidateTags()`: a list,
   * or a function of the result (and, on a method, its arguments; on a route,
   * the `ExecutionContext`).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  tags?: string[] | ((result: any, ...args: any[]) => string[]);
  /**
   * HTTP: TTL per response status (go-chi's `WithHTTPStatusTTL`), e.g.
   * `{ 200: 5_000, 404: 1_000 }`, or a function of the status. Listed statuses
   * are stored with their TTL; other 2xx with `ttl`; anything else is not stored.
   */
  statusTtl?: StatusTtl;
  /**
   * HTTP: take the TTL from the handler's `Cache-Control` (`s-maxage`, then
   * `max-age`; `no-cache` = do not store), and staleness from its
   * `stale-while-revalidate` and `stale-if-error`. Default `false`.
   */
  respectCacheControl?: boolean;
  /**
   * HTTP: put the request body in the key, so `POST`/`PUT`/`PATCH` requests
   * that only read (GraphQL queries, search) can be coalesced. The route's
   * method is then coalesced even if not in `methods`. Bodies over `maxBytes`
   * (default 64 KiB, as serialized) pass through uncoalesced.
   */
  keyBody?: boolean | { maxBytes: number };
}

/**
 * Options of `StampedeModule.forRoot()`: the defaults every route and call uses.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ ttl: 5_000, maxEntries: 10_000, keyHeaders: ['accept-language'] })
 * ```
 */
export interface StampedeModuleOptions extends CoalesceOptions {
  /** Entries kept by the default in-process store (least recently used go first). Default 10 000. */
  maxEntries?: number;
  /**
   * Where results are kept: a cache-manager `Cache` (e.g. the one given to
   * `@nestjs/cache-manager`), a `Keyv` instance, a Keyv storage adapter or a
   * `Map`. Default: an in-process store bounded by `maxEntries`.
   */
  store?: StoreInput;
  /** HTTP methods the interceptor coalesces. Default `['GET', 'HEAD']`; others pass through. */
  methods?: string[];
  /** Add a `Cache-Status` header (RFC 9211) to coalesced responses. Default `true`. */
  cacheStatusHeader?: boolean;
  /** Keys in flight at once at most; a caller beyond runs uncoalesced. Default 10 000. */
  maxInFlight?: number;
  /** Callers waiting on one key at most; one beyond runs uncoalesced. Default 10 000. */
  maxWaiters?: number;
  /** Milliseconds a store call may take before it counts as failed (a miss). Default 1000. */
  storeTimeout?: number;
  /**
   * Many instances on one Redis (node-redis v5; `redis` is an optional peer
   * dependency): the cache lives in Redis and a per-key lease makes one
   * instance run the work while the others wait for its value. Replaces `store`.
   *
   * @example
   * ```ts
   * StampedeModule.forRoot({ ttl: 30_000, redis: { url: process.env.REDIS_URL } })
   * ```
   */
  redis?: RedisOptions;
  /**
   * Prometheus metrics through `prom-client` (optional peer dependency):
   * `stampede_events_total{type,reason}`, `stampede_in_flight`,
   * `stampede_waiting`. `true`, or `{ prefix, registry }` (default prefix
   * `stampede_`, default registry prom-client's global one).
   */
  metrics?: boolean | { prefix?: string; registry?: unknown };
  /**
   * HTTP: a successful (2xx) `POST`, `PUT`, `PATCH` or `DELETE` through the
   * interceptor drops the stored `GET`/`HEAD` responses of the same path
   * (RFC 9111 §4.4). Default `false`.
   */
  invalidateOnWrite?: boolean;
}

/** Module options after validation, with every default filled in. */
export interface ResolvedStampedeOptions {
  ttl: number;
  keyHeaders: readonly string[];
  key?: KeyFunction;
  maxEntries: number;
  store?: StoreInput;
  methods: ReadonlySet<string>;
  cacheStatusHeader: boolean;
  timeout: number;
  waitTimeout: number;
  onWaitTimeout: 'run' | 'fail';
  maxBodyBytes: number;
  maxInFlight: number;
  maxWaiters: number;
  storeTimeout: number;
  redis?: ResolvedRedisOptions;
  staleTtl: number;
  staleIfError: number;
  earlyRefresh?: { beta: number };
  tags?: CoalesceOptions['tags'];
  statusTtl?: StatusTtl;
  respectCacheControl: boolean;
  keyBody?: { maxBytes: number };
  invalidateOnWrite: boolean;
  metrics?: { prefix: string; registry?: unknown };
}

/** Thrown at bootstrap (or where `@Coalesce` is applied) for an invalid option.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ ttl: -1 });
 * // app creation fails: nestjs-stampede: invalid option "ttl": expected a finite number of milliseconds >= 0, got -1
 * ```
 */
export class StampedeOptionsError extends Error {
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`nestjs-stampede: invalid option "${option}": expected ${expected}, got ${describe(value)}`);
    this.name = 'StampedeOptionsError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `a function`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

// RFC 9110 token: what a header name may be made of.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

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

function checkKeyHeaders(value: unknown): void {
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && TOKEN.test(name))) {
    throw new StampedeOptionsError('keyHeaders', value, 'an array of header names');
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
  if (keyHeaders !== undefined) checkKeyHeaders(keyHeaders);
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
    (!Array.isArray(methods) || !methods.every((m) => typeof m === 'string' && TOKEN.test(m)))
  ) {
    throw new StampedeOptionsError('methods', methods, 'an array of HTTP method names');
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
    invalidateOnWrite: given.invalidateOnWrite ?? false,
    metrics:
      metrics === undefined || metrics === false
        ? undefined
        : metrics === true
          ? { prefix: 'stampede_' }
          : { prefix: metrics.prefix ?? 'stampede_', registry: metrics.registry },
  };
}
