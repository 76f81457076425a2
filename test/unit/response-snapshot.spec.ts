import { StreamableFile } from '@nestjs/common';
import { Readable } from 'node:stream';
import {
  FinishedResponse,
  captureSnapshot,
  isResponseSnapshot,
  measureBody,
  varyMismatch,
} from '../../lib/nest/http/response-snapshot';
import { bodyETag } from '../../lib/http/validators';

const finished = (headers: Record<string, unknown>, before: Record<string, unknown> = {}): FinishedResponse => ({
  status: 200,
  headers,
  before,
  sentByHandler: false,
  setsCookie: headers['set-cookie'] !== undefined,
});

class Account {
  constructor(readonly id: string) {}
}

describe('captureSnapshot', () => {
  it('decides from the whole response, but replays only what the handler changed', () => {
    const before = { 'cache-control': 'public, max-age=5', vary: 'Accept-Language', 'x-static': 'mw' };
    const snapshot = captureSnapshot(
      { ok: true },
      finished({ ...before, 'x-run': '1' }, before),
      { 'accept-language': 'fr' },
      true,
    );
    expect(snapshot.shareable).toBe(true);
    expect(snapshot.headers).toEqual([
      ['x-run', '1'],
      ['etag', bodyETag.of('{"ok":true}')],
    ]);
    expect(snapshot.cacheControl).toBe('public, max-age=5');
    expect(snapshot.vary?.names).toEqual(['accept-language']);
    expect(varyMismatch(snapshot, { 'accept-language': 'fr' })).toBe(false);
    expect(varyMismatch(snapshot, { 'accept-language': 'en' })).toBe(true);
  });

  it.each([
    ['Cache-Control: private', { 'cache-control': 'private' }],
    ['Cache-Control: no-store', { 'cache-control': ['max-age=5', 'no-store'] }],
    ['Vary: *', { vary: '*' }],
    ['a Set-Cookie', { 'set-cookie': ['sid=1'] }],
  ])('makes a response with %s its caller’s own, whoever set it', (_name, headers) => {
    // Set before the handler ran (middleware, @Header()): still the response as sent.
    const snapshot = captureSnapshot({ ok: true }, finished(headers, headers), {}, true);
    expect(snapshot).toMatchObject({ shareable: false, body: undefined });
    expect(isResponseSnapshot(snapshot)).toBe(false);
  });

  it('never shares a stream, a StreamableFile or a response the handler sent itself', () => {
    expect(captureSnapshot(Readable.from(['x']), finished({}), {}, true).shareable).toBe(false);
    expect(captureSnapshot(new StreamableFile(Buffer.from('x')), finished({}), {}, true).shareable).toBe(false);
    expect(captureSnapshot({}, { ...finished({}), sentByHandler: true }, {}, true).shareable).toBe(false);
    // A cookie a plugin writes only when sending (@fastify/cookie) counts too.
    expect(captureSnapshot({}, { ...finished({}), setsCookie: true }, {}, true).shareable).toBe(false);
  });

  it('applies the same rules to an error kept through statusTtl', () => {
    const error = captureSnapshot({ message: 'gone' }, finished({ vary: 'Accept' }), { accept: 'a' }, true, true);
    expect(error).toMatchObject({ shareable: true, error: true, vary: { names: ['accept'] } });
    expect(captureSnapshot({}, finished({ 'cache-control': 'private' }), {}, true, true).shareable).toBe(false);
  });
});

describe('the validator of a snapshot', () => {
  it('is an ETag of the body as sent, computed once, and replayed like a header the handler set', () => {
    const computed = jest.spyOn(bodyETag, 'of');
    const snapshot = captureSnapshot({ a: [1, 2] }, finished({}), {}, false);
    expect(computed).toHaveBeenCalledTimes(1);
    computed.mockRestore();
    expect(snapshot.etag).toBe(bodyETag.of('{"a":[1,2]}'));
    expect(snapshot.headers).toEqual([['etag', snapshot.etag]]);
    expect(captureSnapshot('text', finished({}), {}, true).etag).toBe(bodyETag.of('text'));
    expect(captureSnapshot(Buffer.from('bytes'), finished({}), {}, true).etag).toBe(bodyETag.of('bytes'));
  });

  it('is the handler’s own ETag, as it set it, with its Last-Modified kept', () => {
    const own = captureSnapshot(
      { a: 1 },
      finished({ etag: 'W/"7"', 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' }),
      {},
      true,
    );
    expect(own).toMatchObject({ etag: 'W/"7"', lastModified: 'Sun, 06 Nov 1994 08:49:37 GMT' });
    expect(own.headers).toEqual([
      ['etag', 'W/"7"'],
      ['last-modified', 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ]);
    // Set before the handler ran (a middleware, @Header()): still the validator, not replayed (every response has it).
    const before = { etag: '"mw"' };
    expect(captureSnapshot({ a: 1 }, finished(before, before), {}, true)).toMatchObject({ etag: '"mw"', headers: [] });
    // Only Last-Modified: an ETag is computed as well (RFC 9110 §8.8.1: send both).
    const dated = captureSnapshot({ a: 1 }, finished({ 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' }), {}, true);
    expect(dated.etag).toBe(bodyETag.of('{"a":1}'));
  });

  it('is left out of errors kept through statusTtl, non-2xx responses and what cannot be serialized', () => {
    expect(captureSnapshot({ message: 'gone' }, { ...finished({}), status: 404 }, {}, true, true).etag).toBeUndefined();
    expect(captureSnapshot({ a: 1 }, { ...finished({}), status: 500 }, {}, true).etag).toBeUndefined();
    expect(captureSnapshot({ a: 1 }, { ...finished({ etag: '"x"' }), status: 302 }, {}, true).etag).toBeUndefined();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(captureSnapshot(cycle, finished({}), {}, true).etag).toBeUndefined();
  });
});

describe('measureBody', () => {
  it('measures the body as sent and tells whether it holds class instances', () => {
    expect(measureBody({ a: 'xy' })).toEqual({ bytes: 10, instances: false });
    expect(measureBody([{ nested: [new Account('7')] }])).toMatchObject({ instances: true });
    expect(measureBody({ at: new Date(0), items: [1, 2], empty: Object.create(null) })).toMatchObject({
      instances: false,
    });
    expect(measureBody('text')).toEqual({ bytes: 4, instances: false });
  });

  it('counts what cannot be serialized as too big to store', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(measureBody(cycle).bytes).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('isResponseSnapshot', () => {
  it('refuses a stored value whose Vary or Cache-Control has the wrong shape', () => {
    const valid = { shareable: true, status: 200, headers: [], body: 1, bytes: 1 };
    expect(isResponseSnapshot(valid)).toBe(true);
    expect(isResponseSnapshot({ ...valid, vary: { names: 'accept', fingerprint: 'x' } })).toBe(false);
    expect(isResponseSnapshot({ ...valid, cacheControl: 5 })).toBe(false);
  });

  it('takes a stored value with validators, or without (stored by an older version), but not of another shape', () => {
    const valid = { shareable: true, status: 200, headers: [], body: 1, bytes: 1 };
    expect(isResponseSnapshot({ ...valid, etag: '"x"', lastModified: 'Sun, 06 Nov 1994 08:49:37 GMT' })).toBe(true);
    expect(isResponseSnapshot({ ...valid, etag: 5 })).toBe(false);
    expect(isResponseSnapshot({ ...valid, lastModified: 0 })).toBe(false);
  });
});
