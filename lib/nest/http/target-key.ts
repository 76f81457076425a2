import { RequestKeyParts, requestKey } from '../../http/request-key';
import { HttpRequestLike, Platform, requestScheme } from './platform';

/** The parts of a key past the request target: the route's headers, user, body and `key` function. */
export type KeyExtras = Pick<RequestKeyParts, 'keyHeaders' | 'user' | 'body' | 'custom'>;

/**
 * The key of `request` as the interceptor builds it: method, scheme, host
 * (the platform's host name when it differs, and the hashed headers that
 * name the host besides the authority), the path as sent, the query as the app's
 * parser gave it, then `extras`. Shared by the interceptor and the edge tier,
 * which must build the very same key from the same request.
 */
export function requestTargetKey(platform: Platform, request: HttpRequestLike, extras: KeyExtras): string {
  const url = platform.requestUrl(request);
  const queryAt = url.indexOf('?');
  const headers = request.headers;
  const authority = (headers[':authority'] ?? headers.host ?? '') as string;
  // Without a forwarding header, Express and Fastify report the Host's own name (see `hostnameFollowsHost`):
  // they are not asked then (Fastify's getter parses the Host again on every request).
  const asked =
    headers['x-forwarded-host'] !== undefined ||
    headers.forwarded !== undefined ||
    !platform.hostnameFollowsHost(request, headers);
  const hostname = asked ? platform.requestHostname(request) : undefined;
  // What a handler may read besides the host name (`request.host` keeps the port): any forwarded host
  // (trusted or not, the handler may read it) and, over HTTP/2, a `Host` beside `:authority` join the key, hashed.
  const hostHeaders = authorityHeaders(headers);
  return requestKey({
    method: request.method,
    scheme: requestScheme(request),
    authority,
    forwardedHost: hostname !== undefined && hostname !== hostOf(authority) ? hostname : undefined,
    path: queryAt === -1 ? url : url.slice(0, queryAt),
    // The query as the app's parser gave it to the handler; the raw string only if there is none.
    query: request.query !== undefined ? request.query : queryAt === -1 ? '' : url.slice(queryAt + 1),
    headers,
    ...extras,
    keyHeaders: hostHeaders === undefined ? extras.keyHeaders : withNames(extras.keyHeaders, hostHeaders),
  });
}

/** The headers besides the authority that name the host a request was for, when it sent any; else `undefined`. */
function authorityHeaders(headers: HttpRequestLike['headers']): string[] | undefined {
  const forwarded = headers['x-forwarded-host'] !== undefined;
  const hostBeside = headers[':authority'] !== undefined && headers.host !== undefined;
  if (!forwarded && !hostBeside) return undefined;
  return forwarded && hostBeside ? ['host', 'x-forwarded-host'] : [forwarded ? 'x-forwarded-host' : 'host'];
}

/** `names` (sorted) with `more` (sorted) merged in, each once, still sorted. */
function withNames(names: readonly string[], more: readonly string[]): string[] {
  return [...new Set([...names, ...more])].sort();
}

/** The host of an authority, without its port. */
function hostOf(authority: string): string {
  const colon = authority.lastIndexOf(':');
  return colon === -1 || authority.endsWith(']') ? authority : authority.slice(0, colon);
}
