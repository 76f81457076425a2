import { Observable, ReplaySubject, defer, finalize, from, isObservable, of, share, tap } from 'rxjs';
import { isPromiseLike } from './store';

/** What a unit of work may return: a plain value, a Promise (or thenable) or an Observable. */
export type WorkResult<T> = T | PromiseLike<T> | Observable<T>;

/** A unit of work keyed by a flight key. Called at most once per flight. */
export type Work<T> = () => WorkResult<T>;

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

/**
 * A keyed single flight: one execution of the work per key at a time, shared
 * by every concurrent subscriber as one RxJS observable.
 *
 * The flight is an Observable `share`d through a ReplaySubject, so a caller
 * that joins late still sees every value. The entry leaves the map when the
 * work errors (before the error is delivered), when it completes and its
 * `onSuccess` hook settled, or when every subscriber unsubscribed before it
 * settled (the source is then unsubscribed, after the current microtasks:
 * an Observable work is cancelled, a Promise's result is dropped). A synchronous throw in the work is an error
 * of the flight like any other.
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

  /** Number of subscribers of the flight of `key`. */
  waiters(key: string): number {
    return this.flights.get(key)?.waiters ?? 0;
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
  start<T>(key: string, work: Work<T>, hooks: FlightHooks<T> = {}): Observable<T> {
    let last: T | undefined;
    let emitted = false;
    let completed = false;
    const leave = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    const flight$: Observable<T> = defer(() => toObservable(work())).pipe(
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
          if (isPromiseLike(pending)) {
            pending.then(leave, leave);
          } else {
            leave();
          }
        },
      }),
      // Also runs after complete, when the hook above decides when to leave.
      finalize(() => {
        if (!completed) leave();
      }),
      share({
        connector: () => new ReplaySubject<T>(),
        resetOnError: false,
        resetOnComplete: false,
        // Deferred by a microtask: a caller that takes only the first value of
        // a Promise work unsubscribes before the completion that follows it in
        // the same turn; the flight must still complete (and be stored).
        resetOnRefCountZero: () => Promise.resolve(),
      }),
    );
    const flight: Flight = {
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
  join$: Observable<unknown>;
  waiters: number;
}
