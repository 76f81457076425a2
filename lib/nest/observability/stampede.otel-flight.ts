import type { Histogram, Link, Span, SpanContext } from '@opentelemetry/api';
import { FlightKind } from '../../core/flight';
import { FlightTrace } from '../../core/observer';
import { ATTR, WORK_ATTRIBUTES, waitAttributes } from './stampede.otel-attributes';
import { Followers } from './stampede.otel-followers';

export { ATTR } from './stampede.otel-attributes';

/** `@opentelemetry/api`, loaded only when `openTelemetry` is on (an optional peer dependency). */
export type OtelApi = typeof import('@opentelemetry/api');

/** What a flight's span records its timings into (the histograms, when metrics are on). */
export interface Durations {
  work?: Histogram;
  wait?: Histogram;
}

/** W3C `traceparent` of a span context: `00-<trace id>-<span id>-<flags>`. */
export function traceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context a `traceparent` names; `undefined` for anything else (e.g. a foreign lease value). */
export function parseTraceparent(api: OtelApi, text: string | undefined): SpanContext | undefined {
  const match = typeof text === 'string' && text.length === 55 ? TRACEPARENT.exec(text) : null;
  if (!match) return undefined;
  const context: SpanContext = {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16),
    isRemote: true,
  };
  return api.trace.isSpanContextValid(context) ? context : undefined;
}

/**
 * One flight's span and what its followers link to. Started in the leader's
 * context; when a coordinator answers it with another instance's work, it
 * becomes a `stampede.lease` span linked to that instance's flight, and the
 * leader's request span is marked as a follower's.
 */
export class FlightSpan implements FlightTrace {
  private readonly started = performance.now();
  /** The span that ran the work on another instance, once known. */
  private holder?: SpanContext;
  private elsewhere = false;
  /** The callers to be answered with the flight, not yet told. */
  private followers?: Followers;
  /** What follower request spans link to, made once (until the holder is known). */
  private linked?: Link;

  constructor(
    private readonly api: OtelApi,
    private readonly durations: Durations,
    readonly span: Span,
    /** The leader's request span, when one records. */
    private readonly request: Span | undefined,
    /** `stampede.key_hash`, computed only for a span that records. */
    readonly keyHash: string | undefined,
    private readonly kind: FlightKind,
  ) {}

  /** What a follower's request span links to: the span that ran the work, here or on another instance. */
  link(): Link {
    // Shared by every request span that links here: a link is data (the SDK copies what it keeps).
    return (this.linked ??= {
      context: this.holder ?? this.span.spanContext(),
      attributes: this.keyHash === undefined ? undefined : { [ATTR.keyHash]: this.keyHash },
    });
  }

  /**
   * A caller answered exactly when the flight settles (`timed`: its wait is
   * recorded; `request`: its span, when it records). The first such caller
   * gets the callback that tells them all then; the others none.
   */
  follow(timed: boolean, request: Span | undefined): ((outcome: string) => void) | undefined {
    if (!timed && request === undefined) return undefined;
    if (this.followers) return void this.followers.add(timed, request);
    const followers = (this.followers = new Followers());
    followers.add(timed, request);
    return (outcome) => {
      this.followers = undefined;
      followers.settle(outcome, this.durations.wait, () => this.link());
    };
  }

  share(): string | undefined {
    // An unsampled flight is nothing to link to: then the lease carries nothing extra.
    return this.span.isRecording() ? traceparent(this.span.spanContext()) : undefined;
  }

  ranElsewhere(holder: string | undefined, waited: boolean): void {
    this.elsewhere = true;
    this.holder = parseTraceparent(this.api, holder);
    this.linked = undefined;
    const outcome = waited ? 'collapsed' : 'hit';
    if (waited) this.durations.wait?.record(performance.now() - this.started, waitAttributes(outcome));
    const span = this.span;
    if (span.isRecording()) {
      // Not a flight of this instance: the time it waited on the lease, linked to the one that ran it.
      span.updateName('stampede.lease');
      span.setAttribute(ATTR.outcome, outcome);
      if (this.holder) span.addLink(this.link());
    }
    const request = this.request;
    if (!request?.isRecording()) return;
    if (!waited) return void request.addEvent('stampede.hit', { [ATTR.keyHash]: this.keyHash });
    if (this.holder) request.addLink(this.link());
    request.addEvent('stampede.wait', waitAttributes(outcome));
  }

  end({ ok, error, waiters, stored }: { ok: boolean; error?: unknown; waiters: number; stored: boolean }): void {
    if (!this.elsewhere)
      this.durations.work?.record(performance.now() - this.started, WORK_ATTRIBUTES[this.kind][ok ? 'ok' : 'error']);
    const span = this.span;
    if (span.isRecording()) {
      span.setAttributes({ [ATTR.waiters]: waiters, [ATTR.stored]: stored });
      if (!ok) {
        if (error instanceof Error) span.recordException(error);
        span.setStatus({
          code: this.api.SpanStatusCode.ERROR,
          message: error instanceof Error ? error.message : undefined,
        });
      }
    }
    span.end();
  }
}
