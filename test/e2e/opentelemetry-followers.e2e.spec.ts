import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  HistogramMetricData,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { RunOptions, StampedeModule, StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';

/**
 * The followers of a flight are told all at once when it settles (see
 * `Followers`): each still gets its link, its event and its own wait in the
 * histogram, and a burst of callers joining in one turn shares one clock read.
 */
describe('OpenTelemetry: the followers of one flight', () => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.DELTA);
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const requests = tracerProvider.getTracer('http');
  let stampede: StampedeService;
  let close: () => Promise<void>;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
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
    stampede = app.get(StampedeService);
    close = () => app.close();
  });
  beforeEach(async () => {
    await reader.forceFlush();
    metrics.reset();
    spans.reset();
  });
  afterAll(async () => {
    await close();
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  /** A call inside a recording request span of its own, as HTTP instrumentation makes. */
  const inRequest = <T>(call: () => Promise<T>) => {
    const span = requests.startSpan('request');
    return context.with(trace.setSpan(context.active(), span), call).finally(() => span.end());
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const waits = async () => {
    await reader.forceFlush();
    return metrics
      .getMetrics()
      .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
      .filter((metric): metric is HistogramMetricData => metric.descriptor.name === 'stampede.wait.duration')
      .flatMap((metric) => metric.dataPoints);
  };
  const flightAndFollowers = () => {
    const finished = spans.getFinishedSpans();
    const flights = finished.filter((span) => span.name === 'stampede.flight');
    expect(flights).toHaveLength(1);
    const [flight] = flights;
    const followers = finished.filter(
      (span) => span.name === 'request' && span.spanContext().spanId !== flight.parentSpanContext?.spanId,
    );
    return { flight, followers };
  };

  it.each<[string, RunOptions | undefined]>([
    ['the cheap join (told together)', undefined],
    ['the full join (told one by one)', { waitTimeout: 60_000 }],
  ])(
    '50 callers in two bursts, %s: 49 links and events, 49 waits, each burst timed from its own start',
    async (name, options) => {
      const gate = deferred<string>();
      const call = () => inRequest(() => stampede.run(`report:${name}`, () => gate.promise, options));
      // The leader and 24 followers in one turn; 25 more some 40 ms later.
      const calls = Array.from({ length: 25 }, call);
      await sleep(40);
      calls.push(...Array.from({ length: 25 }, call));
      await until(() => stampede.stats().waiting === 50, '50 callers waiting');
      await sleep(20);
      gate.resolve('done');
      await expect(Promise.all(calls)).resolves.toEqual(Array(50).fill('done'));

      const { flight, followers } = flightAndFollowers();
      expect(followers).toHaveLength(49);
      for (const follower of followers) {
        expect(follower.links.map((link) => link.context.spanId)).toEqual([flight.spanContext().spanId]);
        expect(follower.links[0].attributes).toEqual({ 'stampede.key_hash': flight.attributes['stampede.key_hash'] });
        expect(follower.events.map((event) => [event.name, event.attributes])).toEqual([
          ['stampede.wait', { 'stampede.outcome': 'collapsed' }],
        ]);
      }
      expect(flight.attributes['stampede.waiters']).toBe(50);

      const points = await waits();
      expect(points.map((point) => point.attributes)).toEqual([{ 'stampede.outcome': 'collapsed' }]);
      const { count, min, max, sum } = points[0].value;
      expect(count).toBe(49);
      // The second burst waited at least the last 20 ms; the first, 40 ms more (timers fire late, never early),
      // less how much sooner it may have been told when told one by one (a shared start would give ~0).
      expect(min).toBeGreaterThanOrEqual(19);
      expect(max! - min!).toBeGreaterThanOrEqual(30);
      // Two clusters: 24 waits in the upper half of the range, 25 in the lower (each burst timed from its own
      // start; timed from one start, all 49 would sit at one end). Halves, not a fixed margin: a busy machine
      // spreads each cluster by tens of milliseconds.
      const middle = (min! + max!) / 2;
      expect(sum).toBeGreaterThanOrEqual(24 * middle + 25 * min!);
      expect(sum).toBeLessThanOrEqual(24 * max! + 25 * middle);
    },
  );

  it('a failed flight: every follower told `error`, on its span and in the histogram', async () => {
    const gate = deferred<string>();
    const calls = Array.from({ length: 10 }, () =>
      inRequest(() => stampede.run('failing', () => gate.promise)).catch((error: Error) => error.message),
    );
    await until(() => stampede.stats().waiting === 10, '10 callers waiting');
    gate.reject(new Error('upstream down'));
    await expect(Promise.all(calls)).resolves.toEqual(Array(10).fill('upstream down'));

    const { flight, followers } = flightAndFollowers();
    expect(followers).toHaveLength(9);
    for (const follower of followers) {
      expect(follower.links.map((link) => link.context.spanId)).toEqual([flight.spanContext().spanId]);
      expect(follower.events.map((event) => event.attributes)).toEqual([{ 'stampede.outcome': 'error' }]);
    }
    const points = await waits();
    expect(points.map((point) => [point.attributes, point.value.count])).toEqual([
      [{ 'stampede.outcome': 'error' }, 9],
    ]);
  });

  it('callers outside any request span are timed, and a later flight of the key starts a batch of its own', async () => {
    for (const round of [1, 2]) {
      const gate = deferred<string>();
      const calls = Array.from({ length: 20 }, () => stampede.run(`bare:${round}`, () => gate.promise));
      await until(() => stampede.stats().waiting === 20, '20 callers waiting');
      gate.resolve('done');
      await Promise.all(calls);
    }
    expect(spans.getFinishedSpans().map((span) => span.name)).toEqual(['stampede.flight', 'stampede.flight']);
    const points = await waits();
    expect(points.reduce((sum, point) => sum + point.value.count, 0)).toBe(38);
  });
});
