import {
  Controller,
  Get,
  Header,
  Injectable,
  MiddlewareConsumer,
  Module,
  NestMiddleware,
  NestModule,
  NotFoundException,
  Param,
  Req,
  ServiceUnavailableException,
  UseInterceptors,
} from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, Platform, Reply, RunningApp, keyOf, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

/**
 * The response as sent decides whether it is shared and on what it varies,
 * whoever set its headers: `@Header()` (Nest's own docs example), a
 * middleware, a Fastify hook, the handler; on success and error alike. Each
 * test asserts what every caller received.
 */
interface HeaderReader {
  headers: Record<string, string | undefined>;
}

@Controller('d')
@UseInterceptors(StampedeInterceptor)
class DecidingController {
  constructor(private readonly origin: Origin) {}

  @Get('private')
  @Header('Cache-Control', 'private, max-age=60')
  async private() {
    return { n: await this.origin.run('private') };
  }

  // These read their headers from the request, not through `@Headers(name)` (which would key by them):
  // only the `Vary` of their response splits them.
  @Get('vary')
  @Header('Vary', 'Accept-Language')
  async vary(@Req() request: HeaderReader) {
    return { language: request.headers['accept-language'] ?? null, n: await this.origin.run('vary') };
  }

  /** A middleware marks it `no-store`. */
  @Get('no-store')
  async noStore() {
    return { n: await this.origin.run('no-store') };
  }

  /** A middleware (Express) or a Fastify onRequest hook says it varies on X-Tenant. */
  @Get('tenant')
  async tenant(@Req() request: HeaderReader) {
    return { tenant: request.headers['x-tenant'] ?? null, n: await this.origin.run('tenant') };
  }

  @Get('missing/:id')
  @Coalesce({ statusTtl: { 404: 30_000 } })
  @Header('Vary', 'Accept-Language')
  async missing(@Param('id') id: string, @Req() request: HeaderReader) {
    const language = request.headers['accept-language'];
    const n = await this.origin.run('missing');
    throw new NotFoundException(`${language === 'fr' ? 'introuvable' : 'not found'}: ${id} (run ${n})`);
  }

  @Get('boom')
  async boom() {
    const n = await this.origin.run('boom');
    throw new ServiceUnavailableException(`down (run ${n})`);
  }

  @Get('slow')
  @Coalesce({ timeout: 1_000 })
  async slow() {
    return { n: await this.origin.run('slow') };
  }
}

@Injectable()
class NoStoreMiddleware implements NestMiddleware {
  use(_request: unknown, response: { setHeader(name: string, value: string): void }, next: () => void) {
    response.setHeader('Cache-Control', 'no-store');
    next();
  }
}

@Module({
  imports: [StampedeModule.forRoot({ ttl: 60_000 })],
  controllers: [DecidingController],
  providers: [Origin],
})
class DecidingModule implements NestModule {
  configure(consumer: MiddlewareConsumer) {
    consumer.apply(NoStoreMiddleware).forRoutes('d/no-store');
  }
}

const body = (reply: Reply) => JSON.parse(reply.text) as Record<string, unknown>;
const cacheStatus = (reply: Reply) => reply.headers['cache-status'];

