import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  NotFoundException,
  Param,
  Post,
  Res,
  ServiceUnavailableException,
  UseInterceptors,
} from '@nestjs/common';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import {
  PLATFORMS,
  PassthroughResponse,
  RunningApp,
  keyOf,
  request,
  setResponseHeader,
  startApp,
} from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

let failing = false;

@Controller('f')
@UseInterceptors(StampedeInterceptor)
class FreshnessController {
  constructor(private readonly origin: Origin) {}

  @Get('swr')
  @Coalesce({ ttl: 10_000, staleTtl: 60_000 })
  async swr() {
    return { n: await this.origin.run('swr') };
  }

  @Get('sie')
  @Coalesce({ ttl: 10_000, staleIfError: 60_000 })
  async sie() {
    const n = await this.origin.run('sie');
    if (failing) throw new ServiceUnavailableException(`down at run ${n}`);
    return { n };
  }

  @Get('private')
  async private(@Res({ passthrough: true }) res: PassthroughResponse) {
    setResponseHeader(res, 'cache-control', 'private, max-age=60');
    return { n: await this.origin.run('private') };
  }

  @Get('vary')
  async vary(@Headers('accept-language') language: string, @Res({ passthrough: true }) res: PassthroughResponse) {
    setResponseHeader(res, 'vary', 'Accept-Language');
    return { language, n: await this.origin.run('vary') };
  }

  @Get('missing/:id')
  @Coalesce({ statusTtl: { 404: 30_000 } })
  async missing(@Param('id') id: string) {
    await this.origin.run(`missing:${id}`);
    throw new NotFoundException(`no ${id}`);
  }

  @Get('maxage')
  @Coalesce({ respectCacheControl: true })
  async maxAge(@Res({ passthrough: true }) res: PassthroughResponse) {
    setResponseHeader(res, 'cache-control', 'public, s-maxage=7, max-age=1');
    return { n: await this.origin.run('maxage') };
  }

  @Post('query')
  @Coalesce({ keyBody: true })
  async query(@Body() body: { q: string }) {
    return { q: body.q, n: await this.origin.run(`query:${body.q}`) };
  }

  @Get('articles/:id')
  @Coalesce({ tags: (body: { id: string }) => [`article:${body.id}`] })
  async article(@Param('id') id: string) {
    return { id, n: await this.origin.run(`article:${id}`) };
  }

  @Delete('articles/:id')
  async remove(@Param('id') id: string) {
    return { deleted: id };
  }
}

