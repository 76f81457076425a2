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
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { StampedeModule, StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';

describe('OpenTelemetry, metrics only (traces: false)', () => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    // A global tracer that records everything: the module must still make no span of its own.
    trace.setGlobalTracerProvider(tracerProvider);
  });
  afterAll(async () => {
    context.disable();
    trace.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  it('makes no span nor span event, inside recording request spans, and still times the work and each wait', async () => {
    @Module({
      imports: [
        StampedeModule.forRoot({ ttl: 60_000, openTelemetry: { traces: false, meter: meterProvider.getMeter('app') } }),
      ],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    try {
      const stampede = app.get(StampedeService);
      const gate = deferred<string>();
      let runs = 0;
      const tracer = tracerProvider.getTracer('http');
      // Each call inside a request span of its own, as HTTP instrumentation would make.
      const inRequest = <T>(call: () => Promise<T>) => {
        const span = tracer.startSpan('request');
        return context.with(trace.setSpan(context.active(), span), call).finally(() => span.end());
      };
      const calls = Array.from({ length: 10 }, () =>
        inRequest(() => stampede.run('report', () => (runs++, gate.promise))),
      );
      await until(() => stampede.stats().waiting === 10, '10 callers waiting');
      gate.resolve('done');
      await expect(Promise.all(calls)).resolves.toEqual(Array(10).fill('done'));
      await expect(inRequest(() => stampede.run('report', () => 'not run'))).resolves.toBe('done');
      expect(runs).toBe(1);

      const finished = spans.getFinishedSpans();
      expect(finished.map((span) => span.name)).toEqual(Array(11).fill('request'));
      expect(finished.every((span) => span.events.length === 0 && span.links.length === 0)).toBe(true);

      await reader.forceFlush();
      const exported = metrics.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
      const count = (name: string) =>
        exported
          .filter((metric) => metric.descriptor.name === name)
          .flatMap((metric) => metric.dataPoints as { value: unknown }[])
          .reduce((sum, point) => sum + (point.value as { count: number }).count, 0);
      expect(count('stampede.wait.duration')).toBe(9);
      expect(count('stampede.work.duration')).toBe(1);
    } finally {
      await app.close();
    }
  });
});
