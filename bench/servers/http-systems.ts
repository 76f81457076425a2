/** What the HTTP scenarios compare; kept apart from the server so the parent does not load Nest. */

export const PLATFORMS = ['express', 'fastify'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** What sits in front of the routes in the scenarios' comparisons. */
export const HTTP_SYSTEMS = ['bare', 'cache-manager', 'stampede'] as const;
/**
 * Also served: an interceptor that only calls `next.handle()`. http-hot shows
 * it so the price of Nest's interceptor pipeline is told apart from a cache's own.
 */
export const ALL_HTTP_SYSTEMS = ['bare', 'noop', 'cache-manager', 'stampede', 'edge'] as const;
export type HttpSystem = (typeof ALL_HTTP_SYSTEMS)[number];

export const HTTP_LABELS: Record<HttpSystem, string> = {
  bare: 'bare route',
  noop: 'no-op interceptor',
  'cache-manager': 'CacheInterceptor (@nestjs/cache-manager)',
  stampede: 'nestjs-stampede',
  edge: 'nestjs-stampede, edge tier',
};

/** The slow handler's duration. */
export const COLD_MS = 100;
