import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { CanActivate, ExecutionContext, Injectable, Module, UseGuards } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import {
  Args,
  Context,
  Field,
  GqlExecutionContext,
  GraphQLModule,
  ID,
  Int,
  Mutation,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { RunningApp, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { GraphqlReply, graphql } from './graphql-app';

/**
 * The code of README's GraphQL section, as it stands there (checked below),
 * compiled by the typecheck and run over real HTTP.
 */

@ObjectType()
class Book {
  @Field(() => ID) id!: string;
  @Field() title!: string;
  @Field(() => Int) stars!: number;
}

@ObjectType()
class Order {
  @Field() user!: string;
  @Field(() => Int) call!: number;
}

/** What the README leaves to the app: the data, each call counted, each held until the test opens it. */
@Injectable()
class BooksService {
  readonly calls = new Map<string, number>();
  gate: Promise<void> = Promise.resolve();
  private count(name: string): number {
    const n = (this.calls.get(name) ?? 0) + 1;
    this.calls.set(name, n);
    return n;
  }
  async byId(id: string): Promise<Book> {
    const call = this.count(`byId:${id}`);
    await this.gate;
    return { id, title: `book ${id}`, stars: call };
  }
  async bestsellers(): Promise<Book[]> {
    this.count('bestsellers');
    return [{ id: '1', title: 'book 1', stars: 5 }];
  }
  async reviewCount(id: string): Promise<number> {
    const call = this.count(`reviewCount:${id}`);
    await this.gate;
    return 10 + call;
  }
  async rate(id: string, stars: number): Promise<Book> {
    this.count(`rate:${id}`);
    await this.gate;
    return { id, title: `book ${id}`, stars };
  }
}

@Injectable()
class OrdersService {
  calls = 0;
  gate: Promise<void> = Promise.resolve();
  async of(user: string): Promise<Order[]> {
    const call = ++this.calls;
    await this.gate;
    return [{ user, call }];
  }
}

@Injectable()
class SessionGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const { req } = GqlExecutionContext.create(context).getContext<{
      req: { headers: Record<string, string>; user?: unknown };
    }>();
    req.user = { id: req.headers['x-session'] };
    return true;
  }
}

// README:graphql
@Resolver(() => Book)
export class BooksResolver {
  constructor(private readonly books: BooksService) {}

  @Query(() => Book) // coalesced by id; kept for the module's ttl
  book(@Args('id', { type: () => ID }) id: string) {
    return this.books.byId(id);
  }

  @Query(() => [Book])
  @Coalesce({ ttl: 30_000, staleTtl: 60_000 })
  bestsellers() {
    return this.books.bestsellers();
  }

  @ResolveField(() => Int) // coalesced per parent book: needs fieldResolverEnhancers below
  @Coalesce({ ttl: 10_000 })
  reviewCount(@Parent() book: Book) {
    return this.books.reviewCount(book.id);
  }

  @Mutation(() => Book) // never coalesced: every mutation runs
  rate(@Args('id', { type: () => ID }) id: string, @Args('stars', { type: () => Int }) stars: number) {
    return this.books.rate(id, stars);
  }
}

