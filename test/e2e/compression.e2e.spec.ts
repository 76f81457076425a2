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
import { PLATFORMS, Platform, wireRequest } from '../apps/http-app';
import { byteRequest, decodedText } from '../helpers/byte-request';

/**
 * Compression middleware (Express `compression`, `@fastify/compress`) encodes
 * each response after the interceptor, per Accept-Encoding, and leaves its
 * ETag alone. One stored (identity) entry then goes out as several byte
 * sequences: only the identity one may carry the strong tag (RFC 9110
 * §8.8.3), an encoded one its weak form, which weak comparison still matches.
 */
describe.each(PLATFORMS)('ETags through compression on %s', (platform: Platform) => {
  let app: CompressedApp;

  beforeAll(async () => {
    app = await startCompressedApp(platform);
  });
  afterAll(() => app.running.close());
  beforeEach(() => app.reset());

  const get = (target: string, headers: Record<string, string> = {}) =>
    byteRequest(app.running.url, target, { headers });

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
      expect(app.origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 1 : 1 + ENCODINGS.length);
      expect(app.expressTags()).toBe(0);
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
        const reply = await wireRequest(app.running.url, doc, { headers });
        expect(reply.status).toBe(304);
        expect(reply.body.length).toBe(0);
        expect(reply.headers['content-encoding']).toBeUndefined();
        expect(reply.headers['etag']).toBe(expected);
        expect(reply.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
      }
      expect(app.origin.calls(doc)).toBe(1);
      expect(pipelineRuns(doc)).toBe(edge ? 1 : 2 + cases.length);
    });

    it('answers a changed value with 200, encoded, and the weak form of its new tag', async () => {
      const old = (await get(doc)).headers['etag'];
      content.version = 2;
      await app.stampede.invalidate({ prefix: '' });
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

      const gzipAgain = await wireRequest(app.running.url, own, {
        headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': 'W/"own-1"' },
      });
      expect(gzipAgain.status).toBe(304);
      expect(gzipAgain.headers['etag']).toBe('W/"own-1"');
      const identityAgain = await wireRequest(app.running.url, own, { headers: { 'If-None-Match': '"own-1"' } });
      expect(identityAgain.status).toBe(304);
      expect(identityAgain.headers['etag']).toBe('"own-1"');
      expect(app.origin.calls(own)).toBe(1);
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
  });
});
