import {
  CallHandler,
  ExecutionContext,
  GatewayTimeoutException,
  HttpException,
  Inject,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable, catchError, map, mergeMap, of, tap, throwError } from 'rxjs';
import { UnserializableArgumentError, argumentsKey } from '../../core/arguments-key';
import { cacheStatus } from '../../http/cache-status';
import { Lookup, RunPolicy } from '../../core/coalescer';
import { BypassReason } from '../../core/events';
import { sha256 } from '../../core/hash';
import { ageSeconds, requestForbidsStore, varyFingerprint } from '../../http/cache-rules';
import { httpKey } from '../../http/request-key';
import { StampedeTimeoutError } from '../../core/single-flight';
import { StoredEntry } from '../../core/store';
import { STAMPEDE_OPTIONS } from '../../stampede.constants';
import { StampedeEngine } from '../../stampede.engine';
import {
  HttpRequestLike,
  HttpResponseLike,
  applySnapshot,
  isSent,
  requestUrl,
  setHeader,
} from './platform';
import { ResolvedStampedeOptions } from '../../stampede.options';
import { ResponseSnapshot, captureErrorSnapshot, captureSnapshot, varyMismatch } from './response-snapshot';
import { NOT_COALESCED, RouteSettings, resolveRouteSettings } from './route-settings';

/** Methods whose body may join the key (`keyBody`). */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);
/** Methods that change what a path returns (RFC 9111 §4.4). */
const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function toHttpError(error: unknown): Observable<never> {
  return throwError(() => (error instanceof StampedeTimeoutError ? new GatewayTimeoutException(error.message) : error));
}

