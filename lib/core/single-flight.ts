import { NEVER, Observable, ReplaySubject, defer, finalize, from, isObservable, of, share, tap } from 'rxjs';
import { isPromiseLike } from './store';

/** What a unit of work may return: a plain value, a Promise (or thenable) or an Observable.
 *
 * @example
 * ```ts
 * const work: Work<Rates> = (signal) => fetch(url, { signal }).then((r) => r.json()); // returns WorkResult<Rates>
 * ```
 */
export type WorkResult<T> = T | PromiseLike<T> | Observable<T>;

/**
 * A unit of work keyed by a flight key. Called at most once per flight. Its
 * `signal` aborts when the flight is cancelled: on its deadline, or when every
 * waiter has gone and the flight may be cancelled (see `FlightOptions`).
 *
 * @example
 * ```ts
 * stampede.run('rates', (signal: AbortSignal) => fetch(url, { signal }).then((r) => r.json()), { timeout: 1_000 });
 * ```
 */
export type Work<T> = (signal: AbortSignal) => WorkResult<T>;

/** Turns whatever the work returned into an Observable. */
export function toObservable<T>(result: WorkResult<T>): Observable<T> {
  if (isObservable(result)) return result as Observable<T>;
  if (isPromiseLike<T>(result)) return from(result);
  return of(result as T);
}

/** Hooks a flight calls while it settles, in this order. */
export interface FlightHooks<T> {
  /**
   * Called once with the last value when the work completes, before the
   * waiters see completion. A returned Promise keeps the flight joinable (it
   * replays its result) until it settles, so a store write in progress never
   * lets a newcomer start a second execution.
   */
  onSuccess?(last: T | undefined, emitted: boolean, current: boolean): unknown;
}

/** How one flight may end early. */
export interface FlightOptions {
  /** Milliseconds the work may take; then every waiter gets `timeoutError()` and the work is cancelled. 0: none. */
  timeout?: number;
  timeoutError?: () => unknown;
  /**
   * When every waiter has gone before the work settled: `true` cancels a
   * Promise work too (aborts its signal, forgets the flight). By default only
   * an Observable work is cancelled; a Promise work, which cannot be stopped,
   * runs on and stays joinable, so a newcomer never starts a duplicate.
   */
  cancelWhenAbandoned?: boolean;
}

/**
 * Thrown to every waiter of a flight whose work outlived its `timeout`
 * (`kind: 'work'`), or to a caller that waited `waitTimeout` for another's
 * work with `onWaitTimeout: 'fail'` (`kind: 'wait'`).
 *
 * @example
 * ```ts
 * try {
 *   await stampede.run('report', () => this.slowReport(), { timeout: 2_000 });
 * } catch (error) {
 *   if (error instanceof StampedeTimeoutError) return this.cachedFallback();
 *   throw error;
 * }
 * ```
 */
export class StampedeTimeoutError extends Error {
  constructor(
    readonly timeout: number,
    readonly kind: 'work' | 'wait' = 'work',
  ) {
    super(
      kind === 'work'
        ? `nestjs-stampede: work did not settle within ${timeout} ms`
        : `nestjs-stampede: waited ${timeout} ms for another caller's work`,
    );
    this.name = 'StampedeTimeoutError';
  }
}

/** Fails with `error()` if `source` has not completed within `ms` (the source is then unsubscribed). */
export function deadline<T>(source: Observable<T>, ms: number, error: () => unknown): Observable<T> {
  return new Observable<T>((subscriber) => {
    const timer = setTimeout(() => subscriber.error(error()), ms);
    const subscription = source.subscribe({
      next: (value) => subscriber.next(value),
      error: (e: unknown) => {
        clearTimeout(timer);
        subscriber.error(e);
      },
      complete: () => {
        clearTimeout(timer);
        subscriber.complete();
      },
    });
    return () => {
      clearTimeout(timer);
      subscription.unsubscribe();
    };
  });
}

/** The signal of a work nobody will cancel. */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;

