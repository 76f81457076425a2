/**
 * OpenTelemetry in an instance of the multi-instance suite (`STAMPEDE_TRACING=1`):
 * the real SDK (`BasicTracerProvider`, the async-hooks context manager), a
 * `request` span made active around each request as HTTP instrumentation
 * would, and every finished span written to stdout as one `span {json}`
 * line for the test process to read.
 */
import { CallHandler, ExecutionContext, Injectable, NestInterceptor, Provider } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Tracer, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, ReadableSpan, SimpleSpanProcessor, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Observable, finalize } from 'rxjs';

/** A finished span as the test reads it. */
export interface SpanLine {
  pid: number;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string; attributes?: Record<string, unknown> }[];
  events: { name: string; attributes?: Record<string, unknown> }[];
}

/** The prefix of a span line on stdout. */
export const SPAN_LINE = 'span ';

function toLine(span: ReadableSpan): SpanLine {
  return {
    pid: process.pid,
    name: span.name,
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    attributes: { ...span.attributes },
    links: span.links.map((link) => ({ ...link.context, attributes: link.attributes })),
    events: span.events.map((event) => ({ name: event.name, attributes: event.attributes })),
  };
}

/** Writes each finished span as one line: what an exporter to a collector would send. */
const stdoutExporter: SpanExporter = {
  export(spans, done) {
    for (const span of spans) process.stdout.write(`${SPAN_LINE}${JSON.stringify(toLine(span))}\n`);
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};

export function startTracing(): { tracer: Tracer; providers: Provider[] } {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(stdoutExporter)] });
  const tracer = provider.getTracer('instance');

  @Injectable()
  class RequestSpanInterceptor implements NestInterceptor {
    intercept(executionContext: ExecutionContext, next: CallHandler): Observable<unknown> {
      return new Observable((subscriber) => {
        // The controller tells the suite's requests from the admin ones (no path: it would hold the key).
        const span = tracer.startSpan('request', { attributes: { controller: executionContext.getClass().name } });
        return context.with(trace.setSpan(context.active(), span), () =>
          next
            .handle()
            .pipe(finalize(() => span.end()))
            .subscribe(subscriber),
        );
      });
    }
  }
  return { tracer, providers: [{ provide: APP_INTERCEPTOR, useClass: RequestSpanInterceptor }] };
}
