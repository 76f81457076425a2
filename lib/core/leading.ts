import { AnswerSink, Teardown, answerFromEntry, collected, valueOrNothing } from './answer';
import { CoreContext } from './context';
import { Observable } from 'rxjs';
import { StampedeTimeoutError, deadline$, promiseDeadline } from './deadline';
import { BypassReason } from './events';
import { usableOnError } from './freshness';
import { Decision, RunPolicy } from './policy';
import { softTimeout } from './soft-timeout';
import { Flight, FlightKind } from './flight';
import { FlightContext } from './work-context';
import { FlightSignal } from './flight-signal';
import { FlightHooks, FlightOptions, FlightWork, Work, toObservable } from './single-flight';
import { StoredEntry, isPromiseLike } from './store';
import { Writes } from './writes';

/**
 * The leader's path: run the work once, decide once about its result, write
 * it, and answer. Also the caller that runs alone (`bypass`).
 */
export class Leading {
  constructor(
    private readonly core: CoreContext,
    private readonly writes: Writes,
  ) {}

  /**
   * The hooks of every flight this path starts: shared (a flight is made per
   * miss), reading what they need from the flight itself.
   */
  private readonly hooks: FlightHooks<unknown> = {
    onStart: (flight) => {
      const observer = this.core.observer;
      if (observer) flight.trace = observer.flightStarted(flight.key, flight.kind);
    },
    onFailure: (error, flight) => flight.trace?.end({ ok: false, error, waiters: flight.waiters, stored: false }),
    onSuccess: (last, emitted, current, flight) => {
      // A coordinated flight's write was made (and reported) by the coordinator.
      const write = this.written(last, emitted, current, flight) ?? flight.write;
      if (flight.trace) {
        const end = (stored: boolean) => flight.trace!.end({ ok: true, waiters: flight.waiters, stored });
        if (isPromiseLike(write)) write.then(end);
        else end(write === true);
      }
      return write;
    },
  };

  /**
   * Starts the flight of `key`: it decides about and stores its own result.
   * `old` is the value it may fall back on (and its work sees as `stale`).
   */
  startFlight<T>(key: string, work: Work<T>, policy: RunPolicy<T>, kind: FlightKind, old?: StoredEntry<T>): Flight<T> {
    const core = this.core;
    // Across instances only what can be shared through the store: ttl > 0.
    const coordinator = policy.ttl > 0 ? core.coordinator : undefined;
    const context = new FlightContext<T>(old);
    const flight = new Flight<T>(key, kind);
    flight.context = context;
    flight.policy = policy;
    flight.coordinated = coordinator !== undefined;
    if (old) flight.fallback = old;
    const flightWork: FlightWork<T> = coordinator
      ? (signal) => {
          flight.startedAt = core.now();
          return coordinator.lead(key, () => toObservable(context.call(work, signal)), {
            ttl: policy.ttl,
            storable: (value) => this.stores(core.decisionFor(flight, policy, value), flight),
            entry: (value) =>
              this.writes.entryFor(value, core.decisionFor(flight, policy, value), flight.startedAt).entry,
            found: (entry) => (flight.found = entry),
            stored: (accepted) => (flight.write = accepted),
            // Set by `onStart`, before the work (and so the coordinator) starts.
            trace: flight.trace,
          });
        }
      : (signal) => {
          flight.startedAt = core.now();
          return context.call(work, signal);
        };
    core.flights.begin(flight, flightWork, this.hooks as FlightHooks<T>, boundsOf(policy));
    return flight;
  }

  /** Decides about a flight's result and writes it when it may; the write (or `undefined`: none). */
  private written<T>(
    last: T,
    emitted: boolean,
    current: boolean,
    flight: Flight<T>,
  ): boolean | PromiseLike<boolean> | undefined {
    const core = this.core;
    if (!emitted) return undefined;
    const { key, startedAt, coordinated } = flight;
    const policy = flight.policy!;
    const decision = core.decisionFor(flight, policy, last);
    if (!decision.shared) core.uncacheable.mark(key, policy.uncacheableTtl ?? 0, core.now());
    // A coordinator stores the result itself, fenced by its lease.
    if (coordinated || !current || !this.stores(decision, flight)) return undefined;
    flight.write = this.writes.write(key, last, decision, startedAt);
    return flight.write;
  }

  /** Whether a result is stored: the decision says so, and it is no failure that a fallback answered. */
  private stores<T>(decision: Decision, flight: Flight<T>): boolean {
    if (decision.store === undefined) return false;
    // A failure answered by a stale fallback must not replace that fallback.
    return !(decision.failure && usableOnError(flight.fallback, this.core.now()));
  }

