import { Freshness } from '../core/freshness';
import { HeaderEntry } from './header-policy';
import { HeaderValues } from './request-key';
import { sha256 } from '../core/hash';

/**
 * The rules of RFC 9111 a shared cache applies to a response it stores, for
 * the response snapshots the interceptor shares. Pure functions: no Nest.
 */

/** The directives of a `Cache-Control` header, names lowercase (`max-age` -> '60', `no-store` -> ''). */
export function cacheControl(value: string | number | readonly string[] | undefined): Map<string, string> {
  const directives = new Map<string, string>();
  if (value === undefined) return directives;
  const text = Array.isArray(value) ? value.join(',') : String(value);
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    const raw = eq === -1 ? '' : part.slice(eq + 1).trim();
    directives.set(name, raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw);
  }
  return directives;
}

/** A header's value among stored response headers (names are lowercase). */
export function headerValue(headers: readonly HeaderEntry[], name: string): HeaderEntry[1] | undefined {
  for (const [n, v] of headers) if (n === name) return v;
  return undefined;
}

/** True when the request asks not to be answered from or stored in a cache (`Cache-Control: no-store`). */
export function requestForbidsStore(headers: HeaderValues): boolean {
  const value = headers['cache-control'];
  return value !== undefined && cacheControl(value).has('no-store');
}

/**
 * True when a request asks past any stored response (`Cache-Control:
 * no-cache`, `no-store` or `max-age=0`, or `Pragma: no-cache`, RFC 9111 §5.2.1, §5.4).
 */
export function requestAsksToRevalidate(headers: HeaderValues): boolean {
  const pragma = headers['pragma'];
  if (pragma !== undefined && String(pragma).toLowerCase().includes('no-cache')) return true;
  const control = headers['cache-control'];
  if (control === undefined) return false;
  const directives = cacheControl(control);
  return directives.has('no-cache') || directives.has('no-store') || directives.get('max-age') === '0';
}

/**
 * True when a shared cache must not store the response: `Cache-Control:
 * no-store` or `private` (RFC 9111 §3, §5.2.2.7), or `Vary: *` (§4.1).
 */
export function responseForbidsStore(headers: readonly HeaderEntry[]): boolean {
  const directives = cacheControl(headerValue(headers, 'cache-control'));
  if (directives.has('no-store') || directives.has('private')) return true;
  return varyNames(headers).includes('*');
}

/** The request header names a response varies on, lowercase, sorted. */
export function varyNames(headers: readonly HeaderEntry[]): string[] {
  const vary = headerValue(headers, 'vary');
  if (vary === undefined) return [];
  const text = Array.isArray(vary) ? vary.join(',') : String(vary);
  return [
    ...new Set(
      text
        .split(',')
        .map((name) => name.trim().toLowerCase())
        .filter(Boolean),
    ),
  ].sort();
}

/** A fingerprint of the values of `names` in a request (hashed: values may be credentials). */
export function varyFingerprint(names: readonly string[], headers: HeaderValues): string {
  if (names.length === 0) return '';
  return sha256(
    names
      .map((name) => {
        const value = headers[name];
        return `${name}:${value === undefined ? '\u0000' : Array.isArray(value) ? value.join(',') : value}`;
      })
      .join('\n'),
  );
}

// RFC 9111 §1.2.2: delta-seconds past 2^31 are taken as 2^31.
const MAX_DELTA_SECONDS = 2 ** 31;

function seconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Math.min(Number(value), MAX_DELTA_SECONDS) * 1000;
}

/**
 * Freshness from the response's `Cache-Control` (for `respectCacheControl`):
 * `s-maxage` (a shared cache's own) before `max-age`, then
 * `stale-while-revalidate` and `stale-if-error` (RFC 5861). Undefined fields
 * keep the route's settings.
 */
export function freshnessFromCacheControl(
  value: string | number | readonly string[] | undefined,
): Partial<Freshness> | undefined {
  const directives = cacheControl(value);
  if (directives.size === 0) return undefined;
  const freshness: Partial<Freshness> = {};
  const ttl = seconds(directives.get('s-maxage')) ?? seconds(directives.get('max-age'));
  if (ttl !== undefined) freshness.ttl = ttl;
  const staleTtl = seconds(directives.get('stale-while-revalidate'));
  if (staleTtl !== undefined) freshness.staleTtl = staleTtl;
  const staleIfError = seconds(directives.get('stale-if-error'));
  if (staleIfError !== undefined) freshness.staleIfError = staleIfError;
  if (directives.has('no-cache')) freshness.ttl = 0;
  // RFC 9111 §5.2.2.2: once stale, it must not be served without revalidation.
  if (directives.has('must-revalidate') || directives.has('proxy-revalidate')) {
    freshness.staleTtl = 0;
    freshness.staleIfError = 0;
  }
  return freshness;
}

/** `statusTtl` as go-chi's `WithHTTPStatusTTL`: a map from status to ms, or a function. */
export type StatusTtl = Readonly<Record<number, number>> | ((status: number) => number | undefined);

/**
 * The TTL of a response of `status`: from `statusTtl` when it names the
 * status, else `ttl` for 2xx; `undefined` = not stored (e.g. 5xx, unlisted 4xx).
 */
export function ttlForStatus(status: number, ttl: number, statusTtl?: StatusTtl): number | undefined {
  const listed = typeof statusTtl === 'function' ? statusTtl(status) : statusTtl?.[status];
  if (listed !== undefined) return listed;
  return status >= 200 && status < 300 ? ttl : undefined;
}

/** The `Age` header value (RFC 9111 §5.1): whole seconds since the value was produced. */
export function ageSeconds(storedAt: number | undefined, now: number): number {
  return storedAt === undefined ? 0 : Math.max(0, Math.floor((now - storedAt) / 1000));
}

/**
 * The tag `invalidateOnWrite` gives the path of a request target (RFC 9111
 * §4.4): one for every spelling a router takes for one path, with its
 * percent-escapes decoded, lowercase (Express routes case-insensitively by
 * default) and without a trailing slash (Express's non-strict routing).
 * Paths that differ only so share a tag: a write may drop more than it must,
 * never less.
 */
export function writePathTag(target: string): string {
  const end = target.search(/[?#]/);
  let path = end === -1 ? target : target.slice(0, end);
  if (path.includes('%')) path = path.replace(/(?:%[0-9a-fA-F]{2})+/g, decodeEscapes);
  path = path.toLowerCase();
  let last = path.length;
  while (last > 1 && path.charCodeAt(last - 1) === 0x2f) last--;
  return `path:${path.slice(0, last)}`;
}

/** A run of percent-escapes decoded, or as sent when it is no UTF-8 (it then matches itself only). */
function decodeEscapes(run: string): string {
  try {
    return decodeURIComponent(run);
  } catch {
    return run;
  }
}
