import { Body, Controller, Get, Headers, Query, Req, UseInterceptors } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, Platform, Reply, RunningApp, http2Request, rawRequest, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

/**
 * The key holds every input the handler sees. Each attack: a request that
 * differs from another only where the old key did not look, sent before or
 * alongside the victim's; the victim must get what its own handler run gives
 * (the oracle: the same handler behind @SkipCoalesce).
 */
type Seen = { host: string | null; hostname: string | null; query: unknown; body: unknown };

function seen(host: string | undefined, request: { hostname?: string; body?: unknown }, query: unknown): Seen {
  return { host: host ?? null, hostname: request.hostname ?? null, query, body: request.body ?? null };
}

@Controller('k')
@UseInterceptors(StampedeInterceptor)
class KeysController {
  constructor(private readonly origin: Origin) {}

  @Get('echo')
  async echo(
    @Headers('host') host: string | undefined,
    @Req() request: { hostname?: string },
    @Query() query: unknown,
  ) {
    await this.origin.run('echo');
    return seen(host, request, query);
  }

  /** The oracle: the same handler, never coalesced. */
  @Get('oracle')
  @SkipCoalesce()
  oracle(@Headers('host') host: string | undefined, @Req() request: { hostname?: string }, @Query() query: unknown) {
    return seen(host, request, query);
  }

  /** Builds an absolute link the way apps do behind a proxy: from what the platform says the request was. */
  @Get('link')
  async link(@Req() request: { protocol: string; hostname: string }) {
    await this.origin.run('link');
    return { link: `${request.protocol}://${request.hostname}/k/next` };
  }

  /** What an app may read of the host besides its name: `request.host` keeps the port. */
  @Get('host')
  async host(@Req() request: { host?: string }) {
    await this.origin.run('host');
    return { host: request.host ?? null };
  }

  @Get('account')
  async account(@Body() body: unknown) {
    await this.origin.run('account');
    return { body: body ?? null };
  }

  @Get('account-oracle')
  @SkipCoalesce()
  accountOracle(@Body() body: unknown) {
    return { body: body ?? null };
  }
}

const json = (reply: Reply) => JSON.parse(reply.text) as unknown;

/** Queries that a key built from the raw string (sorted by a re-parse) gave one key for two different parses. */
const QUERY_PAIRS: [string, string][] = [
  ['%61%=1&a%=2', 'a%=2&%61%=1'], // a malformed escape the parser decodes differently from a re-parse
  ['a=1&a=2', 'a=2&a=1'],
  ['a=%zz&a=1', 'a=1&a=%zz'],
  ['b=%E0%A4%A&b=2', 'b=2&b=%E0%A4%A'],
  ['a[b]=2&a=1', 'a=1&a[b]=2'], // an extended parser merges these into different shapes
  ['a[]=1&a[]=2', 'a[]=2&a[]=1'],
  ['x=1|k:evil', 'x=1'],
  ['q=%7C', 'q=|'], // equal parses: sharing is right here, and the oracle says so
];

