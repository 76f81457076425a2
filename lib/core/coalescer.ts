import { Observable, Subscriber, Subscription } from 'rxjs';
import { FlightCoordinator } from './coordinator';
import { CoreLogger, GuardedStore } from './guarded-store';
import { SingleFlight, Work, toObservable } from './single-flight';
import { MaybePromise, StampedeStore, StoredEntry, isPromiseLike } from './store';

/** How a caller was answered. */
export type Outcome = 'hit' | 'miss' | 'collapsed';

/** One caller's answer: the value and how it was obtained. */
export interface Lookup<T> {
  value: T;
  /** `hit`: from the store; `miss`: this caller ran the work; `collapsed`: it joined a flight. */
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
}

/** What the coalescer needs. */
export interface CoalescerDeps {
  store: StampedeStore;
  logger: CoreLogger;
  now?: () => number;
  /** Spans the single flight across instances (Redis lease); in-process only without it. */
  coordinator?: FlightCoordinator;
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
 * fails the coalescer works as if nothing were cached.
 */
export class Coalescer {
  readonly store: GuardedStore;
  private readonly flights = new SingleFlight();
  private readonly now: () => number;
  private readonly coordinator?: FlightCoordinator;

  constructor(deps: CoalescerDeps) {
    this.store = new GuardedStore(deps.store, deps.logger);
    this.now = deps.now ?? (() => Date.now());
    this.coordinator = deps.coordinator;
  }

  /** Number of keys whose work is in progress. */
  inFlight(): number {
    return this.flights.size;
  }

  /** Number of callers waiting on the flight of `key` (the leader included); 0 if none. */
  waiters(key: string): number {
    return this.flights.waiters(key);
  }

  /**
   * Runs `work` once for all concurrent callers of `key`. Cold: nothing
   * happens until subscription, and each subscription is one caller.
   */
  run$<T>(key: string, work: Work<T>, policy: RunPolicy<T>): Observable<Lookup<T>> {
    return new Observable<Lookup<T>>((subscriber) => {
      const joined = this.joinInFlight(key, subscriber);
      if (joined) return joined;
      if (policy.ttl <= 0) return this.lead(key, work, policy, subscriber);
      const cached = this.store.get(key);
      if (!isPromiseLike(cached)) {
        if (this.answerFromStore(cached, subscriber)) return undefined;
        return this.lead(key, work, policy, subscriber);
      }
      let inner: Subscription | undefined;
      cached.then((entry) => {
        if (subscriber.closed) return;
        if (this.answerFromStore(entry, subscriber)) return;
        // A flight may have started while the store answered.
        inner = this.joinInFlight(key, subscriber) ?? this.lead(key, work, policy, subscriber);
      });
      return () => inner?.unsubscribe();
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

  private answerFromStore<T>(entry: StoredEntry | undefined, subscriber: Subscriber<Lookup<T>>): boolean {
    if (!this.isFresh(entry)) return false;
    subscriber.next({ value: entry.v as T, outcome: 'hit', expiresAt: entry.e });
    subscriber.complete();
    return true;
  }

  private joinInFlight<T>(key: string, subscriber: Subscriber<Lookup<T>>): Subscription | undefined {
    const flight$ = this.flights.find<T>(key);
    if (!flight$) return undefined;
    return flight$.subscribe({
      next: (value) => subscriber.next({ value, outcome: 'collapsed' }),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
  }

  private lead<T>(key: string, work: Work<T>, policy: RunPolicy<T>, subscriber: Subscriber<Lookup<T>>): Subscription {
    const storable = (value: T) => policy.ttl > 0 && (policy.cacheable ? policy.cacheable(value) : true);
    // Across instances only what can be shared through the store: ttl > 0.
    const coordinator = policy.ttl > 0 ? this.coordinator : undefined;
    const flightWork: Work<T> = coordinator
      ? () =>
          coordinator.lead(key, () => toObservable(work()), {
            ttl: policy.ttl,
            storable,
            entry: (value) => ({ v: value, e: this.now() + policy.ttl }),
          })
      : work;
    const flight$ = this.flights.start(key, flightWork, {
      onSuccess: (last, emitted, current) => {
        // A coordinator stores the result itself, fenced by its lease.
        if (coordinator || !emitted || !current || !storable(last as T)) return undefined;
        return this.set(key, last, policy.ttl);
      },
    });
    return flight$.subscribe({
      next: (value) =>
        subscriber.next({
          value,
          outcome: 'miss',
          stored: storable(value) && this.flights.isCurrent(key, flight$),
        }),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
  }
}
