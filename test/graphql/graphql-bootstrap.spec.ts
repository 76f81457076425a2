import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { Logger, ModuleMetadata, UseInterceptors } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import {
  Args,
  GraphQLModule,
  Info,
  Int,
  Mutation,
  Parent,
  Query,
  ResolveField,
  Resolver,
  Subscription,
} from '@nestjs/graphql';
import { Test } from '@nestjs/testing';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeOptionsError } from '../../lib';
import { isResolverClass, resolverKind, takesInfo } from '../../lib/nest/graphql/graphql-metadata';
import { Article } from './graphql-app';

@Resolver(() => Article)
class PlainResolver {
  @Query(() => Article)
  article(@Args('id', { type: () => Int }) id: number, @Info() _info: unknown): Article {
    return { id, title: '', run: 0 };
  }

  @Mutation(() => Int)
  publish(): number {
    return 1;
  }

  @ResolveField(() => Int)
  views(@Parent() article: Article): number {
    return article.id;
  }
}

@Resolver(() => Article)
class CoalescedMutationResolver {
  @Query(() => Int)
  one(): number {
    return 1;
  }

  @Mutation(() => Int)
  @Coalesce()
  publish(): number {
    return 1;
  }
}

@Resolver(() => Article)
class CoalescedSubscriptionResolver {
  @Query(() => Int)
  one(): number {
    return 1;
  }

  @Coalesce({ ttl: 1_000 })
  @Subscription(() => Int)
  ticks(): AsyncIterator<number> {
    return [][Symbol.iterator]() as unknown as AsyncIterator<number>;
  }
}

@Resolver(() => Article)
class HttpOptionResolver {
  @Query(() => Int)
  @Coalesce({ statusTtl: { 200: 1_000 } })
  one(): number {
    return 1;
  }
}

@Resolver(() => Article)
class EdgeOptionResolver {
  @Query(() => Int)
  @Coalesce({ edge: true })
  edgy(): number {
    return 1;
  }
}

@Resolver(() => Article)
@Coalesce({ keyBody: true })
class HttpOptionClassResolver {
  @Query(() => Int)
  one(): number {
    return 1;
  }
}

@Resolver(() => Article)
class DecoratedResolver {
  @Query(() => Article)
  @Coalesce({ ttl: 1_000 })
  article(): Article {
    return { id: 1, title: '', run: 0 };
  }

  @ResolveField(() => Int)
  @Coalesce()
  views(@Parent() article: Article): number {
    return article.id;
  }
}

@Resolver(() => Article)
@UseInterceptors(StampedeInterceptor)
class LocallyInterceptedResolver {
  @Query(() => Article)
  @Coalesce({ ttl: 1_000 })
  article(): Article {
    return { id: 1, title: '', run: 0 };
  }
}

function graphqlModule(fieldResolverEnhancers: ('interceptors' | 'guards' | 'filters')[] = []) {
  return GraphQLModule.forRoot<ApolloDriverConfig>({
    driver: ApolloDriver,
    autoSchemaFile: true,
    fieldResolverEnhancers,
  });
}

async function init(metadata: ModuleMetadata, useGlobal = false): Promise<void> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  if (useGlobal) app.useGlobalInterceptors(app.get(StampedeInterceptor));
  try {
    await app.init();
  } finally {
    await app.close();
  }
}

