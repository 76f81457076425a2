import { Controller, Get, Headers, Res } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import {
  Coalesce,
  CurrentWork,
  StampedeInterceptor,
  StampedeMemoryStore,
  StampedeModule,
  WorkContext,
} from '../../lib';
import {
  PLATFORMS,
  PassthroughResponse,
  RunningApp,
  keyOf,
  rawRequest,
  setResponseHeader,
  startApp,
} from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';
import { README, readmeSnippet } from '../helpers/readme';

/**
 * A route revalidates its stored response with a real upstream: past `ttl`
 * the handler that leads the refresh sees the stored body and its
 * validators, asks the upstream "changed since?" (`If-None-Match`), and on
 * a 304 keeps the stored response (`notModified()`): clients get the old
 * body, the upstream is asked once per refresh, and no new value is stored.
 */

interface Rates {
  etag: string;
  version: number;
}

/** A tiny upstream HTTP server that honours `If-None-Match`, counting what it was asked. */
class Upstream {
  version = 1;
  readonly asked: (string | undefined)[] = [];
  private readonly server = http.createServer((req, res) => {
    const ifNoneMatch = req.headers['if-none-match'];
    this.asked.push(ifNoneMatch);
    if (ifNoneMatch === this.etag) {
      res.writeHead(304, { etag: this.etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', etag: this.etag });
    res.end(JSON.stringify({ etag: this.etag, version: this.version }));
  });

  get etag(): string {
    return `"u${this.version}"`;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/rates`;
  }

  /** GET from the upstream, as a route would. */
  async fetch(ifNoneMatch: string | undefined): Promise<{ status: number; etag: string; rates?: Rates }> {
    const response = await fetch(this.url, { headers: ifNoneMatch ? { 'if-none-match': ifNoneMatch } : {} });
    const etag = response.headers.get('etag') ?? '';
    return response.status === 304
      ? { status: 304, etag }
      : { status: response.status, etag, rates: (await response.json()) as Rates };
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const upstream = new Upstream();
let RATES_URL = '';
beforeAll(async () => {
  await upstream.start();
  RATES_URL = upstream.url;
});
afterAll(() => upstream.stop());

interface UpstreamRates {
  etag: string;
  rates: unknown;
}

// README:route-revalidation
@Controller('upstream-rates')
export class UpstreamRatesController {
  @Get()
  @Coalesce({ ttl: 60_000, staleTtl: 600_000 })
  async rates(@CurrentWork() work?: WorkContext<UpstreamRates>): Promise<UpstreamRates> {
    const stale = work?.stale; // the body this route returned, when it was stored, the ETag sent with it
    const upstream = await fetch(RATES_URL, { headers: stale ? { 'if-none-match': stale.value.etag } : {} });
    if (upstream.status === 304 && work?.stale) return work.notModified(); // the stored response, fresh again
    return { etag: upstream.headers.get('etag') ?? '', rates: await upstream.json() };
  }
}
// README:end

it('the README route revalidation snippet is the code of this file, word for word', () => {
  expect(README).toContain(readmeSnippet(readFileSync(__filename, 'utf8'), 'route-revalidation'));
});

@Controller('rates')
class RatesController {
  /** A proxy of the upstream: its ETag is the response's; past ttl the entry stands by (staleIfError), so the refresh is in the foreground. */
  @Get('proxied')
  @Coalesce({ ttl: 1_000, staleIfError: 600_000 })
  async proxied(
    @CurrentWork() work: WorkContext<Rates> | undefined,
    @Res({ passthrough: true }) res: PassthroughResponse,
  ): Promise<Rates> {
    const answer = await upstream.fetch(work?.stale?.etag); // the validator stored with the response
    if (answer.status === 304 && work?.stale) return work.notModified();
    setResponseHeader(res, 'ETag', answer.etag);
    return answer.rates!;
  }

  /** Stale-while-revalidate: the refresh runs behind a stale answer; the upstream's ETag travels in the body. */
  @Get('background')
  @Coalesce({ ttl: 1_000, staleTtl: 600_000 })
  async background(@CurrentWork() work?: WorkContext<Rates>): Promise<Rates> {
    const answer = await upstream.fetch(work?.stale?.value.etag);
    if (answer.status === 304 && work?.stale) return work.notModified();
    return answer.rates!;
  }
}

/** A response that varies on the language, revalidated on the upstream's (language-free) version. */
@Controller('greeting')
class GreetingController {
  @Get()
  @Coalesce({ ttl: 1_000, staleIfError: 600_000 })
  greet(
    @Headers('accept-language') lang: string,
    @Res({ passthrough: true }) res: PassthroughResponse,
    @CurrentWork() work?: WorkContext<{ lang: string; version: number }>,
  ) {
    setResponseHeader(res, 'Vary', 'Accept-Language');
    if (work?.stale && work.stale.value.version === upstream.version) return work.notModified();
    return { lang, version: upstream.version };
  }
}

describe.each(PLATFORMS)('a route revalidates with its upstream (%s)', (platform) => {
  let running: RunningApp;
  let store: StampedeMemoryStore;

  beforeEach(async () => {
    fakeDateOnly();
    upstream.version = 1;
    upstream.asked.length = 0;
    store = new StampedeMemoryStore(100);
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ store })],
      controllers: [RatesController, UpstreamRatesController, GreetingController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
  });
  afterEach(async () => {
    await running.close();
    jest.useRealTimers();
  });

  // On the wire as sent: fetch() adds `Cache-Control: no-cache` to a conditional request, which asks past any cache.
  const get = (path: string, headers: Record<string, string> = {}) =>
    rawRequest(running.url, path.startsWith('/') ? path : `/rates/${path}`, { headers });

  it('proxied: an upstream 304 keeps the stored response; clients get the old body (or their own 304)', async () => {
    const key = keyOf(running, 'GET /rates/proxied');
    const first = await get('proxied');
    expect([first.status, JSON.parse(first.text), first.headers.etag]).toEqual([
      200,
      { etag: '"u1"', version: 1 },
      '"u1"',
    ]);
    const stored = store.get(key)!;

    jest.setSystemTime(Date.now() + 1_500); // past ttl: the next caller leads a refresh
    const burst = await Promise.all(Array.from({ length: 5 }, () => get('proxied')));
    for (const reply of burst) {
      expect([reply.status, JSON.parse(reply.text), reply.headers.etag]).toEqual([
        200,
        { etag: '"u1"', version: 1 },
        '"u1"',
      ]);
    }
    expect(burst.map((reply) => reply.headers['cache-status'])).toContain(
      'nestjs-stampede; fwd=stale; fwd-status=304; stored',
    );
    // Asked once for the refresh, with the validator stored with the response.
    expect(upstream.asked).toEqual([undefined, '"u1"']);
    // The very response kept, fresh again: no new value written.
    const kept = store.get(key)!;
    expect(kept.v).toBe(stored.v);
    expect(kept.e).toBeGreaterThan(stored.e);

    // A client holding it gets a 304 from the hit.
    const hit = await get('proxied', { 'if-none-match': '"u1"' });
    expect([hit.status, hit.text]).toEqual([304, '']);
    expect(upstream.asked).toHaveLength(2);

    // Past ttl again, a client holding it: the refresh revalidates, and the client gets its own 304.
    jest.setSystemTime(Date.now() + 1_500);
    const revalidated = await get('proxied', { 'if-none-match': '"u1"' });
    expect([revalidated.status, revalidated.text]).toEqual([304, '']);
    expect(upstream.asked).toEqual([undefined, '"u1"', '"u1"']);
    expect(store.get(key)!.v).toBe(stored.v);

    // The upstream changed: a new body, its new ETag, a new value stored.
    upstream.version = 2;
    jest.setSystemTime(Date.now() + 1_500);
    const changed = await get('proxied', { 'if-none-match': '"u1"' });
    expect([changed.status, JSON.parse(changed.text), changed.headers.etag]).toEqual([
      200,
      { etag: '"u2"', version: 2 },
      '"u2"',
    ]);
    expect(changed.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expect(store.get(key)!.v).not.toBe(stored.v);
  });

  it('the README route: the refresh behind a stale answer asks the upstream with the stored ETag and keeps the response on a 304', async () => {
    const key = keyOf(running, 'GET /upstream-rates');
    const first = await get('/upstream-rates');
    expect(JSON.parse(first.text)).toEqual({ etag: '"u1"', rates: { etag: '"u1"', version: 1 } });
    const stored = store.get(key)!;
    jest.setSystemTime(Date.now() + 61_000); // stale: answered at once, one refresh behind it
    expect(JSON.parse((await get('/upstream-rates')).text)).toEqual(JSON.parse(first.text));
    await until(() => (store.get(key)?.e ?? 0) > stored.e, 'the refresh kept the entry fresh again');
    expect(store.get(key)!.v).toBe(stored.v);
    expect(upstream.asked).toEqual([undefined, '"u1"']);
  });

  it('background: a stale answer at once, then one refresh that keeps the stored response on a 304', async () => {
    const key = keyOf(running, 'GET /rates/background');
    const first = await get('background');
    expect(JSON.parse(first.text)).toEqual({ etag: '"u1"', version: 1 });
    const stored = store.get(key)!;

    jest.setSystemTime(Date.now() + 1_500); // stale: answered at once, one refresh behind it
    const stale = await get('background');
    expect([stale.status, JSON.parse(stale.text)]).toEqual([200, { etag: '"u1"', version: 1 }]);
    expect(stale.headers['cache-status']).toMatch(/; hit; ttl=-\d+; detail=stale-while-revalidate$/);
    await until(() => (store.get(key)?.e ?? 0) > stored.e, 'the refresh kept the entry fresh again');
    expect(store.get(key)!.v).toBe(stored.v);
    expect(upstream.asked).toEqual([undefined, '"u1"']); // the old body's ETag, as the handler read it

    const fresh = await get('background');
    expect(fresh.headers['cache-status']).toMatch(/; hit; ttl=\d+$/);
    expect(JSON.parse(fresh.text)).toEqual({ etag: '"u1"', version: 1 });
    expect(upstream.asked).toHaveLength(2);
  });

  it('a stale response of another variant (Vary) is not handed to the handler: notModified() cannot answer with it', async () => {
    const en = await get('/greeting', { 'accept-language': 'en' });
    expect(JSON.parse(en.text)).toEqual({ lang: 'en', version: 1 });
    jest.setSystemTime(Date.now() + 1_500); // past ttl: the en response stands by, stale
    const fr = await get('/greeting', { 'accept-language': 'fr' });
    expect([fr.status, JSON.parse(fr.text)]).toEqual([200, { lang: 'fr', version: 1 }]);
    expect(fr.headers['cache-status']).not.toContain('fwd=stale');
    // The fr response now stands at the key: en, past ttl again, is not answered with it either.
    jest.setSystemTime(Date.now() + 1_500);
    const enAgain = await get('/greeting', { 'accept-language': 'en' });
    expect(JSON.parse(enAgain.text)).toEqual({ lang: 'en', version: 1 });
  });
});
