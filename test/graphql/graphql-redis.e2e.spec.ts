import { StampedeService } from '../../lib';
import { RunningApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { RedisServer, startRedisServer } from '../helpers/redis-server';
import { GraphqlReply, graphql, startGraphqlApp } from './graphql-app';

/**
 * Two instances on one Redis, one per driver (Apollo on Express, Mercurius on
 * Fastify), with the same resolvers: a burst split across them runs the
 * resolver once, and the value stored by one answers the other.
 */
describe('GraphQL resolvers on two instances sharing a Redis', () => {
  let redis: RedisServer;
  let apollo: RunningApp;
  let mercurius: RunningApp;
  const origins = () => [apollo, mercurius].map((running) => running.app.get(Origin));
  const stats = () => [apollo, mercurius].map((running) => running.app.get(StampedeService).stats());
  const calls = (name: string) => origins().reduce((sum, origin) => sum + origin.calls(name), 0);

  beforeAll(async () => {
    redis = await startRedisServer();
    apollo = await startGraphqlApp(
      { driver: 'apollo', platform: 'express' },
      { ttl: 60_000, redis: { url: redis.url } },
    );
    mercurius = await startGraphqlApp(
      { driver: 'mercurius', platform: 'fastify' },
      { ttl: 60_000, redis: { url: redis.url } },
    );
  });
  afterAll(async () => {
    await apollo?.close();
    await mercurius?.close();
    await redis?.stop();
  });

  it('runs the resolver once for 50 concurrent identical queries, 25 on each instance', async () => {
    for (const origin of origins()) origin.hold('article:1');
    const text = '{ article(id: 1) { id title run } }';
    const replies: Promise<GraphqlReply>[] = [];
    for (let i = 0; i < 25; i++) replies.push(graphql(apollo.url, text), graphql(mercurius.url, text));
    try {
      await until(() => stats().every((s) => s.waiting === 25) && calls('article:1') === 1, '25 callers on each');
    } finally {
      for (const origin of origins()) origin.open('article:1');
    }
    const answers = await Promise.all(replies);
    expect(calls('article:1')).toBe(1);
    expect(new Set(answers.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ data: { article: { id: 1, title: 'title 1', run: 1 } } })]),
    );
  });

  it('answers one instance from the value the other stored in Redis', async () => {
    const first = await graphql(apollo.url, '{ article(id: 2) { run } }');
    const second = await graphql(mercurius.url, '{ article(id: 2) { run } }');
    expect([first.data, second.data]).toEqual([{ article: { run: 1 } }, { article: { run: 1 } }]);
    expect(calls('article:2')).toBe(1);
  });

  it('never shares between users there either', async () => {
    const alice = await graphql(apollo.url, '{ article(id: 3) { run } }', { authorization: 'Bearer alice' });
    const bob = await graphql(mercurius.url, '{ article(id: 3) { run } }', { authorization: 'Bearer bob' });
    expect([alice.data, bob.data]).toEqual([{ article: { run: 1 } }, { article: { run: 1 } }]);
    expect(calls('article:3')).toBe(2);
  });
});
