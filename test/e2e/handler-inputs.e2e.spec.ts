import {
  Controller,
  Get,
  Headers,
  INestApplication,
  Ip,
  Param,
  Req,
  UseInterceptors,
  Version,
  VersioningType,
} from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, Platform, RunningApp, Reply, rawRequest, request, startApp } from '../apps/http-app';

/**
 * What a handler reads of the request beyond its target is keyed: the version
 * a request routed by, the URL a rewrite routed, the query string when no
 * parser read it, the headers its `@Headers('name')` parameters read and the
 * address its `@Ip()` reads. Each case: a request that differs there gets its
 * own response, and one that does not is still a hit.
 */

const json = (reply: Reply): unknown => JSON.parse(reply.text);
const hit = (reply: Reply): boolean => /; hit/.test(reply.headers['cache-status'] ?? '');

@Controller('items')
@UseInterceptors(StampedeInterceptor)
class VersionedController {
  @Get()
  @Version('1')
  v1() {
    return { version: 1 };
  }

  @Get()
  @Version('2')
  v2() {
    return { version: 2 };
  }
}

@Controller()
@UseInterceptors(StampedeInterceptor)
class InputsController {
  @Get('greeting/:lang')
  greeting(@Param('lang') lang: string) {
    return { lang };
  }

  /** Content negotiation by hand: the `Accept` it reads decides the body. */
  @Get('doc')
  doc(@Headers('accept') accept: string | undefined) {
    return accept?.includes('text/csv') ? 'id,name\n1,a\n' : { rows: [{ id: 1, name: 'a' }] };
  }

  /** Answers with what it reads of the client's address (a geo lookup would). */
  @Get('near')
  near(@Ip() ip: string) {
    return { near: ip };
  }

  /** Reads its query from the URL: with Express's query parser off there is no `@Query()`. */
  @Get('list')
  list(@Req() req: { originalUrl: string }) {
    return { page: new URL(req.originalUrl, 'http://x').searchParams.get('page') };
  }
}

/** A decorator that wraps the handler, as tracing does (copying its metadata): the function has another name. */
function Traced(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as (...args: unknown[]) => unknown;
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      return original.apply(this, args);
    };
    for (const key of Reflect.getMetadataKeys(original)) {
      Reflect.defineMetadata(key, Reflect.getMetadata(key, original), descriptor.value);
    }
  };
}

@Controller('wrapped')
@UseInterceptors(StampedeInterceptor)
class WrappedController {
  @Get('doc')
  @Traced()
  doc(@Headers('accept') accept: string | undefined) {
    return { csv: accept?.includes('text/csv') ?? false };
  }

  @Get('near')
  @Traced()
  near(@Ip() ip: string) {
    return { near: ip };
  }

  /** Every header: nothing the key could hold. */
  @Get('all')
  all(@Headers() headers: Record<string, string | undefined>) {
    return { tenant: headers['x-tenant'] ?? null };
  }
}

const PICK_LANGUAGE = (value: unknown) => (String(value ?? '').startsWith('fr') ? 'fr' : 'en');

function start(platform: Platform, configure?: (app: INestApplication) => void): Promise<RunningApp> {
  return startApp(
    platform,
    {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: [VersionedController, InputsController, WrappedController],
    },
    (app) => {
      app.enableVersioning({ type: VersioningType.HEADER, header: 'x-api-version' });
      configure?.(app);
    },
    // Fastify's own rewrite, before routing: `/greeting` goes to the caller's language.
    platform === 'fastify'
      ? {
          rewriteUrl: (req) =>
            req.url === '/greeting' ? `/greeting/${PICK_LANGUAGE(req.headers['accept-language'])}` : (req.url ?? '/'),
        }
      : undefined,
  );
}

