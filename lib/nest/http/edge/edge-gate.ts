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
 * The Fastify hooks that run after `onRequest` and before the handler, which
 * an edge hit would skip. Not `preParsing`: it transforms the request body
 * stream (`@fastify/compress` decompresses there), and the edge answers only
 * requests without a body.
 */
export const FASTIFY_LATER_HOOKS = ['preValidation', 'preHandler'] as const;

/**
 * The hooks of the route a Fastify request was routed to that run after the
 * edge (`preValidation`, `preHandler`), by kind; known once the
 * app is ready, so read from the route's context, not at bootstrap.
 */
export function fastifyLaterHooks(request: HttpRequestLike): { kind: string; hook: unknown }[] {
  const context = fastifyContext(request) as Record<string, unknown[] | null | undefined> | undefined;
  const found: { kind: string; hook: unknown }[] = [];
  for (const kind of FASTIFY_LATER_HOOKS) for (const hook of context?.[kind] ?? []) found.push({ kind, hook });
  return found;
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