describe.each(PLATFORMS)('freshness on %s', (platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, invalidateOnWrite: true })],
      controllers: [FreshnessController],
      providers: [Origin],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    failing = false;
    await stampede.invalidate({ prefix: '' });
  });
  afterEach(() => jest.useRealTimers());

  const get = (path: string, headers: Record<string, string> = {}) => request(`${running.url}${path}`, { headers });

  it('serves the stale value at once to every caller while exactly one refresh runs, then the new one', async () => {
    await get('/f/swr');
    fakeDateOnly();
    jest.setSystemTime(Date.now() + 10_001);
    origin.hold('swr');
    const stored = stampede.stats().stored;
    const replies = await Promise.all(Array.from({ length: 10 }, () => get('/f/swr')));
    for (const reply of replies) {
      expect(reply.text).toBe('{"n":1}');
      expect(reply.headers['cache-status']).toMatch(/^nestjs-stampede; hit; ttl=-1; detail=stale-while-revalidate$/);
    }
    expect(origin.calls('swr')).toBe(2);
    origin.open('swr');
    await until(() => stampede.stats().stored === stored + 1, 'the refreshed value stored');
    const fresh = await get('/f/swr');
    expect(fresh.text).toBe('{"n":2}');
    expect(fresh.headers['cache-status']).toMatch(/; hit; ttl=10$/);
  });

  it('serves the stale value in place of an error within staleIfError', async () => {
    await get('/f/sie');
    fakeDateOnly();
    jest.setSystemTime(Date.now() + 10_001);
    failing = true;
    const reply = await get('/f/sie');
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"n":1}');
    expect(reply.headers['cache-status']).toMatch(/detail=stale-if-error$/);
    jest.setSystemTime(Date.now() + 60_000);
    const tooOld = await get('/f/sie');
    expect(tooOld.status).toBe(503);
  });

  it('never shares a response marked Cache-Control: private: each waiter runs its own handler, nothing is stored', async () => {
    const replies = await burst(3, 'private', 'GET /f/private', () => get('/f/private'));
    expect(replies.map((r) => r.text).sort()).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    const next = await get('/f/private');
    expect(next.text).toBe('{"n":4}');
  });

  it('lets a request with Cache-Control: no-store through', async () => {
    await get('/f/swr');
    const bypassed = await get('/f/swr', { 'cache-control': 'no-store' });
    expect(bypassed.text).toBe('{"n":2}');
    expect(bypassed.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
  });

  it('never answers with a response that varies on a header this caller sent differently, and stores each variant', async () => {
    const en = await get('/f/vary', { 'accept-language': 'en' });
    const enAgain = await get('/f/vary', { 'accept-language': 'en' });
    const fr = await get('/f/vary', { 'accept-language': 'fr' });
    const frAgain = await get('/f/vary', { 'accept-language': 'fr' });
    expect(enAgain.text).toBe(en.text);
    expect(JSON.parse(fr.text)).toEqual({ language: 'fr', n: 2 });
    expect(frAgain.text).toBe(fr.text);
    expect(frAgain.headers['cache-status']).toMatch(/; hit;/);
    expect(origin.calls('vary')).toBe(2);
  });

  it('coalesces the callers of one variant while another variant is stored', async () => {
    await get('/f/vary', { 'accept-language': 'en' });
    origin.hold('vary');
    const de = Array.from({ length: 5 }, () => get('/f/vary', { 'accept-language': 'de' }));
    await until(() => origin.calls('vary') === 2, 'the de variant running');
    await until(() => stampede.stats().inFlight === 1 && stampede.stats().waiting === 5, '5 de callers waiting');
    origin.open('vary');
    const replies = await Promise.all(de);
    expect(new Set(replies.map((r) => r.text))).toEqual(new Set(['{"language":"de","n":2}']));
    expect(origin.calls('vary')).toBe(2);
  });

  it('stores a 404 for its statusTtl, and adds an Age header to hits', async () => {
    const first = await get('/f/missing/7');
    const second = await get('/f/missing/7');
    expect([first.status, second.status]).toEqual([404, 404]);
    expect(origin.calls('missing:7')).toBe(1);
    expect(second.headers['cache-status']).toMatch(/; hit; ttl=30$/);
    expect(second.headers.age).toBe('0');
  });

  it('takes the ttl from s-maxage with respectCacheControl', async () => {
    await get('/f/maxage');
    const hit = await get('/f/maxage');
    expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=7');
  });

  it('coalesces and stores POST requests by their body with keyBody', async () => {
    const post = (q: string) =>
      request(`${running.url}/f/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ q }),
      });
    await post('cats');
    const again = await post('cats');
    const other = await post('dogs');
    expect(again.headers['cache-status']).toMatch(/; hit;/);
    expect(JSON.parse(other.text)).toEqual({ q: 'dogs', n: 1 });
    expect(origin.calls('query:cats')).toBe(1);
  });

  it('drops values by tag, and GET responses of a path after a successful DELETE on it', async () => {
    await get('/f/articles/1');
    await get('/f/articles/2');
    stampede.invalidateTags(['article:1']);
    expect((await get('/f/articles/1')).text).toBe('{"id":"1","n":2}');
    expect((await get('/f/articles/2')).headers['cache-status']).toMatch(/; hit;/);

    const deleted = await request(`${running.url}/f/articles/2`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect((await get('/f/articles/2')).text).toBe('{"id":"2","n":2}');
  });

  async function burst(n: number, name: string, key: string, send: () => ReturnType<typeof get>) {
    origin.hold(name);
    const replies = Array.from({ length: n }, send);
    await until(() => stampede.waiters(keyOf(running, key)) === n, `${n} waiters on ${key}`);
    origin.open(name);
    return Promise.all(replies);
  }
});
