import { MAX_KEY_LENGTH, sha256 } from '../../lib/core/hash';
import { httpKey, sortedQuery } from '../../lib/http/request-key';

describe('sortedQuery', () => {
  it('sorts parameters by name', () => {
    expect(sortedQuery('b=2&a=1&c=3')).toBe('a=1&b=2&c=3');
  });

  it('keeps repeated names in the order they were sent', () => {
    expect(sortedQuery('z=0&a=2&a=1')).toBe('a=2&a=1&z=0');
    expect(sortedQuery('a=1&z=0&a=2')).toBe('a=1&a=2&z=0');
    expect(sortedQuery('a=2&a=1')).not.toBe(sortedQuery('a=1&a=2'));
  });

  it('sorts by name only, not by value', () => {
    expect(sortedQuery('a=z&a=b&a=m')).toBe('a=z&a=b&a=m');
  });

  it('sorts parameters without a value by their name', () => {
    expect(sortedQuery('flag&a=1')).toBe('a=1&flag');
  });

  it('drops empty parameters', () => {
    expect(sortedQuery('b=2&&a=1&')).toBe('a=1&b=2');
    expect(sortedQuery('&a=1')).toBe('a=1');
  });

  it('keeps values as sent', () => {
    expect(sortedQuery('q=a%20b&p=a+b')).toBe('p=a+b&q=a%20b');
  });

  it('answers an empty string for an empty query', () => {
    expect(sortedQuery('')).toBe('');
  });
});

describe('httpKey', () => {
  it('is the method and the path for a plain request', () => {
    expect(httpKey('GET', '/users/1', {}, [])).toBe('GET /users/1');
  });

  it('puts the method in the key', () => {
    expect(httpKey('GET', '/x', {}, [])).not.toBe(httpKey('HEAD', '/x', {}, []));
  });

  it('gives the same key whatever the order of the query parameters', () => {
    const key = httpKey('GET', '/search?b=2&a=1', {}, []);
    expect(key).toBe('GET /search?a=1&b=2');
    expect(httpKey('GET', '/search?a=1&b=2', {}, [])).toBe(key);
  });

  it('keeps repeated parameters with different orders apart', () => {
    expect(httpKey('GET', '/x?a=1&a=2', {}, [])).not.toBe(httpKey('GET', '/x?a=2&a=1', {}, []));
  });

  it('drops the fragment', () => {
    expect(httpKey('GET', '/page?b=1&a=2#section', {}, [])).toBe('GET /page?a=2&b=1');
    expect(httpKey('GET', '/page#frag?x=1', {}, [])).toBe('GET /page');
  });

  it('keeps paths apart', () => {
    expect(httpKey('GET', '/a', {}, [])).not.toBe(httpKey('GET', '/b', {}, []));
  });

  describe('key headers', () => {
    const secret = 'Bearer s3cr3t-token-value';

    it('adds each listed header as its name and a hash of its value, never the value', () => {
      const key = httpKey('GET', '/me', { authorization: secret }, ['authorization']);
      expect(key).toBe(`GET /me|authorization:${sha256(secret)}`);
      expect(key).not.toContain('s3cr3t');
    });

    it('keeps requests with different header values apart', () => {
      expect(httpKey('GET', '/me', { authorization: 'a' }, ['authorization'])).not.toBe(
        httpKey('GET', '/me', { authorization: 'b' }, ['authorization']),
      );
    });

    it('keeps a missing header apart from an empty one', () => {
      const missing = httpKey('GET', '/x', {}, ['accept-language']);
      const empty = httpKey('GET', '/x', { 'accept-language': '' }, ['accept-language']);
      expect(missing).toBe('GET /x|accept-language:-');
      expect(empty).not.toBe(missing);
    });

    it('hashes every value of a repeated header, in order', () => {
      const twice = httpKey('GET', '/x', { 'x-tenant': ['a', 'b'] }, ['x-tenant']);
      expect(twice).not.toContain('|x-tenant:a');
      expect(twice).not.toBe(httpKey('GET', '/x', { 'x-tenant': 'a' }, ['x-tenant']));
      expect(twice).not.toBe(httpKey('GET', '/x', { 'x-tenant': ['b', 'a'] }, ['x-tenant']));
    });

    it('ignores headers that are not listed', () => {
      expect(httpKey('GET', '/x', { cookie: 'a', accept: 'x' }, ['accept'])).toBe(
        httpKey('GET', '/x', { cookie: 'b', accept: 'x' }, ['accept']),
      );
    });

    it('adds the listed headers in the order given', () => {
      const key = httpKey('GET', '/x', { a: '1', b: '2' }, ['a', 'b']);
      expect(key).toBe(`GET /x|a:${sha256('1')}|b:${sha256('2')}`);
    });
  });

  it('appends the custom part last', () => {
    expect(httpKey('GET', '/x?b=1&a=1', { accept: 'json' }, ['accept'], 'tenant-7')).toBe(
      `GET /x?a=1&b=1|accept:${sha256('json')}|=tenant-7`,
    );
    expect(httpKey('GET', '/x', {}, [], '')).toBe('GET /x|=');
    expect(httpKey('GET', '/x', {}, [], '')).not.toBe(httpKey('GET', '/x', {}, []));
  });

  describe('long keys', () => {
    const longPath = (filler: string) => `/search?q=${filler.repeat(3000)}`;

    it('bounds the key length', () => {
      const key = httpKey('GET', longPath('a'), {}, []);
      expect(key.length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
      expect(key.startsWith('GET /search?q=aaa')).toBe(true);
    });

    it('keeps long keys that differ only after the kept prefix apart', () => {
      const a = httpKey('GET', `${longPath('a')}x`, {}, []);
      const b = httpKey('GET', `${longPath('a')}y`, {}, []);
      expect(a).not.toBe(b);
      expect(a.slice(0, 128)).toBe(b.slice(0, 128));
    });

    it('keeps long keys that differ only in a header value apart', () => {
      const a = httpKey('GET', longPath('a'), { accept: 'a' }, ['accept']);
      const b = httpKey('GET', longPath('a'), { accept: 'b' }, ['accept']);
      expect(a).not.toBe(b);
    });

    it('gives a long request the same key each time', () => {
      expect(httpKey('GET', longPath('z'), {}, [])).toBe(httpKey('GET', longPath('z'), {}, []));
    });
  });
});

describe('sortedQuery with percent-encoded names', () => {
  it('keeps the order of a name written encoded and plain, as the app sees one repeated parameter', () => {
    expect(sortedQuery('a=1&%61=2')).not.toBe(sortedQuery('%61=2&a=1'));
    expect(sortedQuery('b=1&%61=2')).toBe(sortedQuery('%61=2&b=1'));
  });
});
