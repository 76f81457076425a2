import { AnswerSink, Outcome, Teardown } from './answer';
import { CoreContext } from './context';
import { StampedeTimeoutError } from './deadline';
import { Leading } from './leading';
import { RunPolicy } from './policy';
import { softTimeout } from './soft-timeout';
import { Flight } from './flight';
import { Work } from './single-flight';

/**
 * Callers that wait on a flight in progress. Two ways in, side by side:
 *
 * - `join`: any caller, any policy. Bounded by `maxWaiters` (one beyond runs
 *   its own call), `waitTimeout` (then `onWaitTimeout`: its own call, or a
 *   `StampedeTimeoutError`), answered with the flight's stale fallback when it
 *   fails, and with its own work when the result may not be shared.
 * - `joinPromise`: the cheap join, a Promise caller whose policy asks none of
 *   that, of a flight that carries no fallback. It costs a counter and
 *   returns the flight's one shared Promise.
 */
export class Waiting {
  // Read on every join: kept here rather than looked up through the context each time.
  private readonly maxWaiters: number;
  private readonly events: CoreContext['events'];
  private readonly observer: CoreContext['observer'];

  constructor(
    private readonly core: CoreContext,
    private readonly leading: Leading,
  ) {
    this.maxWaiters = core.limits.maxWaiters;
    this.events = core.events;
    this.observer = core.observer;
  }

  /** True when the cheap join answers exactly as `join` would. */
  joinsCheaply<T>(flight: Flight<T>, policy: RunPolicy<T>): boolean {
    return (
      flight.kind === 'lead' &&
      flight.fallback === undefined &&
      !policy.waitTimeout &&
      policy.isFailure === undefined &&
      policy.shareable === undefined &&
      (this.maxWaiters <= 0 || flight.waiters < this.maxWaiters)
    );
  }

  /** The cheap join of a flight that joined cheaply before, while it is current and has room; else `undefined`. */
  joinAgain<T>(flight: Flight<T>): Promise<T> | undefined {
    // What else `joinsCheaply` checked cannot change: a flight's kind and fallback, and a policy, are fixed.
    return flight.current && (this.maxWaiters <= 0 || flight.waiters < this.maxWaiters)
      ? this.joinPromise(flight)
      : undefined;
  }

  /** The cheap join; callers check `joinsCheaply` first. */
  joinPromise<T>(flight: Flight<T>): Promise<T> {
    this.events.coalesced(flight.key, flight.waiters + 1);
    const joined = flight.joinPromise();
    if (this.observer !== undefined) this.observeJoin(flight, joined);
    return joined;
  }

  private observeJoin<T>(flight: Flight<T>, joined: Promise<T>): void {
    const done = this.observer!.joined(flight.key, flight.trace, true);
    if (done)
      joined.then(
        () => done('collapsed'),
        () => done('error'),
      );
  }

  /** Joins `flight` as one waiter; see the class comment. */
  join<T>(flight: Flight<T>, work: Work<T>, policy: RunPolicy<T>, caller: AnswerSink<T>): Teardown {
    const core = this.core;
    const key = flight.key;
    if (core.limits.maxWaiters > 0 && flight.waiters >= core.limits.maxWaiters) {
      return this.leading.bypass(key, work, policy, caller, 'max-waiters');
    }
    const watched = observed(core, flight, caller);
    const soft = softTimeout(core, flight, policy, watched.sink);
    const sink = soft.sink;
    core.events.coalesced(key, flight.waiters + 1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let own: Teardown;
    // How to leave the flight, once `join` has returned it.
    const joining: { leave?: () => void } = {};
    // Set once this caller stops listening to the flight (its own call, a timeout).
    let detached = false;
    // Set once the flight answered this caller.
    let settled = false;
    const stopWaiting = () => timer !== undefined && clearTimeout(timer);
    const detach = () => {
      detached = true;
      stopWaiting();
      // Called from inside the flight's own notification: leave once `join` has returned.
      if (joining.leave) joining.leave();
      else queueMicrotask(() => joining.leave?.());
    };
    const joined = flight.join({
      next: (value) => {
        if (detached || core.fellBack(flight, policy, { value }, sink)) return;
        if (!core.decisionFor(flight, policy, value).shared) {
          // Not this caller's to have: it runs its own (hit-for-miss).
          detach();
          own = this.leading.bypass(key, work, policy, sink, 'uncacheable');
          return;
        }
        sink.next({ value, outcome: 'collapsed' });
      },
      error: (error: unknown) => {
        if (detached) return;
        settled = true;
        stopWaiting();
        if (!core.fellBack(flight, policy, { error }, sink)) sink.error(error);
      },
      complete: () => {
        if (detached) return;
        settled = true;
        stopWaiting();
        sink.complete();
      },
    });
    joining.leave = joined;
    const waitTimeout = policy.waitTimeout ?? 0;
    // Answered already (a settled flight replays at once): nothing to wait for.
    if (waitTimeout > 0 && !detached && !settled) {
      timer = setTimeout(() => {
        detach();
        if (policy.onWaitTimeout === 'fail') {
          const error = new StampedeTimeoutError(waitTimeout, 'wait');
          core.events.report('timeout', key, { error });
          sink.error(error);
        } else {
          own = this.leading.bypass(key, work, policy, sink, 'wait-timeout');
        }
      }, waitTimeout);
    }
    return soft.arm(() => {
      stopWaiting();
      joined();
      own?.();
      watched.left();
    });
  }
}

/** `sink`, telling the observer (if any) when this waiter is answered, or `left` before that. */
function observed<T>(core: CoreContext, flight: Flight<T>, sink: AnswerSink<T>) {
  const done = core.observer?.joined(flight.key, flight.trace);
  if (!done) return { sink, left: () => undefined };
  let outcome: Outcome | undefined;
  return {
    sink: {
      next: (answer) => ((outcome = answer.outcome), sink.next(answer)),
      error: (error) => (done('error'), sink.error(error)),
      complete: () => (done(outcome ?? 'collapsed'), sink.complete()),
    } as AnswerSink<T>,
    // The observer ignores a second end: this only ends a wait nobody answered (the caller went away).
    left: () => done('cancelled'),
  };
}