describe.each(PLATFORMS)('request keys on %s', (platform: Platform) => {
  for (const parser of platform === 'express' ? ['simple', 'extended'] : ['default']) {
    describe(`query parser ${parser}`, () => {
      let running: RunningApp;
      let origin: Origin;
      let stampede: StampedeService;

      beforeAll(async () => {
        running = await startApp(
          platform,
          {
            imports: [StampedeModule.forRoot({ ttl: 60_000 })],
            controllers: [KeysController],
            providers: [Origin],
          },
          (app) => {
            if (parser === 'extended') (app as NestExpressApplication).set('query parser', 'extended');
          },
        );
        origin = running.app.get(Origin);
        stampede = running.app.get(StampedeService);
      });
      afterAll(() => running.close());
      beforeEach(async () => {
        origin.reset();
        await stampede.invalidate({ prefix: '' });
      });

      const send = (target: string, headers: Record<string, string> = {}, body?: string) =>
        rawRequest(running.url, target, { headers, body });

      it('never answers a request for one domain with the page of another (sequential and concurrent)', async () => {
        const a = await send('/k/echo', { host: 'shop-a.example' });
        const b = await send('/k/echo', { host: 'shop-b.example' });
        expect(json(a)).toMatchObject({ host: 'shop-a.example' });
        expect(json(b)).toMatchObject({ host: 'shop-b.example' });
        await stampede.invalidate({ prefix: '' });
        origin.reset();

        origin.hold('echo');
        const hosts = ['shop-a.example', 'shop-b.example', 'shop-a.example:8080', 'shop-b.example'];
        const replies = hosts.map((host) => send('/k/echo?c=1', { host }));
        // One handler per distinct host, the repeated host joins its flight.
        await until(() => origin.calls('echo') === 3 && stampede.stats().waiting === 4, '3 flights, 4 callers');
        origin.open('echo');
        (await Promise.all(replies)).forEach((reply, i) => expect(json(reply)).toMatchObject({ host: hosts[i] }));
      });

      it('keys the query as the handler receives it, so a crafted query never answers another', async () => {
        for (const [first, second] of QUERY_PAIRS) {
          const truth = [json(await send(`/k/oracle?${first}`)), json(await send(`/k/oracle?${second}`))];
          const sequential = [json(await send(`/k/echo?${first}`)), json(await send(`/k/echo?${second}`))];
          expect([first, second, sequential]).toEqual([first, second, truth]);
          await stampede.invalidate({ prefix: '' });
          origin.hold('echo');
          const concurrent = [send(`/k/echo?${first}`), send(`/k/echo?${second}`)];
          await until(() => stampede.stats().waiting === 2, 'both callers');
          origin.open('echo');
          expect([first, second, (await Promise.all(concurrent)).map(json)]).toEqual([first, second, truth]);
          await stampede.invalidate({ prefix: '' });
        }
      });

      it('keeps a raw # in the target in the key while the handler may see it (stored XSS through the query)', async () => {
        const attack = '/k/echo?q=safe#<img/src/onerror=alert(1)>';
        const victim = '/k/echo?q=safe';
        const truth = json(await send(victim.replace('/k/echo', '/k/oracle')));
        await send(attack);
        expect(json(await send(victim))).toEqual(truth);
        // And the other order: the victim's stored page does not answer the attack either.
        await stampede.invalidate({ prefix: '' });
        await send(victim);
        expect(json(await send(attack))).toEqual(json(await send(attack.replace('/k/echo', '/k/oracle'))));
      });

      it('keys a body the handler reads on a GET, or lets it through alone (one account never sees another)', async () => {
        const asJson = { 'content-type': 'application/json' };
        const alice = JSON.stringify({ account: 'alice' });
        const bob = JSON.stringify({ account: 'bob' });
        const bodies: [Record<string, string>, string | undefined][] = [
          [asJson, alice],
          [asJson, bob],
          [{}, undefined],
          [{ 'content-type': 'text/plain' }, 'carol'],
        ];
        const truth: unknown[] = [];
        for (const [headers, body] of bodies) truth.push(json(await send('/k/account-oracle', headers, body)));
        const sequential: unknown[] = [];
        for (const [headers, body] of bodies) sequential.push(json(await send('/k/account', headers, body)));
        expect(sequential).toEqual(truth);
        await stampede.invalidate({ prefix: '' });
        const concurrent = await Promise.all(bodies.map(([headers, body]) => send('/k/account', headers, body)));
        expect(concurrent.map(json)).toEqual(truth);
      });
    });
  }
});

/** The keys app trusting `trust` (every proxy, or one address) by each platform's own switch. */
function startBehindProxy(platform: Platform, trust: true | string): Promise<RunningApp> {
  return startApp(
    platform,
    { imports: [StampedeModule.forRoot({ ttl: 60_000 })], controllers: [KeysController], providers: [Origin] },
    // Express's `trust proxy`, Fastify's `trustProxy`.
    platform === 'express' ? (app) => void (app as NestExpressApplication).set('trust proxy', trust) : undefined,
    platform === 'fastify' ? { trustProxy: trust } : undefined,
  );
}