describe.each(PLATFORMS)('what the handler reads is keyed (%s)', (platform) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await start(platform, (app) => {
      // Express: the same rewrite as a middleware setting `req.url`.
      if (platform === 'express') {
        app.use((req: { url: string; headers: Record<string, string> }, _res: unknown, next: () => void) => {
          if (req.url === '/greeting') req.url = `/greeting/${PICK_LANGUAGE(req.headers['accept-language'])}`;
          next();
        });
      }
    });
  });
  afterAll(() => running.close());

  it('a version routed by a header: each version its own response, one version a hit', async () => {
    const v1 = await request(`${running.url}/items`, { headers: { 'x-api-version': '1' } });
    expect(json(v1)).toEqual({ version: 1 });
    const v2 = await request(`${running.url}/items`, { headers: { 'x-api-version': '2' } });
    expect(hit(v2)).toBe(false);
    expect(json(v2)).toEqual({ version: 2 });
    const again = await request(`${running.url}/items`, { headers: { 'x-api-version': '2' } });
    expect(hit(again)).toBe(true);
    expect(json(again)).toEqual({ version: 2 });
  });

  it('a URL rewritten before routing: keyed by the URL routed, not only the one sent', async () => {
    const en = await request(`${running.url}/greeting`, { headers: { 'accept-language': 'en' } });
    expect(json(en)).toEqual({ lang: 'en' });
    const fr = await request(`${running.url}/greeting`, { headers: { 'accept-language': 'fr' } });
    expect(json(fr)).toEqual({ lang: 'fr' });
    const frAgain = await request(`${running.url}/greeting`, { headers: { 'accept-language': 'fr-CH' } });
    expect(hit(frAgain)).toBe(true);
    expect(json(frAgain)).toEqual({ lang: 'fr' });
  });

  it('a header a parameter reads (@Headers("accept")) splits the key', async () => {
    expect(json(await request(`${running.url}/doc`, { headers: { accept: 'application/json' } }))).toEqual({
      rows: [{ id: 1, name: 'a' }],
    });
    const csv = await request(`${running.url}/doc`, { headers: { accept: 'text/csv' } });
    expect(hit(csv)).toBe(false);
    expect(csv.text).toBe('id,name\n1,a\n');
    expect(hit(await request(`${running.url}/doc`, { headers: { accept: 'text/csv' } }))).toBe(true);
  });

  it('under a decorator that wraps the handler too: @Headers("accept") and @Ip() split the key', async () => {
    await request(`${running.url}/wrapped/doc`, { headers: { accept: 'application/json' } });
    const csv = await request(`${running.url}/wrapped/doc`, { headers: { accept: 'text/csv' } });
    expect(hit(csv)).toBe(false);
    expect(json(csv)).toEqual({ csv: true });
    await rawRequest(running.url, '/wrapped/near', { localAddress: '127.0.0.1' });
    const other = await rawRequest(running.url, '/wrapped/near', { localAddress: '127.0.0.2' });
    expect(json(other)).toEqual({ near: '127.0.0.2' });
  });

  it('@Headers() (every header) is not coalesced: each tenant gets its own response', async () => {
    await request(`${running.url}/wrapped/all`, { headers: { 'x-tenant': 'a' } });
    const b = await request(`${running.url}/wrapped/all`, { headers: { 'x-tenant': 'b' } });
    expect(json(b)).toEqual({ tenant: 'b' });
    expect(b.headers['cache-status']).toBeUndefined();
  });

  it('the address @Ip() reads splits the key: two clients, two responses', async () => {
    const one = await rawRequest(running.url, '/near', { localAddress: '127.0.0.1' });
    expect(json(one)).toEqual({ near: '127.0.0.1' });
    const other = await rawRequest(running.url, '/near', { localAddress: '127.0.0.2' });
    expect(hit(other)).toBe(false);
    expect(json(other)).toEqual({ near: '127.0.0.2' });
    const oneAgain = await rawRequest(running.url, '/near', { localAddress: '127.0.0.1' });
    expect(hit(oneAgain)).toBe(true);
    expect(json(oneAgain)).toEqual({ near: '127.0.0.1' });
  });
});

describe("Express with its query parser off (app.set('query parser', false))", () => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await start('express', (app) => void (app as NestExpressApplication).set('query parser', false));
  });
  afterAll(() => running.close());

  it('keys by the raw query string: page 2 is not answered with page 1', async () => {
    expect(json(await request(`${running.url}/list?page=1`))).toEqual({ page: '1' });
    const two = await request(`${running.url}/list?page=2`);
    expect(hit(two)).toBe(false);
    expect(json(two)).toEqual({ page: '2' });
    expect(hit(await request(`${running.url}/list?page=2`))).toBe(true);
  });
});
