import { CoreContext } from './context';
import { entryState, usableOnError } from './freshness';
import { MAX_KEY_LENGTH, boundKey } from './hash';
import { Leading } from './leading';
import { RunPolicy, failSafeThrottle } from './policy';
import { BackgroundRefresh } from './refresh';
import { Flight } from './flight';
import { Work } from './single-flight';
import { MaybePromise, StoredEntry, isPromiseLike } from './store';

/**
 * What `fetchMissing` may answer: a `Map` from key to value, or an array
 * aligned with the keys it was given. A value that is an `Error` fails that
 * key alone; a key the answer leaves out fails with `StampedeMissingKeyError`.
 */
export type BatchResult<T> = ReadonlyMap<string, T | Error> | readonly (T | Error)[];

/** Fetches the values of the keys nobody has: called once per batch of such keys. */
export type FetchMissing<T> = (keys: string[], signal: AbortSignal) => PromiseLike<BatchResult<T>> | BatchResult<T>;

/**
 * A key `fetchMissing` did not answer for: that key's callers get it, the
 * others their values; nothing is stored for it.
 *
 * @example
 * ```ts
 * const [a, b] = await stampede.runMany(['user:1', 'user:2'], (keys) => db.usersByKeys(keys));
 * // db.usersByKeys returned a Map without 'user:2': the call rejects with StampedeMissingKeyError
 * ```
 */
export class StampedeMissingKeyError extends Error {
  constructor(readonly key: string) {
    // The key stays out of the message: it may hold what a log must not.
    super('nestjs-stampede: fetchMissing gave no value for one of the keys it was asked for (see error.key)');
    this.name = 'StampedeMissingKeyError';
  }
}

/** What one key of a batch becomes: read, joined, or fetched. */
type Slot<T> = { value: MaybePromise<T> } | { fetch: true; fallback?: StoredEntry<T> };

/**
 * Batched single flight: every key is coalesced and stored on its own, but
 * the keys that are neither fresh in the store nor in flight are fetched
 * together, by one call of `fetchMissing`. Each fetched key gets a flight of
 * its own before the call, so a concurrent `run(key)` (or another batch)
 * joins it instead of fetching it again. The store is read in one round trip
 * where it can. Stale values are answered at once and refreshed together, in
 * one background batch.
 */
export class Batches {
  constructor(
    private readonly core: CoreContext,
    private readonly leading: Leading,
    private readonly refresh: BackgroundRefresh,
    private readonly single: <T>(key: string, work: Work<T>, policy: RunPolicy<T>) => MaybePromise<T>,
  ) {}

  run<T>(keys: readonly string[], fetchMissing: FetchMissing<T>, policy: RunPolicy<T>): Promise<T[]> {
    return this.each(keys, fetchMissing, policy).then((values) => Promise.all(values));
  }

  /** `run`, one Promise per key (aligned with `keys`): a key that fails fails alone. */
  each<T>(keys: readonly string[], fetchMissing: FetchMissing<T>, policy: RunPolicy<T>): Promise<Promise<T>[]> {
    if (keys.some((key) => key.length > MAX_KEY_LENGTH)) return this.eachBounded(keys, fetchMissing, policy);
    const unique = [...new Set(keys)];
    // Keys in flight are read too: in one round trip it costs nothing, and their flight may end meanwhile.
    const read = policy.ttl > 0 || policy.freshnessFor ? this.core.store.getMany(unique) : unique.map(() => undefined);
    const settle = (entries: (StoredEntry | undefined)[]) => {
      const byKey = new Map<string, StoredEntry | undefined>();
      unique.forEach((key, i) => byKey.set(key, entries[i]));
      const slots = new Map<string, Slot<T>>();
      const stale: [string, StoredEntry<T>][] = [];
      for (const key of unique) slots.set(key, this.slotOf(key, byKey.get(key), fetchMissing, policy, stale));
      this.fetch(slots, fetchMissing, policy);
      if (stale.length > 0) this.refreshTogether(stale, fetchMissing, policy);
      return keys.map((key) => Promise.resolve((slots.get(key) as { value: MaybePromise<T> }).value));
    };
    return isPromiseLike(read) ? Promise.resolve(read).then(settle) : Promise.resolve(settle(read));
  }

