import { Controller, Get, INestApplication, Version, VersioningType, UseInterceptors } from '@nestjs/common';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions } from '../../lib';
import { PLATFORMS, Platform, RunningApp, request, startApp } from '../apps/http-app';

/**
 * Where the edge sits in each adapter's request path: what the user registered
 * before it keeps running on an edge hit, and routing changes nothing of the key.
 */
let handled = 0;

@Controller('page')
@UseInterceptors(StampedeInterceptor)
@Coalesce({ edge: true })
class PageController {
  @Get()
  page() {
    handled++;
    return { page: handled };
  }

  @Get('v')
  @Version('2')
  versioned() {
    handled++;
    return { v2: handled };
  }
}

/** Counts the requests a user hook or middleware saw, added the way apps add them, before listen(). */
function countRequests(platform: Platform, seen: { n: number }) {
  return (app: INestApplication) => {
    if (platform === 'fastify') {
      const fastify = app.getHttpAdapter().getInstance() as {
        addHook(name: string, hook: (...args: never[]) => void): void;
      };
      fastify.addHook(
        'onRequest',
        (_request: never, reply: { header(n: string, v: string): void }, done: () => void) => {
          seen.n++;
          reply.header('x-seen', String(seen.n));
          done();
        },
      );
    } else {
      app.use((_request: unknown, response: { setHeader(n: string, v: string): void }, next: () => void) => {
        seen.n++;
        response.setHeader('x-seen', String(seen.n));
        next();
      });
    }
  };
}