/**
 * A keyed single flight: one execution of the work per key at a time, shared
 * by every concurrent subscriber as one RxJS observable.
 *
 * The flight is an Observable `share`d through a ReplaySubject, so a caller
 * that joins late still sees every value. The entry leaves the map when the
 * work errors, times out or is cancelled (before the error is delivered), or
 * when it completes and its `onSuccess` hook settled. A synchronous throw in
 * the work is an error of the flight like any other. When every subscriber
 * has gone early, an Observable work is cancelled after the current
 * microtasks (so a caller that takes the first value of a Promise-like work
 * does not cancel its completion); see `FlightOptions.cancelWhenAbandoned`.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Flight>();

  /** Number of keys with work in progress. */
  get size(): number {
    return this.flights.size;
  }

  /** The flight in progress for `key`, if any: each subscription is one waiter. */
  find<T>(key: string): Observable<T> | undefined {
    return this.flights.get(key)?.join$ as Observable<T> | undefined;
  }

  /** True while `flight$` (as returned by `start`) is the flight of `key`. */
  isCurrent(key: string, flight$: Observable<unknown>): boolean {
    return this.flights.get(key)?.join$ === flight$;
  }

  /** Number of subscribers of the flight of `key` (Promise joiners included). */
  waiters(key: string): number {
    return this.flights.get(key)?.waiters ?? 0;
  }

  /**
   * Joins the flight of `key` as a Promise of its last value: every Promise
   * joiner shares one subscription, which makes a join cost a `then`, not an
   * Observable chain. `undefined` when no flight is in progress.
   */
  joinPromise<T>(key: string): Promise<T> | undefined {
    const flight = this.flights.get(key);
    if (!flight) return undefined;
    flight.promise ??= new Promise<unknown>((resolve, reject) => {
      let last: unknown;
      // The shared subscription is not a waiter itself: each Promise joiner counts.
      flight.shared$.subscribe({ next: (value) => (last = value), error: reject, complete: () => resolve(last) });
    });
    flight.waiters++;
    const settled = () => flight.waiters--;
    flight.promise.then(settled, settled);
    return flight.promise as Promise<T>;
  }

  /** Keys with work in progress. */
  keys(): IterableIterator<string> {
    return this.flights.keys();
  }

  /**
   * Lets the flight for `key` finish for its waiters but takes it out of the
   * map, so the next caller starts a new one (and `onSuccess` learns it is no
   * longer current, e.g. not to store a value that was invalidated meanwhile).
   */
  forget(key: string): boolean {
    return this.flights.delete(key);
  }

  /** `forget` for every key that starts with `prefix`. */
  forgetPrefix(prefix: string): number {
    let forgotten = 0;
    for (const key of this.flights.keys()) {
      if (key.startsWith(prefix) && this.flights.delete(key)) forgotten++;
    }
    return forgotten;
  }

  /** Starts a flight for `key`; the caller must have checked `find` first. */
  start<T>(key: string, work: Work<T>, hooks: FlightHooks<T> = {}, options: FlightOptions = {}): Observable<T> {
    let last: T | undefined;
    let emitted = false;
    let completed = false;
    let cancellable = options.cancelWhenAbandoned === true;
    // Only works that take a signal pay for an AbortController.
    const controller = work.length > 0 ? new AbortController() : undefined;
    const leave = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    let source$ = defer(() => {
      const result = work(controller?.signal ?? NEVER_ABORTED);
      if (isObservable(result)) cancellable = true;
      return toObservable(result);
    });
    if (options.timeout && options.timeout > 0) {
      const ms = options.timeout;
      source$ = deadline(source$, ms, options.timeoutError ?? (() => new StampedeTimeoutError(ms)));
    }
    const flight$: Observable<T> = source$.pipe(
      tap({
        next: (value) => {
          last = value;
          emitted = true;
        },
        error: leave,
        complete: () => {
          completed = true;
          let pending: unknown;
          try {
            pending = hooks.onSuccess?.(last, emitted, this.flights.get(key) === flight);
          } catch {
            // A failing hook must not turn a success into an error for the waiters.
          }
          if (isPromiseLike(pending)) pending.then(leave, leave);
          else leave();
        },
      }),
      // Runs when the source is torn down: after complete (the hook above
      // decides when to leave), or early (error, deadline, cancellation).
      finalize(() => {
        if (completed) return;
        leave();
        controller?.abort(new Error('flight cancelled'));
      }),
      share({
        connector: () => new ReplaySubject<T>(),
        resetOnError: false,
        resetOnComplete: false,
        resetOnRefCountZero: () => (cancellable ? Promise.resolve() : NEVER),
      }),
    );
    const flight: Flight = {
      shared$: flight$,
      waiters: 0,
      join$: new Observable<T>((subscriber) => {
        flight.waiters++;
        const subscription = flight$.subscribe(subscriber);
        return () => {
          flight.waiters--;
          subscription.unsubscribe();
        };
      }),
    };
    this.flights.set(key, flight);
    return flight.join$ as Observable<T>;
  }
}

/** One key's work in progress. */
interface Flight {
  shared$: Observable<unknown>;
  join$: Observable<unknown>;
  waiters: number;
  /** The shared Promise of `joinPromise`, made on first use. */
  promise?: Promise<unknown>;
}