describe('GraphQL resolvers at bootstrap', () => {
  let warn: jest.SpyInstance;
  beforeEach(() => (warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined)));
  afterEach(() => warn.mockRestore());
  const warnings = () => warn.mock.calls.map(([message]) => String(message));

  it('reads what @nestjs/graphql writes: resolver classes, queries, mutations, field resolvers, @Info()', () => {
    expect(isResolverClass(PlainResolver)).toBe(true);
    expect(isResolverClass(Article)).toBe(false);
    const proto = PlainResolver.prototype;
    expect([resolverKind(proto.article), resolverKind(proto.publish), resolverKind(proto.views)]).toEqual([
      'Query',
      'Mutation',
      'field',
    ]);
    expect(resolverKind(CoalescedSubscriptionResolver.prototype.ticks)).toBe('Subscription');
    expect([takesInfo(PlainResolver, 'article'), takesInfo(PlainResolver, 'views')]).toEqual([true, false]);
  });

  it.each([
    [CoalescedMutationResolver, 'CoalescedMutationResolver.publish, a mutation resolver'],
    [CoalescedSubscriptionResolver, 'CoalescedSubscriptionResolver.ticks, a subscription resolver'],
  ])('refuses @Coalesce on a mutation or a subscription, naming the resolver (%p)', async (resolver, named) => {
    await expect(init({ imports: [StampedeModule.forRoot(), graphqlModule()], providers: [resolver] })).rejects.toThrow(
      named,
    );
  });

  it('refuses an HTTP response option on a resolver, naming the option and the resolver', async () => {
    const failure = init({ imports: [StampedeModule.forRoot(), graphqlModule()], providers: [HttpOptionResolver] });
    await expect(failure).rejects.toThrow(StampedeOptionsError);
    await expect(failure).rejects.toThrow(/"statusTtl".*HttpOptionResolver\.one/);
  });

  it('refuses edge on a resolver (the edge tier answers HTTP routes only), naming the option and the resolver', async () => {
    const failure = init({ imports: [StampedeModule.forRoot(), graphqlModule()], providers: [EdgeOptionResolver] });
    await expect(failure).rejects.toThrow(/"edge".*HTTP routes only.*EdgeOptionResolver\.edgy/);
  });

  it('refuses an HTTP response option on a resolver class, naming the option and the class', async () => {
    const failure = init({
      imports: [StampedeModule.forRoot(), graphqlModule()],
      providers: [HttpOptionClassResolver],
    });
    await expect(failure).rejects.toThrow(/"keyBody".*resolver HttpOptionClassResolver/);
  });

  it('warns, naming the resolver, when no StampedeInterceptor is in the chain of a @Coalesce resolver', async () => {
    await init({
      imports: [StampedeModule.forRoot(), graphqlModule(['interceptors'])],
      providers: [DecoratedResolver],
    });
    expect(warnings()).toEqual([
      expect.stringContaining('@Coalesce() on DecoratedResolver.article has no effect: no StampedeInterceptor'),
      expect.stringContaining('@Coalesce() on DecoratedResolver.views has no effect: no StampedeInterceptor'),
    ]);
  });

  it('warns about a @Coalesce field resolver when field resolvers do not go through interceptors', async () => {
    await init({
      imports: [StampedeModule.forRoot(), graphqlModule()],
      providers: [DecoratedResolver, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    expect(warnings()).toEqual([
      expect.stringContaining(
        "@Coalesce() on DecoratedResolver.views has no effect: field resolvers pass through interceptors only with GraphQLModule.forRoot({ fieldResolverEnhancers: ['interceptors'] })",
      ),
    ]);
  });

  it.each([
    ['APP_INTERCEPTOR', [DecoratedResolver, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }], false],
    ['app.useGlobalInterceptors()', [DecoratedResolver], true],
    ['@UseInterceptors() on the resolver', [LocallyInterceptedResolver], false],
  ])('says nothing when the interceptor is there (%s)', async (_how, providers, useGlobal) => {
    await init({ imports: [StampedeModule.forRoot(), graphqlModule(['interceptors'])], providers }, useGlobal);
    expect(warnings()).toEqual([]);
  });
});

describe('optional peers', () => {
  it('no library source imports @nestjs/graphql, @nestjs/microservices or a GraphQL driver', () => {
    const sources: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts')) sources.push(path);
      }
    };
    walk(join(__dirname, '../../lib'));
    expect(sources.length).toBeGreaterThan(20);
    const importing = sources.filter((path) =>
      /(from|require\(|import\()\s*['"]@(nestjs\/(graphql|microservices|apollo|mercurius)|apollo\/)/.test(
        readFileSync(path, 'utf8'),
      ),
    );
    expect(importing).toEqual([]);
  });
});
