import { RequestMethod } from '@nestjs/common';
import type { ApplicationConfig, DiscoveryService, Reflector } from '@nestjs/core';
import { COALESCE_METADATA, ROUTE_ARGS_METADATA } from '../../stampede.constants';
import { CoalesceOptions, ResolvedStampedeOptions } from '../../options/stampede.options';
import { hasInterceptorOutside, interceptorChain, isStampede } from '../interceptor-chain';
import { RouteSettings, resolveRouteSettings, routesByVersion } from '../route-settings';
import { EdgeSetting, isListed, resolveEdgeSetting } from './edge-option';

// Nest's own metadata keys (`@nestjs/common/constants`).
const PATH_METADATA = 'path';
const METHOD_METADATA = 'method';
const GUARDS_METADATA = '__guards__';
const INTERCEPTORS_METADATA = '__interceptors__';
const PIPES_METADATA = '__pipes__';
const HEADERS_METADATA = '__headers__';
const RENDER_METADATA = '__renderTemplate__';
const REDIRECT_METADATA = '__redirect__';

/** The methods an edge hit can answer: a route for them may opt in. */
const EDGE_METHODS: ReadonlySet<number> = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.ALL]);

type Class = abstract new (...args: never[]) => object;

/** A header `@Header()` sets before the pipeline: set again on every edge hit, as Nest would. */
export interface StaticHeader {
  name: string;
  value: string | (() => string);
}

/** A route the edge may answer for, with what it needs per request. */
export interface ApprovedRoute {
  controller: object;
  handler: object;
  settings: RouteSettings;
  headers: readonly StaticHeader[];
  /** What the user listed as safe to skip (Fastify hooks are only known once the app is ready). */
  skip: readonly unknown[];
  /** `Controller.method (GET /path)`, for messages. */
  name: string;
}

/** Everything the check reads, all of it known when the app initialises. */
export interface EdgeCheckDeps {
  discovery: DiscoveryService;
  config: ApplicationConfig;
  reflector: Reflector;
  options: ResolvedStampedeOptions;
  stampede: Class;
}

/**
 * Checks, at bootstrap, every route that opts in to the edge: an edge hit
 * skips guards, interceptors and pipes, so a route with one it was not told
 * is safe to skip is refused, and so is a route whose key or response the
 * edge cannot reproduce (a `key` function or `keyUser`, a subclass of the
 * interceptor, `@Render()`, `@Redirect()`, versioning by header or media type).
 * Throws one error listing every refusal; answers the approved routes.
 */
export function checkEdgeRoutes(deps: EdgeCheckDeps): ApprovedRoute[] {
  const approved: ApprovedRoute[] = [];
  const refusals: string[] = [];
  for (const wrapper of deps.discovery.getControllers()) {
    const controller = wrapper.metatype as Class | undefined;
    if (typeof controller !== 'function') continue;
    for (const [name, handler] of routesOf(controller)) {
      const setting = edgeSettingOf(deps.options, controller, handler);
      if (!setting.on) continue;
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as number | undefined;
      if (method === undefined || !EDGE_METHODS.has(method)) continue;
      const chain = interceptorChain(deps.config, controller, handler);
      // Not coalesced at all (the route check warns): nothing is ever stored for the edge to answer.
      if (!chain.some((interceptor) => isStampede(interceptor, deps.stampede))) continue;
      const settings = resolveRouteSettings(
        deps.reflector,
        deps.options,
        controller,
        handler as () => unknown,
        hasInterceptorOutside(chain, deps.stampede),
        routesByVersion(deps.config),
      );
      if (settings === null) continue;
      const blockers = blockersOf(deps, controller, handler, setting, settings);
      const route = `${controller.name}.${name} (${routeName(deps.config, controller, handler, method)})`;
      if (blockers.length === 0) {
        approved.push({
          controller,
          handler,
          settings,
          headers: staticHeaders(handler),
          skip: setting.skip,
          name: route,
        });
      } else {
        refusals.push(`${route}: ${blockers.join('; ')}`);
      }
    }
  }
  if (refusals.length > 0) {
    throw new Error(
      `nestjs-stampede: edge refused for ${refusals.length === 1 ? 'a route' : `${refusals.length} routes`}: an edge hit ` +
        `is answered before guards, interceptors and pipes, so none may stand in its way unless listed as safe to skip ` +
        `(@Coalesce({ edge: { skip: [...] } }) on the route or controller, or StampedeModule.forRoot({ edge: { skip: [...] } })), ` +
        `or turned off (@Coalesce({ edge: false })).\n  - ${refusals.join('\n  - ')}`,
    );
  }
  return approved;
}

function edgeSettingOf(options: ResolvedStampedeOptions, controller: object, handler: object): EdgeSetting {
  const onClass = Reflect.getMetadata(COALESCE_METADATA, controller) as CoalesceOptions | undefined;
  const onRoute = Reflect.getMetadata(COALESCE_METADATA, handler) as CoalesceOptions | undefined;
  return resolveEdgeSetting(onRoute?.edge, onClass?.edge, options.edge);
}

