import { StreamableFile } from '@nestjs/common';
import type { AbstractHttpAdapter } from '@nestjs/core';
import { responseForbidsStore } from '../../http/cache-rules';
import { HeaderEntry, isReplayableHeader } from '../../http/header-policy';
import { HeaderValues } from '../../http/request-key';

/** An Express `Request` or a Fastify `FastifyRequest`, as far as keys need. */
export interface HttpRequestLike {
  method: string;
  url: string;
  originalUrl?: string;
  headers: HeaderValues;
  /** The parsed query, as the handler's `@Query()` gets it. */
  query?: unknown;
  /** The parsed body, when a body parser read one. */
  body?: unknown;
  /** Set by a guard or middleware that authenticated the caller (Passport's convention). */
  user?: unknown;
  /** Fastify: the Node request, which Nest hands to middleware (a middleware's `req.user` lands here). */
  raw?: { user?: unknown };
  protocol?: string;
  hostname?: string;
  /** Express 5 and Fastify: the host with its port, as the platform reports it (trust proxy included). */
  host?: string;
  /** The client's address as `@Ip()` reads it (trust proxy included). */
  ip?: string;
}

/** An Express `Response` or a Fastify `FastifyReply`, as far as replay needs. */
export interface HttpResponseLike {
  statusCode: number;
  getHeaders(): Record<string, unknown>;
  getHeader?(name: string): unknown;
  status?(code: number): unknown;
  // Express
  setHeader?(name: string, value: unknown): unknown;
  headersSent?: boolean;
  // Fastify
  raw?: { headersSent?: boolean };
  header?(name: string, value: unknown): unknown;
  code?(code: number): unknown;
  sent?: boolean;
}

/**
 * The few things Express and Fastify do differently, through Nest's own
 * `HttpAdapter` (from `HttpAdapterHost`) where it covers them, with the same
 * rules by hand when there is none (an app built without a platform).
 */
export class Platform {
  // Which of Nest's own adapters reports the host name, once there is an adapter (set when the app initialises).
  private stockPlatform?: 'express' | 'fastify' | 'other';

  constructor(private readonly adapter: () => AbstractHttpAdapter | undefined) {}

  /** The request target as received: path and query (Express may have rewritten `url`). */
  requestUrl(request: HttpRequestLike): string {
    const adapter = this.adapter();
    if (adapter) return String(adapter.getRequestUrl(request));
    return request.originalUrl ?? request.url;
  }

  /**
   * True when the host name the platform reports can differ from the request's
   * `Host` only through a forwarding header: Nest's own Express and Fastify
   * adapters (a subclass may take the host name from anywhere, as may any
   * other adapter), Fastify with the headers it received (a hook may replace
   * `request.headers`, which its host name getter does not read), and no
   * HTTP/2 request with both `:authority` (which the key holds) and a `Host`
   * (which Fastify reads first).
   */
  hostnameFollowsHost(request: HttpRequestLike, headers: HeaderValues): boolean {
    if (headers[':authority'] !== undefined && headers.host !== undefined) return false;
    const platform = this.stock();
    if (platform === 'express') return true;
    return platform === 'fastify' && (request as { raw?: { headers?: unknown } }).raw?.headers === headers;
  }

  /**
   * True for Nest's own Express and Fastify adapters, whose host name is the
   * request's `host` (port included, trust proxy applied) without its port;
   * any other adapter may take its host name from elsewhere.
   */
  namesHostByHost(): boolean {
    const platform = this.stock();
    return platform === 'express' || platform === 'fastify';
  }

  private stock(): 'express' | 'fastify' | 'other' | undefined {
    return (this.stockPlatform ??= stockPlatformOf(this.adapter()));
  }

  /** The host name the platform reports (a trusted `X-Forwarded-Host` included). */
  requestHostname(request: HttpRequestLike): string | undefined {
    const adapter = this.adapter();
    const hostname: unknown = adapter ? adapter.getRequestHostname(request) : request.hostname;
    return typeof hostname === 'string' ? hostname : undefined;
  }

  setHeader(response: HttpResponseLike, name: string, value: string | number | readonly string[]): void {
    const adapter = this.adapter();
    if (adapter) adapter.setHeader(response, name, value as string);
    else if (isFastifyReply(response)) response.header!(name, value);
    else response.setHeader!(name, value);
  }

  setStatus(response: HttpResponseLike, status: number): void {
    const adapter = this.adapter();
    if (adapter) adapter.status(response, status);
    else if (isFastifyReply(response)) response.code!(status);
    else response.status!(status);
  }

  /** True once the response has been sent (by the handler through `@Res()`, or its headers flushed). */
  isSent(response: HttpResponseLike): boolean {
    const adapter = this.adapter();
    if (adapter) return adapter.isHeadersSent(response) === true;
    return isFastifyReply(response) ? response.sent === true : response.headersSent === true;
  }

  /**
   * True when the response sets a cookie: a `Set-Cookie` header, or one that
   * `@fastify/cookie`'s `reply.setCookie()` holds until its onSend hook writes it.
   */
  setsCookie(response: HttpResponseLike, headers: Readonly<Record<string, unknown>>): boolean {
    if (headers['set-cookie'] !== undefined) return true;
    if (!isFastifyReply(response)) return false;
    const pending = (response as unknown as Record<symbol, unknown>)[pendingCookiesOf(response) ?? NONE];
    return pending instanceof Map && pending.size > 0;
  }

