import { createHash } from 'node:crypto';
import { cacheControl } from './cache-rules';
import { HeaderValues } from './request-key';

/**
 * Validators and conditional requests (RFC 9110 §8.8, §13) as a cache
 * answers them: pure functions, no Nest. A cache evaluates `If-None-Match`
 * and, without it, `If-Modified-Since`; `If-Match` and `If-Unmodified-Since`
 * are for the origin and are left to the handler (RFC 9111 §4.3.2).
 */

/** The validators a stored response carries: its `ETag` (as sent) and `Last-Modified`. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/** What a request asks to be told when unchanged: `If-None-Match`, else `If-Modified-Since`. */
export interface Preconditions {
  /** `*`, or the opaque tags listed (quotes kept, `W/` dropped: only weak comparison applies). */
  noneMatch?: '*' | readonly string[];
  /** `If-Modified-Since` in epoch ms, only when there is no `If-None-Match`. */
  modifiedSince?: number;
}

/**
 * Computes the strong ETag of a body. An object rather than a function so
 * that tests and the benchmark can count its calls: it runs once per stored
 * response, never per hit.
 */
export const bodyETag = {
  /** `"<base64url SHA-256 of the bytes>"`: equal bytes, equal tag. */
  of(body: string | Uint8Array): string {
    return `"${createHash('sha256').update(body).digest('base64url')}"`;
  },
};

/**
 * The request's preconditions a 304 may answer, or `undefined` when there are
 * none: only `GET` and `HEAD` (any other method's conditionals are the
 * handler's), and never for `Cache-Control: no-cache`, a reload that asks for
 * the whole body (as Express's own freshness check treats it).
 */
export function requestPreconditions(method: string, headers: HeaderValues): Preconditions | undefined {
  const noneMatch = headers['if-none-match'];
  const modifiedSince = headers['if-modified-since'];
  if (noneMatch === undefined && modifiedSince === undefined) return undefined;
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (cacheControl(headers['cache-control']).has('no-cache')) return undefined;
  // §13.2.2: If-None-Match, when present, decides alone.
  if (noneMatch !== undefined) {
    return { noneMatch: parseIfNoneMatch(Array.isArray(noneMatch) ? noneMatch.join(', ') : noneMatch) };
  }
  // §13.1.3: ignored unless one valid HTTP-date (a list, as repeated fields give, is not).
  const since = typeof modifiedSince === 'string' ? httpDate(modifiedSince) : undefined;
  return since === undefined ? undefined : { modifiedSince: since };
}

/**
 * True when a 2xx response with `validators` is unchanged for the request:
 * `If-None-Match` by weak comparison (§13.1.2: `W/"x"` matches `"x"`; `*`
 * matches any current representation), else `If-Modified-Since` against
 * `Last-Modified` (§13.1.3: unchanged when modified at or before that date).
 */
export function isNotModified(preconditions: Preconditions, validators: Validators): boolean {
  const { noneMatch, modifiedSince } = preconditions;
  if (noneMatch !== undefined) {
    if (noneMatch === '*') return true;
    return validators.etag !== undefined && noneMatch.includes(opaqueTag(validators.etag));
  }
  if (modifiedSince === undefined || validators.lastModified === undefined) return false;
  const modified = httpDate(validators.lastModified);
  return modified !== undefined && modified <= modifiedSince;
}

/**
 * The members of an `If-None-Match` value: `*`, or each entity-tag's opaque
 * tag. Commas may stand inside quotes; a member that is not quoted (invalid)
 * is kept as written, so it can only match a response `ETag` as malformed.
 */
export function parseIfNoneMatch(value: string): '*' | string[] {
  if (value.trim() === '*') return '*';
  return entityTags(value).map((tag) => (tag.startsWith('W/"') ? tag.slice(2) : tag));
}

