import { boundKey, sha256 } from '../core/hash';

/** Request header values as Node and Fastify expose them. */
export type HeaderValues = Record<string, string | string[] | undefined>;

/**
 * The query string with its parameters sorted by name, so `?b=2&a=1` and
 * `?a=1&b=2` share a key. The sort is stable and by decoded name: repeated
 * names keep their order (`?a=2&a=1` is a different list from `?a=1&a=2`,
 * and so is `?a=1&%61=2` from `?%61=2&a=1`). Values are kept
 * as sent: differently encoded equal values only split keys, never merge them.
 */
export function sortedQuery(query: string): string {
  if (query === '') return '';
  const params = query.split('&').filter((param) => param !== '');
  if (params.length < 2) return params.join('&');
  // By decoded name: `%61=1` and `a=1` are one parameter to the app, so their
  // relative order must be kept, as for any repeated name.
  const name = (param: string) => {
    const eq = param.indexOf('=');
    const raw = eq === -1 ? param : param.slice(0, eq);
    try {
      return decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      return raw;
    }
  };
  return params
    .map((param) => ({ param, name: name(param) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(({ param }) => param)
    .join('&');
}

/** One header's part of a key: its name and a hash of its value, never the value. */
function headerPart(name: string, value: string | string[] | undefined): string {
  if (value === undefined) return `${name}:-`;
  return `${name}:${sha256(Array.isArray(value) ? value.join('\n') : value)}`;
}

/**
 * The store key of an HTTP request: method, path, sorted query, then the
 * listed headers (names lowercase and sorted, values SHA-256 hashed) and the
 * route's custom key part, each after a `|`. Long keys are hashed.
 *
 * @param keyHeaders lowercase header names, sorted.
 */
export function httpKey(
  method: string,
  url: string,
  headers: HeaderValues,
  keyHeaders: readonly string[],
  custom?: string,
): string {
  const hashAt = url.indexOf('#');
  const target = hashAt === -1 ? url : url.slice(0, hashAt);
  const queryAt = target.indexOf('?');
  let key =
    queryAt === -1
      ? `${method} ${target}`
      : `${method} ${target.slice(0, queryAt)}?${sortedQuery(target.slice(queryAt + 1))}`;
  for (const name of keyHeaders) key += `|${headerPart(name, headers[name])}`;
  if (custom !== undefined) key += `|=${custom}`;
  return boundKey(key);
}
