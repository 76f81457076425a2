import {
  CompressedApp,
  ENCODINGS,
  PATHS,
  PipelineCounter,
  accepting,
  content,
  documentOf,
  expectTag,
  startCompressedApp,
  strongTagOf,
} from '../apps/compression-app';
import { PLATFORMS, Platform, keyOf, wireRequest } from '../apps/http-app';
import { byteRequest, decodedText } from '../helpers/byte-request';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';

/**
 * Compression and the callers of one flight: the leader, its followers, and
 * stale answers with the refresh behind them. The entry is stored identity,
 * before any middleware encodes a response, and shared by every Accept-Encoding.
 */
describe.each(PLATFORMS)('flights through compression on %s', (platform: Platform) => {
  let app: CompressedApp;

  beforeAll(async () => {
    app = await startCompressedApp(platform);
  });
  afterAll(() => app.running.close());
  beforeEach(() => app.reset());

  const get = (target: string, headers: Record<string, string> = {}) =>
    byteRequest(app.running.url, target, { headers });

  describe.each(PATHS)('answered by %s', (_name, path, edge) => {
    const doc = `/${path}/doc`;
    const pipelineRuns = (target: string) => PipelineCounter.runs.get(target) ?? 0;

    it('shares one handler run between 10 callers with mixed Accept-Encoding, then answers as many hits alike', async () => {
      const etag = strongTagOf(JSON.stringify(documentOf(1)));
      const text = JSON.stringify(documentOf(1));
      app.origin.hold(doc);
      // The leader asks for gzip: the Vary: Accept-Encoding compression adds to its response is not the route's.
      const leader = get(doc, { 'Accept-Encoding': 'gzip' });
      await until(() => app.origin.calls(doc) === 1, 'the leader in its handler');
      const mixed = Array.from({ length: 9 }, (_, i) => ENCODINGS[i % ENCODINGS.length][0]);
      const followers = mixed.map((accept) => get(doc, accepting(accept)));
      await until(() => app.stampede.waiters(keyOf(app.running, `GET ${doc}`)) === 10, '10 callers on one flight');
      app.origin.open(doc);
      const replies = await Promise.all([leader, ...followers]);
      expect(app.origin.calls(doc)).toBe(1);
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
      expect(app.origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 10 : 19);
    });
  });

  describe('stale answers', () => {
    afterEach(() => jest.useRealTimers());

    it('go out weak when encoded, and the refresh behind a gzip answer stores the identity response', async () => {
      const etag = (await get('/z/swr')).headers['etag'];
      fakeDateOnly();
      jest.setSystemTime(Date.now() + 10_001);
      content.version = 2;
      app.origin.hold('/z/swr');
      const stored = app.stampede.stats().stored;
      const stale = await get('/z/swr', { 'Accept-Encoding': 'gzip' });
      expect(stale.headers['cache-status']).toMatch(/; hit; ttl=-\d+; detail=stale-while-revalidate$/);
      expect(stale.headers['content-encoding']).toBe('gzip');
      expect(stale.headers['etag']).toBe(`W/${etag}`);
      expect(JSON.parse(decodedText(stale))).toMatchObject({ version: 1 });
      const revalidated = await wireRequest(app.running.url, '/z/swr', {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${etag}` },
      });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers['etag']).toBe(`W/${etag}`);

      app.origin.open('/z/swr');
      await until(() => app.stampede.stats().stored === stored + 1, 'the refreshed value stored');
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
      expect(app.origin.calls('/z/swr')).toBe(2);
    });
  });

  describe('the caller that runs the handler', () => {
    it('gets the weak tag with its encoded body, and a 304 carrying it when it already holds that body', async () => {
      const lead = await get('/z/doc', { 'Accept-Encoding': 'gzip' });
      expect(lead.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
      expect(lead.headers['content-encoding']).toBe('gzip');
      const etag = strongTagOf(decodedText(lead));
      expect(lead.headers['etag']).toBe(`W/${etag}`);

      await app.stampede.invalidate({ prefix: '' });
      const again = await wireRequest(app.running.url, '/z/doc', {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': `W/${etag}` },
      });
      expect(again.status).toBe(304);
      expect(again.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
      expect(again.headers['etag']).toBe(`W/${etag}`);
      expect(again.body.length).toBe(0);
      expect(app.origin.calls('/z/doc')).toBe(2);
      expect(app.expressTags()).toBe(0);
    });
  });
});
