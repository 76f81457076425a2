import { HeaderEntry } from '../../lib/http/header-policy';
import {
  ageSeconds,
  cacheControl,
  freshnessFromCacheControl,
  headerValue,
  requestForbidsStore,
  responseForbidsStore,
  ttlForStatus,
  varyFingerprint,
  varyNames,
  writePathTag,
} from '../../lib/http/cache-rules';

const cc = (value: string | readonly string[]): string | readonly string[] => value;
const ccEntry = (value: string | readonly string[]): HeaderEntry[] => [['cache-control', value]];

describe('cacheControl', () => {
  it('is empty for no header', () => {
    expect(cacheControl(undefined).size).toBe(0);
    expect(cacheControl('').size).toBe(0);
    expect(cacheControl(' , ,, ').size).toBe(0);
  });

  it('lowercases names, trims spaces, and keeps valueless directives as empty strings', () => {
    const directives = cacheControl('  Public ,MAX-AGE = 60 ,  No-Store  ');
    expect([...directives]).toEqual([
      ['public', ''],
      ['max-age', '60'],
      ['no-store', ''],
    ]);
  });

  it('keeps the case of values', () => {
    expect(cacheControl('x-ext=SomeValue').get('x-ext')).toBe('SomeValue');
  });

  it('unquotes quoted values', () => {
    expect(cacheControl('max-age="60"').get('max-age')).toBe('60');
    expect(cacheControl('private="x-token"').get('private')).toBe('x-token');
    expect(cacheControl('x=""').get('x')).toBe('');
  });

  it('keeps a value whose quote is not closed as it is', () => {
    expect(cacheControl('x="open').get('x')).toBe('"open');
  });

  it('joins the values of an array (repeated header lines)', () => {
    const directives = cacheControl(['public, max-age=30', 'stale-while-revalidate=5']);
    expect(Object.fromEntries(directives)).toEqual({ public: '', 'max-age': '30', 'stale-while-revalidate': '5' });
  });

  it('reads a number as a directive name', () => {
    expect([...cacheControl(60)]).toEqual([['60', '']]);
  });

  it('keeps the last value of a repeated directive', () => {
    expect(cacheControl('max-age=10, max-age=20').get('max-age')).toBe('20');
  });

  it('splits only at the first "=" of a directive', () => {
    expect(cacheControl('x=a=b').get('x')).toBe('a=b');
  });
});

describe('headerValue', () => {
  it('finds a stored header by its lowercase name', () => {
    const headers: HeaderEntry[] = [
      ['content-type', 'text/plain'],
      ['vary', ['accept', 'origin']],
    ];
    expect(headerValue(headers, 'vary')).toEqual(['accept', 'origin']);
    expect(headerValue(headers, 'etag')).toBeUndefined();
  });
});

describe('requestForbidsStore', () => {
  it('is true for Cache-Control: no-store in any case and position', () => {
    expect(requestForbidsStore({ 'cache-control': 'no-store' })).toBe(true);
    expect(requestForbidsStore({ 'cache-control': 'max-age=0, NO-STORE' })).toBe(true);
    expect(requestForbidsStore({ 'cache-control': ['max-age=0', 'no-store'] })).toBe(true);
  });

  it('is false otherwise', () => {
    expect(requestForbidsStore({})).toBe(false);
    expect(requestForbidsStore({ 'cache-control': undefined })).toBe(false);
    expect(requestForbidsStore({ 'cache-control': 'no-cache, max-age=0' })).toBe(false);
    expect(requestForbidsStore({ pragma: 'no-store' })).toBe(false);
  });
});

describe('responseForbidsStore', () => {
  it.each([
    ['no-store', ccEntry('no-store')],
    ['private', ccEntry('Private, max-age=60')],
    ['qualified private', ccEntry('private="set-cookie"')],
    ['no-store in a later line', ccEntry(['max-age=60', 'no-store'])],
    ['Vary: *', [['vary', '*']] as HeaderEntry[]],
    ['Vary with * among names', [['vary', 'Accept, *']] as HeaderEntry[]],
    ['Vary: * in an array', [['vary', ['accept', ' * ']]] as HeaderEntry[]],
  ])('forbids %s', (_name, headers) => {
    expect(responseForbidsStore(headers)).toBe(true);
  });

  it.each([
    ['no headers', [] as HeaderEntry[]],
    ['public max-age', ccEntry('public, max-age=60')],
    ['no-cache', ccEntry('no-cache')],
    ['Vary on names', [['vary', 'Accept-Encoding']] as HeaderEntry[]],
  ])('allows %s', (_name, headers) => {
    expect(responseForbidsStore(headers)).toBe(false);
  });
});