/** What stands between this route and the edge, each named with where it was bound. */
function blockersOf(
  deps: EdgeCheckDeps,
  controller: Class,
  handler: object,
  setting: EdgeSetting,
  settings: RouteSettings,
): string[] {
  const { config } = deps;
  const blockers: string[] = [];
  const unlisted = (kind: string, where: string, enhancers: readonly unknown[]) => {
    for (const enhancer of enhancers) {
      if (!isListed(enhancer, setting.skip)) blockers.push(`${kind} ${nameOf(enhancer)} (${where})`);
    }
  };
  const listOf = (key: string, target: object) => (Reflect.getMetadata(key, target) as unknown[] | undefined) ?? [];
  const scoped = (wrappers: readonly { metatype?: unknown }[]) => wrappers.map((wrapper) => wrapper.metatype);

  unlisted('guard', 'global', [...config.getGlobalGuards(), ...scoped(config.getGlobalRequestGuards())]);
  unlisted('guard', 'on the controller', listOf(GUARDS_METADATA, controller));
  unlisted('guard', 'on the route', listOf(GUARDS_METADATA, handler));

  const interceptors = (where: string, list: readonly unknown[]) => {
    for (const interceptor of list) {
      if (isStampede(interceptor, deps.stampede)) {
        if (!isExactly(interceptor, deps.stampede)) {
          blockers.push(
            `interceptor ${nameOf(interceptor)} (${where}) subclasses StampedeInterceptor: its keyFor/isPerCaller cannot be reproduced at the edge`,
          );
        }
      } else if (!isListed(interceptor, setting.skip)) {
        blockers.push(`interceptor ${nameOf(interceptor)} (${where})`);
      }
    }
  };
  interceptors('global', [...config.getGlobalInterceptors(), ...scoped(config.getGlobalRequestInterceptors())]);
  interceptors('on the controller', listOf(INTERCEPTORS_METADATA, controller));
  interceptors('on the route', listOf(INTERCEPTORS_METADATA, handler));

  // Pipes act on parameters: a handler without any runs none of them.
  const args = Object.values(
    (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, (handler as { name: string }).name) ?? {}) as Record<
      string,
      { pipes?: unknown[] }
    >,
  );
  if (args.length > 0) {
    unlisted('pipe', 'global', [...config.getGlobalPipes(), ...scoped(config.getGlobalRequestPipes())]);
    unlisted('pipe', 'on the controller', listOf(PIPES_METADATA, controller));
    unlisted('pipe', 'on the route', listOf(PIPES_METADATA, handler));
    unlisted(
      'pipe',
      'on a parameter',
      args.flatMap((arg) => arg.pipes ?? []),
    );
  }

  if (settings.key) blockers.push('a key function needs the ExecutionContext, which the edge does not build');
  if (settings.keyUser) blockers.push('keyUser needs request.user, which only a guard sets');
  if (Reflect.getMetadata(RENDER_METADATA, handler) !== undefined)
    blockers.push('@Render() renders a view on every response');
  if (Reflect.getMetadata(REDIRECT_METADATA, handler) !== undefined)
    blockers.push('@Redirect() answers with a redirect');
  if (routesByVersion(config)) {
    blockers.push('versioning by header, media type or a custom extractor routes one URL to several handlers');
  }
  return blockers;
}

function isExactly(interceptor: unknown, type: Class): boolean {
  return typeof interceptor === 'function' ? interceptor === type : (interceptor as object).constructor === type;
}

function nameOf(enhancer: unknown): string {
  if (typeof enhancer === 'function') return enhancer.name || 'an anonymous class';
  const type = (enhancer as object | null)?.constructor;
  return type?.name ? `${type.name} (an instance)` : String(enhancer);
}

function staticHeaders(handler: object): StaticHeader[] {
  return ((Reflect.getMetadata(HEADERS_METADATA, handler) as StaticHeader[] | undefined) ?? []).map(
    ({ name, value }) => ({
      name,
      value,
    }),
  );
}

/** The routes of a controller (inherited ones too), by method name. */
function routesOf(controller: Class): Map<string, object> {
  const routes = new Map<string, object>();
  for (
    let proto = controller.prototype as object;
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const value = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name === 'constructor' || typeof value !== 'function' || routes.has(name)) continue;
      if (Reflect.getMetadata(PATH_METADATA, value) !== undefined) routes.set(name, value);
    }
  }
  return routes;
}

/** `GET /prefix/controller/route`, for messages. */
function routeName(config: ApplicationConfig, controller: object, handler: object, method: number): string {
  const first = (value: unknown) => (Array.isArray(value) ? String(value[0] ?? '') : String(value ?? ''));
  const parts = [
    config.getGlobalPrefix(),
    first(Reflect.getMetadata(PATH_METADATA, controller)),
    first(Reflect.getMetadata(PATH_METADATA, handler)),
  ];
  const path = parts
    .map((part) => part.replace(/^\/+|\/+$/g, ''))
    .filter(Boolean)
    .join('/');
  return `${RequestMethod[method]} /${path}`;
}
