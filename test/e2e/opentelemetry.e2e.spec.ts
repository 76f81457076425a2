import { CallHandler, Controller, ExecutionContext, Get, Injectable, NestInterceptor, Query } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Tracer, context, trace } from '@opentelemetry/api';
import { Observable, finalize } from 'rxjs';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';

let release!: () => void;
let gate = Promise.resolve();
let runs = 0;

@Controller('report')
class ReportController {
  @Get()
  async report(@Query('secret') secret: string) {
    runs++;
    await gate;
    return { secret: secret.length, runs };
  }
}

it('is shown in the README as tested here', () => {
  const { readFileSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
  const { join } = jest.requireActual<typeof import('node:path')>('node:path');
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const snippet = readFileSync(__filename, 'utf8').split('// README:otel\n')[1].split('        // README:end')[0];
  const dedented = snippet
    .split('\n')
    .map((line) => line.slice(8))
    .join('\n')
    .trim()
    .replace(/,$/, '');
  expect(readme).toContain(dedented);
});

/** What HTTP instrumentation does in an app: each request runs inside a span of its own, made active. */
function requestSpans(tracer: Tracer) {
  @Injectable()
  class RequestSpanInterceptor implements NestInterceptor {
    intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
      return new Observable((subscriber) => {
        const span = tracer.startSpan('request');
        return context.with(trace.setSpan(context.active(), span), () =>
          next
            .handle()
            .pipe(finalize(() => span.end()))
            .subscribe(subscriber),
        );
      });
    }
  }
  return RequestSpanInterceptor;
}

describe.each(PLATFORMS)('OpenTelemetry (%s)', (platform) => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const contextManager = new AsyncLocalStorageContextManager().enable();

  beforeAll(() => context.setGlobalContextManager(contextManager));
  afterAll(async () => {
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  it('50 concurrent requests: one leader span, 49 waits linked to it, timings recorded, no raw key anywhere', async () => {
    spans.reset();
    runs = 0;
    gate = new Promise<void>((resolve) => (release = resolve));
    const running = await startApp(platform, {
      imports: [
        // README:otel
        StampedeModule.forRoot({
          ttl: 60_000,
          openTelemetry: { tracer: tracerProvider.getTracer('app'), meter: meterProvider.getMeter('app') },
        }),
        // README:end
      ],
      controllers: [ReportController],
      providers: [
        { provide: APP_INTERCEPTOR, useClass: requestSpans(tracerProvider.getTracer('http')) },
        { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor },
      ],
    });
    try {
      const url = `${running.url}/report?secret=hunter2-${platform}`;
      const first = request(url);
      // The others join once the leader runs (its handler waits on the gate).
      await until(() => runs === 1, 'the leader running');
      const others = Array.from({ length: 49 }, () => request(url));
      const stampede = running.app.get(StampedeService);
      await until(() => stampede.stats().waiting === 50, '49 followers waiting');
      release();
      const replies = await Promise.all([first, ...others]);
      expect(replies.every((reply) => reply.status === 200)).toBe(true);
      expect(runs).toBe(1);

      await until(() => spans.getFinishedSpans().filter((span) => span.name === 'request').length === 50, 'spans');
      const finished = spans.getFinishedSpans();
      const leaders = finished.filter((span) => span.name === 'stampede.flight');
      expect(leaders).toHaveLength(1);
      const leaderId = leaders[0].spanContext().spanId;
      // The leader's flight runs in its request's trace.
      const requests = finished.filter((span) => span.name === 'request');
      const leading = requests.find((span) => span.spanContext().spanId === leaders[0].parentSpanContext?.spanId);
      expect(leading).toBeDefined();
      // Every follower's request span links to the leader's flight, and says how it was answered.
      const followers = requests.filter((span) => span !== leading);
      expect(followers).toHaveLength(49);
      expect(followers.every((span) => span.links.length === 1 && span.links[0].context.spanId === leaderId)).toBe(
        true,
      );
      expect(
        followers.every((span) =>
          span.events.some((e) => e.name === 'stampede.wait' && e.attributes?.['stampede.outcome'] === 'collapsed'),
        ),
      ).toBe(true);
      expect(leaders[0].attributes).toMatchObject({ 'stampede.waiters': 50, 'stampede.stored': true });
      const everything = JSON.stringify(finished.map((span) => [span.name, span.attributes, span.events, span.links]));
      expect(everything).not.toContain('hunter2');
      expect(everything).not.toContain('/report');

      // A hit makes no span of ours: an event on the request's span.
      spans.reset();
      await request(url);
      await until(() => spans.getFinishedSpans().length === 1, 'the hit request span');
      const [hit] = spans.getFinishedSpans();
      expect(hit.name).toBe('request');
      expect(hit.events.map((e) => e.name)).toEqual(['stampede.hit']);

      await reader.forceFlush();
      const exported = metrics.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
      const byName = new Map(exported.map((metric) => [metric.descriptor.name, metric]));
      const events = byName.get('stampede.events')!;
      const count = (type: string) =>
        events.dataPoints
          .filter((point) => point.attributes['stampede.event'] === type)
          .reduce((sum, point) => sum + (point.value as number), 0);
      expect(events.dataPointType).toBe(DataPointType.SUM);
      expect(count('miss')).toBe(1);
      expect(count('coalesced')).toBe(49);
      expect(count('hit')).toBe(1);
      const waited = byName.get('stampede.wait.duration')!;
      expect(waited.dataPointType).toBe(DataPointType.HISTOGRAM);
      expect(waited.dataPoints.reduce((sum, point) => sum + (point.value as { count: number }).count, 0)).toBe(49);
      expect(byName.has('stampede.work.duration')).toBe(true);
      expect(byName.has('stampede.in_flight')).toBe(true);
    } finally {
      await running.close();
      metrics.reset();
    }
  });
});