describe('varyNames', () => {
  it('is empty without Vary', () => {
    expect(varyNames([])).toEqual([]);
    expect(varyNames([['vary', '']])).toEqual([]);
  });

  it('lowercases, trims, dedupes and sorts', () => {
    expect(varyNames([['vary', ' Origin,Accept-Encoding , accept-encoding,, ORIGIN, Accept ']])).toEqual([
      'accept',
      'accept-encoding',
      'origin',
    ]);
  });

  it('joins the values of an array', () => {
    expect(varyNames([['vary', ['Origin', 'Accept, origin']]])).toEqual(['accept', 'origin']);
  });

  it('reads only the vary header', () => {
    expect(varyNames([['cache-control', 'max-age=1']])).toEqual([]);
  });
});

describe('varyFingerprint', () => {
  const names = ['accept-language', 'authorization'];

  it('is empty when the response varies on nothing', () => {
    expect(varyFingerprint([], { authorization: 'Bearer secret' })).toBe('');
  });

  it('is the same for the same values and differs by any value', () => {
    const a = varyFingerprint(names, { 'accept-language': 'en', authorization: 'Bearer a' });
    expect(varyFingerprint(names, { 'accept-language': 'en', authorization: 'Bearer a', other: 'x' })).toBe(a);
    expect(varyFingerprint(names, { 'accept-language': 'fr', authorization: 'Bearer a' })).not.toBe(a);
    expect(varyFingerprint(names, { 'accept-language': 'en', authorization: 'Bearer b' })).not.toBe(a);
  });

  it('tells a missing header from an empty one', () => {
    expect(varyFingerprint(['accept'], {})).not.toBe(varyFingerprint(['accept'], { accept: '' }));
    expect(varyFingerprint(['accept'], {})).toBe(varyFingerprint(['accept'], { accept: undefined }));
  });

  it('tells which header a value is in', () => {
    expect(varyFingerprint(['a', 'b'], { a: 'x' })).not.toBe(varyFingerprint(['a', 'b'], { b: 'x' }));
  });

  it('reads an array value as its comma-joined list', () => {
    expect(varyFingerprint(['accept'], { accept: ['a', 'b'] })).toBe(varyFingerprint(['accept'], { accept: 'a,b' }));
  });

  it('is a hash: neither the values nor the names appear in it', () => {
    const secret = 'Bearer super-secret-token';
    const fingerprint = varyFingerprint(names, { 'accept-language': 'en', authorization: secret });
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/); // SHA-256, base64url
    expect(fingerprint).not.toContain('super-secret');
    expect(fingerprint).not.toContain('Bearer');
    expect(fingerprint).not.toContain('authorization');
  });
});

describe('freshnessFromCacheControl', () => {
  it('is undefined without directives', () => {
    expect(freshnessFromCacheControl(undefined)).toBeUndefined();
    expect(freshnessFromCacheControl(cc(''))).toBeUndefined();
  });

  it('is empty (keeps the route settings) for directives about nothing it reads', () => {
    expect(freshnessFromCacheControl(cc('public'))).toEqual({});
  });

  it('reads max-age in milliseconds', () => {
    expect(freshnessFromCacheControl(cc('max-age=60'))).toEqual({ ttl: 60_000 });
    expect(freshnessFromCacheControl(cc('max-age=0'))).toEqual({ ttl: 0 });
  });

  it('prefers s-maxage (the shared cache own) over max-age, in either order', () => {
    expect(freshnessFromCacheControl(cc('max-age=60, s-maxage=300'))).toEqual({ ttl: 300_000 });
    expect(freshnessFromCacheControl(cc('s-maxage=5, max-age=60'))).toEqual({ ttl: 5_000 });
    expect(freshnessFromCacheControl(cc('S-MaxAge=0, max-age=60'))).toEqual({ ttl: 0 });
  });

  it('falls back to max-age when s-maxage is garbage', () => {
    expect(freshnessFromCacheControl(cc('s-maxage=soon, max-age=60'))).toEqual({ ttl: 60_000 });
  });

  it('reads stale-while-revalidate and stale-if-error (RFC 5861)', () => {
    expect(freshnessFromCacheControl(cc('max-age=1, stale-while-revalidate=30, stale-if-error=86400'))).toEqual({
      ttl: 1000,
      staleTtl: 30_000,
      staleIfError: 86_400_000,
    });
  });

  it('reads quoted numbers', () => {
    expect(freshnessFromCacheControl(cc('max-age="60"'))).toEqual({ ttl: 60_000 });
  });

  it('makes no-cache fresh for 0 ms whatever max-age says, keeping the stale windows', () => {
    expect(freshnessFromCacheControl(cc('no-cache'))).toEqual({ ttl: 0 });
    expect(freshnessFromCacheControl(cc('max-age=60, no-cache, stale-if-error=10'))).toEqual({
      ttl: 0,
      staleIfError: 10_000,
    });
    expect(freshnessFromCacheControl(cc('s-maxage=60, No-Cache'))).toEqual({ ttl: 0 });
  });

  it.each(['-1', '1.5', '1e3', 'abc', '', ' ', '0x10', '+5', 'Infinity'])('ignores max-age=%j', (value) => {
    expect(freshnessFromCacheControl(cc(`max-age=${value}, stale-if-error=${value}`))).toEqual({});
  });

  it('reads the header from an array of lines', () => {
    expect(freshnessFromCacheControl(cc(['public', 'max-age=2']))).toEqual({ ttl: 2000 });
  });
});

