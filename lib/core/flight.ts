import { NEVER, Observable, ReplaySubject, Subscription, finalize, isObservable, share, tap } from 'rxjs';
import { StampedeTimeoutError, deadline$, promiseDeadline } from './deadline';
import { FlightSignal } from './flight-signal';
import type { FlightHooks, FlightOptions, FlightWork, WorkResult } from './single-flight';
import type { FlightContext } from './work-context';
import { StoredEntry, isPromiseLike } from './store';

/** Where a flight is kept: tells it whether it is still its key's flight, and takes it out when it ends. */
export interface FlightOwner {
  isCurrent(key: string, flight: object): boolean;
  /** Takes `flight` out, if it is still the flight of `key`. */
  leave(key: string, flight: object): void;
}

const ignore = (): void => undefined;

/** Why a flight exists: a caller needs its value now, or a stale value is being refreshed behind callers' backs. */
export type FlightKind = 'lead' | 'refresh';

/** Receives one waiter's notifications: an rxjs `Subscriber` is one. */
export interface FlightSink<T> {
  next(value: T): void;
  error(error: unknown): void;
  complete(): void;
}

/**
 * One key's work in progress, and everything the engine keeps about it.
 *
 * A Promise (or plain-value) work settles `promise` and never builds an
 * Observable; an Observable work is shared through a ReplaySubject, so a
 * waiter that joins late still sees every value. Either form can be joined
 * both ways: `join` for a sink (one waiter per call, leaving when torn down),
 * `joinPromise` for the last value (all Promise waiters share one Promise).
 */
export class Flight<T = unknown> {
  /** Waiters now; Promise waiters never leave early, so they are counted until the flight ends. */
  waiters = 0;
  /** True while it is its key's flight in the map (kept so by `SingleFlight`): one held may be joined without a lookup. */
  current = false;
  /** The value this flight may answer with instead of its own failure (stale-if-error). */
  fallback?: StoredEntry<T>;
  /** Set on the first settled value: memo of what the engine decided about it (see `decisionFor`). */
  decided?: { value: T; policy: unknown; decision: unknown };
  /** The policy it runs under (set by the engine's leader path). */
  policy?: import('./policy').RunPolicy<T>;
  /** Epoch ms its work started (for the stored entry's age and the tag clock). */
  startedAt = 0;
  /** Its result is written by a coordinator (the Redis lease), fenced, not by this process. */
  coordinated = false;
  /** Set when its deadline passed (its waiters get a timeout, not an error of the work). */
  expired = false;
  /** Its observer's record (a span), when the engine has an observer. */
  trace?: import('./observer').FlightTrace;
  /** What its work said about its result (freshness, not modified, skip the store). */
  context?: FlightContext<T>;
  /** The stored entry a coordinator answered with (found, not computed): its callers' answer is a `hit`. */
  found?: StoredEntry<T>;
  /** The store write of its result, once started: whether a store accepted it. */
  write?: boolean | PromiseLike<boolean>;
  /** Promise mode: the work's value. Observable mode: made on first `joinPromise`. */
  private promise?: Promise<T>;
  /** Observable mode: the shared source. */
  private shared$?: Observable<T>;
  /** Set when the work settled synchronously (a plain value or a throw): answered without a tick. */
  sync?: { value: T } | { error: unknown };
  private cancellable = false;
  private settled = false;
  private cancelled = false;
  private failed = false;
  // Set by `run`: what the settling steps below need (fields, not closures: a flight is made per miss).
  private hooks!: FlightHooks<T>;
  private timeout = 0;
  private timeoutOf?: () => unknown;
  private signal!: FlightSignal;
  private owner!: FlightOwner;

  constructor(
    readonly key: string,
    readonly kind: FlightKind,
  ) {}

  /** True when the work returned an Observable (its waiters may see several values). */
  get observable(): boolean {
    return this.shared$ !== undefined;
  }

  /** The last value (or the error) of the work; every caller gets the same Promise. Counts one waiter. */
  joinPromise(): Promise<T> {
    this.waiters++;
    // A Promise work's Promise is there from the start: read it here, not through a call (joins are the hot path).
    return this.promise ?? this.settledPromise();
  }

  /** The settled Promise without counting a waiter (for the engine's own bookkeeping). */
  settledPromise(): Promise<T> {
    if (this.promise) return this.promise;
    let last: T | undefined;
    this.promise = new Promise<T>((resolve, reject) => {
      this.shared$!.subscribe({ next: (value) => (last = value), error: reject, complete: () => resolve(last as T) });
    });
    return this.promise;
  }

