/** What the GraphQL scenario compares; kept apart from the server so the parent does not load Nest. */

export const GRAPHQL_SYSTEMS = ['plain', 'response-cache', 'stampede'] as const;
export type GraphqlSystem = (typeof GRAPHQL_SYSTEMS)[number];

export const GRAPHQL_LABELS: Record<GraphqlSystem, string> = {
  plain: 'Apollo, nothing in front',
  'response-cache': "Apollo's response cache plugin",
  stampede: 'nestjs-stampede',
};

/** The slow resolver's duration. */
export const RESOLVER_MS = 100;
