import { isReplayableHeader, replayableHeaderChanges } from '../../lib/http/header-policy';

describe('isReplayableHeader', () => {
  const cases = (name: string) => [name, name.toUpperCase(), name.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())];

  it.each(
    [
      'set-cookie',
      'set-cookie2',
      'retry-after',
      'connection',
      'keep-alive',
      'proxy-authenticate',
      'proxy-authorization',
      'proxy-connection',
      'te',
      'trailer',
      'transfer-encoding',
      'upgrade',
      'content-length',
      'date',
      'cache-status',
      'age',
      'access-control-allow-origin',
      'access-control-allow-credentials',
      'access-control-expose-headers',
      'x-ratelimit-remaining',
      'x-ratelimit-limit',
      'x-rate-limit-reset',
      'ratelimit',
      'ratelimit-policy',
      'ratelimit-remaining',
    ].flatMap(cases),
  )('denies %s', (name) => {
    expect(isReplayableHeader(name)).toBe(false);
  });

  it.each(
    [
      'content-type',
      'etag',
      'last-modified',
      'cache-control',
      'vary',
      'x-request-source',
      'content-language',
      'link',
    ].flatMap(cases),
  )('allows %s', (name) => {
    expect(isReplayableHeader(name)).toBe(true);
  });

  it('matches denied names exactly, not as prefixes', () => {
    expect(isReplayableHeader('set-cookie-policy')).toBe(true);
    expect(isReplayableHeader('x-set-cookie')).toBe(true);
    expect(isReplayableHeader('dates')).toBe(true);
  });
});

describe('replayableHeaderChanges', () => {
  it('returns headers the handler added', () => {
    expect(replayableHeaderChanges({}, { etag: '"1"' })).toEqual([['etag', '"1"']]);
  });

  it('returns headers the handler changed, with their new value', () => {
    expect(replayableHeaderChanges({ 'content-type': 'text/plain' }, { 'content-type': 'application/json' })).toEqual([
      ['content-type', 'application/json'],
    ]);
  });

  it('leaves out headers that were already set to the same value before the handler', () => {
    expect(replayableHeaderChanges({ 'x-powered-by': 'Express', n: 1 }, { 'x-powered-by': 'Express', n: 1 })).toEqual(
      [],
    );
  });

  it('leaves out headers the handler removed', () => {
    expect(replayableHeaderChanges({ 'x-old': 'v' }, {})).toEqual([]);
  });

  it('leaves out headers whose value is undefined', () => {
    expect(replayableHeaderChanges({}, { 'x-unset': undefined })).toEqual([]);
  });

  it('leaves out denied headers even when the handler set them', () => {
    expect(
      replayableHeaderChanges(
        {},
        {
          'set-cookie': ['sid=1'],
          'Access-Control-Allow-Origin': '*',
          'X-RateLimit-Remaining': '9',
          'content-length': '12',
          'x-kept': 'yes',
        },
      ),
    ).toEqual([['x-kept', 'yes']]);
  });

  it('lowercases the names it returns', () => {
    expect(replayableHeaderChanges({}, { 'X-Custom-Header': 'v', ETag: 'e' })).toEqual([
      ['x-custom-header', 'v'],
      ['etag', 'e'],
    ]);
  });

  it('keeps numbers and lists as values', () => {
    expect(replayableHeaderChanges({}, { 'x-count': 3, link: ['<a>', '<b>'] })).toEqual([
      ['x-count', 3],
      ['link', ['<a>', '<b>']],
    ]);
  });

  it('compares lists by their items', () => {
    expect(replayableHeaderChanges({ link: ['<a>', '<b>'] }, { link: ['<a>', '<b>'] })).toEqual([]);
    expect(replayableHeaderChanges({ link: ['<a>', '<b>'] }, { link: ['<a>', '<c>'] })).toEqual([
      ['link', ['<a>', '<c>']],
    ]);
    expect(replayableHeaderChanges({ link: ['<a>'] }, { link: ['<a>', '<b>'] })).toEqual([['link', ['<a>', '<b>']]]);
    expect(replayableHeaderChanges({ link: '<a>' }, { link: ['<a>'] })).toEqual([['link', ['<a>']]]);
  });

  it('treats a string and a number with the same digits as a change', () => {
    expect(replayableHeaderChanges({ 'x-n': '1' }, { 'x-n': 1 })).toEqual([['x-n', 1]]);
  });
});
