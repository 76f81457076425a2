import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { RequestKeyParts, requestKey } from '../../lib/http/request-key';

/**
 * Two requests share a key only if the handler sees identical inputs: for
 * random pairs of requests drawn from a small alphabet full of the
 * characters a key is made of (separators, escapes, the hashed-key mark),
 * equal keys imply equal inputs. The pairs are often near-identical, so
 * a collision would be found if the encoding had one.
 */

// Characters and the fragments keys are built of: separators, part names, escapes, the hashed-key mark.
const TOKENS = ['a', 'b', '|', '#', '\\', '%', '&', '=', '[]', '{', '"', ':', '?', ' ', '\n', 'x', '2'];
const FRAGMENTS = ['|k:', '|u:', '|u:-', '|b:', '|h:x-a:', '|vary:', '\\p', '\\h', '\\x20', '%7C', '://', '/', '('];
const text = fc
  .array(fc.oneof(fc.constantFrom(...TOKENS), fc.constantFrom(...FRAGMENTS)), { maxLength: 5 })
  .map((chars) => chars.join(''));
const queryValue: fc.Arbitrary<unknown> = fc.oneof(
  text,
  fc.array(text, { maxLength: 3 }),
  fc.dictionary(text, text, { maxKeys: 2 }),
);
const query = fc.oneof(fc.dictionary(text, queryValue, { maxKeys: 3 }), text);
const KEY_HEADERS = [[], ['x-a'], ['x-a', 'x-b']] as const;

const parts: fc.Arbitrary<RequestKeyParts> = fc.record({
  method: fc.constantFrom('GET', 'HEAD'),
  scheme: fc.constantFrom('http', 'https'),
  authority: text,
  forwardedHost: fc.option(text, { nil: undefined }),
  path: text.map((p) => `/${p}`),
  query,
  headers: fc.record({
    'x-a': fc.option(fc.oneof(text, fc.array(text, { maxLength: 2 })), { nil: undefined }),
    'x-b': fc.option(text, { nil: undefined }),
  }),
  keyHeaders: fc.constantFrom(...KEY_HEADERS),
  user: fc.option(fc.option(text, { nil: null }), { nil: undefined }),
  body: fc.option(fc.constantFrom('h1', 'h2'), { nil: undefined }),
  custom: fc.option(text, { nil: undefined }),
});

/** What the handler sees of a request, in a form where equal means equal (object key order aside). */
function seen(request: RequestKeyParts): unknown {
  const { headers, keyHeaders, ...rest } = request;
  const sortDeep = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sortDeep);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, sortDeep((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  return {
    ...rest,
    query: typeof rest.query === 'string' && rest.query === '' ? {} : sortDeep(rest.query),
    keyed: keyHeaders.map((name) => [name, headers[name]]),
  };
}

/** A second request: the first one with text moved across the boundary of two parts (a forged split). */
const shifted = parts.chain((a) =>
  fc.constantFrom('authority>path', 'path>custom', 'path>query', 'custom>none', 'host>forwarded').map((move) => {
    const b: RequestKeyParts = { ...a };
    if (move === 'authority>path') [b.authority, b.path] = ['', `${a.authority}${a.path}`];
    if (move === 'path>custom') [b.path, b.custom] = [`${a.path}|k:${a.custom ?? ''}`, undefined];
    if (move === 'path>query') [b.path, b.query] = [`${a.path}?a=b`, {}];
    if (move === 'custom>none') [b.custom, b.user] = [`${a.custom ?? ''}|u:-`, undefined];
    if (move === 'host>forwarded')
      [b.authority, b.forwardedHost] = [`${a.authority}(${a.forwardedHost ?? ''})`, undefined];
    return [a, b] as const;
  }),
);

/** A second request: the first one with a few of its parts redrawn. */
const redrawn = parts.chain((a) =>
  fc
    .record({
      query: fc.option(query, { nil: undefined }),
      path: fc.option(text, { nil: undefined }),
      authority: fc.option(text, { nil: undefined }),
      custom: fc.option(text, { nil: undefined }),
      user: fc.option(text, { nil: undefined }),
    })
    .map((changes) => {
      const b: RequestKeyParts = { ...a };
      if (changes.query !== undefined) b.query = changes.query;
      if (changes.path !== undefined) b.path = `/${changes.path}`;
      if (changes.authority !== undefined) b.authority = changes.authority;
      if (changes.custom !== undefined) b.custom = changes.custom;
      if (changes.user !== undefined) b.user = changes.user;
      return [a, b] as const;
    }),
);

const pairs = fc.oneof(redrawn, shifted);

describe('request keys', () => {
  it('are equal only for requests whose handler sees equal inputs', () => {
    fc.assert(
      fc.property(pairs, ([a, b]) => {
        if (requestKey(a) === requestKey(b)) expect(seen(a)).toEqual(seen(b));
        else expect(isDeepStrictEqual(seen(a), seen(b))).toBe(false);
      }),
      { numRuns: 20_000 },
    );
  });

  it('are equal for the same parsed query sent in any order', () => {
    fc.assert(
      fc.property(parts, fc.dictionary(text, text, { maxKeys: 4 }), (base, params) => {
        const reversed = Object.fromEntries(Object.entries(params).reverse());
        expect(requestKey({ ...base, query: params })).toBe(requestKey({ ...base, query: reversed }));
      }),
      { numRuns: 2_000 },
    );
  });
});
