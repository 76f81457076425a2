import { StatusTtl } from '../../http/cache-rules';
import { StoreInput } from '../../core/store-adapter';
import type { RedisOptions, ResolvedRedisOptions } from '../../redis/redis.options';
import type { Duration, InMilliseconds } from '../../core/duration';

/**
 * A custom key part. On a route it receives the `ExecutionContext` and its
 * result is added to the key (`undefined` = do not coalesce this request).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KeyFunction = (...args: any[]) => string | undefined;

/**
 * What `@Coalesce()` on a provider method, and `StampedeService.run()` (but
 * `key`), accept: the per-key options every surface honours.
 *
 * @example
 * ```ts
 * @Coalesce({ ttl: 30_000, jitter: 0.1, staleTtl: 60_000 })
 * async rates(currency: string): Promise<Rates> { return this.upstream.rates(currency); }
 * ```
 */
export interface MethodCoalesceOptions {
  /** Milliseconds to keep a successful result; `0` coalesces only, storing nothing. */
  ttl?: Duration;
  /**
   * Spreads expiries: each stored entry's `ttl` is shortened by a random
   * amount up to this, a fraction of `ttl` (`0.1`: up to 10 %) or, from `1`
   * on, milliseconds, so keys written together do not expire together.
   * Never lengthens a `ttl`. `0`: none (default).
   */
  jitter?: Duration;
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
  timeout?: Duration;
  /**
   * Milliseconds a caller waits on another caller's work before giving up on
   * it: it then runs its own, uncached call (`onWaitTimeout: 'run'`, default,
   * as nginx's `proxy_cache_lock_timeout`) or fails with a timeout error
   * (`'fail'`). `0`: wait as long as the work takes (default).
   */
  waitTimeout?: Duration;
  /** What a caller does after `waitTimeout`: `'run'` (default) or `'fail'`. */
  onWaitTimeout?: 'run' | 'fail';
  /**
   * Milliseconds after `ttl` during which the old value is served at once
   * while exactly one refresh runs in the background (stale-while-revalidate).
   * `0`: none (default).
   */
  staleTtl?: Duration;
  /**
   * Milliseconds after `ttl` during which the old value is served in place of
   * a failed call (HTTP: a thrown error or a 5xx response). `0`: none (default).
   */
  staleIfError?: Duration;
  /**
   * With an old value that may stand in (within `staleIfError`): milliseconds
   * a caller waits for the work before it is answered with the old value
   * (`Cache-Status: ...; detail=soft-timeout`); the work goes on and its
   * result is stored. `0`: wait for the work (default). Has no effect without
   * an old value, and never makes a stale-while-revalidate answer wait.
   */
  softTimeout?: Duration;
  /**
   * After a failed call answered by the old value (stale-if-error): milliseconds
   * the old value goes on standing in before the next try, so a failing origin
   * is tried once per window, not once per caller. Default: a tenth of `ttl`,
   * within 100 ms and 5 s.
   */
  failSafeThrottle?: Duration;
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
}

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
export interface CoalesceOptions extends MethodCoalesceOptions {
  /**
   * HTTP: milliseconds a route key whose response could not be shared (`private`,
   * `no-store`, `Vary: *`, `Set-Cookie`, a stream) lets callers through at
   * once, uncoalesced, instead of queueing behind a leader whose answer they
   * cannot use (Varnish's hit-for-miss). Default 60 000.
   */
  uncacheableTtl?: Duration;
  /**
   * Request headers whose values split the key (case-insensitive names; the
   * values are SHA-256 hashed, never stored in clear). Listing `authorization`
   * or `cookie` lets requests carrying them be coalesced per credential.
   */
  keyHeaders?: string[];
  /**
   * HTTP: responses whose body is larger (bytes, as JSON for objects) are
   * shared with the callers waiting on them but not stored. Default 1 MiB.
   */
  maxBodyBytes?: number;
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
   * HTTP: coalesce `POST`/`PUT`/`PATCH` requests that only read (GraphQL
   * queries, search), keyed by their body, even if not in `methods`. (A body
   * a parser read is always in the key, on any method.) Bodies over
   * `maxBytes` (default 64 KiB, as serialized) pass through uncoalesced.
   */
  keyBody?: boolean | { maxBytes: number };
  /**
   * HTTP: request headers that identify the caller, besides `Authorization`,
   * `Proxy-Authorization` and `Cookie` (always). A request carrying one runs
   * alone unless the route keys by it (`keyHeaders`, `key`, `keyUser`).
   * Default: `x-api-key`, `api-key`, `x-auth-token`, `x-access-token`,
   * `x-session-token`, `x-csrf-token`, `x-xsrf-token`.
   */
  credentialHeaders?: string[];
  /**
   * HTTP: key a route by the authenticated user (`request.user`, as Passport
   * and most guards set it): the function's result (hashed) joins the key, so
   * requests of one user are coalesced and stored together and never answered
   * with another user's response. Without it, a request with a `request.user`
   * runs alone. Returning `undefined` lets the request through uncoalesced.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  keyUser?: (user: any) => string | undefined;
  /**
   * HTTP: answer fresh stored hits of this route before Nest's pipeline
   * (guards, interceptors, pipes, handler), from the adapter's earliest
   * route hook. `true`, or `{ skip: [...] }` naming the guards, interceptors
   * and pipes that are safe to skip on such a hit. Checked at bootstrap: a
   * route with anything else in its pipeline is refused. Default `false`.
   */
  edge?: boolean | EdgeOptions;
}

