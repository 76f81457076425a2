import fastifyCompress from '@fastify/compress';
import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  NestInterceptor,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import compression from 'compression';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Observable } from 'rxjs';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import {
  PLATFORMS,
  PassthroughResponse,
  Platform,
  RunningApp,
  keyOf,
  setResponseHeader,
  startApp,
  wireRequest,
} from '../apps/http-app';
import { Origin } from '../apps/origin';
import { ByteReply, byteRequest, decodedText } from '../helpers/byte-request';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';

/** Counts the requests that reach Nest's pipeline, per path: a hit the edge answered does not. */
@Injectable()
class PipelineCounter implements NestInterceptor {
  static runs = new Map<string, number>();
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const { url } = context.switchToHttp().getRequest<{ url: string }>();
    PipelineCounter.runs.set(url, (PipelineCounter.runs.get(url) ?? 0) + 1);
    return next.handle();
  }
}

/** What the routes return: well above both middlewares' 1 kB threshold, until a test changes `version`. */
let version = 1;
const documentOf = (v: number) => ({
  version: v,
  items: Array.from({ length: 150 }, (_, id) => ({ id, name: `item ${id}` })),
});

/** The same routes twice: answered by the interceptor, and (hits) by the edge tier before the pipeline. */
function compressedRoutes(path: string, edge: boolean) {
  @Controller(path)
  @UseInterceptors(PipelineCounter, StampedeInterceptor)
  @Coalesce({ edge: edge ? { skip: [PipelineCounter] } : false })
  class CompressedController {
    constructor(readonly origin: Origin) {}

    @Get('doc')
    async doc() {
      await this.origin.run(`/${path}/doc`);
      return documentOf(version);
    }

    @Get('swr')
    @Coalesce({ ttl: 10_000, staleTtl: 60_000 })
    async swr() {
      await this.origin.run(`/${path}/swr`);
      return documentOf(version);
    }

    @Get('own')
    async own(@Res({ passthrough: true }) res: PassthroughResponse) {
      await this.origin.run(`/${path}/own`);
      setResponseHeader(res, 'ETag', `"own-${version}"`);
      return documentOf(version);
    }

    @Get('own-weak')
    own_weak(@Res({ passthrough: true }) res: PassthroughResponse) {
      setResponseHeader(res, 'ETag', `W/"own-${version}"`);
      return documentOf(version);
    }

    @Get('pre-encoded')
    preEncoded(@Res({ passthrough: true }) res: PassthroughResponse) {
      // Its own tag first: replayed before the Content-Encoding, which must not weaken it.
      setResponseHeader(res, 'ETag', `"pre-${version}"`);
      setResponseHeader(res, 'Content-Type', 'application/json');
      setResponseHeader(res, 'Content-Encoding', 'gzip');
      return gzipSync(JSON.stringify(documentOf(version)));
    }

    @Get('small')
    small() {
      return { version };
    }
  }
  return CompressedController;
}

const PATHS = [
  ['the interceptor', 'z', false],
  ['the edge tier', 'edge', true],
] as const;

/** Our strong ETag of a body as sent: its SHA-256. */
const strongTagOf = (text: string) => `"${createHash('sha256').update(text).digest('base64url')}"`;

/** Accept-Encoding values and the coding each gets from both middlewares (undefined: identity). */
const ENCODINGS: [string | undefined, string | undefined][] = [
  ['gzip', 'gzip'],
  ['br', 'br'],
  ['deflate', 'deflate'],
  ['gzip;q=0, identity', undefined],
  ['identity', undefined],
  [undefined, undefined],
];

