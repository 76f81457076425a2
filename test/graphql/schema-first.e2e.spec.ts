import { APP_INTERCEPTOR } from '@nestjs/core';
import { Args, Mutation, Query, Resolver } from '@nestjs/graphql';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { RunningApp, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { DRIVERS, GraphqlReply, graphql, graphqlModule } from './graphql-app';

const typeDefs = /* GraphQL */ `
  type Quote {
    symbol: String!
    run: Int!
  }
  type Query {
    index(name: String!): Int!
    quote(symbol: String!): Quote!
    chart(symbol: String!, days: Int!): [Int!]!
  }
  type Mutation {
    trade(symbol: String!): Int!
  }
`;

/** A schema-first resolver: names from the SDL, no code-first types. */
@Resolver()
class QuotesResolver {
  constructor(private readonly origin: Origin) {}

  @Query('quote')
  async quote(@Args('symbol') symbol: string) {
    return { symbol, run: await this.origin.run(`quote:${symbol}`) };
  }

  @Query('chart')
  @Coalesce({ ttl: 60_000 })
  async chart(@Args('symbol') symbol: string, @Args('days') days: number) {
    const run = await this.origin.run(`chart:${symbol}`);
    return Array.from({ length: days }, () => run);
  }

  @Mutation('trade')
  async trade(@Args('symbol') symbol: string) {
    return this.origin.run(`trade:${symbol}`);
  }
}

/** Settings for every resolver of the class: a ttl the module (0) does not have. */
@Resolver()
@Coalesce({ ttl: 60_000 })
class IndexResolver {
  constructor(private readonly origin: Origin) {}

  @Query('index')
  async index(@Args('name') name: string) {
    return this.origin.run(`index:${name}`);
  }
}

describe.each(DRIVERS)('A schema-first resolver on $name', ({ driver, platform }) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 0 }), graphqlModule(driver, { typeDefs })],
      providers: [Origin, QuotesResolver, IndexResolver, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running?.close());
  beforeEach(() => origin.reset());

  async function burst(name: string, sends: (() => Promise<GraphqlReply>)[], ready: () => boolean) {
    origin.hold(name);
    const replies = Promise.all(sends.map((send) => send()));
    try {
      await until(ready, name);
    } finally {
      origin.open(name);
    }
    return replies;
  }
  const times = (n: number, text: string) => Array.from({ length: n }, () => () => graphql(running.url, text));

  it('runs the query resolver once for 50 concurrent identical queries', async () => {
    const replies = await burst(
      'quote:ACME',
      times(50, '{ quote(symbol: "ACME") { symbol run } }'),
      () => stampede.stats().waiting === 50,
    );
    expect(origin.calls('quote:ACME')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r.data)))).toEqual(
      new Set([JSON.stringify({ quote: { symbol: 'ACME', run: 1 } })]),
    );
  });

  it('takes @Coalesce settings (a ttl) and keys by every argument', async () => {
    const first = await graphql(running.url, '{ chart(symbol: "ACME", days: 2) }');
    const again = await graphql(running.url, '{ chart(symbol: "ACME", days: 2) }');
    const longer = await graphql(running.url, '{ chart(symbol: "ACME", days: 3) }');
    expect([first.data, again.data, longer.data]).toEqual([{ chart: [1, 1] }, { chart: [1, 1] }, { chart: [2, 2, 2] }]);
  });

  it('takes @Coalesce settings from the resolver class', async () => {
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await graphql(running.url, '{ index(name: "DJI") }'));
    expect(replies.map((r) => r.data)).toEqual([{ index: 1 }, { index: 1 }, { index: 1 }]);
    expect(origin.calls('index:DJI')).toBe(1);
  });

  it('never coalesces mutations', async () => {
    const replies = await burst(
      'trade:ACME',
      times(10, 'mutation { trade(symbol: "ACME") }'),
      () => origin.calls('trade:ACME') === 10,
    );
    expect(new Set(replies.map((r) => r.data!.trade)).size).toBe(10);
  });
});
