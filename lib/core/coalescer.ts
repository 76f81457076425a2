import { Observable, Subscriber, Subscription, defer } from 'rxjs';
import { FlightCoordinator } from './coordinator';
import { BypassReason, EventLog, StampedeEvent, StampedeEventType, StampedeListener, StampedeStats } from './events';
import { EarlyRefresh, Freshness, TagClock, entryState, makeEntry, refreshesEarly, usableOnError } from './freshness';
import { CoreLogger, GuardedStore } from './guarded-store';
import { sha256 } from './hash';
import { NEVER_ABORTED, SingleFlight, StampedeTimeoutError, Work, deadline, toObservable } from './single-flight';
import { MaybePromise, StampedeStore, StoredEntry, isPromiseLike } from './store';

/** How a caller was answered. */
export type Outcome = 'hit' | 'stale' | 'miss' | 'collapsed' | 'bypass';

/** One caller's answer: the value and how it was obtained. */
export interface Lookup<T> {
  value: T;
  /**
   * `hit`: from the store; `miss`: this caller ran the work for everyone;
   * `collapsed`: it joined a flight; `bypass`: it ran its own uncoalesced call
   * (a bound was reached, or it waited `waitTimeout`); `stale`: an old value,
   * served while a refresh runs or in place of a failed call.
   */
  outcome: Outcome;
  /** For a `hit` or `stale`: epoch ms when the stored value stops (stopped) being fresh. */
  expiresAt?: number;
  /** For a `hit` or `stale`: epoch ms its work started (for an `Age`). */
  storedAt?: number;
  /** For `stale`: `revalidate` (a refresh runs) or `error` (in place of a failed call). */
  staleReason?: 'revalidate' | 'error';
  /** For a `miss`: whether the value was handed to the store. */
  stored?: boolean;
}

/** How one key is handled. */
export interface RunPolicy<T> {
  /** Milliseconds to keep a successful result; 0 coalesces only. */
  ttl: number;
  /** Whether a result may be stored (e.g. only 2xx responses). Default: always. */
  cacheable?: (value: T) => boolean;
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

/** What the coalescer needs. */
export interface CoalescerDeps {
  store: StampedeStore;
  logger: CoreLogger;
  now?: () => number;
  /** Spans the single flight across instances (Redis lease); in-process only without it. */
  coordinator?: FlightCoordinator;
  /** Keys in flight at most; a caller beyond runs uncoalesced. 0: no bound. */
  maxInFlight?: number;
  /** Callers waiting on one key at most; one beyond runs uncoalesced. 0: no bound. */
  maxWaiters?: number;
  /** Milliseconds an asynchronous store call may take before it counts as failed. 0: no bound. */
  storeTimeout?: number;
  /** The random source of XFetch (injectable for tests). */
  random?: () => number;
  /** Tag invalidation times (shared across instances with Redis); in process without it. */
  tags?: Pick<TagClock, 'invalidate' | 'isValid' | 'noteLife'>;
}

function isEntry(value: unknown): value is StoredEntry {
  return value !== null && typeof value === 'object' && typeof (value as StoredEntry).e === 'number' && 'v' in value;
}

/**
 * The engine: a store in front of a single flight.
 *
 * A caller of `run$` joins the flight in progress for its key if there is one
 * (`collapsed`), else is answered from the store while the value is fresh
 * (`hit`), else becomes the leader and runs the work (`miss`); a successful
 * result is stored for `ttl` ms if `cacheable` allows. Errors reach every
 * waiter of their flight and are never stored. The store is guarded: when it
 * fails the coalescer works as if nothing were cached. Bounds (`maxInFlight`,
 * `maxWaiters`) and `waitTimeout` make a caller run its own call rather than
 * queue without end (`bypass`).
 */
export class Coalescer {
  readonly store: GuardedStore;
  private readonly flights = new SingleFlight();
  private readonly now: () => number;
  private readonly coordinator?: FlightCoordinator;
  private readonly maxInFlight: number;
  private readonly maxWaiters: number;
  private readonly events = new EventLog();
  private readonly random: () => number;
  private readonly logger: CoreLogger;
  /** Keys whose background refresh failed, and until when not to try again. */
  private readonly refreshBackoff = new Map<string, number>();
  /** Store writes in progress, so an invalidation lands after them, not before. */
  private readonly pendingWrites = new Map<string, PromiseLike<unknown>>();
  /** Flights that are background refreshes: callers answered stale do not wait on them. */
  private readonly refreshes = new WeakSet<Observable<unknown>>();
  /** The stale value a flight may fall back on, per flight. */
  private readonly fallbacks = new WeakMap<Observable<unknown>, StoredEntry>();
  readonly tags: Pick<TagClock, 'invalidate' | 'isValid' | 'noteLife'>;