describe.each(PLATFORMS)('ETags through compression on %s', (platform: Platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;
  /** ETags Express computed itself (its `etag` setting, counted). */
  let expressTags = 0;

  beforeAll(async () => {
    running = await startApp(
      platform,
      {
        imports: [StampedeModule.forRoot({ ttl: 60_000 })],
        controllers: PATHS.map(([, path, edge]) => compressedRoutes(path, edge)),
        providers: [Origin, PipelineCounter],
      },
      async (app) => {
        if (platform === 'fastify') {
          await (app as NestFastifyApplication).register(fastifyCompress);
          return;
        }
        const express = app as NestExpressApplication;
        express.use(compression());
        express.set('etag', (body: Buffer | string) => {
          expressTags++;
          return `W/"express-${Buffer.byteLength(body)}"`;
        });
      },
    );
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    version = 1;
    expressTags = 0;
    PipelineCounter.runs.clear();
    await stampede.invalidate({ prefix: '' });
  });

  const get = (target: string, headers: Record<string, string> = {}) => byteRequest(running.url, target, { headers });
  const accepting = (coding: string | undefined): Record<string, string> =>
    coding === undefined ? {} : { 'Accept-Encoding': coding };

  /** The tag a reply must carry for a stored strong `etag`: weak exactly when its body went out encoded. */
  function expectTag(reply: ByteReply, etag: string): void {
    const encoded = reply.headers['content-encoding'] !== undefined;
    expect(reply.headers['etag']).toBe(encoded ? `W/${etag}` : etag);
  }

  describe.each(PATHS)('hits answered by %s', (_name, path, edge) => {
    const doc = `/${path}/doc`;
    const pipelineRuns = (target: string) => PipelineCounter.runs.get(target) ?? 0;

    it('answers identity and encoded requests from one stored entry: the same body decoded, the strong tag only on identity', async () => {
      const first = await get(doc);
      expect(first.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
      expect(first.headers['content-encoding']).toBeUndefined();
      const text = decodedText(first);
      const etag = strongTagOf(text);
      expect(first.headers['etag']).toBe(etag);

      for (const [accept, coding] of ENCODINGS) {
        const hit = await get(doc, accepting(accept));
        expect(hit.status).toBe(200);
        expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
        expect(hit.headers['content-encoding']).toBe(coding);
        expect(decodedText(hit)).toBe(text);
        expectTag(hit, etag);
        if (coding !== undefined) expect(hit.headers['vary']).toMatch(/accept-encoding/i);
      }
      expect(origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 1 : 1 + ENCODINGS.length);
      expect(expressTags).toBe(0);
    });

    it('answers each client revalidating with a 304 carrying the tag it holds: weak from an encoded body, strong from identity', async () => {
      const etag = (await get(doc)).headers['etag'];
      const gzip = await get(doc, { 'Accept-Encoding': 'gzip' });
      expect(gzip.headers['etag']).toBe(`W/${etag}`);

      const cases: [Record<string, string>, string][] = [
        [{ 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${etag}` }, `W/${etag}`],
        [{ 'Accept-Encoding': 'br', 'If-None-Match': `"other", W/${etag}` }, `W/${etag}`],
        [{ 'If-None-Match': etag }, etag],
        // A client that changed its Accept-Encoding still holds the identity body it got with the strong tag.
        [{ 'Accept-Encoding': 'gzip', 'If-None-Match': etag }, etag],
        // Without a coding it accepts, its 200 would be identity: the strong tag, whatever form it sent.
        [{ 'If-None-Match': `W/${etag}` }, etag],
        [{ 'Accept-Encoding': 'gzip;q=0, identity', 'If-None-Match': `W/${etag}` }, etag],
        [{ 'Accept-Encoding': 'gzip', 'If-None-Match': '*' }, etag],
      ];
      for (const [headers, expected] of cases) {
        const reply = await wireRequest(running.url, doc, { headers });
        expect(reply.status).toBe(304);
        expect(reply.body.length).toBe(0);
        expect(reply.headers['content-encoding']).toBeUndefined();
        expect(reply.headers['etag']).toBe(expected);
        expect(reply.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
      }
      expect(origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 1 : 2 + cases.length);
    });

    it('answers a changed value with 200, encoded, and the weak form of its new tag', async () => {
      const old = (await get(doc)).headers['etag'];
      version = 2;
      await stampede.invalidate({ prefix: '' });
      await get(doc); // the new value, stored
      const changed = await get(doc, { 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${old}` });
      expect(changed.status).toBe(200);
      expect(changed.headers['content-encoding']).toBe('gzip');
      const text = decodedText(changed);
      expect(JSON.parse(text)).toMatchObject({ version: 2 });
      expect(changed.headers['etag']).toBe(`W/${strongTagOf(text)}`);
      expect(changed.headers['etag']).not.toBe(`W/${old}`);
    });

    it("weakens the handler's own strong ETag on an encoded body, and still answers its clients with 304", async () => {
      const own = `/${path}/own`;
      const first = await get(own);
      expect(first.headers['etag']).toBe('"own-1"');
      const gzip = await get(own, { 'Accept-Encoding': 'gzip' });
      expect(gzip.headers['cache-status']).toMatch(/; hit;/);
      expect(gzip.headers['content-encoding']).toBe('gzip');
      expect(gzip.headers['etag']).toBe('W/"own-1"');
      expect(decodedText(gzip)).toBe(decodedText(first));
      expect((await get(own)).headers['etag']).toBe('"own-1"');

      const gzipAgain = await wireRequest(running.url, own, {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': 'W/"own-1"' },
      });
      expect(gzipAgain.status).toBe(304);
      expect(gzipAgain.headers['etag']).toBe('W/"own-1"');
      const identityAgain = await wireRequest(running.url, own, { headers: { 'If-None-Match': '"own-1"' } });
      expect(identityAgain.status).toBe(304);
      expect(identityAgain.headers['etag']).toBe('"own-1"');
      expect(origin.calls(own)).toBe(1);
    });

    it("keeps the handler's own weak ETag as it is, encoded or not", async () => {
      const target = `/${path}/own-weak`;
      await get(target);
      for (const [accept] of ENCODINGS) {
        const reply = await get(target, accepting(accept));
        expect(reply.headers['cache-status']).toMatch(/; hit;/);
        expect(reply.headers['etag']).toBe('W/"own-1"');
      }
    });

    // Nest's Express adapter sends a returned Buffer as JSON: only on Fastify can a handler return encoded bytes.
    if (platform === 'fastify') {
      it('keeps the strong tag of a body the handler encoded itself: those bytes are its representation', async () => {
        const target = `/${path}/pre-encoded`;
        const first = await get(target, { 'Accept-Encoding': 'gzip' });
        expect(first.headers['content-encoding']).toBe('gzip');
        expect(first.headers['etag']).toBe('"pre-1"');
        const hit = await get(target, { 'Accept-Encoding': 'gzip' });
        expect(hit.headers['cache-status']).toMatch(/; hit;/);
        expect(hit.headers['content-encoding']).toBe('gzip');
        expect(hit.headers['etag']).toBe('"pre-1"');
        expect(JSON.parse(decodedText(hit))).toEqual(documentOf(1));
      });
    }

    it('keeps the strong tag on a body too small to compress', async () => {
      const small = `/${path}/small`;
      const etag = (await get(small)).headers['etag'];
      const hit = await get(small, { 'Accept-Encoding': 'gzip' });
      expect(hit.headers['cache-status']).toMatch(/; hit;/);
      expect(hit.headers['content-encoding']).toBeUndefined();
      expect(hit.headers['etag']).toBe(etag);
      expect(decodedText(hit)).toBe('{"version":1}');
    });

    it('shares one handler run between 10 callers with mixed Accept-Encoding, then answers as many hits alike', async () => {
      const etag = strongTagOf(JSON.stringify(documentOf(1)));
      const text = JSON.stringify(documentOf(1));
      origin.hold(doc);
      // The leader asks for gzip: the Vary: Accept-Encoding compression adds to its response is not the route's.
      const leader = get(doc, { 'Accept-Encoding': 'gzip' });
      await until(() => origin.calls(doc) === 1, 'the leader in its handler');
      const mixed = Array.from({ length: 9 }, (_, i) => ENCODINGS[i % ENCODINGS.length][0]);
      const followers = mixed.map((accept) => get(doc, accepting(accept)));
      await until(() => stampede.waiters(keyOf(running, `GET ${doc}`)) === 10, '10 callers on one flight');
      origin.open(doc);
      const replies = await Promise.all([leader, ...followers]);
      expect(origin.calls(doc)).toBe(1);
      expect(replies.map((reply) => reply.headers['cache-status']).sort()).toEqual([
        ...Array(9).fill('nestjs-stampede; fwd=miss; collapsed'),
        'nestjs-stampede; fwd=miss; stored',
      ]);
      expect(replies[0].headers['content-encoding']).toBe('gzip');
      replies.forEach((reply, i) => {
        expect(reply.status).toBe(200);
        expect(reply.headers['content-encoding']).toBe(i === 0 ? 'gzip' : ENCODINGS[(i - 1) % ENCODINGS.length][1]);
        expect(decodedText(reply)).toBe(text);
        expectTag(reply, etag);
      });

      const hits = await Promise.all(mixed.map((accept) => get(doc, accepting(accept))));
      for (const [i, hit] of hits.entries()) {
        expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
        expect(hit.headers['content-encoding']).toBe(ENCODINGS[i % ENCODINGS.length][1]);
        expect(decodedText(hit)).toBe(text);
        expectTag(hit, etag);
      }
      expect(origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 10 : 19);
    });
  });

  describe('stale answers', () => {
    afterEach(() => jest.useRealTimers());

    it('go out weak when encoded, and the refresh behind a gzip answer stores the identity response', async () => {
      const etag = (await get('/z/swr')).headers['etag'];
      fakeDateOnly();
      jest.setSystemTime(Date.now() + 10_001);
      version = 2;
      origin.hold('/z/swr');
      const stored = stampede.stats().stored;
      const stale = await get('/z/swr', { 'Accept-Encoding': 'gzip' });
      expect(stale.headers['cache-status']).toMatch(/; hit; ttl=-\d+; detail=stale-while-revalidate$/);
      expect(stale.headers['content-encoding']).toBe('gzip');
      expect(stale.headers['etag']).toBe(`W/${etag}`);
      expect(JSON.parse(decodedText(stale))).toMatchObject({ version: 1 });
      const revalidated = await wireRequest(running.url, '/z/swr', {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${etag}` },
      });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers['etag']).toBe(`W/${etag}`);

      origin.open('/z/swr');
      await until(() => stampede.stats().stored === stored + 1, 'the refreshed value stored');
      // Not the gzip response the refresh ran behind: no Content-Encoding, no Vary, the strong tag of its body.
      const identity = await get('/z/swr');
      expect(identity.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=10');
      expect(identity.headers['content-encoding']).toBeUndefined();
      const text = decodedText(identity);
      expect(JSON.parse(text)).toMatchObject({ version: 2 });
      expect(identity.headers['etag']).toBe(strongTagOf(text));
      const gzip = await get('/z/swr', { 'Accept-Encoding': 'gzip' });
      expect(gzip.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=10');
      expect(gzip.headers['etag']).toBe(`W/${strongTagOf(text)}`);
      expect(decodedText(gzip)).toBe(text);
      expect(origin.calls('/z/swr')).toBe(2);
    });
  });

  describe('the caller that runs the handler', () => {
    it('gets the weak tag with its encoded body, and a 304 carrying it when it already holds that body', async () => {
      const lead = await get('/z/doc', { 'Accept-Encoding': 'gzip' });
      expect(lead.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
      expect(lead.headers['content-encoding']).toBe('gzip');
      const etag = strongTagOf(decodedText(lead));
      expect(lead.headers['etag']).toBe(`W/${etag}`);

      await stampede.invalidate({ prefix: '' });
      const again = await wireRequest(running.url, '/z/doc', {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${etag}` },
      });
      expect(again.status).toBe(304);
      expect(again.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
      expect(again.headers['etag']).toBe(`W/${etag}`);
      expect(again.body.length).toBe(0);
      expect(origin.calls('/z/doc')).toBe(2);
      expect(expressTags).toBe(0);
    });
  });
});
