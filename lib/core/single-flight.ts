import { Observable, from, isObservable, of } from 'rxjs';
import { Flight, FlightKind, FlightOwner } from './flight';
import { isPromiseLike } from './store';
import type { FlightSignal } from './flight-signal';
import type { WorkContext } from './work-context';

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
 * waiter has gone and the flight may be cancelled (see `FlightOptions`). Its
 * `context` tells it the old value, if any, and lets it decide this result's
 * freshness, or that it is "not modified" (see `WorkContext`).
 *
 * @example
 * ```ts
 * stampede.run('rates', (signal: AbortSignal) => fetch(url, { signal }).then((r) => r.json()), { timeout: 1_000 });
 * ```
 */
export type Work<T> = (signal: AbortSignal, context: WorkContext<T>) => WorkResult<T>;

/** What a flight runs: a work with its context already bound, given its signal to make when read. */
export type FlightWork<T> = (signal: FlightSignal) => WorkResult<T>;

/** Hooks a flight calls while it settles. */
export interface FlightHooks<T> {
  /** Called with the flight once it is in the map, before its work runs. */
  onStart?(flight: Flight<T>): void;
  /**
   * Called once with the last value when the work completes, before the
   * waiters see it. A returned Promise keeps the flight joinable (it answers
   * with its result) until it settles, so a store write in progress never
   * lets a newcomer start a second execution.
   */
  onSuccess?(last: T | undefined, emitted: boolean, current: boolean, flight: Flight<T>): unknown;
  /** Called once when the work failed, timed out or was cancelled, after the flight left the map. */
  onFailure?(error: unknown, flight: Flight<T>): void;
}

/** How one flight may end early. */
export interface FlightOptions {
  /** Milliseconds the work may take; then every waiter gets `timeoutError()` and the work is aborted. 0: none. */
  timeout?: number;
  timeoutError?: () => unknown;
  /**
   * When every Observable waiter has gone before the work settled: `true`
   * cancels a Promise work too (aborts its signal, forgets the flight). By
   * default only an Observable work is cancelled; a Promise work, which cannot
   * be stopped, runs on and stays joinable, so a newcomer never starts a duplicate.
   */
  cancelWhenAbandoned?: boolean;
}

/**
 * A keyed single flight: one execution of the work per key at a time.
 *
 * The invariant, in one place: a key's entry is in the map from the moment
 * its work is started until the work has failed (error, deadline,
 * cancellation: before the waiters learn of it) or has succeeded and its
 * `onSuccess` write has settled; `forget` takes it out early (an
 * invalidation), after which the flight still answers its own waiters but is
 * no longer current, so it must not store. A flight's `current` says whether
 * it is in the map. A synchronous throw in the work is an error of the flight
 * like any other.
 */
export class SingleFlight implements FlightOwner {
  private readonly flights = new Map<string, Flight>();

  /** Number of keys with work in progress. */
  get size(): number {
    return this.flights.size;
  }

  /** The flight in progress for `key`, if any. */
  find<T>(key: string): Flight<T> | undefined {
    return this.flights.get(key) as Flight<T> | undefined;
  }

  /** True while `flight` is the flight of `key`. */
  isCurrent(key: string, flight: object): boolean {
    return this.flights.get(key) === flight;
  }

  /** Number of waiters of the flight of `key`; 0 if none. */
  waiters(key: string): number {
    return this.flights.get(key)?.waiters ?? 0;
  }

  /** Keys with work in progress. */
  keys(): IterableIterator<string> {
    return this.flights.keys();
  }

  /** Callers waiting now, over every flight. */
  waiting(): number {
    let waiting = 0;
    for (const flight of this.flights.values()) waiting += flight.waiters;
    return waiting;
  }

  /** Takes the flight of `key` out of the map: it answers its waiters but is no longer current. */
  forget(key: string): boolean {
    const flight = this.flights.get(key);
    if (flight === undefined) return false;
    flight.current = false;
    return this.flights.delete(key);
  }

  /** `forget` for every key that starts with `prefix`. */
  forgetPrefix(prefix: string): number {
    let forgotten = 0;
    for (const key of this.flights.keys()) {
      if (key.startsWith(prefix) && this.forget(key)) forgotten++;
    }
    return forgotten;
  }

  /** Starts the flight of `key` and runs its work at once; the caller must have checked `find` first. */
  start<T>(
    key: string,
    work: FlightWork<T>,
    hooks: FlightHooks<T> = {},
    options: FlightOptions = {},
    kind: FlightKind = 'lead',
  ): Flight<T> {
    return this.begin(new Flight<T>(key, kind), work, hooks, options);
  }

  /** `start` for a flight made (and filled) by the caller; the caller must have checked `find` first. */
  begin<T>(flight: Flight<T>, work: FlightWork<T>, hooks: FlightHooks<T> = {}, options: FlightOptions = {}): Flight<T> {
    this.forget(flight.key);
    flight.current = true;
    this.flights.set(flight.key, flight as Flight);
    flight.run(work, hooks, options, this);
    return flight;
  }

  /** Takes `flight` out, if it is still the flight of `key` (it ended). */
  leave(key: string, flight: object): void {
    if (this.flights.get(key) === flight) this.forget(key);
  }
}

/** A flight as an Observable: each subscription is one waiter. */
export function flight$<T>(flight: Flight<T>): Observable<T> {
  return new Observable<T>((subscriber) => flight.join(subscriber));
}

/** Turns whatever the work returned into an Observable. */
export function toObservable<T>(result: WorkResult<T>): Observable<T> {
  if (isObservable(result)) return result as Observable<T>;
  return isPromiseLike<T>(result) ? from(result) : of(result as T);
}
