import { argumentsKey } from '../core/arguments-key';
import { boundKey, sha256 } from '../core/hash';

/** Request header values as Node and Fastify expose them. */
export type HeaderValues = Record<string, string | string[] | undefined>;

/**
 * What the handler of a request sees, as far as the key of its response
 * goes: the target URI (scheme, authority, path), the query as the app's
 * query parser handed it to the handler, the body its body parser read, and
 * the route's extra parts.
 */
export interface RequestKeyParts {
  method: string;
  /** `http` or `https`, as the platform reports it (trust proxy included). */
  scheme: string;
  /** The `Host` (or `:authority`) the request was sent to, as sent. */
  authority: string;
  /** The host name the platform reports when it differs from the authority (a trusted `X-Forwarded-Host`). */
  forwardedHost?: string;
  /**
   * With an adapter other than Nest's own, whose host name may come from
   * elsewhere: the host with its port its request reports (`request.host`),
   * when it differs from the authority.
   */
  reportedHost?: string;
  /** The request target up to its first `?`, as sent (a raw `#` included). */
  path: string;
  /** The parsed query (`request.query`), or the raw query string when the platform parsed none. */
  query: unknown;
  /**
   * The request target the router routed (path and query), when a rewrite
   * made it differ from the one sent: an Express middleware that set
   * `req.url`, Fastify's `rewriteUrl`.
   */
  routed?: string;
  headers: HeaderValues;
  /** Header names (lowercase, sorted) whose values split the key. */
  keyHeaders: readonly string[];
  /** The client address, for a handler that reads it (`@Ip()`); hashed here. */
  client?: string;
  /** Which of the handlers one URL may reach answered (its version, when versioning is not by URI). */
  route?: string;
  /** The route's `keyUser` part (hashed here), or `null` for no user. */
  user?: string | null;
  /** The key part of the body the handler will see (`bodyKeyPart`). */
  body?: string;
  /** The route's `key` function result. */
  custom?: string;
}

