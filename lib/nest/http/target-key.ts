import { RequestKeyParts, requestKey } from '../../http/request-key';
import { HttpRequestLike, Platform, requestScheme } from './platform';
import type { RouteSettings } from './route-settings';

/** What a route's handler reads of a request past its target, from its settings: the same at the edge and in the interceptor. */
export type RouteKeying = Pick<RouteSettings, 'keyHeaders' | 'keyClient' | 'version'>;

/** The parts of a key the interceptor adds: the user, the body and the `key` function's. */
export type KeyExtras = Pick<RequestKeyParts, 'user' | 'body' | 'custom'>;

/**
 * The key of `request` as the interceptor builds it: method, scheme, host
 * (and the host the platform reports, port included, when it differs),
 * the path as sent, the query as the app's
 * parser gave it (the raw query when it gave none), the target the router
 * routed when a rewrite changed it, what `route` says its handler reads (its
 * headers, the client's address, its version), then `extras`. Shared by the interceptor and the edge tier,
 * which must build the very same key from the same request.
 */
export function requestTargetKey(
  platform: Platform,
  request: HttpRequestLike,
  route: RouteKeying,
  extras?: KeyExtras,
): string {
  const url = platform.requestUrl(request);
  const queryAt = url.indexOf('?');
  // Routed by the URL a middleware (`req.url = ...`) or Fastify's `rewriteUrl` made of the one sent.
  const routed = request.url;
  const headers = request.headers;
  const authority = (headers[':authority'] ?? headers.host ?? '') as string;
  // Without a forwarding header, Express and Fastify report the Host's own name (see `hostnameFollowsHost`):
  // they are not asked then (Fastify's getter parses the Host again on every request).
  const asked =
    headers['x-forwarded-host'] !== undefined ||
    headers.forwarded !== undefined ||
    !platform.hostnameFollowsHost(request, headers);
  // What a handler may read of the host besides the authority: `request.host` (port included) and its name.
  // Nest's own adapters take the name from that host (without its port), so the host keys both.
  const reported = asked && typeof request.host === 'string' ? request.host : undefined;
  const byHost = reported !== undefined && platform.namesHostByHost();
  const hostname = asked && !byHost ? platform.requestHostname(request) : undefined;
  let forwardedHost: string | undefined;
  if (byHost) forwardedHost = reported !== authority ? reported : undefined;
  else if (hostname !== undefined && hostname !== hostOf(authority)) forwardedHost = hostname;
  return requestKey({
    method: request.method,
    scheme: requestScheme(request),
    authority,
    forwardedHost,
    // Any other adapter's name may come from elsewhere: its request's host keys apart from it.
    reportedHost: !byHost && reported !== undefined && reported !== authority ? reported : undefined,
    path: queryAt === -1 ? url : url.slice(0, queryAt),
    // The query as the app's parser gave it to the handler; the raw string if it gave none (Express with
    // its `query parser` off hands an empty object, and the handler reads the URL).
    query:
      request.query !== undefined && (queryAt === -1 || !isEmpty(request.query))
        ? request.query
        : queryAt === -1
          ? ''
          : url.slice(queryAt + 1),
    routed: typeof routed === 'string' && routed !== url ? routed : undefined,
    headers,
    keyHeaders: route.keyHeaders,
    client: route.keyClient ? String(request.ip) : undefined,
    route: route.version,
    ...extras,
  });
}

function isEmpty(query: unknown): boolean {
  if (typeof query !== 'object' || query === null) return false;
  for (const _ in query) return false;
  return true;
}

/** The host of an authority, without its port. */
function hostOf(authority: string): string {
  const colon = authority.lastIndexOf(':');
  return colon === -1 || authority.endsWith(']') ? authority : authority.slice(0, colon);
}
