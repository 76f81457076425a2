import { Body, Controller, Get, Post, Res, UseInterceptors } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Coalesce, SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { bodyETag } from '../../lib/http/validators';
import {
  PLATFORMS,
  PassthroughResponse,
  Reply,
  RunningApp,
  WireReply,
  keyOf,
  rawRequest,
  request,
  setResponseHeader,
  startApp,
  wireRequest,
} from '../apps/http-app';
import { Origin } from '../apps/origin';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';

/** What the routes return: the same body on every run until a test changes it. */
let version = 1;
const LAST_MODIFIED = 'Tue, 01 Dec 2026 08:00:00 GMT';

@Controller('v')
@UseInterceptors(StampedeInterceptor)
class ValidatorsController {
  constructor(private readonly origin: Origin) {}

  @Get('doc')
  async doc() {
    await this.origin.run('doc');
    return { version, items: ['a', 'b'] };
  }

  @Get('swr')
  @Coalesce({ ttl: 10_000, staleTtl: 60_000 })
  async swr() {
    await this.origin.run('swr');
    return { version };
  }

  @Get('own')
  async own(@Res({ passthrough: true }) res: PassthroughResponse) {
    await this.origin.run('own');
    setResponseHeader(res, 'etag', `W/"v${version}"`);
    return { version };
  }

  @Get('dated')
  async dated(@Res({ passthrough: true }) res: PassthroughResponse) {
    await this.origin.run('dated');
    setResponseHeader(res, 'last-modified', LAST_MODIFIED);
    return { version };
  }

  @Post('search')
  @Coalesce({ keyBody: true })
  async search(@Body() body: { q: string }) {
    await this.origin.run('search');
    return { q: body.q, version };
  }

  @Get('alone')
  @SkipCoalesce()
  alone() {
    return { version };
  }
}

/** The strong ETag of a body as sent. */
const strongTagOf = (text: string) => `"${createHash('sha256').update(text).digest('base64url')}"`;