// The characters a key part may not hold as they are: the separator of parts
// (`|`), the mark of a hashed long key (`#`), the escape itself, whitespace
// and controls (keys reach logs). Escaped as `\` + a letter or hex, so the
// escape is reversible and no two parts can run into each other.
// eslint-disable-next-line no-control-regex -- controls are what it escapes
const SPECIAL = /[\\|#\u0000-\u0020\u007f]/g;
// In a scheme or a host, also what ends them (`/`, and the parentheses of a forwarded host);
// in a path, the `?` that ends it. Both come from headers (Host, X-Forwarded-*), which may hold anything.
// eslint-disable-next-line no-control-regex -- controls are what it escapes
const SPECIAL_IN_HOST = /[\\|#\u0000-\u0020\u007f/()?]/g;
// eslint-disable-next-line no-control-regex -- controls are what it escapes
const SPECIAL_IN_PATH = /[\\|#\u0000-\u0020\u007f?]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '|': '\\p', '#': '\\h' };
const escape = (c: string) => ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
// The same sets without the global flag, to test (stateless) before replacing: most parts need nothing.
const HAS_SPECIAL = new RegExp(SPECIAL.source);
const HAS_SPECIAL_IN_HOST = new RegExp(SPECIAL_IN_HOST.source);
const HAS_SPECIAL_IN_PATH = new RegExp(SPECIAL_IN_PATH.source);

/** A free-text key part, escaped so that it can never spell a separator or a hashed key. */
export function escapeKeyPart(text: string): string {
  return HAS_SPECIAL.test(text) ? text.replace(SPECIAL, escape) : text;
}

function escapeHost(text: string): string {
  return HAS_SPECIAL_IN_HOST.test(text) ? text.replace(SPECIAL_IN_HOST, escape) : text;
}

function escapePath(text: string): string {
  return HAS_SPECIAL_IN_PATH.test(text) ? text.replace(SPECIAL_IN_PATH, escape) : text;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * The key part of a query as the handler receives it: for a flat query
 * (string values, or lists of strings) `a=1&b=x%20y&c[]=1&c[]=2`, names
 * sorted, each name and value percent-encoded, a list marked `[]` even with
 * one item; for anything else (nested objects from an extended parser) a
 * stable serialization, which starts with `{` (encoded in the flat form, so
 * the two never meet). Equal parsed queries share a part whatever the order
 * or the escapes they were sent with; different ones never do.
 */
export function queryKeyPart(query: unknown): string {
  // A raw query, kept exactly as sent; `"` and `{` open the other forms (the flat one encodes both).
  if (typeof query === 'string') return query === '' ? '' : escapeKeyPart(`"${query}`);
  if (query === null || typeof query !== 'object') return '';
  const names = Object.keys(query);
  if (names.length === 0) return '';
  if (names.length > 1) names.sort();
  const values = query as Record<string, unknown>;
  let flat = '';
  // encodeURIComponent throws on a lone surrogate: such a query takes the serialized form.
  try {
    for (const name of names) {
      const value = values[name];
      const encoded = encodeURIComponent(name);
      if (typeof value === 'string') {
        flat += `&${encoded}=${encodeURIComponent(value)}`;
      } else if (isStringList(value)) {
        if (value.length === 0) flat += `&${encoded}[]`;
        for (const item of value) flat += `&${encoded}[]=${encodeURIComponent(item)}`;
      } else {
        return nestedQueryPart(query);
      }
    }
  } catch {
    return nestedQueryPart(query);
  }
  return flat.slice(1);
}

function nestedQueryPart(query: object): string {
  return escapeKeyPart(`{${argumentsKey([query])}`);
}

/** One header's part of a key: its name and a hash of its value, never the value. */
function headerPart(name: string, value: string | string[] | undefined): string {
  if (value === undefined) return `h:${escapeKeyPart(name)}:-`;
  return `h:${escapeKeyPart(name)}:${sha256(Array.isArray(value) ? `[${value.join('\n')}` : `=${value}`)}`;
}

/**
 * The store key of an HTTP request:
 * `GET http://host(forwarded)/path?query|t:routed|a:host|r:route|h:name:hash|i:hash|u:hash|b:hash|k:custom`, every
 * free-text part escaped (`escapeKeyPart`), header values and users hashed.
 * Long keys are hashed (`boundKey`).
 */
export function requestKey(parts: RequestKeyParts): string {
  let key = `${escapeKeyPart(parts.method)} ${escapeHost(parts.scheme)}://${escapeHost(parts.authority)}`;
  if (parts.forwardedHost !== undefined) key += `(${escapeHost(parts.forwardedHost)})`;
  // A target in another form than `/path` (absolute-form `http://...`, `*`) is marked, so
  // that where the host ends stays clear: `\*` is no escape, so no part can spell it.
  if (!parts.path.startsWith('/')) key += '\\*';
  key += escapePath(parts.path);
  const query = queryKeyPart(parts.query);
  if (query !== '') key += `?${query}`;
  if (parts.routed !== undefined) key += `|t:${escapeKeyPart(parts.routed)}`;
  if (parts.reportedHost !== undefined) key += `|a:${escapeKeyPart(parts.reportedHost)}`;
  if (parts.route !== undefined) key += `|r:${escapeKeyPart(parts.route)}`;
  for (const name of parts.keyHeaders) key += `|${headerPart(name, parts.headers[name])}`;
  if (parts.client !== undefined) key += `|i:${sha256(parts.client)}`;
  if (parts.user !== undefined) key += parts.user === null ? '|u:-' : `|u:${sha256(parts.user)}`;
  if (parts.body !== undefined) key += `|b:${parts.body}`;
  if (parts.custom !== undefined) key += `|k:${escapeKeyPart(parts.custom)}`;
  return boundKey(key);
}

/** The key of the variant of `key` for one set of `Vary` header values: a namespace no request spells. */
export function variantKey(key: string, fingerprint: string): string {
  return `${key}|vary:${fingerprint}`;
}

/** True when the request headers announce a body (`Content-Length` > 0 or `Transfer-Encoding`). */
export function announcesBody(headers: HeaderValues): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * The key part of a parsed request body: a hash of its stable serialization;
 * `undefined` when it is over `maxBytes` serialized or has no stable form
 * (then the request must run alone).
 */
export function bodyKeyPart(body: unknown, maxBytes: number): string | undefined {
  let text: string;
  try {
    text = argumentsKey([body]);
  } catch {
    return undefined;
  }
  return Buffer.byteLength(text) > maxBytes ? undefined : sha256(text);
}
