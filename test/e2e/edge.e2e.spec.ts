import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  Header,
  Injectable,
  NestInterceptor,
  Param,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { Observable } from 'rxjs';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';
import {
  PLATFORMS,
  Platform,
  Reply,
  RunningApp,
  rawRequest,
  request,
  setResponseHeader,
  startApp,
} from '../apps/http-app';
import { Origin } from '../apps/origin';

/** Counts every run of Nest's pipeline on the routes it is bound to: listed as safe to skip, it shows what the edge skipped. */
@Injectable()
class PipelineCounter implements NestInterceptor {
  static runs = 0;
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    PipelineCounter.runs++;
    return next.handle();
  }
}

@Controller('edge')
@UseInterceptors(PipelineCounter, StampedeInterceptor)
@Coalesce({ edge: { skip: [PipelineCounter] } })
class EdgeController {
  constructor(private readonly origin: Origin) {}

  @Get('doc/:id')
  @Header('X-Route', 'doc')
  async doc(@Param('id') id: string, @Res({ passthrough: true }) res: never) {
    setResponseHeader(res, 'X-Handler', `set-${id}`);
    return { id, n: await this.origin.run(`doc-${id}`) };
  }

  @Get('tagged')
  @Coalesce({ tags: ['catalog'] })
  async tagged() {
    return { n: await this.origin.run('tagged') };
  }

  @Get('vary')
  async vary(@Res({ passthrough: true }) res: never) {
    setResponseHeader(res, 'Vary', 'Accept-Language');
    return { n: await this.origin.run('vary') };
  }

  @Get('stale')
  @Coalesce({ ttl: 1, staleTtl: 60_000 })
  async stale() {
    return { n: await this.origin.run('stale') };
  }

  @Get('off')
  @Coalesce({ edge: false })
  async off() {
    return { n: await this.origin.run('off') };
  }
}

const n = (reply: Reply) => (JSON.parse(reply.text) as { n: number }).n;
/** The headers of a reply that may differ between two equal answers: the date, and the seconds of Age. */
const comparable = (reply: Reply) => {
  const { date: _date, ...headers } = reply.headers;
  return headers;
};