  /** Long keys are bounded like everywhere; `fetchMissing` still sees (and answers for) the keys as given. */
  private eachBounded<T>(
    keys: readonly string[],
    fetchMissing: FetchMissing<T>,
    policy: RunPolicy<T>,
  ): Promise<Promise<T>[]> {
    const given = new Map(keys.map((key) => [boundKey(key), key]));
    const fetch: FetchMissing<T> = async (asked, signal) => {
      const originals = asked.map((key) => given.get(key)!);
      const result = await fetchMissing(originals, signal);
      if (Array.isArray(result)) return result;
      const byOriginal = result as ReadonlyMap<string, T | Error>;
      return new Map(
        asked.filter((key) => byOriginal.has(given.get(key)!)).map((key) => [key, byOriginal.get(given.get(key)!)!]),
      );
    };
    return this.each(keys.map(boundKey), fetch, policy);
  }

  /** Where one key's value comes from, given what the store had for it. */
  private slotOf<T>(
    key: string,
    cached: StoredEntry | undefined,
    fetchMissing: FetchMissing<T>,
    policy: RunPolicy<T>,
    stale: [string, StoredEntry<T>][],
  ): Slot<T> {
    const core = this.core;
    // In flight (perhaps since the store answered): join it, with every rule of a single join.
    if (core.flights.find(key)) return { value: this.single(key, alone(key, fetchMissing), policy) };
    const now = core.now();
    const entry = core.usable(cached, policy);
    const state = entry ? entryState(entry, now) : 'dead';
    if (entry && state === 'fresh') {
      core.events.report('hit', key);
      return { value: entry.v };
    }
    if (entry && state === 'stale') {
      core.events.report('stale', key, { staleReason: 'revalidate' });
      stale.push([key, entry]);
      return { value: entry.v };
    }
    if (entry && state === 'fallback-only' && core.failedRecently.has(key, now)) {
      // The last call failed moments ago: the old value stands in again rather than a retry.
      core.events.report('stale', key, { staleReason: 'error' });
      return { value: entry.v };
    }
    return { fetch: true, fallback: usableOnError(entry, now) ? entry : undefined };
  }

  /** Starts a flight for every key to fetch, then makes the one call that feeds them all. */
  private fetch<T>(slots: Map<string, Slot<T>>, fetchMissing: FetchMissing<T>, policy: RunPolicy<T>): void {
    const missing = [...slots].filter(([, slot]) => 'fetch' in slot).map(([key]) => key);
    if (missing.length === 0) return;
    const fallbacks = new Map(missing.map((key) => [key, (slots.get(key) as { fallback?: StoredEntry<T> }).fallback]));
    const fed = this.feed(missing, fetchMissing, policy, 'lead', fallbacks);
    for (const key of missing) slots.set(key, { value: this.answerOf(fed.flights.get(key)!, policy) });
    fed.start();
  }

  /** Refreshes stale keys with one background call (keys that started a flight meanwhile are left to it). */
  private refreshTogether<T>(stale: [string, StoredEntry<T>][], fetchMissing: FetchMissing<T>, policy: RunPolicy<T>) {
    const core = this.core;
    const now = core.now();
    // As a single refresh: not while one runs, not while a failed one backs off, not past maxInFlight.
    const room = core.limits.maxInFlight > 0 ? Math.max(0, core.limits.maxInFlight - core.flights.size) : Infinity;
    const keys = stale
      .filter(([key]) => !core.flights.find(key) && !core.failedRecently.has(key, now))
      .map(([key]) => key)
      .slice(0, room);
    if (keys.length === 0) return;
    const fed = this.feed(keys, fetchMissing, policy, 'refresh', new Map(stale));
    for (const [key] of stale) {
      const flight = fed.flights.get(key);
      if (!flight) continue;
      this.core.events.report('refresh', key, { trigger: 'stale' });
      flight.settledPromise().catch((error: unknown) => {
        core.events.report('error', key, { error });
        core.failedRecently.mark(key, failSafeThrottle(policy as RunPolicy<unknown>), core.now());
      });
    }
    fed.start();
  }

