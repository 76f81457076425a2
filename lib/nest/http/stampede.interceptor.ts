import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor, Optional } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost, Reflector } from '@nestjs/core';
import { Observable, tap } from 'rxjs';
import { requestForbidsStore, writePathTag } from '../../http/cache-rules';
import { announcesBody, bodyKeyPart } from '../../http/request-key';
import { requestPreconditions } from '../../http/validators';
import { STAMPEDE_OPTIONS } from '../stampede.constants';
import { DEFAULTS } from '../options/stampede.validation';
import { StampedeEngine } from '../stampede.engine';
import { ResolvedStampedeOptions } from '../options/stampede.options';
import { hasInterceptorOutside, interceptorChain } from './interceptor-chain';
import { HttpRequestLike, HttpResponseLike, Platform, hasRequestUser, requestUser } from './platform';
import { requestTargetKey } from './target-key';
import { edgeGateOf } from './edge/edge-gate';
import { FlowDeps, RequestFlow } from './request-flow';
import { NOT_COALESCED, RoutePolicy, RouteSettings, resolveRouteSettings, routesByVersion } from './route-settings';
import { ResponseSnapshot } from './response-snapshot';
import { interceptEntryPoint } from '../entry-points';

/** Methods whose body may join the key (`keyBody`). */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);
/** Methods that change what a path returns (RFC 9111 §4.4). */
const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Coalesces concurrent identical HTTP requests: the first runs the handler,
 * the others wait for its response, and a successful (2xx) response is kept
 * for `ttl` ms. Shares the whole response: the value, the status code and the
 * headers the handler set, except cookies, CORS, rate-limit and hop-by-hop
 * headers. Works the same on Express and Fastify. A shared 2xx response
 * carries an ETag (the handler's own, or one of its body computed once when
 * it is captured); a `GET` or `HEAD` that already holds it (`If-None-Match`,
 * or `If-Modified-Since` against the handler's `Last-Modified`) gets a 304
 * without a body.
 *
 * Two requests share a response only when their handler would see the same
 * inputs: the key holds the scheme, host, path, the query as parsed, the body
 * when one was parsed, the `keyHeaders`; a request with credentials
 * (`Authorization`, `Cookie`, `credentialHeaders`, a `request.user`) runs
 * alone unless the route keys by them. A response that is `private`,
 * `no-store`, `Vary: *`, sets a cookie or streams is never shared.
 *
 * Subclass it to change how requests are keyed (`keyFor`) or who counts as
 * a caller of their own (`isPerCaller`).
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
  // The last route's, as `intercept`, `isPerCaller` and `keyFor` each ask for it once per request.
  private lastController?: object;
  private lastHandler?: object;
  private lastSettings: RouteSettings | null = null;
  private readonly deps: FlowDeps;
  protected readonly platform: Platform;

  constructor(
    protected readonly reflector: Reflector,
    @Optional() @Inject(STAMPEDE_OPTIONS) protected readonly options: ResolvedStampedeOptions,
    @Optional() protected readonly engine: StampedeEngine,
    @Optional() adapterHost?: HttpAdapterHost,
    @Optional() private readonly config?: ApplicationConfig,
  ) {
    if (!options || !engine) {
      throw new Error(
        'nestjs-stampede: StampedeInterceptor needs the StampedeModule: add StampedeModule.forRoot() ' +
          '(or forRootAsync()) to the imports of your root module.',
      );
    }
    this.platform = new Platform(() => adapterHost?.httpAdapter);
    this.deps = { engine, options, platform: this.platform };
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return interceptEntryPoint(this.engine, this.reflector, context, next);
    const route = this.settingsOf(context);
    if (route === NOT_COALESCED) return next.handle();
    // The request and response by index: `switchToHttp()` builds three closures on each call.
    const request = context.getArgByIndex<HttpRequestLike>(0);
    route.edge?.note(request);
    const method = request.method;
    if (!this.options.methods.has(method) && !(route.keyBody !== undefined && BODY_METHODS.has(method))) {
      if (this.options.invalidateOnWrite && UNSAFE_METHODS.has(method)) return this.invalidatingWrite(context, next);
      return next.handle();
    }
    const response = context.getArgByIndex<HttpResponseLike>(1);
    const url = this.platform.requestUrl(request);
    const flow = new RequestFlow(
      this.deps,
      next,
      route,
      this.policyFor(route, context, url),
      request.headers,
      response,
      requestPreconditions(method, request.headers),
    );
    // A request let through is reported under its method and target (no key was built).
    if (requestForbidsStore(request.headers)) return flow.alone(`${method} ${url}`, 'request-no-store');
    // Made its caller's own before the handler (a middleware's `private`, a guard's cookie): its own response differs.
    if (this.platform.isCallersOwn(response)) return flow.alone(`${method} ${url}`, 'uncacheable');
    // Never answer one caller with another's response: let it through, alone.
    if (this.isPerCaller(context)) return flow.alone(`${method} ${url}`, 'credentials');
    if (this.bodyPart(request, route) === null) return flow.alone(`${method} ${url}`, 'request-body');
    const key = this.keyFor(context);
    if (key === undefined) return flow.alone(`${method} ${url}`, 'key-function', false);
    return flow.run(key);
  }

  /**
   * The key of a request: two requests with one key get one response, so it
   * must hold every input the handler reads. Default: method, scheme, host,
   * path, the parsed query, the parsed body, the route's `keyHeaders`, its
   * `keyUser` and `key` function. `undefined`: the request goes through
   * uncoalesced. Override to key by something else, calling `super.keyFor`.
   */
  protected keyFor(context: ExecutionContext): string | undefined {
    const route = this.settingsOf(context);
    if (route === NOT_COALESCED) return undefined;
    const request = context.getArgByIndex<HttpRequestLike>(0);
    let custom: string | undefined;
    if (route.key) {
      custom = route.key(context);
      if (custom === undefined) return undefined;
    }
    let user: string | null | undefined;
    if (route.keyUser) {
      const id = hasRequestUser(request) ? route.keyUser(requestUser(request)) : null;
      if (id === undefined) return undefined;
      user = id;
    }
    return requestTargetKey(this.platform, request, route, {
      user,
      body: this.bodyPart(request, route) ?? undefined,
      custom,
    });
  }

  /**
   * True when the request identifies its caller in a way the key does not
   * hold, so its response may be that caller's own: `Authorization`,
   * `Proxy-Authorization`, `Cookie` or a `credentialHeaders` header that is
   * not in `keyHeaders`, or a `request.user` on a route without `keyUser`.
   * A route with a `key` function is trusted to separate callers.
   */
  protected isPerCaller(context: ExecutionContext): boolean {
    const route = this.settingsOf(context);
    if (route === NOT_COALESCED || route.key) return false;
    const request = context.getArgByIndex<HttpRequestLike>(0);
    const user = hasRequestUser(request);
    if (user && !route.keyUser) return true;
    // Keyed by the user the credentials authenticated: they are that user's.
    if (user && route.keyUser) return false;
    const headers = request.headers;
    for (const name of route.credentialHeaders) {
      if (headers[name] !== undefined && !route.keyHeaders.includes(name)) return true;
    }
    return false;
  }

  /**
   * The key part of the body the handler will see: `undefined` without one,
   * `null` when there is one the key cannot hold (too big, unserializable, or
   * announced but not parsed yet, so read later by someone): it runs alone.
   */
  private bodyPart(request: HttpRequestLike, route: RouteSettings): string | null | undefined {
    if (request.body === undefined) return announcesBody(request.headers) ? null : undefined;
    let part = bodyParts.get(request);
    if (part === undefined) {
      part = bodyKeyPart(request.body, route.keyBody?.maxBytes ?? DEFAULTS.keyBodyBytes) ?? null;
      bodyParts.set(request, part);
    }
    return part;
  }

  /** The route's policy, with this request's tags when they come from a function or from the path. */
  private policyFor(route: RouteSettings, context: ExecutionContext, url: string): RoutePolicy {
    const tags = route.tags;
    const pathTag = this.options.invalidateOnWrite ? writePathTag(url) : undefined;
    if (tags === undefined && pathTag === undefined) return route.policy;
    return {
      ...route.policy,
      tags: (snapshot: ResponseSnapshot) => {
        const own = typeof tags === 'function' ? tags(snapshot.body, context) : (tags ?? []);
        return pathTag ? [...own, pathTag] : own;
      },
    };
  }

  /** A successful write drops what is stored for GET/HEAD on its path. */
  private invalidatingWrite(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const url = this.platform.requestUrl(http.getRequest<HttpRequestLike>());
    const response = http.getResponse<HttpResponseLike>();
    return next.handle().pipe(
      tap(() => {
        if (response.statusCode >= 200 && response.statusCode < 300) {
          this.engine.coalescer.invalidateTags([writePathTag(url)]);
        }
      }),
    );
  }

  /** The route's settings, resolved once per controller and handler. */
  protected settingsOf(context: ExecutionContext): RouteSettings | null {
    const controller = context.getClass();
    const handler = context.getHandler();
    if (controller === this.lastController && handler === this.lastHandler) return this.lastSettings;
    let byHandler = this.routes.get(controller);
    if (!byHandler) this.routes.set(controller, (byHandler = new WeakMap()));
    let settings = byHandler.get(handler);
    if (settings === undefined) {
      const mappedOutside = hasInterceptorOutside(
        interceptorChain(this.config, controller, handler),
        StampedeInterceptor,
      );
      settings = resolveRouteSettings(
        this.reflector,
        this.options,
        controller,
        handler,
        mappedOutside,
        routesByVersion(this.config),
      );
      if (settings) settings.edge = edgeGateOf(this.engine, controller, handler);
      byHandler.set(handler, settings);
    }
    this.lastController = controller;
    this.lastHandler = handler;
    this.lastSettings = settings;
    return settings;
  }
}

/** Key parts of parsed bodies, per request (the check and the key read it once). */
const bodyParts = new WeakMap<object, string | null>();
