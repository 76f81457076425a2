import { sha256 } from '../../core/hash';

/** Request headers that always carry a caller's credentials. */
const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie'];

/** The request in a GraphQL context, as both drivers put it there (`context.req`). */
export interface GraphqlRequestLike {
  headers?: Record<string, string | string[] | undefined>;
  user?: unknown;
  /** Fastify: the Node request, where a Nest middleware sets its `user`. */
  raw?: { user?: unknown };
}

/** What a resolver keys by, which the credential rule needs to know. */
export interface CallerKeying {
  /** A `key` function: trusted to separate callers. */
  key?: unknown;
  /** Lowercase header names in the key (hashed). */
  keyHeaders: readonly string[];
}

/**
 * The credential rule for GraphQL: a request carrying `Authorization`,
 * `Proxy-Authorization`, `Cookie` or one of `extraHeaders`, or with a
 * `user` set by a guard or middleware, is per caller: it is not answered with
 * another caller's result unless the resolver keys by that credential (a `key`
 * function, or the header in `keyHeaders`). A context without a request (a
 * custom context) counts as per caller too: nothing says who is asking.
 */
export function isPerCaller(
  request: GraphqlRequestLike | undefined,
  keying: CallerKeying,
  /** The module's `credentialHeaders`. */
  extraHeaders: readonly string[],
): boolean {
  if (keying.key !== undefined) return false;
  if (request === undefined || request === null || typeof request !== 'object') return true;
  const user = request.user ?? request.raw?.user;
  if (user !== undefined && user !== null) return true;
  const headers = request.headers ?? {};
  for (const name of CREDENTIAL_HEADERS) {
    if (headers[name] !== undefined && !keying.keyHeaders.includes(name)) return true;
  }
  for (const name of extraHeaders) {
    if (headers[name] !== undefined && !keying.keyHeaders.includes(name)) return true;
  }
  return false;
}

/** The `keyHeaders` part of a key: each listed header's value hashed, never in clear. */
export function headerKeyPart(request: GraphqlRequestLike | undefined, names: readonly string[]): string[] {
  const headers = request?.headers ?? {};
  return names.map((name) => {
    const value = headers[name];
    if (value === undefined) return `${name}:-`;
    return `${name}:${sha256(Array.isArray(value) ? value.join('\n') : value)}`;
  });
}
