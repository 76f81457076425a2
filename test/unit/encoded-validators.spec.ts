import { isStrongETag, notModifiedETag, weakETag } from '../../lib/http/validators';

describe('weakETag', () => {
  it('marks a strong tag weak, and leaves a weak one as it is', () => {
    expect(weakETag('"x"')).toBe('W/"x"');
    expect(weakETag(' "x" ')).toBe('W/"x"');
    expect(weakETag('W/"x"')).toBe('W/"x"');
    expect(isStrongETag('"x"')).toBe(true);
    expect(isStrongETag('W/"x"')).toBe(false);
  });
});

describe('notModifiedETag', () => {
  const gzip = { 'accept-encoding': 'gzip, br' };

  it('gives the weak form to a client that sent only that form and accepts a coding: it holds an encoded body', () => {
    expect(notModifiedETag('"x"', { ...gzip, 'if-none-match': 'W/"x"' })).toBe('W/"x"');
    expect(notModifiedETag('"x"', { ...gzip, 'if-none-match': '"y", W/"x"' })).toBe('W/"x"');
    expect(notModifiedETag('"x"', { 'accept-encoding': '*', 'if-none-match': ['"y"', 'W/"x"'] })).toBe('W/"x"');
    expect(notModifiedETag('"x"', { 'accept-encoding': ['identity', 'gzip;q=0.5'], 'if-none-match': 'W/"x"' })).toBe(
      'W/"x"',
    );
  });

  it('keeps the stored form otherwise', () => {
    // The strong form listed too, `*`, no If-None-Match (If-Modified-Since), a weak stored tag.
    expect(notModifiedETag('"x"', { ...gzip, 'if-none-match': 'W/"x", "x"' })).toBe('"x"');
    expect(notModifiedETag('"x"', { ...gzip, 'if-none-match': '"x"' })).toBe('"x"');
    expect(notModifiedETag('"x"', { ...gzip, 'if-none-match': '*' })).toBe('"x"');
    expect(notModifiedETag('"x"', gzip)).toBe('"x"');
    expect(notModifiedETag('W/"x"', { ...gzip, 'if-none-match': 'W/"x"' })).toBe('W/"x"');
  });

  it('keeps the stored form for a client that accepts no coding: its 200 would be identity', () => {
    for (const accept of [undefined, '', 'identity', 'gzip;q=0, identity', 'GZIP; Q=0', 'br;q=0.0']) {
      const headers = accept === undefined ? {} : { 'accept-encoding': accept };
      expect(notModifiedETag('"x"', { ...headers, 'if-none-match': 'W/"x"' })).toBe('"x"');
    }
  });
});