/** The members of an `If-None-Match` list as written (`W/` kept). */
function entityTags(value: string): string[] {
  const tags: string[] = [];
  let at = 0;
  while (at < value.length) {
    const c = value[at];
    if (c === ' ' || c === '\t' || c === ',') {
      at++;
      continue;
    }
    const quote = value.startsWith('W/"', at) ? at + 2 : c === '"' ? at : -1;
    if (quote !== -1) {
      const close = value.indexOf('"', quote + 1);
      if (close === -1) break; // unterminated: nothing after it can be read
      tags.push(value.slice(at, close + 1));
      at = close + 1;
      continue;
    }
    const comma = value.indexOf(',', at);
    const end = comma === -1 ? value.length : comma;
    tags.push(value.slice(at, end).trim());
    at = end;
  }
  return tags;
}

/** The opaque tag of an entity-tag: without its weakness mark, which weak comparison ignores. */
export function opaqueTag(etag: string): string {
  const trimmed = etag.trim();
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed;
}

/** True for an entity-tag without the weakness mark `W/`. */
export function isStrongETag(etag: string): boolean {
  return !etag.trim().startsWith('W/');
}

/**
 * The weak form of an entity-tag (`"x"` -> `W/"x"`), as a response whose body
 * a middleware content-encoded must carry (RFC 9110 §8.8.3: a strong tag
 * names one sequence of bytes, and the gzip bytes are not the identity ones;
 * nginx does the same). Weak comparison still matches it with `"x"`.
 */
export function weakETag(etag: string): string {
  return isStrongETag(etag) ? `W/${etag.trim()}` : etag;
}

/**
 * The form of the stored `etag` a 304 carries: the one a 200 to the same
 * request would carry (RFC 9110 §15.4.5). A 304 has no body, so no middleware
 * encodes it or weakens its tag: when the client sent only the weak form and
 * accepts a content coding, it got an encoded body, and keeps `W/` here.
 */
export function notModifiedETag(etag: string, headers: HeaderValues): string {
  const noneMatch = headers['if-none-match'];
  if (noneMatch === undefined || !isStrongETag(etag) || !acceptsCoding(headers['accept-encoding'])) return etag;
  const members = entityTags(Array.isArray(noneMatch) ? noneMatch.join(', ') : noneMatch);
  const weak = weakETag(etag);
  return members.includes(weak) && !members.includes(etag.trim()) ? weak : etag;
}

/** True when an `Accept-Encoding` accepts some coding other than identity (`q` above 0). */
function acceptsCoding(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  for (const member of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const [coding, ...params] = member.split(';').map((part) => part.trim().toLowerCase());
    if (coding === '' || coding === 'identity') continue;
    const q = params.find((param) => param.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d\\d:\\d\\d:\\d\\d';
/** §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept. */
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d\\d ${MONTH} \\d{4} ${TIME} GMT$`);
const RFC_850 = new RegExp(`^${LONG_DAY}, \\d\\d-${MONTH}-\\d\\d ${TIME} GMT$`);
const ASCTIME = new RegExp(`^${DAY} ${MONTH} [ \\d]\\d ${TIME} \\d{4}$`);

/** An HTTP-date in epoch ms, or `undefined` when the value is not one. */
export function httpDate(value: string): number | undefined {
  const text = value.trim();
  let ms: number;
  if (IMF_FIXDATE.test(text) || RFC_850.test(text)) ms = Date.parse(text);
  // asctime carries no zone, and is UTC.
  else if (ASCTIME.test(text)) ms = Date.parse(`${text} GMT`);
  else return undefined;
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Headers a 304 carries from the stored response (§15.4.5): those a 200
 * would have sent that guide caches, and no other representation metadata.
 */
const NOT_MODIFIED_HEADERS: ReadonlySet<string> = new Set([
  'cache-control',
  'content-location',
  'etag',
  'expires',
  'last-modified',
  'vary',
]);

/** True when a stored response header (lowercase name) belongs on a 304 answering for it. */
export function isNotModifiedHeader(name: string): boolean {
  return NOT_MODIFIED_HEADERS.has(name);
}

/** True for a status whose response a 304 may stand for (§13.2.1: preconditions apply to 2xx). */
export function hasValidatedStatus(status: number): boolean {
  return status >= 200 && status < 300 && status !== 206;
}
