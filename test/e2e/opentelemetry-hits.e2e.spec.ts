import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { StampedeModule, StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';

/** Hits and stale answers, marked on the recording request span by default; `hitEvents: false` leaves them be. */
describe('OpenTelemetry: hits on the request span', () => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const requests = tracerProvider.getTracer('http');

  beforeAll(() => context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable()));
  beforeEach(() => spans.reset());
  afterAll(async () => {
    context.disable();
    await tracerProvider.shutdown();
  });

  const inRequest = <T>(call: () => Promise<T>) => {
    const span = requests.startSpan('request');
    return context.with(trace.setSpan(context.active(), span), call).finally(() => span.end());
  };
  const start = async (hitEvents?: boolean) => {
    @Module({
      imports: [
        StampedeModule.forRoot({
          ttl: 60_000,
          staleTtl: 60_000,
          openTelemetry: { tracer: tracerProvider.getTracer('app'), metrics: false, hitEvents },
        }),
      ],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    return { stampede: app.get(StampedeService), close: () => app.close() };
  };
  /** A flight with 4 followers, then a hit; then a stale answer (of a value older than its ttl). */
  const scenario = async (stampede: StampedeService) => {
    const gate = deferred<string>();
    const calls = Array.from({ length: 5 }, () => inRequest(() => stampede.run('k', () => gate.promise)));
    await until(() => stampede.stats().waiting === 5, '5 callers waiting');
    gate.resolve('v');
    await Promise.all(calls);
    const flight = spans.getFinishedSpans().map((span) => span.events.map((event) => event.name).join());
    spans.reset();
    await inRequest(() => stampede.run('k', () => 'not run'));
    await stampede.run('old', () => 'old', { ttl: 1 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await inRequest(() => stampede.run('old', () => 'new', { ttl: 1 }));
    const answers = spans.getFinishedSpans().filter((span) => span.name === 'request');
    return { flight: flight.sort(), answers: answers.map((span) => span.events.map((event) => event.name).join()) };
  };

  it('by default: each follower has its stampede.wait, the hit its stampede.hit, the stale answer stampede.stale', async () => {
    const { stampede, close } = await start();
    try {
      // The leader's request span and the flight's own span have no event.
      expect(await scenario(stampede)).toEqual({
        flight: ['', '', ...Array(4).fill('stampede.wait')],
        answers: ['stampede.hit', 'stampede.stale'],
      });
    } finally {
      await close();
    }
  });

  it('hitEvents: false: hits and stale answers unmarked, followers still marked', async () => {
    const { stampede, close } = await start(false);
    try {
      expect(await scenario(stampede)).toEqual({
        flight: ['', '', ...Array(4).fill('stampede.wait')],
        answers: ['', ''],
      });
    } finally {
      await close();
    }
  });

  it('hitEvents must be a boolean', async () => {
    await expect(
      Test.createTestingModule({
        imports: [StampedeModule.forRoot({ openTelemetry: { hitEvents: 'no' as never } })],
      }).compile(),
    ).rejects.toThrow(/option "openTelemetry".*hitEvents\?: boolean/);
  });
});