describe.each(PLATFORMS)('the response as sent decides, on %s', (platform: Platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp(platform, { imports: [DecidingModule] }, (app) => {
      if (platform === 'fastify') {
        const fastify = (app as NestFastifyApplication).getHttpAdapter().getInstance();
        fastify.addHook('onRequest', (request, reply, done) => {
          if (request.url.startsWith('/d/tenant')) void reply.header('vary', 'X-Tenant');
          done();
        });
      } else {
        app.use((request: { url: string }, response: { setHeader(n: string, v: string): void }, next: () => void) => {
          if (request.url.startsWith('/d/tenant')) response.setHeader('Vary', 'X-Tenant');
          next();
        });
      }
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    await stampede.invalidate({ prefix: '' });
  });

  const get = (path: string, headers: Record<string, string> = {}) => request(`${running.url}${path}`, { headers });

  /**
   * Sends every request at once, holding the handler until all of them wait on `path`'s key (or, with
   * `alone`, until each runs its own handler: a response its caller's own before the handler is not shared).
   */
  async function burst(name: string, path: string, headers: Record<string, string>[], alone = false): Promise<Reply[]> {
    origin.hold(name);
    const replies = headers.map((h) => get(path, h));
    const ready = alone
      ? () => origin.calls(name) === headers.length
      : () => stampede.waiters(keyOf(running, `GET ${path}`)) === headers.length;
    await until(ready, `callers of ${path}`);
    origin.open(name);
    return Promise.all(replies);
  }

  it('never shares a response made private by @Header(): every concurrent and every later caller runs its own', async () => {
    const concurrent = await burst('private', '/d/private', [{}, {}, {}], true);
    expect(concurrent.map((r) => body(r).n).sort()).toEqual([1, 2, 3]);
    expect((await get('/d/private')).text).toBe('{"n":4}');
    expect((await get('/d/private')).text).toBe('{"n":5}');
  });

  it('never stores or shares a response a middleware marked no-store', async () => {
    const concurrent = await burst('no-store', '/d/no-store', [{}, {}], true);
    expect(concurrent.map((r) => body(r).n).sort()).toEqual([1, 2]);
    expect((await get('/d/no-store')).text).toBe('{"n":3}');
  });

  it('honours a Vary set by @Header(): each language gets its own response (concurrent, then from the store)', async () => {
    const languages = ['en', 'fr', 'en', 'fr', 'de'];
    const replies = await burst(
      'vary',
      '/d/vary',
      languages.map((language) => ({ 'accept-language': language })),
    );
    replies.forEach((reply, i) => expect(body(reply).language).toBe(languages[i]));
    const runOf = (language: string) =>
      new Set(replies.filter((_, i) => languages[i] === language).map((r) => body(r).n));
    expect([runOf('en').size, runOf('fr').size, runOf('de').size]).toEqual([1, 1, 1]);
    expect(origin.calls('vary')).toBe(3);
    for (const language of ['fr', 'en', 'de']) {
      const again = await get('/d/vary', { 'accept-language': language });
      expect(body(again)).toEqual({ language, n: [...runOf(language)][0] });
      expect(cacheStatus(again)).toMatch(/; hit;/);
    }
  });

  it('honours a Vary set before the handler by a middleware or a Fastify hook', async () => {
    const acme = await get('/d/tenant', { 'x-tenant': 'acme' });
    const globex = await get('/d/tenant', { 'x-tenant': 'globex' });
    const acmeAgain = await get('/d/tenant', { 'x-tenant': 'acme' });
    expect([body(acme), body(globex), body(acmeAgain)]).toEqual([
      { tenant: 'acme', n: 1 },
      { tenant: 'globex', n: 2 },
      { tenant: 'acme', n: 1 },
    ]);
  });

  it('honours Vary on an error kept through statusTtl: a French 404 is never answered in English', async () => {
    const en = await get('/d/missing/7', { 'accept-language': 'en' });
    const fr = await get('/d/missing/7', { 'accept-language': 'fr' });
    const enAgain = await get('/d/missing/7', { 'accept-language': 'en' });
    expect([en.status, fr.status, enAgain.status]).toEqual([404, 404, 404]);
    expect(body(en).message).toBe('not found: 7 (run 1)');
    expect(body(fr).message).toBe('introuvable: 7 (run 2)');
    expect(body(enAgain).message).toBe('not found: 7 (run 1)');
    expect(cacheStatus(enAgain)).toMatch(/; hit;/);
  });

  it('says how each caller got a thrown error in Cache-Status: the one that ran it, and the ones that waited', async () => {
    const replies = await burst('boom', '/d/boom', [{}, {}, {}]);
    expect(replies.map((r) => r.status)).toEqual([503, 503, 503]);
    expect(replies.map(cacheStatus).sort()).toEqual([
      'nestjs-stampede; fwd=miss',
      'nestjs-stampede; fwd=miss; collapsed',
      'nestjs-stampede; fwd=miss; collapsed',
    ]);
    expect(new Set(replies.map((r) => body(r).message))).toEqual(new Set(['down (run 1)']));
  });

  it('gives a 504 from `timeout` a Cache-Status too', async () => {
    origin.hold('slow');
    const sent = [get('/d/slow'), get('/d/slow')];
    await until(() => stampede.waiters(keyOf(running, 'GET /d/slow')) === 2, 'both callers');
    const replies = await Promise.all(sent);
    origin.open('slow');
    expect(replies.map((r) => r.status)).toEqual([504, 504]);
    expect(replies.map(cacheStatus).sort()).toEqual([
      'nestjs-stampede; fwd=miss',
      'nestjs-stampede; fwd=miss; collapsed',
    ]);
  });
});
