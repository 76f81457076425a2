import { Outcome } from './answer';
import { FlightKind } from './flight';

/** What a flight carries for its observer: how to end what `flightStarted` began. */
export interface FlightTrace {
  end(result: { ok: boolean; error?: unknown; waiters: number; stored: boolean }): void;
  /**
   * For a coordinator: text that lets another instance's callers link to this
   * flight (opaque to the engine; a W3C `traceparent`), or `undefined`.
   */
  share?(): string | undefined;
  /**
   * The coordinator answered this flight with another instance's work: it
   * `waited` for a holder (`holder`: what that holder's `share()` gave, when
   * known), or found the value already stored. Told before the answer.
   */
  ranElsewhere?(holder: string | undefined, waited: boolean): void;
}

/**
 * Watches flights for traces and timings (the OpenTelemetry glue implements
 * it); the engine calls it only when one is given, so without one nothing is
 * paid. Calls are made in the caller's own async context, so a tracer sees
 * the request that caused them as the active span.
 */
export interface FlightObserver {
  /** A flight starts on this instance, in its leader's context. */
  flightStarted(key: string, kind: FlightKind): FlightTrace;
  /**
   * A caller joined the flight of `key`; call the result when it is answered
   * (or leaves). `undefined`: nothing to tell (nothing records this wait, or
   * `withFlight` and another such caller's call tells it). `withFlight`: it
   * is answered exactly when the flight settles, as all such callers are.
   */
  joined(
    key: string,
    trace: FlightTrace | undefined,
    withFlight?: boolean,
  ): ((outcome: Outcome | 'error' | 'cancelled') => void) | undefined;
  /** A caller was answered from the store, without a flight. */
  answered(key: string, outcome: 'hit' | 'stale'): void;
}