describe.each(PLATFORMS)('the edge in the request path of %s', (platform: Platform) => {
  let running: RunningApp;
  afterEach(() => running.close());

  const start = (options: StampedeModuleOptions, configure?: (app: INestApplication) => void) =>
    startApp(
      platform,
      { imports: [StampedeModule.forRoot({ ttl: 60_000, ...options })], controllers: [PageController] },
      configure,
    ).then((app) => (running = app));

  it('runs after what the app registered before listen() (a global middleware, a Fastify onRequest hook)', async () => {
    const seen = { n: 0 };
    await start({}, countRequests(platform, seen));
    handled = 0;
    await request(`${running.url}/page`);
    const hit = await request(`${running.url}/page`);
    expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(handled).toBe(1);
    expect(seen.n).toBe(2);
    // Set before the edge on this request, not replayed from the stored one.
    expect(hit.headers['x-seen']).toBe('2');
  });

  it('answers under a global prefix and URI versioning, each URL under its own key', async () => {
    await start({}, (app) => {
      app.setGlobalPrefix('api');
      app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
    });
    handled = 0;
    for (const path of ['/api/v1/page', '/api/v2/page/v']) {
      await request(`${running.url}${path}`);
      expect((await request(`${running.url}${path}`)).headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    }
    expect(handled).toBe(2);
    // Another URL of the same route is another key, stored apart as the interceptor stores it.
    const other = await request(`${running.url}/api/v1/page?x=1`);
    expect(other.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
  });

  it('counts an edge hit in the OpenTelemetry metrics (the real SDK)', async () => {
    const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    try {
      await start({ openTelemetry: { traces: false, meter: meterProvider.getMeter('app') } });
      await request(`${running.url}/page`);
      await request(`${running.url}/page`);
      await request(`${running.url}/page`);
      await reader.forceFlush();
      const events = metrics
        .getMetrics()
        .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
        .find((metric) => metric.descriptor.name === 'stampede.events')!;
      const count = (type: string) =>
        events.dataPoints
          .filter((point) => point.attributes['stampede.event'] === type)
          .reduce((sum, point) => sum + (point.value as number), 0);
      expect(count('miss')).toBe(1);
      expect(count('hit')).toBe(2);
    } finally {
      await meterProvider.shutdown();
    }
  });
});

describe('the edge and the Fastify hooks that run after onRequest', () => {
  let running: RunningApp;
  afterEach(() => running.close());

  /** A preValidation hook that authenticates by a client certificate, a preHandler that blocks. */
  const withLaterHooks = (app: INestApplication) => {
    const fastify = app.getHttpAdapter().getInstance() as { addHook(name: string, hook: unknown): void };
    fastify.addHook('preValidation', async (req: { headers: Record<string, string>; user?: unknown }) => {
      if (req.headers['x-client-cert'] === 'alice') req.user = { name: 'alice' };
    });
    fastify.addHook(
      'preHandler',
      async (req: { headers: Record<string, string> }, reply: { code(n: number): { send(b: unknown): unknown } }) => {
        if (req.headers['x-blocked'] === '1') return reply.code(403).send({ denied: true });
      },
    );
  };

  it('keeps a route whose preValidation / preHandler hooks an edge hit would skip off the edge: they run on every request', async () => {
    running = await startApp(
      'fastify',
      { imports: [StampedeModule.forRoot({ ttl: 60_000 })], controllers: [PageController] },
      withLaterHooks,
    );
    const first = await request(`${running.url}/page`);
    expect(first.status).toBe(200);
    const blocked = await request(`${running.url}/page`, { headers: { 'x-blocked': '1' } });
    expect([blocked.status, JSON.parse(blocked.text)]).toEqual([403, { denied: true }]);
    const alice = await request(`${running.url}/page`, { headers: { 'x-client-cert': 'alice' } });
    // Her request carries a user: never another caller's response.
    expect(alice.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
    // Anonymous hits are the interceptor's (after the hooks), not the edge's.
    const before = handled;
    const hit = await request(`${running.url}/page`);
    expect(hit.headers['cache-status']).toMatch(/; hit; ttl=/);
    expect(handled).toBe(before);
  });

  it('answers at the edge when the kinds of those hooks are listed as safe to skip', async () => {
    running = await startApp(
      'fastify',
      {
        imports: [StampedeModule.forRoot({ ttl: 60_000, edge: { skip: ['preValidation', 'preHandler'] } })],
        controllers: [PageController],
      },
      withLaterHooks,
    );
    await request(`${running.url}/page`);
    const blocked = await request(`${running.url}/page`, { headers: { 'x-blocked': '1' } });
    // Listed as safe: the edge answered, the blocking hook did not run.
    expect(blocked.status).toBe(200);
  });

  it("keeps off the edge a route whose own onRequest hook runs after the edge's (as @fastify/rate-limit adds one per route), and a preParsing hook", async () => {
    const limited = (app: INestApplication) => {
      const fastify = app.getHttpAdapter().getInstance() as {
        addHook(name: string, hook: unknown): void;
      };
      // Per route, as a plugin adds it through onRoute: it runs after every root onRequest hook, the edge's too.
      fastify.addHook('onRoute', (route: { onRequest?: unknown }) => {
        route.onRequest = [
          async (
            req: { headers: Record<string, string> },
            reply: { code(n: number): { send(b: unknown): unknown } },
          ) => {
            if (req.headers['x-over-limit'] === '1') return reply.code(429).send({ limited: true });
          },
        ];
      });
    };
    running = await startApp(
      'fastify',
      { imports: [StampedeModule.forRoot({ ttl: 60_000 })], controllers: [PageController] },
      limited,
    );
    await request(`${running.url}/page`);
    const over = await request(`${running.url}/page`, { headers: { 'x-over-limit': '1' } });
    expect([over.status, JSON.parse(over.text)]).toEqual([429, { limited: true }]);
    await running.close();

    running = await startApp(
      'fastify',
      {
        imports: [StampedeModule.forRoot({ ttl: 60_000, edge: { skip: ['onRequest'] } })],
        controllers: [PageController],
      },
      limited,
    );
    await request(`${running.url}/page`);
    // Listed as safe: the edge answered before the route's own hook.
    expect((await request(`${running.url}/page`, { headers: { 'x-over-limit': '1' } })).status).toBe(200);
  });
});