  /**
   * True when the response, as it stands before the handler runs, is its
   * caller's own already: a middleware, guard or hook set `Cache-Control:
   * private` or `no-store`, `Vary: *`, or a cookie. Such a request is not
   * answered with another's response (its own would differ, in its headers
   * at least), nor is its response shared.
   */
  isCallersOwn(response: HttpResponseLike): boolean {
    const control = this.getHeader(response, 'cache-control');
    const vary = this.getHeader(response, 'vary');
    if (control !== undefined || vary !== undefined) {
      const decisive: HeaderEntry[] = [];
      if (control !== undefined) decisive.push(['cache-control', String(control)]);
      if (vary !== undefined) decisive.push(['vary', Array.isArray(vary) ? vary.join(', ') : String(vary)]);
      if (responseForbidsStore(decisive)) return true;
    }
    return this.setsCookie(response, { 'set-cookie': this.getHeader(response, 'set-cookie') });
  }

  private getHeader(response: HttpResponseLike, name: string): unknown {
    const adapter = this.adapter();
    return adapter ? adapter.getHeader(response, name) : response.getHeader?.(name);
  }

  /** Applies a stored status and headers to another caller's response. */
  applySnapshot(response: HttpResponseLike, status: number, headers: readonly HeaderEntry[]): void {
    // Usually the status the response has already (200): the platform's setter, which validates it, is skipped.
    if (response.statusCode !== status) this.setStatus(response, status);
    // Filtered again on the way out: a store shared with other versions may hold anything.
    for (const [name, value] of headers) if (isReplayableHeader(name)) this.setHeader(response, name, value);
  }
}

/**
 * `express` or `fastify` when `adapter` is Nest's own adapter of that
 * platform as far as host names go (its `getRequestHostname` is the one
 * `ExpressAdapter` or `FastifyAdapter` defines, not a subclass's), `other`
 * for any other adapter, `undefined` while there is none.
 */
function stockPlatformOf(adapter: AbstractHttpAdapter | undefined): 'express' | 'fastify' | 'other' | undefined {
  if (adapter === undefined) return undefined;
  const type: unknown = typeof adapter.getType === 'function' ? adapter.getType() : undefined;
  if (type !== 'express' && type !== 'fastify') return 'other';
  // The object that defines the method, the adapter itself included: only Nest's own class passes.
  for (let owner: object | null = adapter; owner !== null; owner = Object.getPrototypeOf(owner) as object | null) {
    if (!Object.prototype.hasOwnProperty.call(owner, 'getRequestHostname')) continue;
    const name = owner === adapter ? undefined : (owner as { constructor?: { name?: string } }).constructor?.name;
    return name === (type === 'express' ? 'ExpressAdapter' : 'FastifyAdapter') ? type : 'other';
  }
  return 'other';
}

/** The symbol `@fastify/cookie` keeps a reply's cookies under until its onSend hook. */
const FASTIFY_PENDING_COOKIES = 'fastify.reply.setCookies';
const NONE = Symbol('none');
// The plugin decorates the replies of its Fastify context with it, which Fastify's reply constructor sets on
// each one (null until the request's cookies are parsed): found once per reply class, on its first reply,
// by its description (each copy of the plugin has its own symbol).
const cookieSymbols = new WeakMap<object, symbol | null>();

function pendingCookiesOf(reply: HttpResponseLike): symbol | undefined {
  const type = Object.getPrototypeOf(reply) as object | null;
  if (type === null) return undefined;
  let found = cookieSymbols.get(type);
  if (found === undefined) {
    found =
      Object.getOwnPropertySymbols(reply).find((symbol) => symbol.description === FASTIFY_PENDING_COOKIES) ?? null;
    cookieSymbols.set(type, found);
  }
  return found ?? undefined;
}

export function isFastifyReply(response: HttpResponseLike): boolean {
  return response.raw !== undefined && typeof response.header === 'function';
}

/**
 * The authenticated caller of a request, if any: `request.user`, or on
 * Fastify the Node request's, where a Nest middleware sets it (Nest hands
 * middleware the Node request there).
 */
export function requestUser(request: HttpRequestLike): unknown {
  const user = request.user;
  return user !== undefined && user !== null && user !== false ? user : request.raw?.user;
}

/** True when a guard or middleware authenticated the request's caller (see `requestUser`). */
export function hasRequestUser(request: HttpRequestLike): boolean {
  const user = requestUser(request);
  return user !== undefined && user !== null && user !== false;
}

/** The scheme of the request as the platform reports it (trust proxy included). */
export function requestScheme(request: HttpRequestLike): string {
  return typeof request.protocol === 'string' ? request.protocol : 'http';
}

/** A body that is read once (a stream, a `StreamableFile`) cannot be shared or stored. */
export function isShareableBody(body: unknown): boolean {
  if (body instanceof StreamableFile) return false;
  return !(
    body !== null &&
    typeof body === 'object' &&
    typeof (body as { pipe?: unknown }).pipe === 'function' &&
    typeof (body as { on?: unknown }).on === 'function'
  );
}
