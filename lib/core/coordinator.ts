import { Observable } from 'rxjs';
import type { FlightTrace } from './observer';
import { StoredEntry } from './store';

/** What the coalescer tells a coordinator about the result of one leader. */
export interface CoordinatedWrite<T> {
  /** Milliseconds the result is kept. */
  ttl: number;
  /** Whether `value` may be stored (e.g. only 2xx responses). */
  storable(value: T): boolean;
  /** The entry to store for `value`. */
  entry(value: T): StoredEntry;
  /**
   * Told when the answer is a value that was already stored (found on the
   * first look, not waited for from another holder): the caller's answer is
   * then a `hit`, not a collapsed request.
   */
  found?(entry: StoredEntry<T>): void;
  /** Told, before the result completes, whether the store accepted it (the fenced write). */
  stored?(accepted: boolean): void;
  /** The flight's observer record, when it has one: shared with other instances (see `FlightTrace`). */
  trace?: FlightTrace;
}

/**
 * Makes the single flight span many instances (e.g. a Redis lease). The
 * coalescer hands the work of its in-process leader to `lead`, which either
 * runs it as the one holder across instances and stores the result itself
 * (fenced, so a holder that lost its lease cannot overwrite a newer value),
 * or waits for the holder and answers with the value it stored, or, when the
 * wait times out, runs the work itself without storing.
 */
export interface FlightCoordinator {
  lead<T>(key: string, work: () => Observable<T>, write: CoordinatedWrite<T>): Observable<T>;
}