@Module({
  imports: [
    StampedeModule.forRoot({ ttl: 5_000 }),
    GraphQLModule.forRoot<ApolloDriverConfig>({
      driver: ApolloDriver,
      autoSchemaFile: true,
      fieldResolverEnhancers: ['interceptors'], // only for @Coalesce field resolvers
    }),
  ],
  providers: [BooksService, BooksResolver, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
})
export class AppModule {}
// README:end

@Resolver(() => Order)
class OrdersResolver {
  constructor(private readonly orders: OrdersService) {}

  // README:graphql-per-user
  @Query(() => [Order])
  @UseGuards(SessionGuard) // sets request.user, as Passport's AuthGuard does
  @Coalesce({ key: (context: ExecutionContext) => GqlExecutionContext.create(context).getContext().req.user.id })
  myOrders(@Context('req') request: { user: { id: string } }) {
    return this.orders.of(request.user.id); // once per user however many tabs ask; never another user's
  }
  // README:end
}

/** A marked block of this file, unindented as in the README. */
function snippet(self: string, name: string): string {
  const code = self.split(`// README:${name}\n`)[1].split(/[ ]*\/\/ README:end/)[0];
  const indent = /^ */.exec(code)![0].length;
  return code
    .split('\n')
    .map((line) => line.slice(indent))
    .join('\n');
}

describe('README GraphQL snippets', () => {
  it('are the code of this file, word for word', () => {
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
    const self = readFileSync(__filename, 'utf8');
    for (const name of ['graphql', 'graphql-per-user']) {
      const block = readme.split(`<!-- README:${name} -->`)[1]?.split('```ts\n')[1]?.split('```')[0];
      expect([name, block]).toEqual([name, snippet(self, name)]);
    }
  });
});

describe('README GraphQL snippets on Apollo (Express)', () => {
  let running: RunningApp;
  let books: BooksService;
  let orders: OrdersService;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp('express', {
      imports: [AppModule],
      providers: [OrdersService, OrdersResolver, SessionGuard],
    });
    books = running.app.get(BooksService);
    orders = running.app.get(OrdersService);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running?.close());

  const query = (text: string, headers?: Record<string, string>) => graphql(running.url, text, headers);
  /** Runs `sends` with the services held until `ready()`. */
  async function held<T>(sends: (() => Promise<T>)[], ready: () => boolean, what: string): Promise<T[]> {
    let open!: () => void;
    books.gate = orders.gate = new Promise<void>((resolve) => (open = resolve));
    const replies = Promise.all(sends.map((send) => send()));
    try {
      await until(ready, what);
    } finally {
      open();
    }
    return replies;
  }
  const times = (n: number, send: () => Promise<GraphqlReply>) => Array.from({ length: n }, () => send);

  it('a query: one run for 20 concurrent queries, then kept for the ttl', async () => {
    const replies = await held(
      times(20, () => query('{ book(id: "1") { id title } }')),
      () => stampede.stats().waiting === 20,
      '20 callers',
    );
    expect(books.calls.get('byId:1')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r.data)))).toEqual(
      new Set([JSON.stringify({ book: { id: '1', title: 'book 1' } })]),
    );
    await query('{ book(id: "1") { id } }');
    expect(books.calls.get('byId:1')).toBe(1);
  });

  it('@Coalesce settings: bestsellers kept 30 s', async () => {
    await query('{ bestsellers { id } }');
    const second = await query('{ bestsellers { id title } }');
    expect(second.data).toEqual({ bestsellers: [{ id: '1', title: 'book 1' }] });
    expect(books.calls.get('bestsellers')).toBe(1);
  });

  it('a @Coalesce field resolver: one run per parent for 20 concurrent queries', async () => {
    await query('{ book(id: "2") { id } }'); // the parent, stored for 5 s
    const replies = await held(
      times(20, () => query('{ book(id: "2") { reviewCount } }')),
      () => books.calls.get('reviewCount:2') === 1 && stampede.stats().waiting === 20,
      '20 callers on reviewCount',
    );
    expect(books.calls.get('byId:2')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r.data)))).toEqual(
      new Set([JSON.stringify({ book: { reviewCount: 11 } })]),
    );
  });

  it('a mutation: every one runs', async () => {
    const replies = await held(
      times(5, () => query('mutation { rate(id: "3", stars: 4) { stars } }')),
      () => books.calls.get('rate:3') === 5,
      '5 mutation runs',
    );
    expect(replies.every((r) => JSON.stringify(r.data) === '{"rate":{"stars":4}}')).toBe(true);
  });

  it('keyed by the user: one run per user, never another user’s orders', async () => {
    const replies = await held(
      [
        ...times(10, () => query('{ myOrders { user call } }', { 'x-session': 'ann' })),
        ...times(10, () => query('{ myOrders { user call } }', { 'x-session': 'bob' })),
      ],
      () => orders.calls === 2 && stampede.stats().waiting === 20,
      'two flights of 10',
    );
    const users = replies.map((r) => (r.data!.myOrders as Order[])[0]);
    expect(new Set(users.slice(0, 10).map((o) => JSON.stringify(o))).size).toBe(1);
    expect(new Set(users.slice(10).map((o) => JSON.stringify(o))).size).toBe(1);
    expect(users[0].user).toBe('ann');
    expect(users[10].user).toBe('bob');
  });
});