  constructor(deps: CoalescerDeps) {
    this.store = new GuardedStore(deps.store, deps.logger, deps.storeTimeout ?? 0);
    this.now = deps.now ?? (() => Date.now());
    this.random = deps.random ?? Math.random;
    this.logger = deps.logger;
    this.tags = deps.tags ?? new TagClock(this.now);
    this.coordinator = deps.coordinator;
    this.maxInFlight = deps.maxInFlight ?? 0;
    this.maxWaiters = deps.maxWaiters ?? 0;
  }

  /** Number of keys whose work is in progress. */
  inFlight(): number {
    return this.flights.size;
  }

  /** Number of callers waiting on the flight of `key` (the leader included); 0 if none. */
  waiters(key: string): number {
    return this.flights.waiters(key);
  }

  /** Counts since start and what is in flight now. */
  stats(): StampedeStats {
    let waiting = 0;
    for (const key of this.flights.keys()) waiting += this.flights.waiters(key);
    return { ...this.events.counts, inFlight: this.flights.size, waiting };
  }

  /** Calls `listener` for every event; returns a function that stops it. */
  on(listener: StampedeListener): () => void {
    return this.events.on(listener);
  }

  /** Counts an event and tells the listeners (a throwing listener is ignored). */
  report(type: StampedeEventType, key: string, detail?: Omit<StampedeEvent, 'type' | 'key'>): void {
    this.events.report(type, key, detail);
  }

  /**
   * Runs `work` once for all concurrent callers of `key`. Cold: nothing
   * happens until subscription, and each subscription is one caller.
   */
  run$<T>(key: string, work: Work<T>, policy: RunPolicy<T>): Observable<Lookup<T>> {
    return new Observable<Lookup<T>>((subscriber) => {
      // A background refresh is not waited on by callers the store can still answer (stale).
      const flight$ = this.flights.find(key);
      const joined = flight$ && !this.refreshes.has(flight$) && this.joinInFlight(key, work, policy, subscriber);
      if (joined) return joined;
      if (policy.ttl <= 0 && !policy.freshnessFor) return this.lead(key, work, policy, subscriber);
      const cached = this.store.get(key);
      if (!isPromiseLike(cached)) return this.answer(key, cached, work, policy, subscriber);
      let inner: TeardownLogic;
      cached.then((entry) => {
        if (!subscriber.closed) inner = this.answer(key, entry, work, policy, subscriber);
      });
      return () => teardown(inner);
    });
  }

  /** Answers from what the store had for `key`: fresh, stale, or not at all (lead). */
  private answer<T>(
    key: string,
    cached: StoredEntry | undefined,
    work: Work<T>,
    policy: RunPolicy<T>,
    subscriber: Subscriber<Lookup<T>>,
  ): TeardownLogic {
    const now = this.now();
    const entry =
      isEntry(cached) && this.tags.isValid(cached) && (policy.isValid === undefined || policy.isValid(cached.v))
        ? (cached as StoredEntry<T>)
        : undefined;
    const state = entry ? entryState(entry, now) : 'dead';
    if (entry && state === 'fresh') {
      if (policy.earlyRefresh && refreshesEarly(entry, now, policy.earlyRefresh.beta, this.random)) {
        this.refreshInBackground(key, work, policy, 'early', entry);
      }
      this.report('hit', key);
      subscriber.next({ value: entry.v, outcome: 'hit', expiresAt: entry.e, storedAt: entry.t });
      subscriber.complete();
      return undefined;
    }
    if (entry && state === 'stale') {
      this.refreshInBackground(key, work, policy, 'stale', entry);
      this.report('stale', key, { staleReason: 'revalidate' });
      subscriber.next({
        value: entry.v,
        outcome: 'stale',
        staleReason: 'revalidate',
        expiresAt: entry.e,
        storedAt: entry.t,
      });
      subscriber.complete();
      return undefined;
    }
    // Join a flight in progress (a background refresh, or one that started while the store answered).
    return (
      this.joinInFlight(key, work, policy, subscriber) ??
      this.lead(key, work, policy, subscriber, usableOnError(entry, now) ? entry : undefined)
    );
  }