  /**
   * One flight per key, each waiting on its share of a `fetchMissing` call.
   * Only keys whose work the flight actually runs are fetched: in process
   * that is every key, in one call made by `start`; across instances the
   * lease may answer a key from the store or from another instance instead,
   * and the keys it does hand to this instance are fetched together, one
   * call per turn of the event loop.
   */
  private feed<T>(
    keys: string[],
    fetchMissing: FetchMissing<T>,
    policy: RunPolicy<T>,
    kind: 'lead' | 'refresh',
    old: ReadonlyMap<string, StoredEntry<T> | undefined>,
  ) {
    const shares = new Map<string, { resolve(value: T): void; reject(error: unknown): void }>();
    const flights = new Map<string, Flight<T>>();
    const due: string[] = [];
    let started = false;
    let scheduled = false;
    const dispatch = () => {
      scheduled = false;
      const asked = due.splice(0);
      if (asked.length > 0) this.call(asked, shares, fetchMissing, policy);
    };
    for (const key of keys) {
      if (kind === 'lead') this.core.events.report('miss', key);
      const share = new Promise<T>((resolve, reject) => shares.set(key, { resolve, reject }));
      // A share nobody runs (the lease answered otherwise) is never awaited: its rejection is no crash.
      share.catch(() => undefined);
      const work = () => {
        due.push(key);
        if (started && !scheduled) {
          scheduled = true;
          setImmediate(dispatch);
        }
        return share;
      };
      flights.set(key, this.leading.startFlight(key, work, policy, kind, old.get(key)));
    }
    const start = () => {
      started = true;
      dispatch();
    };
    return { flights, start };
  }

  /** One `fetchMissing` call for `keys`, delivering each key's share. */
  private call<T>(
    keys: string[],
    shares: Map<string, { resolve(value: T): void; reject(error: unknown): void }>,
    fetchMissing: FetchMissing<T>,
    policy: RunPolicy<T>,
  ): void {
    const controller = new AbortController();
    // Past the flights' timeout nobody waits for the answer: the call may stop.
    const timer = policy.timeout
      ? setTimeout(() => controller.abort(new Error('timed out')), policy.timeout)
      : undefined;
    let answer: PromiseLike<BatchResult<T>> | BatchResult<T>;
    try {
      answer = fetchMissing([...keys], controller.signal);
    } catch (error) {
      answer = Promise.reject(error);
    }
    Promise.resolve(answer).then(
      (result) => {
        clearTimeout(timer);
        keys.forEach((key, i) => deliver(shares.get(key)!, pick(result, key, i)));
      },
      (error: unknown) => {
        clearTimeout(timer);
        for (const key of keys) shares.get(key)!.reject(error);
      },
    );
  }

  /** The value one caller of the batch gets for a fetched key: the flight's, or its stale fallback. */
  private answerOf<T>(flight: Flight<T>, policy: RunPolicy<T>): Promise<T> {
    return flight.joinPromise().then(
      (value) => {
        const decision = this.core.decisionFor(flight, policy, value);
        return decision.failure && usableOnError(flight.fallback, this.core.now()) ? flight.fallback.v : value;
      },
      (error: unknown) => {
        if (usableOnError(flight.fallback, this.core.now())) return flight.fallback.v;
        this.core.events.report('error', flight.key, { error });
        throw error;
      },
    );
  }
}

/** The value `result` holds for `key` (the `i`-th key asked), or the error standing for it. */
function pick<T>(result: BatchResult<T>, key: string, i: number): T | Error {
  if (Array.isArray(result)) return i < result.length ? (result[i] as T | Error) : new StampedeMissingKeyError(key);
  const map = result as ReadonlyMap<string, T | Error>;
  return map.has(key) ? (map.get(key) as T | Error) : new StampedeMissingKeyError(key);
}

function deliver<T>(share: { resolve(value: T): void; reject(error: unknown): void }, value: T | Error) {
  if (value instanceof Error) share.reject(value);
  else share.resolve(value);
}

/** A key's fetch alone, for the rare caller of a batch that must run its own (a bound, a wait timeout). */
function alone<T>(key: string, fetchMissing: FetchMissing<T>): Work<T> {
  return (signal) =>
    Promise.resolve(fetchMissing([key], signal)).then((result) => {
      const value = pick(result, key, 0);
      if (value instanceof Error) throw value;
      return value;
    });
}