function pathOf(url: string): string {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/**
 * Coalesces concurrent identical HTTP requests: the first runs the handler,
 * the others wait for its response, and a successful (2xx) response is kept
 * for `ttl` ms. Shares the whole response: the value, the status code and the
 * headers the handler set, except cookies, CORS, rate-limit and hop-by-hop
 * headers. Works the same on Express and Fastify.
 *
 * Only `GET` and `HEAD` by default (`methods` option). Requests that carry
 * `Authorization` or `Cookie` pass through uncoalesced unless that header is
 * in `keyHeaders` or the route has a `key` function.
 *
 * @example
 * ```ts
 * @Controller('articles')
 * @UseInterceptors(StampedeInterceptor)
 * export class ArticlesController {}
 * // or for every route:
 * providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }]
 * ```
 */
@Injectable()
export class StampedeInterceptor implements NestInterceptor {
  // Per controller class, then per handler: a handler inherited by two
  // controllers may see different class-level settings.
  private readonly routes = new WeakMap<object, WeakMap<object, RouteSettings | null>>();

  constructor(
    private readonly reflector: Reflector,
    @Inject(STAMPEDE_OPTIONS) private readonly options: ResolvedStampedeOptions,
    private readonly engine: StampedeEngine,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const route = this.settingsOf(context);
    if (route === NOT_COALESCED) return next.handle();
    const http = context.switchToHttp();
    const request = http.getRequest<HttpRequestLike>();
    const method = request.method;
    const withBody = route.keyBody !== undefined && BODY_METHODS.has(method);
    if (!this.options.methods.has(method) && !withBody) {
      if (this.options.invalidateOnWrite && UNSAFE_METHODS.has(method)) return this.invalidatingWrite(context, next);
      return next.handle();
    }
    const response = http.getResponse<HttpResponseLike>();
    const url = requestUrl(request);
    const headers = request.headers;

    if (requestForbidsStore(headers)) return this.bypass(next, response, `${method} ${url}`, 'request-no-store');
    let custom: string | undefined;
    if (route.key) {
      custom = route.key(context);
      if (custom === undefined) return this.bypass(next, response, `${method} ${url}`, 'key-function', false);
    } else if (this.carriesUntrustedCredentials(request, route)) {
      // Never answer one user with another's response: let it through, alone.
      return this.bypass(next, response, `${method} ${url}`, 'credentials');
    }
    if (withBody) {
      const bodyPart = this.bodyKey((request as { body?: unknown }).body, route.keyBody!.maxBytes);
      if (bodyPart === undefined) return this.bypass(next, response, `${method} ${url}`, 'unserializable-arguments');
      custom = custom === undefined ? bodyPart : `${custom}|${bodyPart}`;
    }
    const key = httpKey(method, url, headers, route.keyHeaders, custom);

    const policy = this.policyFor(route, context, url);
    // The hit path: a fresh in-process value is replayed at once, before any per-request closure.
    const hit = this.engine.coalescer.peekFresh(key, policy);
    if (hit !== undefined && !varyMismatch(hit.v, headers)) {
      return this.replay(response, hit.v, { value: hit.v, outcome: 'hit', expiresAt: hit.e, storedAt: hit.t });
    }

    let ownBody: unknown;
    let ownError: unknown;
    // Set once this caller is answered from elsewhere (a stale value) while
    // its handler may still run as the background refresh.
    let answered = false;
    const handle = (): Observable<ResponseSnapshot> => {
      const before = { ...response.getHeaders() };
      return next.handle().pipe(
        map((body) => {
          ownBody = body;
          return captureSnapshot(body, response, before, headers, route.measure, answered);
        }),
        catchError((error: unknown) => {
          // An HttpException whose status `statusTtl` lists (e.g. 404) is kept like a response.
          if (!(error instanceof HttpException) || !route.storesErrorStatus?.(error.getStatus())) throw error;
          ownError = error;
          return of(captureErrorSnapshot(error.getStatus(), error.getResponse(), response, before, route.measure));
        }),
      );
    };

    const coalesce = (key: string, isVariant: boolean, peeked?: StoredEntry<ResponseSnapshot>): Observable<unknown> => {
      // The response varies on a request header this caller sent differently: it is not
      // this caller's. Its values of those headers make a key of their own, coalesced and
      // stored apart (RFC 9111 §4.1); a variant that varies again runs alone.
      const otherVariant = (snapshot: ResponseSnapshot): Observable<unknown> => {
        if (isVariant || !snapshot.vary) {
          this.engine.coalescer.report('bypass', key, { reason: 'vary-mismatch' });
          return next.handle();
        }
        return coalesce(`${key}|vary:${varyFingerprint(snapshot.vary.names, headers)}`, true);
      };
      // The hit path: a fresh in-process value is replayed without the Observable machinery.
      const fresh = peeked ?? this.engine.coalescer.peekFresh(key, policy);
      if (fresh !== undefined) {
        if (varyMismatch(fresh.v, headers)) return otherVariant(fresh.v);
        return this.replay(response, fresh.v, {
          value: fresh.v,
          outcome: 'hit',
          expiresAt: fresh.e,
          storedAt: fresh.t,
        });
      }
      return this.engine.coalescer.run$(key, handle, policy).pipe(
        catchError(toHttpError),
        mergeMap((lookup) => {
          const snapshot = lookup.value;
          if (lookup.outcome === 'miss' || lookup.outcome === 'bypass') {
            if (snapshot.shareable) {
              this.markStatus(
                response,
                lookup.outcome === 'bypass' ? cacheStatus('bypass') : cacheStatus('miss', { stored: lookup.stored }),
              );
            }
            return ownError === undefined ? of(ownBody) : throwError(() => ownError);
          }
          // A stream or a hand-sent response can't be replayed: run this caller's own handler.
          if (!snapshot.shareable) return next.handle();
          if (varyMismatch(snapshot, headers)) return otherVariant(snapshot);
          answered = true;
          return this.replay(response, snapshot, lookup);
        }),
      );
    };
    // A `hit` left here is another variant of a response that varies: this caller goes to its own.
    return coalesce(key, false, hit);
  }

  /** Answers this caller with another's response: its status, replayable headers and body (or error). */
  private replay(response: HttpResponseLike, snapshot: ResponseSnapshot, lookup: Lookup<ResponseSnapshot>) {
    applySnapshot(response, snapshot.status, snapshot.headers);
    if (lookup.outcome === 'collapsed') {
      this.markStatus(response, cacheStatus('collapsed'));
    } else {
      const now = Date.now();
      if (!isSent(response)) setHeader(response, 'Age', String(ageSeconds(lookup.storedAt, now)));
      this.markStatus(
        response,
        cacheStatus(lookup.outcome, { ttlMs: (lookup.expiresAt ?? 0) - now, staleReason: lookup.staleReason }),
      );
    }
    if (snapshot.error) return throwError(() => new HttpException(snapshot.body as object, snapshot.status));
    return of(snapshot.body);
  }

  /** The route's policy, with this request's tags when they come from a function or from the path. */
  private policyFor(route: RouteSettings, context: ExecutionContext, url: string): RunPolicy<ResponseSnapshot> {
    const tags = route.tags;
    const pathTag = this.options.invalidateOnWrite ? `path:${pathOf(url)}` : undefined;
    if (tags === undefined && pathTag === undefined) return route.policy;
    return {
      ...route.policy,
      tags: (snapshot) => {
        const own = typeof tags === 'function' ? tags(snapshot.body, context) : (tags ?? []);
        return pathTag ? [...own, pathTag] : own;
      },
    };
  }

  /** A successful write drops what is stored for GET/HEAD on its path. */
  private invalidatingWrite(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const url = requestUrl(http.getRequest<HttpRequestLike>());
    const response = http.getResponse<HttpResponseLike>();
    return next.handle().pipe(
      tap(() => {
        if (response.statusCode >= 200 && response.statusCode < 300) {
          this.engine.coalescer.invalidateTags([`path:${pathOf(url)}`]);
        }
      }),
    );
  }

  /** The key part of a request body: a hash of its stable serialization, or undefined when too big or odd. */
  private bodyKey(body: unknown, maxBytes: number): string | undefined {
    try {
      const text = argumentsKey([body]);
      return Buffer.byteLength(text) > maxBytes ? undefined : `body:${sha256(text)}`;
    } catch (error) {
      if (error instanceof UnserializableArgumentError) return undefined;
      throw error;
    }
  }

  private bypass(
    next: CallHandler,
    response: HttpResponseLike,
    key: string,
    reason: BypassReason,
    mark = true,
  ): Observable<unknown> {
    this.engine.coalescer.report('bypass', key, { reason });
    if (mark) this.markStatus(response, cacheStatus('bypass'));
    return next.handle();
  }

  private markStatus(response: HttpResponseLike, value: string): void {
    if (this.options.cacheStatusHeader && !isSent(response)) setHeader(response, 'Cache-Status', value);
  }

  private carriesUntrustedCredentials(request: HttpRequestLike, route: RouteSettings): boolean {
    const { authorization, cookie } = request.headers;
    return (
      (authorization !== undefined && !route.trustsCredentials.authorization) ||
      (cookie !== undefined && !route.trustsCredentials.cookie)
    );
  }

  private settingsOf(context: ExecutionContext): RouteSettings | null {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.routes.get(controller);
    if (!byHandler) this.routes.set(controller, (byHandler = new WeakMap()));
    let settings = byHandler.get(handler);
    if (settings === undefined) {
      settings = resolveRouteSettings(this.reflector, this.options, controller, handler);
      byHandler.set(handler, settings);
    }
    return settings;
  }
}
