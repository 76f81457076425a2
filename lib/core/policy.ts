import { EarlyRefresh, Freshness } from './freshness';

/**
 * How one key is handled: what the engine asks, answered once per call (the
 * per-result questions once per result, by `decide`).
 */
export interface RunPolicy<T> {
  /** Milliseconds to keep a successful result; 0 coalesces only. */
  ttl: number;
  /** Up to this much (a fraction of `ttl` when < 1, else milliseconds) is taken off each stored entry's `ttl`, at random. */
  jitter?: number;
  /** Whether a result may be stored (e.g. only 2xx responses). Default: always. */
  cacheable?: (value: T) => boolean;
  /**
   * Whether the flight's waiters may be answered with a result. When not,
   * each waiter runs its own work, and the key lets callers through at once
   * for `uncacheableTtl` ms (hit-for-miss). Default: always.
   */
  shareable?: (value: T) => boolean;
  /** Milliseconds a key whose result was not shareable lets callers through uncoalesced. */
  uncacheableTtl?: number;
  /** Milliseconds the work may take; then every waiter gets `timeoutError()`. 0: no limit. */
  timeout?: number;
  /** The error a timed-out flight fails with. Default: `StampedeTimeoutError`. */
  timeoutError?: () => unknown;
  /** Milliseconds a caller waits on another's work before `onWaitTimeout`. 0: as long as it takes. */
  waitTimeout?: number;
  /** After `waitTimeout`: `run` its own uncached call (default, as nginx does), or `fail`. */
  onWaitTimeout?: 'run' | 'fail';
  /** See `FlightOptions.cancelWhenAbandoned`. */
  cancelWhenAbandoned?: boolean;
  /** Milliseconds after `ttl` during which the old value is served at once while one refresh runs. */
  staleTtl?: number;
  /** Milliseconds after `ttl` during which the old value replaces an error. */
  staleIfError?: number;
  /** With an old value that may stand in (`staleIfError`): milliseconds a caller waits before it is answered with it; the work goes on. */
  softTimeout?: number;
  /** After a failure answered by the old value: milliseconds it goes on standing in before the next try. Default: `refreshBackoff(ttl)`. */
  failSafeThrottle?: number;
  /** XFetch: refresh a fresh value early, with a probability that rises near expiry. */
  earlyRefresh?: EarlyRefresh;
  /** Per result: other freshness (e.g. from `Cache-Control`, per status). */
  freshnessFor?: (value: T) => Partial<Freshness> | undefined;
  /** Per result: a failure for stale-if-error although it is a value (e.g. a 5xx response). */
  isFailure?: (value: T) => boolean;
  /** Tags stored with a result, for `invalidateTags`. */
  tags?: (value: T) => string[] | undefined;
  /** Whether a value read from the store has the expected shape; others are misses. */
  isValid?: (value: unknown) => boolean;
}

/** What the engine does with one result, decided once. */
export interface Decision {
  /** The flight's waiters may be answered with it. */
  shared: boolean;
  /** A failure, which a stale value may replace (stale-if-error). */
  failure: boolean;
  /** Shared and allowed in the store by the policy (`cacheable`): what the work may not overrule. */
  cacheable: boolean;
  /** The freshness to store it with; `undefined`: not stored. */
  store?: Freshness;
  /** Tags to store it with. */
  tags?: string[];
}

/** Answers the per-result questions of `policy` for `value`; `random` draws the jitter. */
export function decide<T>(policy: RunPolicy<T>, value: T, random: () => number): Decision {
  const shared = policy.shareable === undefined || policy.shareable(value);
  const failure = policy.isFailure !== undefined && policy.isFailure(value);
  const cacheable = shared && (policy.cacheable === undefined || policy.cacheable(value));
  const decision: Decision = { shared, failure, cacheable };
  if (!cacheable) return decision;
  const freshness: Freshness = { ttl: policy.ttl, staleTtl: policy.staleTtl, staleIfError: policy.staleIfError };
  const refined = policy.freshnessFor?.(value);
  if (refined) {
    if (refined.ttl !== undefined) freshness.ttl = refined.ttl;
    if (refined.staleTtl !== undefined) freshness.staleTtl = refined.staleTtl;
    if (refined.staleIfError !== undefined) freshness.staleIfError = refined.staleIfError;
  }
  if (freshness.ttl <= 0) return decision;
  if (policy.jitter) freshness.ttl = jittered(freshness.ttl, policy.jitter, random);
  decision.store = freshness;
  decision.tags = policy.tags?.(value);
  return decision;
}

