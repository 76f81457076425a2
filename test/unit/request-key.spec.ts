import { MAX_KEY_LENGTH, sha256 } from '../../lib/core/hash';
import {
  RequestKeyParts,
  announcesBody,
  bodyKeyPart,
  escapeKeyPart,
  queryKeyPart,
  requestKey,
  variantKey,
} from '../../lib/http/request-key';

const key = (parts: Partial<RequestKeyParts> = {}) =>
  requestKey({
    method: 'GET',
    scheme: 'http',
    authority: 'api.example',
    path: '/x',
    query: {},
    headers: {},
    keyHeaders: [],
    ...parts,
  });

describe('escapeKeyPart', () => {
  it('leaves ordinary URL text as it is', () => {
    expect(escapeKeyPart('/caf%C3%A9/a-b_c.d~e?x=1&y=2')).toBe('/caf%C3%A9/a-b_c.d~e?x=1&y=2');
  });

  it('escapes the separator, the hashed-key mark, the escape itself, whitespace and controls', () => {
    expect(escapeKeyPart('a|b#c\\d e\nf\u007f')).toBe('a\\pb\\hc\\\\d\\x20e\\x0af\\x7f');
  });

  it('never lets two different texts give one escaped text', () => {
    const texts = ['|', '\\p', '\\|', '#', '\\h', '\\\\p', '\\x20', ' ', '\\', '\\\\'];
    expect(new Set(texts.map(escapeKeyPart)).size).toBe(texts.length);
  });
});

describe('queryKeyPart', () => {
  it('sorts names and encodes names and values', () => {
    expect(queryKeyPart({ b: '2', a: 'x y' })).toBe('a=x%20y&b=2');
  });

  it('is the same for equal parsed queries whatever the order they came in', () => {
    expect(queryKeyPart({ a: '1', b: '2' })).toBe(queryKeyPart({ b: '2', a: '1' }));
  });

  it('keeps the order of a repeated parameter, and tells a list of one from a string', () => {
    expect(queryKeyPart({ a: ['1', '2'] })).toBe('a[]=1&a[]=2');
    expect(queryKeyPart({ a: ['1', '2'] })).not.toBe(queryKeyPart({ a: ['2', '1'] }));
    expect(queryKeyPart({ a: ['1'] })).not.toBe(queryKeyPart({ a: '1' }));
    expect(queryKeyPart({ a: [] })).not.toBe(queryKeyPart({ a: '' }));
  });

  it('cannot be spelled by a name or value holding & = [ ] or %', () => {
    expect(queryKeyPart({ a: '1&b=2' })).not.toBe(queryKeyPart({ a: '1', b: '2' }));
    expect(queryKeyPart({ 'a[]': '1' })).not.toBe(queryKeyPart({ a: ['1'] }));
    expect(queryKeyPart({ a: '%20' })).not.toBe(queryKeyPart({ a: ' ' }));
  });

  it('serializes nested queries (an extended parser) stably, apart from any flat one', () => {
    const nested = queryKeyPart({ a: { c: '2', b: '1' } });
    expect(nested).toBe(queryKeyPart({ a: { b: '1', c: '2' } }));
    expect(nested.startsWith('{')).toBe(true);
    expect(queryKeyPart({ a: ['1', { b: '2' }] })).not.toBe(queryKeyPart({ a: [{ b: '2' }, '1'] }));
  });

  it('keeps a raw query as sent, apart from parsed ones', () => {
    expect(queryKeyPart('b=2&a=1')).not.toBe(queryKeyPart('a=1&b=2'));
    expect(queryKeyPart('a=1')).not.toBe(queryKeyPart({ a: '1' }));
  });

  it('takes a query no URI encoding can hold (a lone surrogate) in the serialized form, apart from others', () => {
    expect(queryKeyPart({ a: '\ud800' }).startsWith('{')).toBe(true);
    expect(queryKeyPart({ a: '\ud800' })).not.toBe(queryKeyPart({ a: '\udc00' }));
    expect(queryKeyPart({ a: '\ud800' })).not.toBe(queryKeyPart({ a: '\ufffd' }));
  });

  it('is empty for an empty query', () => {
    expect(queryKeyPart({})).toBe('');
    expect(queryKeyPart(undefined)).toBe('');
  });
});

