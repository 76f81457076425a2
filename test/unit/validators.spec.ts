import {
  bodyETag,
  hasValidatedStatus,
  httpDate,
  isNotModified,
  isNotModifiedHeader,
  opaqueTag,
  parseIfNoneMatch,
  requestPreconditions,
} from '../../lib/http/validators';

const SUNDAY = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('parseIfNoneMatch', () => {
  it('reads *, single tags and lists, dropping W/ and keeping the quotes', () => {
    expect(parseIfNoneMatch(' * ')).toBe('*');
    expect(parseIfNoneMatch('"x"')).toEqual(['"x"']);
    expect(parseIfNoneMatch('W/"x", "y" ,W/"z"')).toEqual(['"x"', '"y"', '"z"']);
    expect(parseIfNoneMatch('"x",,\t"y"')).toEqual(['"x"', '"y"']);
  });

  it('keeps a comma inside quotes, and an unquoted (invalid) member as written', () => {
    expect(parseIfNoneMatch('"a,b", "c"')).toEqual(['"a,b"', '"c"']);
    expect(parseIfNoneMatch('abc , "d"')).toEqual(['abc', '"d"']);
    // `*` is a value of its own, not a member of a list.
    expect(parseIfNoneMatch('"a", *')).toEqual(['"a"', '*']);
  });

  it('stops at an unterminated tag', () => {
    expect(parseIfNoneMatch('"a", "b')).toEqual(['"a"']);
  });
});

describe('httpDate', () => {
  it('reads the three forms of RFC 9110 §5.6.7, asctime as UTC', () => {
    expect(httpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(SUNDAY);
    expect(httpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(SUNDAY);
    expect(httpDate('Sun Nov  6 08:49:37 1994')).toBe(SUNDAY);
  });

  it('refuses anything else, lists included', () => {
    for (const value of [
      '1994-11-06T08:49:37Z',
      '1',
      'Sun, 06 Nov 1994 08:49:37 UTC',
      'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT',
      'Sun, 36 Nov 1994 08:49:37 GMT',
      '',
    ]) {
      expect(httpDate(value)).toBeUndefined();
    }
  });
});

describe('requestPreconditions', () => {
  it('is undefined without a conditional header, for methods other than GET and HEAD, and on a reload', () => {
    expect(requestPreconditions('GET', { accept: '*/*' })).toBeUndefined();
    expect(requestPreconditions('POST', { 'if-none-match': '*' })).toBeUndefined();
    expect(requestPreconditions('PUT', { 'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT' })).toBeUndefined();
    expect(requestPreconditions('GET', { 'if-none-match': '"x"', 'cache-control': 'max-age=0, No-Cache' })).toBe(
      undefined,
    );
  });

  it('takes If-None-Match alone when present (RFC 9110 §13.2.2), repeated fields as one list', () => {
    expect(
      requestPreconditions('HEAD', {
        'if-none-match': ['"a"', 'W/"b"'],
        'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
      }),
    ).toEqual({ noneMatch: ['"a"', '"b"'] });
  });

  it('takes a valid If-Modified-Since, and ignores an invalid or repeated one', () => {
    expect(requestPreconditions('GET', { 'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT' })).toEqual({
      modifiedSince: SUNDAY,
    });
    expect(requestPreconditions('GET', { 'if-modified-since': 'yesterday' })).toBeUndefined();
    expect(requestPreconditions('GET', { 'if-modified-since': ['Sun, 06 Nov 1994 08:49:37 GMT'] })).toBeUndefined();
  });
});

describe('isNotModified', () => {
  const validators = { etag: '"abc"', lastModified: 'Sun, 06 Nov 1994 08:49:37 GMT' };

  it('compares entity tags weakly, and * matches any stored response', () => {
    expect(isNotModified({ noneMatch: ['"abc"'] }, validators)).toBe(true);
    expect(isNotModified({ noneMatch: ['"abc"'] }, { etag: 'W/"abc"' })).toBe(true);
    expect(isNotModified({ noneMatch: ['"x"', '"abc"'] }, validators)).toBe(true);
    expect(isNotModified({ noneMatch: ['"abcd"'] }, validators)).toBe(false);
    expect(isNotModified({ noneMatch: ['abc'] }, validators)).toBe(false);
    expect(isNotModified({ noneMatch: '*' }, {})).toBe(true);
    expect(isNotModified({ noneMatch: ['"abc"'] }, { lastModified: validators.lastModified })).toBe(false);
  });

  it('compares If-Modified-Since with Last-Modified: unchanged when modified at or before it', () => {
    expect(isNotModified({ modifiedSince: SUNDAY }, validators)).toBe(true);
    expect(isNotModified({ modifiedSince: SUNDAY + 1000 }, validators)).toBe(true);
    expect(isNotModified({ modifiedSince: SUNDAY - 1000 }, validators)).toBe(false);
    expect(isNotModified({ modifiedSince: SUNDAY }, { etag: '"abc"' })).toBe(false);
    expect(isNotModified({ modifiedSince: SUNDAY }, { lastModified: 'not a date' })).toBe(false);
    expect(isNotModified({}, validators)).toBe(false);
  });
});

describe('the rest', () => {
  it('bodyETag.of is a strong tag of the bytes: equal bytes, equal tag', () => {
    const tag = bodyETag.of('{"a":1}');
    expect(tag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(bodyETag.of(Buffer.from('{"a":1}'))).toBe(tag);
    expect(bodyETag.of('{"a":2}')).not.toBe(tag);
  });

  it('opaqueTag drops the weakness mark', () => {
    expect(opaqueTag(' W/"x" ')).toBe('"x"');
    expect(opaqueTag('"x"')).toBe('"x"');
  });

  it('a 304 carries only the headers that guide caches, and stands only for a 2xx other than 206', () => {
    expect(
      ['etag', 'cache-control', 'vary', 'last-modified', 'expires', 'content-location'].every(isNotModifiedHeader),
    ).toBe(true);
    expect(['content-type', 'x-custom', 'content-length'].some(isNotModifiedHeader)).toBe(false);
    expect([200, 203, 204].every(hasValidatedStatus)).toBe(true);
    expect([206, 301, 304, 404, 500].some(hasValidatedStatus)).toBe(false);
  });
});