/**
 * The edge tier of a route: which enhancers (classes or instances of guards,
 * interceptors, pipes) may be skipped when a hit is answered before them.
 *
 * @example
 * ```ts
 * @Coalesce({ edge: { skip: [ThrottlerGuard] } })
 * ```
 */
export interface EdgeOptions {
  /**
   * Guards, interceptors, pipes (classes or instances) and, on Fastify, kinds
   * of hook that run after the edge (`'onRequest'`, `'preParsing'`,
   * `'preValidation'`, `'preHandler'`) an edge hit may skip.
   */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  skip?: readonly (Function | object | 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler')[];
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
  storeTimeout?: Duration;
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
   * OpenTelemetry traces and metrics through `@opentelemetry/api` (optional
   * peer dependency, loaded only then): `true`, or `{ traces, metrics, tracer,
   * meter, hitEvents }` (both signals by default; the global tracer and meter
   * providers unless given). `hitEvents: false` leaves hits and stale answers
   * unmarked on the request span, so they cost nothing (each pays one lookup
   * of the active context otherwise). See README "Operating it" for the spans
   * and instruments.
   */
  openTelemetry?:
    boolean | { traces?: boolean; metrics?: boolean; tracer?: unknown; meter?: unknown; hitEvents?: boolean };
  /**
   * HTTP: a successful (2xx) `POST`, `PUT`, `PATCH` or `DELETE` through the
   * interceptor drops the stored `GET`/`HEAD` responses of the same path
   * (RFC 9111 §4.4). Default `false`.
   */
  invalidateOnWrite?: boolean;
}

/** `@Coalesce()` options as validated (what its metadata holds): durations in milliseconds. */
export type ResolvedCoalesceOptions = InMilliseconds<CoalesceOptions>;

/** What `@Coalesce()` accepts on a route or a controller: the method options and the HTTP ones. */
export type RouteCoalesceOptions = CoalesceOptions;

/** Module options after validation, with every default filled in. */
export interface ResolvedStampedeOptions {
  ttl: number;
  softTimeout: number;
  failSafeThrottle?: number;
  keyBodyBytes: number;
  jitter: number;
  uncacheableTtl: number;
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
  credentialHeaders: readonly string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  keyUser?: (user: any) => string | undefined;
  invalidateOnWrite: boolean;
  edge?: boolean | EdgeOptions;
  metrics?: { prefix: string; registry?: unknown };
  openTelemetry?: { traces: boolean; metrics: boolean; tracer?: unknown; meter?: unknown; hitEvents: boolean };
}
