import { StreamableFile } from '@nestjs/common';
import { Readable } from 'node:stream';
import {
  FinishedResponse,
  captureSnapshot,
  isResponseSnapshot,
  measureBody,
  varyMismatch,
} from '../../lib/nest/http/response-snapshot';

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
    expect(snapshot.headers).toEqual([['x-run', '1']]);
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
});