describe('requestKey', () => {
  it('is the method and the target URI for a plain request', () => {
    expect(key()).toBe('GET http://api.example/x');
    expect(key({ query: { b: '2', a: '1' } })).toBe('GET http://api.example/x?a=1&b=2');
  });

  it('keeps methods, schemes, hosts, ports and paths apart', () => {
    const keys = [
      key(),
      key({ method: 'HEAD' }),
      key({ scheme: 'https' }),
      key({ authority: 'other.example' }),
      key({ authority: 'api.example:8080' }),
      key({ forwardedHost: 'tenant.example' }),
      key({ path: '/y' }),
      key({ path: '/x#frag' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('cannot be made equal by a path or host that spells a separator, a header part or a hashed key', () => {
    const headerKey = key({ keyHeaders: ['x-tenant'], headers: { 'x-tenant': 'a' } });
    const spelled = key({ path: `/x|h:x-tenant:${sha256('=a')}`, keyHeaders: ['x-tenant'] });
    expect(spelled).not.toBe(headerKey);
    expect(key({ path: `/x|k:me` })).not.toBe(key({ custom: 'me' }));
    expect(key({ authority: 'a|b' })).not.toContain('|');
    expect(key({ path: '/#' + 'x'.repeat(43) })).not.toContain('#');
  });

  it('keeps where the host ends clear, whatever a Host, X-Forwarded-* or an absolute-form target holds', () => {
    // Host `victim.example/admin` + `/x` is not `victim.example` + `/admin/x`.
    expect(key({ authority: 'victim.example/admin', path: '/x' })).not.toBe(
      key({ authority: 'victim.example', path: '/admin/x' }),
    );
    expect(key({ authority: 'victim.examplehttp:', path: '//evil.example/x' })).not.toBe(
      key({ authority: 'victim.example', path: 'http://evil.example/x' }),
    );
    expect(key({ scheme: 'https://a', authority: 'b' })).not.toBe(key({ scheme: 'https', authority: 'a/b' }));
    expect(key({ authority: 'a(b)' })).not.toBe(key({ authority: 'a', forwardedHost: 'b' }));
  });

  it('adds each key header as its name and a hash of its value, never the value', () => {
    const secret = 'Bearer s3cr3t-token-value';
    const withSecret = key({ headers: { authorization: secret }, keyHeaders: ['authorization'] });
    expect(withSecret).toBe(`GET http://api.example/x|h:authorization:${sha256(`=${secret}`)}`);
    expect(withSecret).not.toContain('s3cr3t');
  });

  it('keeps a missing header, an empty one and a repeated one apart', () => {
    const keys = [undefined, '', ['a', 'b'], ['b', 'a'], 'a\nb', 'a'].map((value) =>
      key({ headers: { 'x-tenant': value }, keyHeaders: ['x-tenant'] }),
    );
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('ignores headers that are not listed', () => {
    expect(key({ headers: { cookie: 'a' } })).toBe(key({ headers: { cookie: 'b' } }));
  });

  it('adds the user (hashed), the body part and the custom part, each in its own namespace', () => {
    expect(key({ user: 'alice' })).toBe(`GET http://api.example/x|u:${sha256('alice')}`);
    expect(key({ user: null })).toBe('GET http://api.example/x|u:-');
    expect(key({ body: 'abc' })).toBe('GET http://api.example/x|b:abc');
    expect(key({ custom: 'a|b' })).toBe('GET http://api.example/x|k:a\\pb');
    expect(key({ custom: '' })).not.toBe(key());
  });

  describe('long keys', () => {
    const long = (filler: string) => ({ query: { q: filler.repeat(3000) } });

    it('bounds the key length', () => {
      expect(key(long('a')).length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
      expect(key(long('a')).startsWith('GET http://api.example/x?q=aaa')).toBe(true);
    });

    it('keeps long keys that differ only after the kept prefix apart', () => {
      expect(key({ query: { q: `${'a'.repeat(3000)}x` } })).not.toBe(key({ query: { q: `${'a'.repeat(3000)}y` } }));
    });

    it('gives a long request the same key each time', () => {
      expect(key(long('z'))).toBe(key(long('z')));
    });
  });
});

describe('variantKey', () => {
  it('is a namespace of its own, which no request key can spell', () => {
    const base = key();
    expect(variantKey(base, 'fp')).toBe(`${base}|vary:fp`);
    expect(key({ path: '/x|vary:fp' })).not.toBe(variantKey(base, 'fp'));
    expect(key({ custom: '|vary:fp' })).not.toContain('|vary:');
  });
});

describe('request bodies', () => {
  it('announces a body by Content-Length or Transfer-Encoding', () => {
    expect(announcesBody({})).toBe(false);
    expect(announcesBody({ 'content-length': '0' })).toBe(false);
    expect(announcesBody({ 'content-length': '12' })).toBe(true);
    expect(announcesBody({ 'transfer-encoding': 'chunked' })).toBe(true);
  });

  it('keys a parsed body by a hash of its stable form, and refuses what it cannot hold', () => {
    expect(bodyKeyPart({ a: 1, b: 2 }, 1_000)).toBe(bodyKeyPart({ b: 2, a: 1 }, 1_000));
    expect(bodyKeyPart({ a: 1 }, 1_000)).not.toBe(bodyKeyPart({ a: '1' }, 1_000));
    expect(bodyKeyPart({ data: 'x'.repeat(2_000) }, 1_000)).toBeUndefined();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(bodyKeyPart(cycle, 1_000)).toBeUndefined();
  });
});
