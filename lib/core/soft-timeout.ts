import { AnswerSink, Teardown } from './answer';
import { CoreContext } from './context';
import { Flight } from './flight';
import { usableOnError } from './freshness';
import { RunPolicy } from './policy';

/**
 * The soft timeout of one caller: with an old value that may stand in for
 * this flight (its stale-if-error fallback), the caller is answered with it
 * after `softTimeout` ms, and the work goes on in the background: its result
 * is stored as any flight's. Without such a value nothing changes.
 *
 * `wrap` returns the sink the caller's flight notifications go to (they are
 * dropped once the soft answer was given) and `arm` starts the timer once the
 * caller has joined, returning how it leaves.
 */
export function softTimeout<T>(core: CoreContext, flight: Flight<T>, policy: RunPolicy<T>, sink: AnswerSink<T>) {
  const ms = policy.softTimeout ?? 0;
  if (ms <= 0 || !usableOnError(flight.fallback, core.now())) {
    return { sink, arm: (leave: Teardown): Teardown => leave };
  }
  let answered = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = () => {
    answered = true;
    if (timer !== undefined) clearTimeout(timer);
  };
  const guarded: AnswerSink<T> = {
    next: (answer) => !answered && sink.next(answer),
    error: (error) => {
      if (answered) return;
      settled();
      sink.error(error);
    },
    complete: () => {
      if (answered) return;
      settled();
      sink.complete();
    },
  };
  const arm = (leave: Teardown): Teardown => {
    if (answered) return leave;
    timer = setTimeout(() => {
      const fallback = flight.fallback;
      if (answered || !usableOnError(fallback, core.now())) return;
      answered = true;
      // The work must not be cancelled by this caller leaving: a counted waiter stays on it.
      flight.joinPromise().catch(() => undefined);
      core.events.report('stale', flight.key, { staleReason: 'timeout' });
      sink.next({
        value: fallback.v,
        outcome: 'stale',
        staleReason: 'timeout',
        expiresAt: fallback.e,
        storedAt: fallback.t,
      });
      sink.complete();
      leave?.();
    }, ms);
    return () => {
      if (timer !== undefined) clearTimeout(timer);
      leave?.();
    };
  };
  return { sink: guarded, arm };
}
