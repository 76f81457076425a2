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