describe.each(PLATFORMS)('request keys behind a trusted proxy on %s', (platform: Platform) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startBehindProxy(platform, true);
  });
  afterAll(() => running.close());

  it('never answers with a page whose links an X-Forwarded-Host or X-Forwarded-Proto pointed elsewhere', async () => {
    const poisoned = await rawRequest(running.url, '/k/link', {
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    expect(json(poisoned)).toEqual({ link: 'https://evil.example/k/next' });
    const victim = await rawRequest(running.url, '/k/link');
    expect(json(victim)).toEqual({ link: 'http://127.0.0.1/k/next' });
    const proto = await rawRequest(running.url, '/k/link', { headers: { 'x-forwarded-proto': 'https' } });
    expect(json(proto)).toEqual({ link: 'https://127.0.0.1/k/next' });
    expect(json(await rawRequest(running.url, '/k/link'))).toEqual(json(victim));
  });

  it('keys the forwarded host alone: an X-Forwarded-Host never answers a request without one, or with another', async () => {
    const poisoned = await rawRequest(running.url, '/k/link', { headers: { 'x-forwarded-host': 'evil.example' } });
    expect(json(poisoned)).toEqual({ link: 'http://evil.example/k/next' });
    expect(json(await rawRequest(running.url, '/k/link'))).toEqual({ link: 'http://127.0.0.1/k/next' });
    const other = await rawRequest(running.url, '/k/link', { headers: { 'x-forwarded-host': 'shop.example' } });
    expect(json(other)).toEqual({ link: 'http://shop.example/k/next' });
    // The port of a forwarded host is the handler's to read too (`request.host`).
    for (const forwardedHost of ['shop.example:1', 'shop.example:2']) {
      const own = await rawRequest(running.url, '/k/host', { headers: { 'x-forwarded-host': forwardedHost } });
      expect(json(own)).toEqual({ host: forwardedHost });
    }
    // Neither platform reads `Forwarded`: such a request is answered as one without it, as its handler would be.
    const forwarded = await rawRequest(running.url, '/k/link', { headers: { forwarded: 'host=evil.example' } });
    expect(json(forwarded)).toEqual({ link: 'http://127.0.0.1/k/next' });
  });
});

describe.each(PLATFORMS)('request keys behind one trusted proxy address on %s', (platform: Platform) => {
  let running: RunningApp;
  const PROXY = '127.0.0.2';

  beforeAll(async () => {
    running = await startBehindProxy(platform, PROXY);
  });
  afterAll(() => running.close());

  it('keys whether the forwarded host was trusted: the proxy and a direct client sending the same headers differ', async () => {
    const headers = { host: 'app.example:3000', 'x-forwarded-host': 'app.example:8443' };
    const viaProxy = await rawRequest(running.url, '/k/host', { headers, localAddress: PROXY });
    expect(json(viaProxy)).toEqual({ host: 'app.example:8443' });
    const direct = await rawRequest(running.url, '/k/host', { headers, localAddress: '127.0.0.1' });
    expect(json(direct)).toEqual({ host: 'app.example:3000' });
    expect(json(await rawRequest(running.url, '/k/host', { headers, localAddress: PROXY }))).toEqual(json(viaProxy));
  });
});

describe('request keys over HTTP/2 (Fastify)', () => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startApp(
      'fastify',
      { imports: [StampedeModule.forRoot({ ttl: 60_000 })], controllers: [KeysController], providers: [Origin] },
      undefined,
      { http2: true },
    );
  });
  afterAll(() => running.close());

  // The key holds `:authority`; Fastify's host name and `request.host` read `Host` first, port included.
  it.each([
    [
      'a Host that disagrees with :authority',
      '/k/link',
      'evil.example',
      'http://evil.example/k/next',
      'http://shop.example/k/next',
    ],
    ['a Host port that :authority does not have', '/k/host', 'shop.example:8443', 'shop.example:8443', 'shop.example'],
  ])('never answers with a page built from %s', async (_what, path, host, own, plain) => {
    const field = path === '/k/link' ? 'link' : 'host';
    const sent = await http2Request(running.url, { ':path': path, ':authority': 'shop.example', host });
    expect(json(sent)).toEqual({ [field]: own });
    const alone = await http2Request(running.url, { ':path': path, ':authority': 'shop.example' });
    expect(json(alone)).toEqual({ [field]: plain });
  });
});
