import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { CanActivate, ExecutionContext, Injectable, Scope, UseGuards } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import {
  Args,
  Field,
  GqlExecutionContext,
  GraphQLModule,
  Info,
  Int,
  Mutation,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { MercuriusDriver, MercuriusDriverConfig } from '@nestjs/mercurius';
import { Coalesce, SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions } from '../../lib';
import { Platform, RunningApp, startApp } from '../apps/http-app';
import { Origin } from '../apps/origin';

@ObjectType()
export class Article {
  @Field(() => Int) id!: number;
  @Field() title!: string;
  /** Which run of the resolver produced it: equal for callers that shared one. */
  @Field(() => Int) run!: number;
}

/** Sets `request.user` from `x-user`, as a Passport guard would from a session. */
@Injectable()
class UserGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = GqlExecutionContext.create(context).getContext<{
      req: { headers: Record<string, string>; user?: unknown };
    }>().req;
    const user = req.headers['x-user'];
    if (user !== undefined) req.user = { name: user };
    return true;
  }
}

@Resolver(() => Article)
@UseGuards(UserGuard)
export class ArticlesResolver {
  constructor(private readonly origin: Origin) {}

  @Query(() => Article)
  async article(@Args('id', { type: () => Int }) id: number): Promise<Article> {
    const run = await this.origin.run(`article:${id}`);
    return { id, title: `title ${id}`, run };
  }

  @Query(() => Int)
  async failing(@Args('id', { type: () => Int }) id: number): Promise<number> {
    const run = await this.origin.run(`failing:${id}`);
    throw new Error(`failed run ${run}`);
  }

  /** Keyed by the caller's Authorization (hashed): one run per user. */
  @Query(() => String)
  @Coalesce({ ttl: 0, keyHeaders: ['authorization'] })
  async profile(): Promise<string> {
    return `profile run ${await this.origin.run('profile')}`;
  }

  /** Takes `@Info()`: may answer per selection set, so runs alone. */
  @Query(() => Int)
  async selected(@Info() info: { fieldNodes: unknown[] }): Promise<number> {
    return (await this.origin.run('selected')) + info.fieldNodes.length * 0;
  }

  @Query(() => Int)
  @SkipCoalesce()
  async skipped(): Promise<number> {
    return this.origin.run('skipped');
  }

  @Mutation(() => Int)
  async publish(@Args('id', { type: () => Int }) id: number): Promise<number> {
    return this.origin.run(`publish:${id}`);
  }

  /** A field resolver: intercepted with `fieldResolverEnhancers`, coalesced per parent with `@Coalesce`. */
  @ResolveField(() => Int)
  @Coalesce({ ttl: 0 })
  async views(@Parent() article: Article): Promise<number> {
    return this.origin.run(`views:${article.id}`);
  }

  /** A field resolver without `@Coalesce`: runs once per parent object, as without the library. */
  @ResolveField(() => Int)
  async likes(@Parent() article: Article): Promise<number> {
    return this.origin.run(`likes:${article.id}`);
  }
}

/** Made per request: a resolver that depends on it is request-scoped. */
@Injectable({ scope: Scope.REQUEST })
class RequestStamp {
  readonly at = Math.random();
}

/** Request-scoped (through its dependency): its results may depend on the request, so it runs alone. */
@Resolver()
export class ScopedResolver {
  constructor(
    private readonly origin: Origin,
    private readonly stamp: RequestStamp,
  ) {}

  @Query(() => Int)
  async scoped(): Promise<number> {
    return (await this.origin.run('scoped')) + this.stamp.at * 0;
  }
}

/** A GraphQL driver on an HTTP platform. */
export interface Driver {
  name: string;
  driver: 'apollo' | 'mercurius';
  platform: Platform;
}

/** Apollo on both platforms, Mercurius (Fastify only). */
export const DRIVERS: Driver[] = [
  { name: 'Apollo (Express)', driver: 'apollo', platform: 'express' },
  { name: 'Apollo (Fastify)', driver: 'apollo', platform: 'fastify' },
  { name: 'Mercurius (Fastify)', driver: 'mercurius', platform: 'fastify' },
];

/** `GraphQLModule.forRoot` for `driver`, with `options` (schema, enhancers). */
export function graphqlModule(driver: Driver['driver'], options: Omit<ApolloDriverConfig, 'driver'>) {
  return driver === 'apollo'
    ? GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, ...options })
    : GraphQLModule.forRoot<MercuriusDriverConfig>({
        driver: MercuriusDriver,
        ...(options as Omit<MercuriusDriverConfig, 'driver'>),
        // Mercurius's parsed-query cache loads quick-lru by a dynamic import, which Jest's CommonJS runtime refuses.
        cache: false,
      });
}

/** A real GraphQL app behind the global interceptor, listening on loopback. */
export async function startGraphqlApp(
  { driver, platform }: Pick<Driver, 'driver' | 'platform'>,
  options: StampedeModuleOptions = { ttl: 0 },
): Promise<RunningApp> {
  return startApp(
    platform,
    {
      imports: [
        StampedeModule.forRoot(options),
        graphqlModule(driver, { autoSchemaFile: true, fieldResolverEnhancers: ['interceptors', 'guards'] }),
      ],
      providers: [
        Origin,
        ArticlesResolver,
        ScopedResolver,
        RequestStamp,
        { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor },
      ],
    },
    // Sets `req.user` from `x-middleware-user`, as an authenticating middleware would (on Fastify, on the Node request).
    (app) =>
      void app.use((req: { headers: Record<string, string>; user?: unknown }, _res: unknown, next: () => void) => {
        const user = req.headers['x-middleware-user'];
        if (user !== undefined) req.user = { name: user };
        next();
      }),
  );
}

/** The parsed reply of one GraphQL operation over HTTP. */
export interface GraphqlReply {
  data?: Record<string, unknown> | null;
  errors?: { message: string }[];
}

/** POSTs one operation to `/graphql` and reads the reply. */
export async function graphql(
  url: string,
  query: string,
  headers: Record<string, string> = {},
  variables?: Record<string, unknown>,
): Promise<GraphqlReply> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphqlReply;
}
