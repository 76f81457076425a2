import { Controller, Get, Query } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { context } from '@opentelemetry/api';
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
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
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

      const finished = spans.getFinishedSpans();
      const leaders = finished.filter((span) => span.name === 'stampede.flight');
      const waits = finished.filter((span) => span.name === 'stampede.wait');
      expect(leaders).toHaveLength(1);
      expect(waits).toHaveLength(49);
      const leaderId = leaders[0].spanContext().spanId;
      expect(waits.every((span) => span.links.length === 1 && span.links[0].context.spanId === leaderId)).toBe(true);
      expect(waits.every((span) => span.attributes['stampede.outcome'] === 'collapsed')).toBe(true);
      expect(leaders[0].attributes).toMatchObject({ 'stampede.waiters': 50, 'stampede.stored': true });
      const everything = JSON.stringify(finished.map((span) => [span.name, span.attributes, span.events]));
      expect(everything).not.toContain('hunter2');
      expect(everything).not.toContain('/report');

      // A hit makes no span.
      spans.reset();
      await request(url);
      expect(spans.getFinishedSpans()).toHaveLength(0);

      await reader.forceFlush();
      const exported = metrics.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
      const byName = new Map(exported.map((metric) => [metric.descriptor.name, metric]));
      const events = byName.get('stampede.events')!;
      const count = (type: string) =>
        events.dataPoints
          .filter((point) => point.attributes['stampede.event'] === type)
          .reduce((sum, point) => sum + (point.value as number), 0);
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
