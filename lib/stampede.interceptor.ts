import {
  CallHandler,
  ExecutionContext,
  GatewayTimeoutException,
  Inject,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable, catchError, map, mergeMap, of, throwError } from 'rxjs';
import { RunPolicy } from './core/coalescer';
import { StampedeTimeoutError } from './core/single-flight';
import { cacheStatus } from './core/cache-status';
import { HeaderEntry, replayableHeaderChanges } from './core/header-policy';
import { httpKey } from './core/http-key';
import {
  COALESCE_METADATA,
  NEXT_PARAMTYPE,
  RESPONSE_PARAMTYPE,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  SKIP_COALESCE_METADATA,
  SSE_METADATA,
  STAMPEDE_OPTIONS,
} from './stampede.constants';
import {
  HttpRequestLike,
  HttpResponseLike,
  applySnapshot,
  isSent,
  isShareableBody,
  requestUrl,
  setHeader,
} from './stampede.http-adapter';
import { CoalesceOptions, KeyFunction, ResolvedStampedeOptions, normalizeKeyHeaders } from './stampede.options';
import { StampedeEngine } from './stampede.engine';

/** What one response becomes for the other callers of its key. */
interface ResponseSnapshot {
  /** False for a stream or a response the handler sent itself: others run their own handler. */
  shareable: boolean;
  status: number;
  headers: readonly HeaderEntry[];
  body: unknown;
  /** Size of the body as sent (JSON for objects), when it may be stored. */
  bytes: number;
}

/** A route's settings, resolved once per route. */
interface RouteSettings {
  ttl: number;
  policy: RunPolicy<ResponseSnapshot>;
  keyHeaders: readonly string[];
  key?: KeyFunction;
  /** Whether `Authorization` / `Cookie` requests may be coalesced (listed in keyHeaders, or a key function). */
  trustsCredentials: { authorization: boolean; cookie: boolean };
}

const NOT_COALESCED = null;

function bodyBytes(body: unknown): number {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) return body.byteLength;
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '');
  } catch {
    return Number.POSITIVE_INFINITY; // not serializable as JSON: never stored
  }
}

function toHttpError(error: unknown): Observable<never> {
  return throwError(() => (error instanceof StampedeTimeoutError ? new GatewayTimeoutException(error.message) : error));
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
  private readonly methods: ReadonlySet<string>;

  constructor(
    private readonly reflector: Reflector,
    @Inject(STAMPEDE_OPTIONS) private readonly options: ResolvedStampedeOptions,
    private readonly engine: StampedeEngine,
  ) {
    this.methods = options.methods;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const request = http.getRequest<HttpRequestLike>();
    if (!this.methods.has(request.method)) return next.handle();
    const route = this.settingsOf(context);
    if (route === NOT_COALESCED) return next.handle();
    const response = http.getResponse<HttpResponseLike>();

    let custom: string | undefined;
    if (route.key) {
      custom = route.key(context);
      if (custom === undefined) {
        this.engine.coalescer.report('bypass', `${request.method} ${requestUrl(request)}`, { reason: 'key-function' });
        return next.handle();
      }
    } else if (this.carriesUntrustedCredentials(request, route)) {
      // Never answer one user with another's response: let it through, alone.
      this.engine.coalescer.report('bypass', `${request.method} ${requestUrl(request)}`, { reason: 'credentials' });
      if (this.options.cacheStatusHeader) setHeader(response, 'Cache-Status', cacheStatus('bypass'));
      return next.handle();
    }
    const key = httpKey(request.method, requestUrl(request), request.headers, route.keyHeaders, custom);
    const measure = route.ttl > 0;

    let ownBody: unknown;
    const handle = (): Observable<ResponseSnapshot> => {
      const before = { ...response.getHeaders() };
      return next.handle().pipe(
        map((body): ResponseSnapshot => {
          ownBody = body;
          if (!isShareableBody(body) || isSent(response)) {
            return { shareable: false, status: response.statusCode, headers: [], body: undefined, bytes: 0 };
          }
          return {
            shareable: true,
            status: response.statusCode,
            headers: replayableHeaderChanges(before, response.getHeaders()),
            body,
            bytes: measure ? bodyBytes(body) : 0,
          };
        }),
      );
    };

    return this.engine.coalescer.run$(key, handle, route.policy).pipe(
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
          return of(ownBody);
        }
        // A stream or a hand-sent response can't be replayed: run this caller's own handler.
        if (!snapshot.shareable) return next.handle();
        applySnapshot(response, snapshot.status, snapshot.headers);
        this.markStatus(
          response,
          lookup.outcome === 'hit'
            ? cacheStatus('hit', { ttlMs: (lookup.expiresAt ?? 0) - Date.now() })
            : cacheStatus('collapsed'),
        );
        return of(snapshot.body);
      }),
    );
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
      settings = this.resolveSettings(controller, handler);
      byHandler.set(handler, settings);
    }
    return settings;
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  private resolveSettings(controller: Function, handler: Function): RouteSettings | null {
    if (this.reflector.getAllAndOverride<boolean>(SKIP_COALESCE_METADATA, [handler, controller])) return NOT_COALESCED;
    if (this.reflector.get(SSE_METADATA, handler)) return NOT_COALESCED;
    if (this.sendsResponseItself(controller, handler.name)) return NOT_COALESCED;
    const fromClass = this.reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, controller) ?? {};
    const fromHandler = this.reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, handler) ?? {};
    const keyHeaders = normalizeKeyHeaders(
      fromHandler.keyHeaders ?? fromClass.keyHeaders ?? [...this.options.keyHeaders],
    );
    const key = fromHandler.key ?? fromClass.key ?? this.options.key;
    const pick = <K extends keyof CoalesceOptions>(name: K, fallback: NonNullable<CoalesceOptions[K]>) =>
      (fromHandler[name] ?? fromClass[name] ?? fallback) as NonNullable<CoalesceOptions[K]>;
    const ttl = pick('ttl', this.options.ttl);
    const maxBodyBytes = pick('maxBodyBytes', this.options.maxBodyBytes);
    return {
      ttl,
      policy: {
        ttl,
        cacheable: (snapshot) =>
          snapshot.shareable && snapshot.status >= 200 && snapshot.status < 300 && snapshot.bytes <= maxBodyBytes,
        timeout: pick('timeout', this.options.timeout),
        waitTimeout: pick('waitTimeout', this.options.waitTimeout),
        onWaitTimeout: pick('onWaitTimeout', this.options.onWaitTimeout),
      },
      keyHeaders,
      key,
      trustsCredentials: {
        authorization: key !== undefined || keyHeaders.includes('authorization'),
        cookie: key !== undefined || keyHeaders.includes('cookie'),
      },
    };
  }

  /** `@Res()` without `passthrough`, or `@Next()`: the handler answers by hand. */
  private sendsResponseItself(controller: object, methodName: string): boolean {
    const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, methodName) ?? {}) as Record<string, unknown>;
    const takesResponse = Object.keys(args).some((param) => {
      const type = Number(param.split(':')[0]);
      return type === RESPONSE_PARAMTYPE || type === NEXT_PARAMTYPE;
    });
    return takesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, methodName);
  }
}
