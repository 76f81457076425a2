import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { StampedeModule, StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';

describe('OpenTelemetry on StampedeService.run, some requests sampled and some not', () => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  // Requests this tracer starts are not sampled: their spans do not record.
  const unsampled = new BasicTracerProvider({ sampler: new AlwaysOffSampler() }).getTracer('http');
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });

  beforeAll(() => context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable()));
  afterAll(async () => {
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  it('links and marks only the sampled followers, and times every wait', async () => {
    @Module({
      imports: [
        StampedeModule.forRoot({
          ttl: 60_000,
          openTelemetry: { tracer: tracerProvider.getTracer('app'), meter: meterProvider.getMeter('app') },
        }),
      ],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    try {
      const stampede = app.get(StampedeService);
      const gate = deferred<string>();
      const sampled = tracerProvider.getTracer('http');
      const inRequest = <T>(sampledRequest: boolean, call: () => Promise<T>) => {
        const span = (sampledRequest ? sampled : unsampled).startSpan('request');
        return context.with(trace.setSpan(context.active(), span), call).finally(() => span.end());
      };
      // The leader's request is sampled; then unsampled and sampled followers, interleaved.
      const calls = Array.from({ length: 11 }, (_, i) =>
        inRequest(i % 2 === 0, () => stampede.run('report', () => gate.promise)),
      );
      await until(() => stampede.stats().waiting === 11, '11 callers waiting');
      gate.resolve('done');
      await expect(Promise.all(calls)).resolves.toEqual(Array(11).fill('done'));

      const finished = spans.getFinishedSpans();
      const flights = finished.filter((span) => span.name === 'stampede.flight');
      expect(flights).toHaveLength(1);
      const requests = finished.filter((span) => span.name === 'request');
      // Only sampled requests are exported: the leader's and 5 followers'.
      expect(requests).toHaveLength(6);
      const followers = requests.filter((span) => span.spanContext().spanId !== flights[0].parentSpanContext?.spanId);
      expect(followers).toHaveLength(5);
      for (const follower of followers) {
        expect(follower.links.map((link) => link.context.spanId)).toEqual([flights[0].spanContext().spanId]);
        expect(follower.events.map((event) => [event.name, event.attributes?.['stampede.outcome']])).toEqual([
          ['stampede.wait', 'collapsed'],
        ]);
      }
      expect(flights[0].attributes['stampede.waiters']).toBe(11);

      await reader.forceFlush();
      const waits = metrics
        .getMetrics()
        .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
        .filter((metric) => metric.descriptor.name === 'stampede.wait.duration')
        .flatMap((metric) => metric.dataPoints as { value: unknown }[])
        .reduce((sum, point) => sum + (point.value as { count: number }).count, 0);
      // Every follower's wait, sampled or not (the unsampled ones timed together when the flight settled).
      expect(waits).toBe(10);
    } finally {
      await app.close();
    }
  });
});
