import 'reflect-metadata';
import { ApolloServerPluginCacheControl } from '@apollo/server/plugin/cacheControl';
import responseCachePlugin from '@apollo/server-plugin-response-cache';
import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { Module, ModuleMetadata } from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { Args, Field, GraphQLModule, ID, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { serveParent } from '../shared/child';
import { GRAPHQL_SYSTEMS, GraphqlSystem, RESOLVER_MS } from './graphql-systems';

/**
 * One GraphQL benchmark server (Apollo on Express), run as a child process:
 * `node graphql-app.js <system>`. Each system gets its own process.
 */

/** Long enough that nothing expires during a run. */
const TTL_MS = 10 * 60_000;
const KEEP_ALIVE_MS = 10 * 60_000;

let runs = 0;

@ObjectType()
class Article {
  @Field(() => ID) id!: string;
  @Field() title!: string;
}

@Resolver(() => Article)
class ArticlesResolver {
  /** 100 ms of "work" per run, counted. */
  @Query(() => Article)
  async article(@Args('id', { type: () => ID }) id: string): Promise<Article> {
    runs++;
    await sleep(RESOLVER_MS);
    return { id, title: `article ${id}` };
  }
}

function metadataFor(system: GraphqlSystem): ModuleMetadata {
  const plugins =
    system === 'response-cache'
      ? [ApolloServerPluginCacheControl({ defaultMaxAge: TTL_MS / 1000 }), responseCachePlugin()]
      : [];
  const graphql = GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, plugins });
  return system === 'stampede'
    ? {
        imports: [StampedeModule.forRoot({ ttl: TTL_MS }), graphql],
        providers: [ArticlesResolver, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
      }
    : { imports: [graphql], providers: [ArticlesResolver] };
}

async function main(): Promise<void> {
  const [system] = process.argv.slice(2) as [GraphqlSystem];
  if (!GRAPHQL_SYSTEMS.includes(system)) throw new Error(`usage: graphql-app <${GRAPHQL_SYSTEMS.join('|')}>`);
  @Module(metadataFor(system))
  class BenchModule {}
  const app = await NestFactory.create(BenchModule, { logger: ['error'] });
  await app.init();
  const server = app.getHttpServer() as Server;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  serveParent({ counts: () => ({ runs }) }, { port: (server.address() as AddressInfo).port });
}

void main();