describe('ttlForStatus', () => {
  const TTL = 10_000;

  it('stores 2xx for the route ttl and nothing else by default', () => {
    for (const status of [200, 201, 204, 299]) expect(ttlForStatus(status, TTL)).toBe(TTL);
    for (const status of [100, 199, 300, 301, 304, 404, 429, 500, 503])
      expect(ttlForStatus(status, TTL)).toBeUndefined();
  });

  it('takes a listed status from a map, else the default', () => {
    const statusTtl = { 404: 1000, 200: 50, 500: 0 };
    expect(ttlForStatus(404, TTL, statusTtl)).toBe(1000);
    expect(ttlForStatus(200, TTL, statusTtl)).toBe(50);
    expect(ttlForStatus(500, TTL, statusTtl)).toBe(0);
    expect(ttlForStatus(201, TTL, statusTtl)).toBe(TTL);
    expect(ttlForStatus(410, TTL, statusTtl)).toBeUndefined();
  });

  it('asks a function, falling back to the default when it answers undefined', () => {
    const statusTtl = jest.fn((status: number) => (status === 404 ? 1000 : undefined));
    expect(ttlForStatus(404, TTL, statusTtl)).toBe(1000);
    expect(ttlForStatus(200, TTL, statusTtl)).toBe(TTL);
    expect(ttlForStatus(500, TTL, statusTtl)).toBeUndefined();
    expect(statusTtl.mock.calls).toEqual([[404], [200], [500]]);
  });
});

describe('ageSeconds', () => {
  const T0 = 1_700_000_000_000;

  it('is whole seconds since the value was produced, rounded down', () => {
    expect(ageSeconds(T0, T0)).toBe(0);
    expect(ageSeconds(T0, T0 + 999)).toBe(0);
    expect(ageSeconds(T0, T0 + 1000)).toBe(1);
    expect(ageSeconds(T0, T0 + 61_999)).toBe(61);
  });

  it('is 0 when unknown or in the future (clock skew)', () => {
    expect(ageSeconds(undefined, T0)).toBe(0);
    expect(ageSeconds(T0 + 5000, T0)).toBe(0);
  });
});

describe('writePathTag', () => {
  it('gives every spelling a router takes for one path one tag', () => {
    const tag = writePathTag('/articles/a');
    expect(tag).toBe('path:/articles/a');
    for (const spelling of [
      '/articles/%61',
      '/articles/a/',
      '/Articles/A',
      '/articles/a//',
      '/articles/a?x=1',
      '/articles/a#top',
    ])
      expect(writePathTag(spelling)).toBe(tag);
    expect(writePathTag('/caf%C3%A9')).toBe(writePathTag('/café'));
    expect(writePathTag('/')).toBe('path:/');
  });

  it('keeps paths apart that differ otherwise, and an escape that is no UTF-8 as sent', () => {
    expect(writePathTag('/articles/b')).not.toBe(writePathTag('/articles/a'));
    expect(writePathTag('/a%ff')).toBe('path:/a%ff');
    expect(writePathTag('/a%ff')).not.toBe(writePathTag('/a'));
  });
});