/** `ttl` less a random part of `jitter` (a fraction of `ttl` when < 1, else ms); never below 1 ms. */
export function jittered(ttl: number, jitter: number, random: () => number): number {
  const spread = jitter < 1 ? ttl * jitter : Math.min(jitter, ttl);
  return Math.max(1, Math.round(ttl - random() * spread));
}

/** After a failure, how long before the next try: the policy's `failSafeThrottle`, or a tenth of the TTL within 100 ms..5 s. */
export function failSafeThrottle(policy: RunPolicy<unknown>): number {
  if (policy.failSafeThrottle !== undefined) return policy.failSafeThrottle;
  return Math.min(5_000, Math.max(100, Math.round(policy.ttl / 10)));
}

/** The per-key options every surface (module, controller, route, method, `run`) may set. */
export interface PolicyOptions {
  ttl?: number;
  jitter?: number;
  timeout?: number;
  waitTimeout?: number;
  onWaitTimeout?: 'run' | 'fail';
  staleTtl?: number;
  staleIfError?: number;
  softTimeout?: number;
  failSafeThrottle?: number;
  earlyRefresh?: boolean | EarlyRefresh;
  cancelWhenAbandoned?: boolean;
  uncacheableTtl?: number;
}

/** The module's values of `PolicyOptions`, every default filled in. */
export type PolicyDefaults = Required<
  Omit<PolicyOptions, 'earlyRefresh' | 'cancelWhenAbandoned' | 'failSafeThrottle'>
> & {
  earlyRefresh?: EarlyRefresh;
  failSafeThrottle?: number;
};

/** The fields `resolvePolicy` merges: adding a per-key option means adding it here. */
const POLICY_FIELDS = [
  'ttl',
  'jitter',
  'timeout',
  'waitTimeout',
  'onWaitTimeout',
  'staleTtl',
  'staleIfError',
  'softTimeout',
  'failSafeThrottle',
  'cancelWhenAbandoned',
  'uncacheableTtl',
] as const satisfies readonly (keyof PolicyOptions)[];

/**
 * The one merge of options: for each field, the first layer that sets it
 * (most specific first: `run()` call or route, then controller, ...), else
 * the module's default.
 */
export function resolvePolicy<T>(
  defaults: PolicyDefaults,
  layers: readonly (PolicyOptions | undefined)[],
  extra: Partial<RunPolicy<T>> = {},
): RunPolicy<T> {
  const policy: Record<string, unknown> = {};
  for (const name of POLICY_FIELDS) {
    let value: unknown = (defaults as Record<string, unknown>)[name];
    for (const layer of layers) {
      if (layer !== undefined && layer[name] !== undefined) {
        value = layer[name];
        break;
      }
    }
    policy[name] = value;
  }
  let earlyRefresh: boolean | EarlyRefresh | undefined = defaults.earlyRefresh;
  for (const layer of layers) {
    if (layer !== undefined && layer.earlyRefresh !== undefined) {
      earlyRefresh = layer.earlyRefresh;
      break;
    }
  }
  policy.earlyRefresh = normalizeEarlyRefresh(earlyRefresh);
  return { ...(policy as unknown as RunPolicy<T>), ...extra };
}

/** `earlyRefresh` as the engine takes it: `{ beta }` or off. */
export function normalizeEarlyRefresh(value: boolean | EarlyRefresh | undefined): EarlyRefresh | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? { beta: 1 } : { beta: value.beta };
}
