import { HttpRequestLike } from '../platform';

type GatesOf = (controller: object, handler: object) => EdgeGate | undefined;

// Per engine (one per app): the interceptor finds the gates of its routes here.
const byEngine = new WeakMap<object, GatesOf>();

/** Registers the edge tier of `engine` (once per app). */
export function registerGates(engine: object, gatesOf: GatesOf): void {
  byEngine.set(engine, gatesOf);
}

export function hasGates(engine: object): boolean {
  return byEngine.has(engine);
}

/** The gate of an approved route, for the interceptor; `undefined` when the route is not on the edge. */
export function edgeGateOf(engine: object, controller: object, handler: object): EdgeGate | undefined {
  return byEngine.get(engine)?.(controller, handler);
}

/** What the interceptor tells the tier of an approved route: where its requests go, and which responses it produced. */
export interface EdgeGate {
  note(request: HttpRequestLike): void;
  mark(snapshot: object): void;
}

/**
 * The identity of the route a request was routed to, the same object on every
 * request of that route: what the gates are keyed by.
 */
export type RouteIdentity = (request: HttpRequestLike) => object | undefined;

/**
 * The Fastify hooks an edge hit would skip, by kind: `onRequest` hooks that
 * run after the edge's own (a route's own, an encapsulated plugin's:
 * `@fastify/rate-limit` adds one per route), and every `preParsing`,
 * `preValidation` and `preHandler` hook (auth, allow-lists, rate limits can
 * sit there; `@fastify/compress` decompresses request bodies in `preParsing`).
 */
export const FASTIFY_LATER_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const;

/** The name of the edge's own `onRequest` hook: Fastify stores hooks bound, so it is found by name. */
export const EDGE_HOOK_NAME = 'nestjsStampedeEdge';

/**
 * The kinds of hook of the route a Fastify request was routed to that run
 * after the edge; known once the app is ready, so read from the route's
 * context, not at bootstrap.
 */
export function fastifyLaterHooks(request: HttpRequestLike): string[] {
  const context = fastifyContext(request) as Record<string, { name?: string }[] | null | undefined> | undefined;
  const kinds: string[] = [];
  const onRequest = context?.onRequest ?? [];
  const ours = onRequest.findIndex((hook) => hook.name === EDGE_HOOK_NAME || hook.name === `bound ${EDGE_HOOK_NAME}`);
  if (ours !== -1 && ours < onRequest.length - 1) kinds.push('onRequest');
  for (const kind of FASTIFY_LATER_HOOKS)
    if (kind !== 'onRequest' && (context?.[kind]?.length ?? 0) > 0) kinds.push(kind);
  return kinds;
}

/** Express sets `request.route` to the route it dispatches to. */
export const expressRoute: RouteIdentity = (request) => (request as { route?: object }).route;

// Fastify keeps a request's route context under a symbol; found once, by its description.
let contextSymbol: symbol | undefined;

/**
 * Fastify's route context of the request (one per route, HEAD routes apart),
 * by its `config` object: `request.routeOptions` builds a new object on each read.
 */
export const fastifyRoute: RouteIdentity = (request) => {
  const context = fastifyContext(request);
  return context === undefined
    ? (request as { routeOptions?: { config?: object } }).routeOptions?.config
    : (context as { config?: object }).config;
};

function fastifyContext(request: HttpRequestLike): object | undefined {
  contextSymbol ??= Object.getOwnPropertySymbols(request).find((symbol) => symbol.description === 'fastify.context');
  return contextSymbol === undefined
    ? undefined
    : (request as unknown as Record<symbol, object | undefined>)[contextSymbol];
}
