import { Inject, Injectable, Logger, OnModuleInit, Optional } from '@nestjs/common';
import { ApplicationConfig, DiscoveryService, HttpAdapterHost, Reflector } from '@nestjs/core';
import type { AbstractHttpAdapter } from '@nestjs/core';
import { STAMPEDE_OPTIONS } from '../../stampede.constants';
import { StampedeEngine } from '../../stampede.engine';
import { ResolvedStampedeOptions } from '../../options/stampede.options';
import { HttpRequestLike, HttpResponseLike, Platform } from '../platform';
import { StampedeInterceptor } from '../stampede.interceptor';
import { EdgeAnswer } from './edge-answer';
import { ApprovedRoute, checkEdgeRoutes } from './edge-check';
import {
  EdgeGate,
  RouteIdentity,
  expressRoute,
  EDGE_HOOK_NAME,
  fastifyLaterHooks,
  fastifyRoute,
  hasGates,
  registerGates,
} from './edge-gate';

type ExpressHandler = (request: unknown, response: unknown, next: unknown) => unknown;
interface ExpressLayer {
  route?: { stack: { handle: ExpressHandler }[] };
}

/**
 * The edge tier: answers fresh stored hits of approved routes before Nest's
 * pipeline. Installed when the app initialises (`StampedeModule.configure`,
 * before Nest registers its routes), only when some route opts in: on
 * Fastify an `onRequest` hook, added after Nest's own (CORS, security) and
 * middie's (middleware); on Express the first handler of each route, after
 * every middleware. A request reaches the tier only for a route the
 * interceptor has seen it for (the gate: Express's route, Fastify's route
 * context), so it knows which route's settings key it.
 */
@Injectable()
export class StampedeEdgeTier implements OnModuleInit {
  private readonly logger = new Logger('Stampede');
  private readonly approved = new WeakMap<object, WeakMap<object, EdgeGate>>();
  private readonly gates = new WeakMap<object, ApprovedRoute>();
  /** Routes kept off the edge by hooks it would skip. */
  private readonly closed = new WeakSet<object>();
  /**
   * The route that produced each stored response: the edge answers a route
   * only with its own, whatever else routing may do with the same URL (Express
   * tries a `@Controller({ host })` route's handler for every host).
   */
  private readonly producedBy = new WeakMap<object, ApprovedRoute>();
  private answerer?: EdgeAnswer;
  private identity?: RouteIdentity;
  private express = false;
  private failed = false;

  constructor(
    private readonly engine: StampedeEngine,
    @Inject(STAMPEDE_OPTIONS) private readonly options: ResolvedStampedeOptions,
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
    @Optional() private readonly config?: ApplicationConfig,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {}

  /** Checks the routes that opt in (throws naming those refused) and installs the tier if any is approved. */
  install(): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter || !this.config || hasGates(this.engine)) return;
    const routes = checkEdgeRoutes({
      discovery: this.discovery,
      config: this.config,
      reflector: this.reflector,
      options: this.options,
      stampede: StampedeInterceptor,
    });
    if (routes.length === 0) return;
    for (const route of routes) {
      let byHandler = this.approved.get(route.controller);
      if (!byHandler) this.approved.set(route.controller, (byHandler = new WeakMap()));
      byHandler.set(route.handler, {
        note: (request) => this.open(request, route),
        mark: (snapshot) => this.producedBy.set(snapshot, route),
      });
    }
    registerGates(this.engine, (controller, handler) => this.gateOf(controller, handler));
    this.answerer = new EdgeAnswer(
      this.engine.coalescer,
      this.options,
      new Platform(() => adapter),
      adapter,
      (snapshot, route) => this.producedBy.get(snapshot) === route,
    );
    if (adapter.getType() === 'fastify') {
      this.identity = fastifyRoute;
      this.hookFastify(adapter);
    } else {
      this.identity = expressRoute;
      // Express's routes are registered after this; their handlers are wrapped once they are (onModuleInit).
      this.express = true;
    }
  }

  gateOf(controller: object, handler: object): EdgeGate | undefined {
    return this.approved.get(controller)?.get(handler);
  }

  onModuleInit(): void {
    if (!this.express) return;
    this.express = false;
    const app = this.adapterHost?.httpAdapter?.getInstance<{ router?: { stack?: ExpressLayer[] } }>();
    for (const layer of app?.router?.stack ?? []) {
      const first = layer.route?.stack[0];
      if (!first) continue;
      const handle = first.handle;
      first.handle = (request, response, next) =>
        this.tryAnswer(request as HttpRequestLike, response as HttpResponseLike)
          ? undefined
          : handle(request, response, next);
    }
  }

  private hookFastify(adapter: AbstractHttpAdapter): void {
    const instance = adapter.getInstance<{
      addHook(name: 'onRequest', hook: (request: unknown, reply: unknown, done: () => void) => void): void;
    }>();
    // Named: Fastify keeps hooks bound, and the later-hooks check finds this one by its name.
    const hooks = {
      [EDGE_HOOK_NAME]: (request: unknown, reply: unknown, done: () => void) => {
        if (!this.tryAnswer(request as HttpRequestLike, reply as HttpResponseLike)) done();
      },
    };
    instance.addHook('onRequest', hooks[EDGE_HOOK_NAME]);
  }

  /** The interceptor saw `request` on an approved route: its route now opens the gate to the tier. */
  private open(request: HttpRequestLike, route: ApprovedRoute): void {
    const identity = this.identity?.(request);
    if (identity === undefined || this.gates.has(identity) || this.closed.has(identity)) return;
    const skipped = this.identity === fastifyRoute ? unlistedLaterHooks(request, route) : [];
    if (skipped.length === 0) return void this.gates.set(identity, route);
    // Fastify hooks are known only once the app is ready: the route stays off the edge, said once.
    this.closed.add(identity);
    this.logger.warn(
      `edge off for ${route.name}: Fastify ${skipped.join(', ')} hook(s) run before its handler on every request, ` +
        `and an edge hit would skip them; list their kinds in edge.skip (e.g. 'preHandler') to answer at the edge anyway`,
    );
  }

  private tryAnswer(request: HttpRequestLike, response: HttpResponseLike): boolean {
    const identity = this.identity!(request);
    const route = identity === undefined ? undefined : this.gates.get(identity);
    if (route === undefined) return false;
    try {
      return this.answerer!.answer(request, response, route);
    } catch (error) {
      // Never fail a request here: the pipeline answers it as without the tier.
      if (!this.failed) {
        this.failed = true;
        this.logger.error(`edge tier failed, the request went through the pipeline: ${String(error)}`);
      }
      return false;
    }
  }
}

/** The kinds of later Fastify hook of the route of `request` not listed as safe to skip. */
function unlistedLaterHooks(request: HttpRequestLike, route: ApprovedRoute): string[] {
  return fastifyLaterHooks(request).filter((kind) => !route.skip.includes(kind));
}