  /** Leads the flight of `key` (which has none): this caller's answer is a `miss`. */
  lead<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    caller: AnswerSink<T>,
    fallback?: StoredEntry<T>,
  ): Teardown {
    const core = this.core;
    if (core.limits.maxInFlight > 0 && core.flights.size >= core.limits.maxInFlight) {
      return this.bypass(key, work, policy, caller, 'max-in-flight');
    }
    if (core.uncacheable.has(key, core.now())) return this.bypass(key, work, policy, caller, 'uncacheable');
    core.events.report('miss', key);
    return this.answerLeader(this.startFlight(key, work, policy, 'lead', fallback), policy, caller);
  }

  /** Answers the leader of `flight` from its notifications: a `miss`, or what a coordinator found. */
  private answerLeader<T>(flight: Flight<T>, policy: RunPolicy<T>, caller: AnswerSink<T>): Teardown {
    const core = this.core;
    const key = flight.key;
    // A coordinator may answer with another instance's value: then this process ran nothing.
    const ranHere = () => flight.context!.ran;
    const soft = softTimeout(core, flight, policy, caller);
    const sink = soft.sink;
    // An Observable's last value is answered at completion, once its write is known.
    let held: { value: T } | undefined;
    let answering: PromiseLike<unknown> | undefined;
    const answer = (value: T) => {
      if (core.fellBack(flight, policy, { value }, sink)) return;
      // Answered by the coordinator: a value already stored (a hit), or another instance's run (collapsed).
      if (!ranHere())
        return sink.next(flight.found ? answerFromEntry(flight.found, 'hit') : { value, outcome: 'collapsed' });
      const write = flight.write;
      if (isPromiseLike(write)) {
        answering = write.then((stored) => sink.next({ value, outcome: 'miss', stored }));
        return;
      }
      sink.next({ value, outcome: 'miss', stored: write === true });
    };
    const after = (then: () => void) => (answering ? void answering.then(then) : then());
    return soft.arm(
      flight.join({
        next: (value) => {
          if (!flight.observable) return answer(value);
          if (held) sink.next({ value: held.value, outcome: ranHere() ? 'miss' : 'collapsed' });
          held = { value };
        },
        error: (error: unknown) => {
          core.events.report(flight.expired ? 'timeout' : 'error', key, { error });
          if (!core.fellBack(flight, policy, { error }, sink)) sink.error(error);
        },
        complete: () => {
          if (held) answer(held.value);
          after(() => sink.complete());
        },
      }),
    );
  }

  /**
   * True when `leadValue` answers exactly as `lead` would: a key with nothing
   * stored (so no fallback), no bound reached, no hit-for-miss mark, and no
   * coordinator (whose answer may be another instance's).
   */
  leadsCheaply<T>(key: string, policy: RunPolicy<T>): boolean {
    const core = this.core;
    return (
      !(policy.ttl > 0 && core.coordinator !== undefined) &&
      !(core.limits.maxInFlight > 0 && core.flights.size >= core.limits.maxInFlight) &&
      (core.uncacheable.size === 0 || !core.uncacheable.has(key, core.now()))
    );
  }

  /**
   * `lead` for a caller that wants the value alone: the flight's own Promise
   * (a synchronous work's value at once), resolved once its write is known.
   * Callers check `leadsCheaply` first.
   */
  leadValue<T>(key: string, work: Work<T>, policy: RunPolicy<T>): T | Promise<T> {
    const core = this.core;
    core.events.report('miss', key);
    const flight = this.startFlight(key, work, policy, 'lead');
    if (flight.observable) {
      // Its values reach the leader as `lead` hands them (a synchronous Observable answers at once).
      const answer = collected<T>((sink) => this.answerLeader(flight, policy, sink));
      return isPromiseLike(answer) ? answer.then(valueOrNothing) : valueOrNothing(answer);
    }
    const sync = flight.sync;
    if (sync !== undefined) {
      if ('error' in sync) {
        core.events.report('error', key, { error: sync.error });
        throw sync.error;
      }
      const write = flight.write;
      return isPromiseLike(write) ? Promise.resolve(write).then(() => sync.value) : sync.value;
    }
    return flight.joinPromise().then(
      (value) => {
        const write = flight.write;
        return isPromiseLike(write) ? Promise.resolve(write).then(() => value) : value;
      },
      (error: unknown) => {
        core.events.report(flight.expired ? 'timeout' : 'error', key, { error });
        throw error;
      },
    );
  }

  /** Runs `work` for this caller alone: uncoalesced, not stored, bounded like a flight. */
  bypass<T>(key: string, work: Work<T>, policy: RunPolicy<T>, sink: AnswerSink<T>, reason: BypassReason): Teardown {
    this.core.events.report('bypass', key, { reason });
    const timeout = policy.timeout ?? 0;
    const controller = new FlightSignal();
    const timeoutError = () => {
      controller.abort(new Error('timed out'));
      return policy.timeoutError ? policy.timeoutError() : new StampedeTimeoutError(timeout);
    };
    let result;
    try {
      // A lone call stores nothing: what its work says about storing changes nothing.
      const context = new FlightContext<T>(undefined);
      result = context.call(work, controller);
    } catch (error) {
      sink.error(error);
      return undefined;
    }
    if (!isPromiseLike(result) && !isObservableLike(result)) {
      sink.next({ value: result as T, outcome: 'bypass' });
      sink.complete();
      return undefined;
    }
    if (isPromiseLike<T>(result)) {
      let left = false;
      const settled = timeout > 0 ? promiseDeadline(result, timeout, timeoutError) : result;
      settled.then(
        (value) => {
          if (left) return;
          sink.next({ value, outcome: 'bypass' });
          sink.complete();
        },
        (error: unknown) => !left && sink.error(error),
      );
      return () => {
        left = true;
      };
    }
    const own$ = timeout > 0 ? deadline$(result as Observable<T>, timeout, timeoutError) : (result as Observable<T>);
    const subscription = own$.subscribe({
      next: (value) => sink.next({ value, outcome: 'bypass' }),
      error: (error: unknown) => sink.error(error),
      complete: () => sink.complete(),
    });
    return () => subscription.unsubscribe();
  }
}

function isObservableLike(value: unknown): boolean {
  return (
    value !== null && typeof value === 'object' && typeof (value as { subscribe?: unknown }).subscribe === 'function'
  );
}

/** A flight with no deadline that is not cancelled when abandoned: the usual case, one object for all. */
const UNBOUNDED: FlightOptions = {};

/** How a flight of `policy` may end early. */
function boundsOf<T>(policy: RunPolicy<T>): FlightOptions {
  if (!policy.timeout && !policy.cancelWhenAbandoned) return UNBOUNDED;
  return {
    timeout: policy.timeout,
    timeoutError: policy.timeoutError,
    cancelWhenAbandoned: policy.cancelWhenAbandoned,
  };
}