describe.each(PLATFORMS)('validators and 304 on %s', (platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: [ValidatorsController],
      providers: [Origin],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    version = 1;
    await stampede.invalidate({ prefix: '' });
  });
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  const get = (path: string, headers: Record<string, string> = {}) => request(`${running.url}${path}`, { headers });
  const wire = (path: string, headers: Record<string, string>, method = 'GET') =>
    wireRequest(running.url, path, { method, headers });

  /** A 304 as it went over the wire: nothing after the head, no Content-Length above 0, the validator. */
  function expectNotModified(reply: WireReply, etag: string | undefined, cacheStatus: RegExp): void {
    expect(reply.status).toBe(304);
    expect(reply.body.length).toBe(0);
    expect(Number(reply.headers['content-length'] ?? 0)).toBe(0);
    expect(reply.headers['transfer-encoding']).toBeUndefined();
    expect(reply.headers['etag']).toBe(etag);
    expect(reply.headers['cache-status']).toMatch(cacheStatus);
  }

  it('gives a stored response a strong ETag of its body, and answers a hit that matches it with a bodiless 304', async () => {
    const first = await get('/v/doc');
    expect(first.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    // The same tag on Express (whose own ETag would be weak) and Fastify: the body's SHA-256.
    expect(first.headers['etag']).toBe(strongTagOf(first.text));
    const etag = first.headers['etag'];

    const hit = await wire('/v/doc', { 'If-None-Match': etag });
    expectNotModified(hit, etag, /^nestjs-stampede; hit; ttl=60$/);
    expect(hit.headers['age']).toBe('0');
    expect(hit.headers['content-type']).toBeUndefined();

    const full = await get('/v/doc');
    expect(full.status).toBe(200);
    expect(full.text).toBe(first.text);
    expect(full.headers['etag']).toBe(etag);
    expect(origin.calls('doc')).toBe(1);
  });

  it('compares weakly, and takes lists and *', async () => {
    const etag = (await get('/v/doc')).headers['etag'];
    for (const field of [`W/${etag}`, `"nope", ${etag}`, `"a,b",W/${etag}`, '*']) {
      expectNotModified(await wire('/v/doc', { 'If-None-Match': field }), etag, /; hit;/);
    }
    for (const field of ['"nope"', `${etag.slice(0, -1)}x"`, `"a", "b"`]) {
      const reply = await wire('/v/doc', { 'If-None-Match': field });
      expect(reply.status).toBe(200);
      expect(reply.headers['etag']).toBe(etag);
      expect(JSON.parse(reply.body.toString())).toEqual({ version: 1, items: ['a', 'b'] });
    }
    expect(origin.calls('doc')).toBe(1);
  });

  it('answers a changed value with 200 and its new ETag', async () => {
    const old = (await get('/v/doc')).headers['etag'];
    version = 2;
    await stampede.invalidate({ prefix: '' });
    const changed = await wire('/v/doc', { 'If-None-Match': old });
    expect(changed.status).toBe(200);
    expect(JSON.parse(changed.body.toString())).toMatchObject({ version: 2 });
    expect(changed.headers['etag']).toBe(strongTagOf(changed.body.toString()));
    expect(changed.headers['etag']).not.toBe(old);
    expect(changed.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expectNotModified(
      await wire('/v/doc', { 'If-None-Match': changed.headers['etag'] }),
      changed.headers['etag'],
      /hit/,
    );
  });

  it('answers the leader and every follower of a flight with 304 when the value is unchanged', async () => {
    const etag = (await get('/v/doc')).headers['etag'];
    await stampede.invalidate({ prefix: '' });
    origin.hold('doc');
    const replies = Array.from({ length: 5 }, () => wire('/v/doc', { 'If-None-Match': etag }));
    await until(() => stampede.waiters(keyOf(running, 'GET /v/doc')) === 5, '5 waiters');
    origin.open('doc');
    const answered = await Promise.all(replies);
    for (const reply of answered) expectNotModified(reply, etag, /fwd=miss/);
    const statuses = answered.map((r) => r.headers['cache-status']).sort();
    expect(statuses).toEqual([
      ...Array(4).fill('nestjs-stampede; fwd=miss; collapsed'),
      'nestjs-stampede; fwd=miss; stored',
    ]);
    expect(origin.calls('doc')).toBe(2);
  });

  it('answers a stale value with 304 while one refresh runs', async () => {
    const etag = (await get('/v/swr')).headers['etag'];
    fakeDateOnly();
    jest.setSystemTime(Date.now() + 10_001);
    origin.hold('swr');
    const stored = stampede.stats().stored;
    const stale = await wire('/v/swr', { 'If-None-Match': etag });
    expectNotModified(stale, etag, /^nestjs-stampede; hit; ttl=-1; detail=stale-while-revalidate$/);
    expect(origin.calls('swr')).toBe(2);
    origin.open('swr');
    await until(() => stampede.stats().stored === stored + 1, 'the refreshed value stored');
    expectNotModified(await wire('/v/swr', { 'If-None-Match': etag }), etag, /; hit; ttl=10$/);
  });

  it('stores a refresh that ran behind a 304 with its own status and ETag, not the answer it ran behind', async () => {
    const etag = (await get('/v/swr')).headers['etag'];
    fakeDateOnly();
    jest.setSystemTime(Date.now() + 10_001);
    version = 2;
    const stored = stampede.stats().stored;
    expect((await wire('/v/swr', { 'If-None-Match': etag })).status).toBe(304);
    await until(() => stampede.stats().stored === stored + 1, 'the refreshed value stored');
    const changed = await wire('/v/swr', { 'If-None-Match': etag });
    expect(changed.status).toBe(200);
    expect(changed.headers['cache-status']).toMatch(/; hit; ttl=10$/);
    expect(changed.body.toString()).toBe('{"version":2}');
    expect(changed.headers['etag']).toBe(strongTagOf('{"version":2}'));
  });

  it('keeps the ETag the handler set, as it set it, and compares it weakly', async () => {
    const first = await get('/v/own');
    expect(first.headers['etag']).toBe('W/"v1"');
    const hit = await wire('/v/own', { 'If-None-Match': '"v1"' });
    expectNotModified(hit, 'W/"v1"', /; hit;/);
    const other = await wire('/v/own', { 'If-None-Match': '"v0"' });
    expect(other.status).toBe(200);
    expect(other.headers['etag']).toBe('W/"v1"');
  });

  it('answers If-Modified-Since from the Last-Modified the handler set, unless If-None-Match is there', async () => {
    const first = await get('/v/dated');
    expect(first.headers['last-modified']).toBe(LAST_MODIFIED);
    const etag = first.headers['etag'];
    expect(etag).toBe(strongTagOf(first.text));
    const same = await wire('/v/dated', { 'If-Modified-Since': LAST_MODIFIED });
    expectNotModified(same, etag, /; hit;/);
    expect(same.headers['last-modified']).toBe(LAST_MODIFIED);
    expectNotModified(await wire('/v/dated', { 'If-Modified-Since': 'Wed, 02 Dec 2026 08:00:00 GMT' }), etag, /hit/);
    const earlier = await wire('/v/dated', { 'If-Modified-Since': 'Tue, 01 Dec 2026 07:59:59 GMT' });
    expect(earlier.status).toBe(200);
    // If-None-Match decides alone (RFC 9110 §13.2.2): a stale tag gets the body, whatever the date says.
    const both = await wire('/v/dated', { 'If-None-Match': '"old"', 'If-Modified-Since': LAST_MODIFIED });
    expect(both.status).toBe(200);
    expect(JSON.parse(both.body.toString())).toEqual({ version: 1 });
    // Not an HTTP-date: ignored (§13.1.3). Express's own check (its `fresh`) reads any date it can and
    // turns the 200 into a 304 itself: the one case where the platform, not the cache, decides.
    const notADate = await wire('/v/dated', { 'If-Modified-Since': '2026-12-02' });
    expect(notADate.status).toBe(platform === 'express' ? 304 : 200);
    expect(origin.calls('dated')).toBe(1);
  });

  it('answers HEAD with a 304 too, from its own flight and from the store', async () => {
    const etag = (await get('/v/doc')).headers['etag'];
    const lead = await wire('/v/doc', { 'If-None-Match': etag }, 'HEAD');
    expectNotModified(lead, etag, /^nestjs-stampede; fwd=miss; stored$/);
    expectNotModified(await wire('/v/doc', { 'If-None-Match': etag }, 'HEAD'), etag, /; hit;/);
    const head = await wire('/v/doc', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['etag']).toBe(etag);
    expect(head.body.length).toBe(0);
  });

  it('sends the whole body on a reload (Cache-Control: no-cache) and to other methods', async () => {
    const etag = (await get('/v/doc')).headers['etag'];
    // fetch() itself adds Cache-Control: no-cache to a request with a validator (the Fetch standard).
    const reload = await get('/v/doc', { 'If-None-Match': etag });
    expect(reload.status).toBe(200);
    expect(reload.text).not.toBe('');
    const wired = await wire('/v/doc', { 'If-None-Match': etag, 'Cache-Control': 'no-cache' });
    expect(wired.status).toBe(200);
    expect(wired.body.length).toBeGreaterThan(0);
    expect(reload.headers['cache-status']).toMatch(/; hit;/);
    const post = () =>
      rawRequest(running.url, '/v/search', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'if-none-match': '*' },
        body: JSON.stringify({ q: 'x' }),
      });
    await post();
    const second: Reply = await post();
    expect(second.headers['cache-status']).toMatch(/; hit;/);
    expect(second.status).toBe(201);
    expect(JSON.parse(second.text)).toEqual({ q: 'x', version: 1 });
  });

  it('computes the ETag once per stored response, never on a hit', async () => {
    const computed = jest.spyOn(bodyETag, 'of');
    const etag = (await get('/v/doc')).headers['etag'];
    expect(computed).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 3; i++) {
      expect((await get('/v/doc')).headers['etag']).toBe(etag);
      expect((await wire('/v/doc', { 'If-None-Match': etag })).status).toBe(304);
    }
    expect(computed).toHaveBeenCalledTimes(1);
  });

  it('leaves a request it does not coalesce to the platform', async () => {
    const reply = await wire('/v/alone', { 'If-None-Match': '*' });
    // Express answers * itself (its fresh check), with its own weak tag; Fastify has no ETag of its own.
    if (platform === 'express') expect(reply.status).toBe(304);
    else expect(reply.status).toBe(200);
    expect(reply.headers['cache-status']).toBeUndefined();
  });
});
