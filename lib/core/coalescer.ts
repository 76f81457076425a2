import { Observable, Subscriber, Subscription, defer } from 'rxjs';
import { FlightCoordinator } from './coordinator';
import { BypassReason, STAT_OF, StampedeEvent, StampedeEventType, StampedeListener, StampedeStats } from './events';
import { CoreLogger, GuardedStore } from './guarded-store';
import { NEVER_ABORTED, SingleFlight, StampedeTimeoutError, Work, toObservable } from './single-flight';
import { MaybePromise, StampedeStore, StoredEntry, isPromiseLike } from './store';

/** How a caller was answered. */
export type Outcome = 'hit' | 'miss' | 'collapsed' | 'bypass';

/** One caller's answer: the value and how it was obtained. */
export interface Lookup<T> {
  value: T;
  /**
   * `hit`: from the store; `miss`: this caller ran the work for everyone;
   * `collapsed`: it joined a flight; `bypass`: it ran its own uncoalesced call
   * (a bound was reached, or it waited `waitTimeout`).
   */
  outcome: Outcome;
  /** For a `hit`: epoch ms when the stored value stops being fresh. */
  expiresAt?: number;
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
  private readonly counts = { hits: 0, misses: 0, coalesced: 0, stored: 0, errors: 0, timeouts: 0, bypasses: 0 };
  private listeners: StampedeListener[] = [];

  constructor(deps: CoalescerDeps) {
    this.store = new GuardedStore(deps.store, deps.logger, deps.storeTimeout ?? 0);
    this.now = deps.now ?? (() => Date.now());
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
    return { ...this.counts, inFlight: this.flights.size, waiting };
  }

  /** Calls `listener` for every event; returns a function that stops it. */
  on(listener: StampedeListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Counts an event and tells the listeners (a throwing listener is ignored). */
  report(type: StampedeEventType, key: string, detail?: Omit<StampedeEvent, 'type' | 'key'>): void {
    this.counts[STAT_OF[type]]++;
    if (this.listeners.length === 0) return;
    const event: StampedeEvent = { type, key, ...detail };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // Observability must never break serving.
      }
    }
  }

  /**
   * Runs `work` once for all concurrent callers of `key`. Cold: nothing
   * happens until subscription, and each subscription is one caller.
   */
  run$<T>(key: string, work: Work<T>, policy: RunPolicy<T>): Observable<Lookup<T>> {
    return new Observable<Lookup<T>>((subscriber) => {
      const joined = this.joinInFlight(key, work, policy, subscriber);
      if (joined) return joined;
      if (policy.ttl <= 0) return this.lead(key, work, policy, subscriber);
      const cached = this.store.get(key);
      if (!isPromiseLike(cached)) {
        if (this.answerFromStore(key, cached, subscriber)) return undefined;
        return this.lead(key, work, policy, subscriber);
      }
      let inner: TeardownLogic;
      cached.then((entry) => {
        if (subscriber.closed) return;
        if (this.answerFromStore(key, entry, subscriber)) return;
        // A flight may have started while the store answered.
        inner = this.joinInFlight(key, work, policy, subscriber) ?? this.lead(key, work, policy, subscriber);
      });
      return () => teardown(inner);
    });
  }

  /** The fresh stored value for `key`, if any. */
  get<T>(key: string): MaybePromise<T | undefined> {
    const cached = this.store.get(key);
    const unwrap = (entry: StoredEntry | undefined) => (this.isFresh(entry) ? (entry.v as T) : undefined);
    return isPromiseLike(cached) ? Promise.resolve(cached).then(unwrap) : unwrap(cached);
  }

  /** Stores `value` under `key` for `ttl` ms. */
  set<T>(key: string, value: T, ttl: number): MaybePromise<unknown> {
    return this.store.set(key, { v: value, e: this.now() + ttl }, ttl);
  }

  /**
   * Drops the stored value of `key`; a flight in progress for it still answers
   * its waiters but stores nothing, and the next caller starts afresh.
   */
  invalidate(key: string): MaybePromise<unknown> {
    this.flights.forget(key);
    return this.store.delete(key);
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

  private answerFromStore<T>(key: string, entry: StoredEntry | undefined, subscriber: Subscriber<Lookup<T>>): boolean {
    if (!this.isFresh(entry)) return false;
    this.report('hit', key);
    subscriber.next({ value: entry.v as T, outcome: 'hit', expiresAt: entry.e });
    subscriber.complete();
    return true;
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
    if (this.maxWaiters > 0 && waiting >= this.maxWaiters) return this.bypass(key, work, subscriber, 'max-waiters');
    this.report('coalesced', key, { waiters: waiting + 1 });
    const waitTimeout = policy.waitTimeout ?? 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ownCall: TeardownLogic;
    const stopWaiting = () => timer !== undefined && clearTimeout(timer);
    const subscription = flight$.subscribe({
      next: (value) => subscriber.next({ value, outcome: 'collapsed' }),
      error: (error: unknown) => {
        stopWaiting();
        subscriber.error(error);
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
          ownCall = this.bypass(key, work, subscriber, 'wait-timeout');
        }
      }, waitTimeout);
    }
    return () => {
      stopWaiting();
      subscription.unsubscribe();
      teardown(ownCall);
    };
  }

  /** Runs `work` for this caller alone: uncoalesced, not stored. */
  private bypass<T>(key: string, work: Work<T>, subscriber: Subscriber<Lookup<T>>, reason: BypassReason): Subscription {
    this.report('bypass', key, { reason });
    return defer(() => toObservable(work(NEVER_ABORTED))).subscribe({
      next: (value) => subscriber.next({ value, outcome: 'bypass' }),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
  }

  private lead<T>(key: string, work: Work<T>, policy: RunPolicy<T>, subscriber: Subscriber<Lookup<T>>): Subscription {
    if (this.maxInFlight > 0 && this.flights.size >= this.maxInFlight) {
      return this.bypass(key, work, subscriber, 'max-in-flight');
    }
    this.report('miss', key);
    const storable = (value: T) => policy.ttl > 0 && (policy.cacheable ? policy.cacheable(value) : true);
    // Across instances only what can be shared through the store: ttl > 0.
    const coordinator = policy.ttl > 0 ? this.coordinator : undefined;
    const flightWork: Work<T> = coordinator
      ? (signal) =>
          coordinator.lead(key, () => toObservable(work(signal)), {
            ttl: policy.ttl,
            storable,
            entry: (value) => ({ v: value, e: this.now() + policy.ttl }),
          })
      : work;
    let timedOut = false;
    const timeout = policy.timeout ?? 0;
    const flight$ = this.flights.start(
      key,
      flightWork,
      {
        onSuccess: (last, emitted, current) => {
          // A coordinator stores the result itself, fenced by its lease.
          if (coordinator || !emitted || !current || !storable(last as T)) return undefined;
          this.report('stored', key, { ttl: policy.ttl });
          return this.set(key, last, policy.ttl);
        },
      },
      {
        timeout,
        timeoutError: () => {
          timedOut = true;
          return policy.timeoutError ? policy.timeoutError() : new StampedeTimeoutError(timeout);
        },
        cancelWhenAbandoned: policy.cancelWhenAbandoned,
      },
    );
    return flight$.subscribe({
      next: (value) =>
        subscriber.next({
          value,
          outcome: 'miss',
          stored: storable(value) && this.flights.isCurrent(key, flight$),
        }),
      error: (error: unknown) => {
        this.report(timedOut ? 'timeout' : 'error', key, { error });
        subscriber.error(error);
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