describe.each(PLATFORMS)('edge hits on %s', (platform: Platform) => {
  let running: RunningApp;
  let origin: Origin;

  async function start(options: StampedeModuleOptions = {}, configure?: Parameters<typeof startApp>[2]) {
    running = await startApp(
      platform,
      {
        imports: [StampedeModule.forRoot({ ttl: 60_000, ...options })],
        controllers: [EdgeController],
        providers: [Origin, PipelineCounter],
      },
      configure,
    );
    origin = running.app.get(Origin);
    PipelineCounter.runs = 0;
  }
  afterEach(() => running.close());

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    request(`${running.url}${path}`, { headers, method });

  it('answers a stored hit without running the pipeline, with what the interceptor would send', async () => {
    await start();
    const miss = await get('/edge/doc/1');
    expect(miss.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expect(PipelineCounter.runs).toBe(1);
    const hits = [await get('/edge/doc/1'), await get('/edge/doc/1'), await get('/edge/doc/1')];
    expect(PipelineCounter.runs).toBe(1);
    expect(origin.calls('doc-1')).toBe(1);
    for (const hit of hits) {
      expect(hit.status).toBe(200);
      expect(JSON.parse(hit.text)).toEqual({ id: '1', n: 1 });
      expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
      expect(hit.headers['x-route']).toBe('doc');
      expect(hit.headers['x-handler']).toBe('set-1');
      expect(hit.headers['age']).toMatch(/^\d+$/);
    }
    // Another id is another key: a miss, through the pipeline.
    expect(n(await get('/edge/doc/2'))).toBe(1);
    expect(PipelineCounter.runs).toBe(2);
  });

  it('sends the same status, headers and body as an interceptor hit of the same route', async () => {
    await start();
    // The same route with the tier off: PlainController is EdgeController without edge.
    const plain = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: [PlainController],
      providers: [Origin],
    });
    try {
      await get('/edge/doc/7');
      const runs = PipelineCounter.runs;
      const edgeHit = await get('/edge/doc/7');
      expect(PipelineCounter.runs).toBe(runs);
      await request(`${plain.url}/edge/doc/7`);
      const interceptorHit = await request(`${plain.url}/edge/doc/7`);
      expect(interceptorHit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
      expect(edgeHit.status).toBe(interceptorHit.status);
      expect(edgeHit.text).toBe(interceptorHit.text);
      expect(comparable(edgeHit)).toEqual(comparable(interceptorHit));
      // A 304 for the validator the hit carried, from the edge too (raw: fetch would add Cache-Control: no-cache).
      const conditional = { headers: { 'if-none-match': edgeHit.headers['etag'] } };
      const notModified = await rawRequest(running.url, '/edge/doc/7', conditional);
      const plainNotModified = await rawRequest(plain.url, '/edge/doc/7', conditional);
      expect(PipelineCounter.runs).toBe(runs);
      expect(notModified.status).toBe(304);
      expect(notModified.text).toBe('');
      expect(comparable(notModified)).toEqual(comparable(plainNotModified));
    } finally {
      await plain.close();
    }
  });

  it('answers HEAD at the edge, under its own key', async () => {
    await start();
    const get1 = await get('/edge/doc/3');
    const head = await get('/edge/doc/3', {}, 'HEAD');
    expect(head.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    const runs = PipelineCounter.runs;
    const headHit = await get('/edge/doc/3', {}, 'HEAD');
    expect(PipelineCounter.runs).toBe(runs);
    expect(headHit.status).toBe(200);
    expect(headHit.text).toBe('');
    expect(headHit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(headHit.headers['content-length']).toBe(get1.headers['content-length']);
  });

  it.each([
    ['authorization', { authorization: 'Bearer a' }],
    ['cookie', { cookie: 'sid=1' }],
    ['x-api-key', { 'x-api-key': 'k' }],
    ['cache-control: no-cache', { 'cache-control': 'no-cache' }],
    ['cache-control: max-age=0', { 'cache-control': 'max-age=0' }],
    ['pragma: no-cache', { pragma: 'no-cache' }],
  ])('never answers a request with %s at the edge', async (_name, headers) => {
    await start();
    await get('/edge/doc/4');
    const runs = PipelineCounter.runs;
    await get('/edge/doc/4', headers);
    expect(PipelineCounter.runs).toBe(runs + 1);
  });

  it('sees an invalidation at once', async () => {
    await start();
    await get('/edge/tagged');
    expect(n(await get('/edge/tagged'))).toBe(1);
    await running.app.get(StampedeService).invalidateTags(['catalog']);
    const after = await get('/edge/tagged');
    expect(n(after)).toBe(2);
    expect(after.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
  });

  it('leaves a stale value and a Vary variant to the interceptor path', async () => {
    await start();
    await get('/edge/stale');
    const runs = PipelineCounter.runs;
    const stale = await get('/edge/stale');
    expect(stale.headers['cache-status']).toMatch(/detail=stale-while-revalidate/);
    expect(PipelineCounter.runs).toBe(runs + 1);

    await get('/edge/vary', { 'accept-language': 'en' });
    const before = PipelineCounter.runs;
    const sameVariant = await get('/edge/vary', { 'accept-language': 'en' });
    expect(sameVariant.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(PipelineCounter.runs).toBe(before);
    const other = await get('/edge/vary', { 'accept-language': 'de' });
    expect(PipelineCounter.runs).toBe(before + 1);
    expect(other.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expect(origin.calls('vary')).toBe(2);
  });

  it('counts an edge hit as a hit in stats and events', async () => {
    await start();
    const stampede = () => running.app.get(StampedeService);
    const events: string[] = [];
    stampede().on((event) => events.push(event.type));
    await get('/edge/doc/5');
    await get('/edge/doc/5');
    expect(stampede().stats().hits).toBe(1);
    expect(events).toContain('hit');
  });

  it('keeps CORS per origin with app.enableCors', async () => {
    await start({}, (app) => app.enableCors({ origin: ['https://a.example', 'https://b.example'] }));
    await get('/edge/doc/6', { origin: 'https://a.example' });
    const runs = PipelineCounter.runs;
    const a = await get('/edge/doc/6', { origin: 'https://a.example' });
    const b = await get('/edge/doc/6', { origin: 'https://b.example' });
    const a2 = await get('/edge/doc/6', { origin: 'https://a.example' });
    expect(a.headers['access-control-allow-origin']).toBe('https://a.example');
    expect(a.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(b.headers['access-control-allow-origin']).toBe('https://b.example');
    expect(a2.headers['access-control-allow-origin']).toBe('https://a.example');
    // CORS varies on Origin: b is a variant of its own, through the pipeline once.
    expect(PipelineCounter.runs).toBe(runs + 1);
    expect(origin.calls('doc-6')).toBe(2);
  });
});

/** EdgeController without the tier, for the interceptor's own hit. */
@Controller('edge')
@UseInterceptors(StampedeInterceptor)
class PlainController {
  constructor(private readonly origin: Origin) {}

  @Get('doc/:id')
  @Header('X-Route', 'doc')
  async doc(@Param('id') id: string, @Res({ passthrough: true }) res: never) {
    setResponseHeader(res, 'X-Handler', `set-${id}`);
    return { id, n: await this.origin.run(`doc-${id}`) };
  }
}
