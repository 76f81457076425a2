import type { Histogram, Meter, Span, Tracer } from '@opentelemetry/api';
import { hash } from 'node:crypto';
import { STAT_OF, StampedeStats } from '../../core/events';
import { FlightKind } from '../../core/flight';
import { FlightObserver, FlightTrace } from '../../core/observer';
import { ATTR, waitAttributes } from './stampede.otel-attributes';
import { Durations, FlightSpan, OtelApi } from './stampede.otel-flight';
import { turnNow } from './stampede.otel-followers';
import { StampedeOptionsError } from '../../errors';

export { ATTR } from './stampede.otel-attributes';

/** The instrumentation scope of every span and metric. */
export const SCOPE = 'nestjs-stampede';

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
  return hash('sha256', key, 'base64url').slice(0, 16);
}

/**
 * Traces and timings of flights, through the OpenTelemetry API: a span per
 * flight on its leader (`stampede.flight`, or `stampede.refresh` for a
 * background refresh), a link to it and a `stampede.wait` event on each
 * follower's request span, and an event on it for answers from the store
 * (unless `hitEvents` is false: then a hit looks nothing up). Nothing is
 * built for a request whose span does not record, and with `traces` off only
 * the timings are kept. `durations` receives the work and wait times, for the
 * histograms.
 */
export function tracingObserver(
  api: OtelApi,
  tracer: Tracer | undefined,
  durations: Durations,
  traces = true,
  hitEvents = true,
): FlightObserver {
  const marksHits = traces && hitEvents;
  const spans = tracer ?? api.trace.getTracer(SCOPE);
  const contexts = api.context;
  const root = api.ROOT_CONTEXT;
  const traceApi = api.trace;
  /**
   * The active span when it records: the one lookup a hit or a join pays.
   * The root context (no context manager, or outside any request) holds no span.
   */
  const recording = (): Span | undefined => {
    const active = contexts.active();
    if (active === root) return undefined;
    const span = traceApi.getSpan(active);
    return span?.isRecording() ? span : undefined;
  };
  return {
    flightStarted(key: string, kind: FlightKind): FlightTrace {
      const parent = contexts.active();
      const span = spans.startSpan(kind === 'refresh' ? 'stampede.refresh' : 'stampede.flight', undefined, parent);
      const hashed = span.isRecording() ? keyHash(key) : undefined;
      if (hashed !== undefined) span.setAttributes({ [ATTR.keyHash]: hashed, [ATTR.kind]: kind });
      const request = traces ? traceApi.getSpan(parent) : undefined;
      return new FlightSpan(api, durations, span, request?.isRecording() ? request : undefined, hashed, kind);
    },
    joined(_key: string, trace: FlightTrace | undefined, withFlight?: boolean) {
      // No span per follower (that would cost a span per waiting request): the request's own span,
      // when it records, gets a link to the span that ran the work and an event; the wait is timed.
      const request = traces ? recording() : undefined;
      const wait = durations.wait;
      // Answered all at once when the flight settles: one callback tells every such caller.
      if (withFlight && trace instanceof FlightSpan) return trace.follow(wait !== undefined, request);
      if (request === undefined && wait === undefined) return undefined;
      const started = wait === undefined ? 0 : turnNow();
      let ended = false;
      return (outcome) => {
        if (ended) return;
        ended = true;
        wait?.record(performance.now() - started, waitAttributes(outcome));
        // Linked once answered: by then a coordinator may have said which instance ran it.
        if (!request?.isRecording()) return;
        if (trace instanceof FlightSpan) request.addLink(trace.link());
        request.addEvent('stampede.wait', waitAttributes(outcome));
      };
    },
    answered(key: string, outcome: 'hit' | 'stale') {
      // Hits make no span: an event on the request's span, only when it records.
      if (!marksHits) return;
      const request = recording();
      if (request !== undefined) request.addEvent(`stampede.${outcome}`, { [ATTR.keyHash]: keyHash(key) });
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