  /** Joins as one waiter that sees every value; returns how to leave. */
  join(sink: FlightSink<T>): () => void {
    this.waiters++;
    if (this.shared$) {
      let subscribed = true;
      const subscription: Subscription = this.shared$.subscribe(sink);
      return () => {
        if (!subscribed) return;
        subscribed = false;
        this.waiters--;
        subscription.unsubscribe();
      };
    }
    const sync = this.sync;
    if (sync !== undefined) {
      if ('error' in sync) sink.error(sync.error);
      else {
        sink.next(sync.value);
        sink.complete();
      }
      let counted = true;
      return () => {
        if (counted) this.waiters--;
        counted = false;
      };
    }
    let left = false;
    this.promise!.then(
      (value) => {
        if (left) return;
        sink.next(value);
        sink.complete();
      },
      (error: unknown) => {
        if (!left) sink.error(error);
      },
    );
    return () => {
      if (left) return;
      left = true;
      this.waiters--;
      // A caller that takes the first value of a Promise-like work must not cancel its completion.
      if (this.waiters === 0 && this.cancellable && !this.settled) {
        queueMicrotask(() => this.waiters === 0 && !this.settled && this.cancel());
      }
    };
  }

  /** Runs `work` now and shares its outcome; see `SingleFlight.start`. */
  run(work: FlightWork<T>, hooks: FlightHooks<T>, options: FlightOptions, owner: FlightOwner): void {
    this.hooks = hooks;
    this.owner = owner;
    this.signal = new FlightSignal();
    this.cancellable = options.cancelWhenAbandoned === true;
    this.timeout = options.timeout ?? 0;
    this.timeoutOf = options.timeoutError;
    hooks.onStart?.(this);
    let result: WorkResult<T>;
    try {
      result = work(this.signal);
    } catch (error) {
      // A synchronous throw settles every waiter like any other error, at once.
      this.sync = { error };
      this.fail(error);
      this.promise = Promise.reject(error);
      this.promise.catch(ignore);
      return;
    }
    if (!isObservable(result) && !isPromiseLike(result)) {
      // A plain value: a synchronous method stays synchronous.
      this.sync = { value: result as T };
      this.succeed(result as T, true);
      this.promise = Promise.resolve(result as T);
      return;
    }
    if (isObservable(result)) {
      this.cancellable = true;
      this.shared$ = this.share(result as Observable<T>);
      return;
    }
    let promise = Promise.resolve(result as PromiseLike<T>);
    if (this.timeout > 0) {
      promise = promiseDeadline(promise, this.timeout, () => this.timedOut(), { signal: this.signal.signal });
    }
    this.promise = promise.then(
      (value) => {
        this.succeed(value, true);
        return value;
      },
      (error: unknown) => {
        this.fail(error);
        throw error;
      },
    );
    // The leader and every joiner attach their own handlers; this one only keeps an unjoined refresh quiet.
    this.promise.catch(ignore);
  }

  /** The work's last value is in: the success hook (a write, maybe), then the flight leaves once that settled. */
  private succeed(last: T | undefined, emitted: boolean): void {
    this.settled = true;
    // A cancelled flight's result reaches nobody and is not stored.
    if (this.cancelled) return;
    let pending: unknown;
    try {
      pending = this.hooks.onSuccess?.(last, emitted, this.owner.isCurrent(this.key, this), this);
    } catch {
      // A failing hook must not turn a success into an error for the waiters.
    }
    if (isPromiseLike(pending)) {
      const leave = () => this.leave();
      pending.then(leave, leave);
    } else this.leave();
  }

  /** The work failed (or timed out, or was cancelled): the flight leaves first, then the failure hook, once. */
  private fail(error?: unknown): void {
    this.settled = true;
    this.leave();
    if (this.failed) return;
    this.failed = true;
    this.hooks.onFailure?.(error, this);
  }

  private leave(): void {
    this.owner.leave(this.key, this);
  }

  /** Every waiter has gone and the flight may be cancelled: it fails, and its work is aborted. */
  private cancel(): void {
    this.cancelled = true;
    this.fail(new Error('flight cancelled'));
    this.signal.abort(new Error('flight cancelled'));
  }

  /** The deadline passed: the work is aborted, and the error the waiters get. */
  private timedOut(): unknown {
    this.expired = true;
    this.signal.abort(new Error('timed out'));
    return this.timeoutOf ? this.timeoutOf() : new StampedeTimeoutError(this.timeout);
  }

  private share(source: Observable<T>): Observable<T> {
    let last: T | undefined;
    let emitted = false;
    let completed = false;
    const bounded$ = this.timeout > 0 ? deadline$(source, this.timeout, () => this.timedOut()) : source;
    return bounded$.pipe(
      tap({
        next: (value) => {
          last = value;
          emitted = true;
        },
        error: (error: unknown) => this.fail(error),
        complete: () => {
          completed = true;
          this.succeed(last, emitted);
        },
      }),
      // Runs when the source is torn down: after complete (handled above), or
      // early (error, deadline, every waiter gone).
      finalize(() => {
        if (completed) return;
        this.fail(new Error('flight cancelled'));
        this.signal.abort(new Error('flight cancelled'));
      }),
      share({
        connector: () => new ReplaySubject<T>(),
        resetOnError: false,
        resetOnComplete: false,
        resetOnRefCountZero: () => (this.cancellable ? Promise.resolve() : NEVER),
      }),
    );
  }
}
