import { Observable } from 'rxjs';

/** The longest delay a Node timer takes (2^31 - 1 ms, ~24.8 days); past it Node fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

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

/** How `promiseDeadline` ends a wait. */
export interface DeadlineOptions {
  /** Resolve with what `onTimeout` returns instead of rejecting with it. */
  resolve?: boolean;
  /** Aborted: the wait is abandoned (the timer cleared, the result left pending). */
  signal?: AbortSignal;
  /**
   * Decide after the event loop's I/O phase: after a stall (GC, a busy CPU)
   * an answer already in a socket buffer still wins over the timer.
   */
  afterIo?: boolean;
  /** Called as the timer fires, before the decision. */
  onFire?: () => void;
}

/**
 * The one deadline of the package: settles as `promise` does, or after `ms`
 * with `onTimeout()` (rejected with what it returns, or resolved with it).
 * The timer is cleared either way.
 */
export function promiseDeadline<T, F = never>(
  promise: PromiseLike<T>,
  ms: number,
  onTimeout: () => unknown,
  options: DeadlineOptions = {},
): Promise<T | F> {
  return new Promise<T | F>((resolve, reject) => {
    let settled = false;
    const expire = () => {
      if (settled) return;
      settled = true;
      const outcome = onTimeout();
      if (options.resolve) resolve(outcome as F);
      else reject(outcome);
    };
    const timer = setTimeout(() => {
      options.onFire?.();
      if (options.afterIo) setImmediate(expire);
      else expire();
    }, ms);
    options.signal?.addEventListener('abort', () => clearTimeout(timer), { once: true });
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        reject(error);
      },
    );
  });
}

/** `promiseDeadline` for an Observable: fails with `error()` if `source` has not completed within `ms`. */
export function deadline$<T>(source: Observable<T>, ms: number, error: () => unknown): Observable<T> {
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
