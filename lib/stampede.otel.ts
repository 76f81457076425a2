import type { Histogram, Meter, Span, Tracer } from '@opentelemetry/api';
import { Outcome } from './core/answer';
import { STAT_OF, StampedeStats } from './core/events';
import { FlightKind } from './core/flight';
import { sha256 } from './core/hash';
import { FlightObserver, FlightTrace } from './core/observer';
import { StampedeOptionsError } from './stampede.options-error';

/** `@opentelemetry/api`, loaded only when `openTelemetry` is on (an optional peer dependency). */
type OtelApi = typeof import('@opentelemetry/api');

/** The instrumentation scope of every span and metric. */
export const SCOPE = 'nestjs-stampede';

/** Attribute names, documented in the README ("Operating it"). */
export const ATTR = {
  keyHash: 'stampede.key_hash',
  kind: 'stampede.flight.kind',
  outcome: 'stampede.outcome',
  waiters: 'stampede.waiters',
  stored: 'stampede.stored',
  type: 'stampede.event',
  reason: 'stampede.reason',
} as const;

export function loadOtel(): OtelApi {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as OtelApi;
  } catch {
    throw new StampedeOptionsError(
      'openTelemetry',
      true,
      '@opentelemetry/api installed (npm install @opentelemetry/api)',
      'StampedeModule.forRoot',
    );
  }
}

/** A key as it may appear in telemetry: the start of its SHA-256, never the key (it may hold user input). */
function keyHash(key: string): string {
  return sha256(key).slice(0, 16);
}

/**
 * Traces and timings of flights, through the OpenTelemetry API: a span per
 * flight on its leader (`stampede.flight`, or `stampede.refresh` for a
 * background refresh), a link to it and a `stampede.wait` event on each
 * follower's request span, and an event on it for answers from the store.
 * `durations` receives the work and wait times, for the histograms.
 */
export function tracingObserver(
  api: OtelApi,
  tracer: Tracer | undefined,
  durations: { work?: Histogram; wait?: Histogram },
): FlightObserver {
  const spans = tracer ?? api.trace.getTracer(SCOPE);
  const now = () => performance.now();
  return {
    flightStarted(key: string, kind: FlightKind): FlightTrace & { span: Span } {
      const started = now();
      const span = spans.startSpan(kind === 'refresh' ? 'stampede.refresh' : 'stampede.flight', {
        attributes: { [ATTR.keyHash]: keyHash(key), [ATTR.kind]: kind },
      });
      return {
        span,
        end({ ok, error, waiters, stored }) {
          durations.work?.record(now() - started, { [ATTR.kind]: kind, [ATTR.outcome]: ok ? 'ok' : 'error' });
          span.setAttributes({ [ATTR.waiters]: waiters, [ATTR.stored]: stored });
          if (!ok) {
            if (error instanceof Error) span.recordException(error);
            span.setStatus({
              code: api.SpanStatusCode.ERROR,
              message: error instanceof Error ? error.message : undefined,
            });
          }
          span.end();
        },
      };
    },
    joined(key: string, trace: FlightTrace | undefined) {
      const started = now();
      // No span per follower (that would cost a span per waiting request): the request's own span,
      // when it records, gets a link to the leader's span and an event; the wait is timed.
      const active = api.trace.getActiveSpan();
      const recording = active?.isRecording() ? active : undefined;
      const leader = (trace as { span?: Span } | undefined)?.span;
      if (recording && leader) {
        recording.addLink({ context: leader.spanContext(), attributes: { [ATTR.keyHash]: keyHash(key) } });
      }
      let ended = false;
      return (outcome: Outcome | 'error' | 'cancelled') => {
        if (ended) return;
        ended = true;
        durations.wait?.record(now() - started, { [ATTR.outcome]: outcome });
        recording?.addEvent('stampede.wait', { [ATTR.outcome]: outcome });
      };
    },
    answered(key: string, outcome: 'hit' | 'stale') {
      // Hits make no span: an event on the request's span, only when it records.
      const active = api.trace.getActiveSpan();
      if (active?.isRecording()) active.addEvent(`stampede.${outcome}`, { [ATTR.keyHash]: keyHash(key) });
    },
  };
}

/**
 * The engine's counts as OpenTelemetry metrics (the same meaning as the
 * Prometheus ones): `stampede.events` by type and reason, the gauges
 * `stampede.in_flight` and `stampede.waiting`, and the histograms
 * `stampede.work.duration` and `stampede.wait.duration` (ms).
 */
export function otelMetrics(
  meter: Meter,
  engine: { inFlight(): number; stats(): StampedeStats },
): { work: Histogram; wait: Histogram } {
  // Read from the engine's own counts at collection: nothing is paid per event.
  meter
    .createObservableCounter('stampede.events', { description: 'nestjs-stampede events by type' })
    .addCallback((result) => {
      const stats = engine.stats();
      for (const [type, field] of Object.entries(STAT_OF)) result.observe(stats[field], { [ATTR.type]: type });
    });
  meter
    .createObservableGauge('stampede.in_flight', { description: 'keys whose work is in progress' })
    .addCallback((result) => result.observe(engine.inFlight()));
  meter
    .createObservableGauge('stampede.waiting', { description: 'callers waiting on work in progress' })
    .addCallback((result) => result.observe(engine.stats().waiting));
  const work = meter.createHistogram('stampede.work.duration', { unit: 'ms', description: 'time a flight took' });
  const wait = meter.createHistogram('stampede.wait.duration', {
    unit: 'ms',
    description: 'time a follower waited on another caller’s flight',
  });
  return { work, wait };
}