  /** Starts one refresh of `key` nobody waits on, unless one runs or a failed one is backing off. */
  private refreshInBackground<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    trigger: 'stale' | 'early',
    current: StoredEntry<T>,
  ): void {
    if (this.flights.find(key)) return;
    const backoffUntil = this.refreshBackoff.get(key);
    if (backoffUntil !== undefined) {
      if (this.now() < backoffUntil) return;
      this.refreshBackoff.delete(key);
    }
    if (this.maxInFlight > 0 && this.flights.size >= this.maxInFlight) return;
    this.report('refresh', key, { trigger });
    const flight$ = this.startFlight(key, work, policy);
    this.refreshes.add(flight$);
    // Callers that join the refresh once the value is past stale may still fall back on it.
    this.fallbacks.set(flight$, current);
    flight$.subscribe({
      error: (error: unknown) => {
        this.report('error', key, { error });
        // The stale value stays; the next try waits a little, not every request.
        const backoff = Math.min(5_000, Math.max(100, Math.round(policy.ttl / 10)));
        this.refreshBackoff.set(key, this.now() + backoff);
        if (this.refreshBackoff.size > 10_000) this.refreshBackoff.clear();
        this.logger.warn(
          `refresh of key #${sha256(key).slice(0, 12)} failed (${error instanceof Error ? error.message : String(error)}); serving the stale value`,
        );
      },
    });
  }

  /**
   * The hit path without Observables: when the store answers synchronously
   * and holds a fresh, valid value for `key`, reports the hit and returns its
   * entry; otherwise `undefined`, and the caller goes through `run$`.
   */
  peekFresh<T>(key: string, policy: RunPolicy<T>): StoredEntry<T> | undefined {
    if (!this.store.synchronous || policy.earlyRefresh || (policy.ttl <= 0 && !policy.freshnessFor)) return undefined;
    const cached = this.store.get(key) as StoredEntry | undefined;
    if (
      cached === undefined ||
      !isEntry(cached) ||
      cached.e <= this.now() ||
      !this.tags.isValid(cached) ||
      (policy.isValid !== undefined && !policy.isValid(cached.v))
    ) {
      return undefined;
    }
    this.report('hit', key);
    return cached as StoredEntry<T>;
  }

  /**
   * The join path without Observables: a Promise of the flight in progress
   * for `key`, for callers that want a Promise and no per-caller policy
   * (`waitTimeout`, bounds, stale fallbacks). `undefined`: use `run$`.
   */
  joinFast<T>(key: string, policy: RunPolicy<T>): Promise<T> | undefined {
    if (policy.waitTimeout || policy.staleIfError || policy.isFailure) return undefined;
    const flight$ = this.flights.find(key);
    if (!flight$ || this.refreshes.has(flight$) || this.fallbacks.has(flight$)) return undefined;
    const waiting = this.flights.waiters(key);
    if (this.maxWaiters > 0 && waiting >= this.maxWaiters) return undefined;
    this.report('coalesced', key, { waiters: waiting + 1 });
    return this.flights.joinPromise<T>(key);
  }

  /** The fresh stored value for `key`, if any. */
  get<T>(key: string): MaybePromise<T | undefined> {
    const cached = this.store.get(key);
    const unwrap = (entry: StoredEntry | undefined) =>
      this.isFresh(entry) && this.tags.isValid(entry) ? (entry.v as T) : undefined;
    return isPromiseLike(cached) ? Promise.resolve(cached).then(unwrap) : unwrap(cached);
  }

  /** Stores `value` under `key` for `ttl` ms. */
  set<T>(key: string, value: T, ttl: number): MaybePromise<unknown> {
    const now = this.now();
    return this.store.set(key, { v: value, e: now + ttl, t: now }, ttl);
  }

  /**
   * Drops every value stored with one of `tags` (and lets flights in progress
   * store nothing tagged so): any store, no key listing needed.
   */
  invalidateTags(tags: readonly string[]): void {
    this.tags.invalidate(tags);
  }

  /**
   * Drops the stored value of `key`; a flight in progress for it still answers
   * its waiters but stores nothing, and the next caller starts afresh. With
   * `strict`, a store failure is thrown instead of answered as `false`.
   */
  invalidate(key: string, strict = false): MaybePromise<unknown> {
    this.flights.forget(key);
    // A write still in progress would land after the delete and bring the value back.
    const pending = this.pendingWrites.get(key);
    if (pending) return Promise.resolve(pending).then(() => this.store.delete(key, strict));
    return this.store.delete(key, strict);
  }

  /**
   * `invalidate` for every key that starts with `prefix`. Needs a store that
   * can list its keys (the in-process one can); others reject.
   */
  async invalidatePrefix(prefix: string): Promise<number> {
    this.flights.forgetPrefix(prefix);
    const deletePrefix = this.store.deletePrefix;
    if (!deletePrefix) {
      throw new Error(
        'nestjs-stampede: this store cannot list its keys, so invalidate({ prefix }) is unavailable; invalidate keys one by one',
      );
    }
    return deletePrefix(prefix);
  }

