import { FlightCoordinator } from './coordinator';
import { EventLog } from './events';
import { isEntry, usableOnError } from './freshness';
import { StoredEntry } from './store';
import { GuardedStore } from './guarded-store';
import { AnswerSink } from './answer';
import { Decision, RunPolicy, decide, failSafeThrottle } from './policy';
import { Flight } from './flight';
import { SingleFlight } from './single-flight';
import { TagIndex } from './tags';
import { CoreLogger } from './guarded-store';
import { KeyMarks } from './key-marks';
import { FlightObserver } from './observer';

/**
 * What the parts of the engine share: the store, the flights, the events and
 * the clocks, and the two per-result answers every part needs (the decision,
 * computed once per result, and the stale-if-error fallback).
 */
export class CoreContext {
  constructor(
    readonly store: GuardedStore,
    readonly flights: SingleFlight,
    readonly events: EventLog,
    readonly tags: TagIndex,
    /** Keys whose last result could not be shared (hit-for-miss). */
    readonly uncacheable: KeyMarks,
    /** Keys whose last call failed: their stale value stands in until the mark ends (fail-safe throttle). */
    readonly failedRecently: KeyMarks,
    readonly logger: CoreLogger,
    readonly now: () => number,
    readonly random: () => number,
    readonly limits: { maxInFlight: number; maxWaiters: number },
    readonly coordinator?: FlightCoordinator,
    /** Traces and timings (OpenTelemetry), when enabled. */
    readonly observer?: FlightObserver,
  ) {}

  /** `cached` if it is an entry, no tag of it was invalidated, and the policy accepts its value. */
  usable<T>(cached: StoredEntry | undefined, policy: RunPolicy<T>): StoredEntry<T> | undefined {
    return isEntry(cached) && this.tags.isValid(cached) && (policy.isValid === undefined || policy.isValid(cached.v))
      ? (cached as StoredEntry<T>)
      : undefined;
  }

  /** The decision about `value`, made once per flight result and policy. */
  decisionFor<T>(flight: Flight<T>, policy: RunPolicy<T>, value: T): Decision {
    const memo = flight.decided;
    if (memo !== undefined && memo.value === value && memo.policy === policy) return memo.decision as Decision;
    const decided = decide(policy, value, this.random);
    const decision = flight.context ? flight.context.adjust(decided) : decided;
    flight.decided = { value, policy, decision };
    return decision;
  }

  /**
   * Stale-if-error: when the flight failed (an error, or a value its policy
   * calls a failure) and it carries a fallback still usable, answers `sink`
   * with that instead and returns true.
   */
  fellBack<T>(
    flight: Flight<T>,
    policy: RunPolicy<T>,
    outcome: { value: T } | { error: unknown },
    sink: AnswerSink<T>,
  ): boolean {
    const failed = 'error' in outcome || this.decisionFor(flight, policy, outcome.value).failure;
    if (!failed) return false;
    const fallback = flight.fallback;
    if (!usableOnError(fallback, this.now())) return false;
    // The origin failed: it is not asked again, per caller, until the throttle ends.
    this.failedRecently.mark(flight.key, failSafeThrottle(policy as RunPolicy<unknown>), this.now());
    this.events.report('stale', flight.key, {
      staleReason: 'error',
      error: 'error' in outcome ? outcome.error : undefined,
    });
    sink.next({
      value: fallback.v,
      outcome: 'stale',
      staleReason: 'error',
      expiresAt: fallback.e,
      storedAt: fallback.t,
    });
    if ('error' in outcome) sink.complete();
    return true;
  }
}