  private isFresh(entry: unknown): entry is StoredEntry {
    return isEntry(entry) && entry.e > this.now();
  }

  private joinInFlight<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    subscriber: Subscriber<Lookup<T>>,
  ): TeardownLogic | undefined {
    const flight$ = this.flights.find<T>(key);
    if (!flight$) return undefined;
    const waiting = this.flights.waiters(key);
    if (this.maxWaiters > 0 && waiting >= this.maxWaiters)
      return this.bypass(key, work, policy, subscriber, 'max-waiters');
    this.report('coalesced', key, { waiters: waiting + 1 });
    const waitTimeout = policy.waitTimeout ?? 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ownCall: TeardownLogic;
    const stopWaiting = () => timer !== undefined && clearTimeout(timer);
    const subscription = flight$.subscribe({
      next: (value) => {
        if (!this.fellBack(key, flight$, policy, value, undefined, subscriber)) {
          subscriber.next({ value, outcome: 'collapsed' });
        }
      },
      error: (error: unknown) => {
        stopWaiting();
        if (!this.fellBack(key, flight$, policy, undefined, { error }, subscriber)) subscriber.error(error);
      },
      complete: () => {
        stopWaiting();
        subscriber.complete();
      },
    });
    if (waitTimeout > 0 && !subscription.closed) {
      timer = setTimeout(() => {
        subscription.unsubscribe();
        if (policy.onWaitTimeout === 'fail') {
          this.report('timeout', key, { error: new StampedeTimeoutError(waitTimeout, 'wait') });
          subscriber.error(new StampedeTimeoutError(waitTimeout, 'wait'));
        } else {
          ownCall = this.bypass(key, work, policy, subscriber, 'wait-timeout');
        }
      }, waitTimeout);
    }
    return () => {
      stopWaiting();
      subscription.unsubscribe();
      teardown(ownCall);
    };
  }

  /**
   * Stale-if-error: when the flight failed (an error, or a value `isFailure`
   * calls one) and it has a fallback still usable, answers with that instead.
   */
  private fellBack<T>(
    key: string,
    flight$: Observable<T>,
    policy: RunPolicy<T>,
    value: T | undefined,
    error: { error: unknown } | undefined,
    subscriber: Subscriber<Lookup<T>>,
  ): boolean {
    const failed = error !== undefined || (policy.isFailure !== undefined && policy.isFailure(value as T));
    if (!failed) return false;
    const fallback = this.fallbacks.get(flight$) as StoredEntry<T> | undefined;
    if (!usableOnError(fallback, this.now())) return false;
    this.report('stale', key, { staleReason: 'error', error: error?.error });
    subscriber.next({
      value: fallback.v,
      outcome: 'stale',
      staleReason: 'error',
      expiresAt: fallback.e,
      storedAt: fallback.t,
    });
    if (error !== undefined) subscriber.complete();
    return true;
  }

  /** Runs `work` for this caller alone: uncoalesced, not stored. */
  private bypass<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    subscriber: Subscriber<Lookup<T>>,
    reason: BypassReason,
  ): Subscription {
    this.report('bypass', key, { reason });
    const timeout = policy.timeout ?? 0;
    const controller = work.length > 0 ? new AbortController() : undefined;
    let own$ = defer(() => toObservable(work(controller?.signal ?? NEVER_ABORTED)));
    // The caller's own call is bounded like a flight.
    if (timeout > 0) {
      own$ = deadline(own$, timeout, () => {
        controller?.abort(new Error('timed out'));
        return policy.timeoutError ? policy.timeoutError() : new StampedeTimeoutError(timeout);
      });
    }
    return own$.subscribe({
      next: (value) => subscriber.next({ value, outcome: 'bypass' }),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
  }

  /** The freshness a result is stored with: the policy's, refined per result. */
  private freshnessOf<T>(policy: RunPolicy<T>, value: T): Freshness {
    const base: Freshness = { ttl: policy.ttl, staleTtl: policy.staleTtl, staleIfError: policy.staleIfError };
    const refined = policy.freshnessFor?.(value);
    if (!refined) return base;
    if (refined.ttl !== undefined) base.ttl = refined.ttl;
    if (refined.staleTtl !== undefined) base.staleTtl = refined.staleTtl;
    if (refined.staleIfError !== undefined) base.staleIfError = refined.staleIfError;
    return base;
  }

  private storable<T>(policy: RunPolicy<T>, value: T): boolean {
    return (policy.cacheable ? policy.cacheable(value) : true) && this.freshnessOf(policy, value).ttl > 0;
  }

  /** Starts the flight of `key`, which stores its result when it may. */
  private startFlight<T>(key: string, work: Work<T>, policy: RunPolicy<T>, onTimeout?: () => void): Observable<T> {
    const storable = (value: T) => this.storable(policy, value);
    // Across instances only what can be shared through the store: ttl > 0.
    const coordinator = policy.ttl > 0 ? this.coordinator : undefined;
    let startedAt = 0;
    const flightWork: Work<T> = coordinator
      ? (signal) => {
          startedAt = this.now();
          return coordinator.lead(key, () => toObservable(work(signal)), {
            ttl: policy.ttl,
            storable,
            entry: (value) => {
              const made = makeEntry(
                value,
                this.now(),
                startedAt,
                this.freshnessOf(policy, value),
                policy.tags?.(value),
              );
              if (made.entry.g) this.tags.noteLife(this.now() - startedAt + made.storeTtl);
              return made.entry;
            },
          });
        }
      : work.length > 0
        ? (signal) => ((startedAt = this.now()), work(signal))
        : () => ((startedAt = this.now()), work(NEVER_ABORTED));
    const timeout = policy.timeout ?? 0;
    const flight$: Observable<T> = this.flights.start(
      key,
      flightWork,
      {
        onSuccess: (last, emitted, current) => {
          // A coordinator stores the result itself, fenced by its lease.
          if (coordinator || !emitted || !current || !storable(last as T)) return undefined;
          // A failure answered by a stale fallback must not replace that fallback.
          if (policy.isFailure?.(last as T) && usableOnError(this.fallbacks.get(flight$), this.now())) return undefined;
          const freshness = this.freshnessOf(policy, last as T);
          const { entry, storeTtl } = makeEntry(last, this.now(), startedAt, freshness, policy.tags?.(last as T));
          // Tags judge an entry by when its work started: keep invalidations that long.
          if (entry.g) this.tags.noteLife(this.now() - startedAt + storeTtl);
          this.report('stored', key, { ttl: freshness.ttl });
          const write = this.store.set(key, entry, storeTtl);
          if (isPromiseLike(write)) {
            const settled = Promise.resolve(write).finally(() => {
              if (this.pendingWrites.get(key) === settled) this.pendingWrites.delete(key);
            });
            this.pendingWrites.set(key, settled);
          }
          return write;
        },
      },
      {
        timeout,
        timeoutError: () => {
          onTimeout?.();
          return policy.timeoutError ? policy.timeoutError() : new StampedeTimeoutError(timeout);
        },
        cancelWhenAbandoned: policy.cancelWhenAbandoned,
      },
    );
    return flight$;
  }

  private lead<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    subscriber: Subscriber<Lookup<T>>,
    fallback?: StoredEntry<T>,
  ): Subscription {
    if (this.maxInFlight > 0 && this.flights.size >= this.maxInFlight) {
      return this.bypass(key, work, policy, subscriber, 'max-in-flight');
    }
    this.report('miss', key);
    let timedOut = false;
    // A coordinator may answer with another instance's value: then this process ran nothing.
    let ranHere = false;
    const counted: Work<T> =
      work.length > 0 ? (signal) => ((ranHere = true), work(signal)) : () => ((ranHere = true), work(NEVER_ABORTED));
    const flight$ = this.startFlight(key, counted, policy, () => (timedOut = true));
    if (fallback) this.fallbacks.set(flight$, fallback);
    return flight$.subscribe({
      next: (value) => {
        if (this.fellBack(key, flight$, policy, value, undefined, subscriber)) return;
        // Answered by another instance's holder: for this caller, a collapsed request, not its own miss.
        if (!ranHere) return subscriber.next({ value, outcome: 'collapsed' });
        subscriber.next({
          value,
          outcome: 'miss',
          stored: this.storable(policy, value) && this.flights.isCurrent(key, flight$),
        });
      },
      error: (error: unknown) => {
        this.report(timedOut ? 'timeout' : 'error', key, { error });
        if (!this.fellBack(key, flight$, policy, undefined, { error }, subscriber)) subscriber.error(error);
      },
      complete: () => subscriber.complete(),
    });
  }
}

type TeardownLogic = Subscription | (() => void) | undefined;

function teardown(logic: TeardownLogic): void {
  if (typeof logic === 'function') logic();
  else logic?.unsubscribe();
}
