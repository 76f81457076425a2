import { StampedeService } from '../../lib';
import { RunningApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { DRIVERS, GraphqlReply, graphql, startGraphqlApp } from './graphql-app';

describe.each(DRIVERS)('GraphQL resolvers on $name', (driver) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startGraphqlApp(driver);
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running?.close());
  beforeEach(() => origin.reset());

  const query = (text: string, headers?: Record<string, string>) => graphql(running.url, text, headers);

  /** Sends `sends` while `name` is held, waits until `ready()`, then opens. */
  async function burst(
    names: string | string[],
    sends: (() => Promise<GraphqlReply>)[],
    ready: () => boolean,
    what: string,
  ) {
    const held = typeof names === 'string' ? [names] : names;
    for (const name of held) origin.hold(name);
    const replies = Promise.all(sends.map((send) => send()));
    try {
      await until(ready, what);
    } finally {
      for (const name of held) origin.open(name);
    }
    return replies;
  }
  const times = (n: number, send: () => Promise<GraphqlReply>) => Array.from({ length: n }, () => send);

  it('runs a query resolver once for 50 concurrent identical queries, all answered with its result', async () => {
    const events: string[] = [];
    const stop = stampede.on((event) => events.push(event.type));
    const replies = await burst(
      'article:1',
      times(50, () => query('{ article(id: 1) { id title run } }')),
      () => stampede.stats().waiting === 50,
      '50 callers on one flight',
    );
    stop();
    expect(origin.calls('article:1')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ data: { article: { id: 1, title: 'title 1', run: 1 } } })]),
    );
    expect(stampede.inFlight()).toBe(0);
    // Events (and so metrics) as for routes: one miss, 49 joins.
    expect([events.filter((t) => t === 'miss').length, events.filter((t) => t === 'coalesced').length]).toEqual([
      1, 49,
    ]);
  });

  it('never shares between different arguments, given inline or as variables', async () => {
    const replies = await burst(
      ['article:2', 'article:3'],
      [
        ...times(25, () => query('{ article(id: 2) { id run } }')),
        ...times(25, () => graphql(running.url, 'query($id: Int!) { article(id: $id) { id run } }', {}, { id: 3 })),
      ],
      () => stampede.stats().waiting === 50,
      'both flights',
    );
    expect(replies.slice(0, 25).every((r) => JSON.stringify(r.data) === '{"article":{"id":2,"run":1}}')).toBe(true);
    expect(replies.slice(25).every((r) => JSON.stringify(r.data) === '{"article":{"id":3,"run":1}}')).toBe(true);
  });

  it.each([
    ['Authorization', (user: string) => ({ authorization: `Bearer ${user}` })],
    ['Cookie', (user: string) => ({ cookie: `session=${user}` })],
    ['Proxy-Authorization', (user: string) => ({ 'proxy-authorization': `Basic ${user}` })],
    ['X-Api-Key', (user: string) => ({ 'x-api-key': user })],
    ['a request.user set by a guard', (user: string) => ({ 'x-user': user })],
    ['a request.user set by a middleware', (user: string) => ({ 'x-middleware-user': user })],
  ])('runs each request with %s alone: different users never share', async (_what, credentials) => {
    const before = stampede.stats().bypasses;
    const replies = await burst(
      'article:4',
      [
        ...times(10, () => query('{ article(id: 4) { run } }', credentials('alice'))),
        ...times(10, () => query('{ article(id: 4) { run } }', credentials('bob'))),
      ],
      () => origin.calls('article:4') === 20,
      '20 own runs',
    );
    expect(new Set(replies.map((r) => (r.data as { article: { run: number } }).article.run)).size).toBe(20);
    expect(stampede.stats().bypasses - before).toBe(20);
  });

  it("coalesces per user when @Coalesce keys by the Authorization header, and one user never gets another's result", async () => {
    const replies = await burst(
      'profile',
      [
        ...times(10, () => query('{ profile }', { authorization: 'Bearer alice' })),
        ...times(10, () => query('{ profile }', { authorization: 'Bearer bob' })),
      ],
      () => origin.calls('profile') === 2 && stampede.stats().waiting === 20,
      'two flights of 10',
    );
    const alice = new Set(replies.slice(0, 10).map((r) => r.data!.profile));
    const bob = new Set(replies.slice(10).map((r) => r.data!.profile));
    expect(alice.size).toBe(1);
    expect(bob.size).toBe(1);
    expect([...alice, ...bob].sort()).toEqual(['profile run 1', 'profile run 2']);
  });

  it.each([
    ['takes @Info()', 'selected'],
    ['is request-scoped', 'scoped'],
    ['has @SkipCoalesce()', 'skipped'],
  ])('runs a resolver that %s alone for each query', async (_what, field) => {
    const replies = await burst(
      field,
      times(10, () => query(`{ ${field} }`)),
      () => origin.calls(field) === 10,
      '10 runs',
    );
    expect(new Set(replies.map((r) => r.data![field])).size).toBe(10);
  });

  it('never coalesces mutations: 10 identical concurrent mutations run 10 times', async () => {
    const replies = await burst(
      'publish:1',
      times(10, () => query('mutation { publish(id: 1) }')),
      () => origin.calls('publish:1') === 10,
      '10 mutation runs',
    );
    expect(replies.map((r) => r.data!.publish).sort((a, b) => Number(a) - Number(b))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
  });

  it('shares an error with the callers of that flight only; the next query runs again', async () => {
    const replies = await burst(
      'failing:1',
      times(20, () => query('{ failing(id: 1) }')),
      () => stampede.stats().waiting === 20,
      '20 callers on one flight',
    );
    expect(origin.calls('failing:1')).toBe(1);
    expect(new Set(replies.map((r) => r.errors?.[0]?.message))).toEqual(new Set(['failed run 1']));
    const next = await query('{ failing(id: 1) }');
    expect(next.errors?.[0]?.message).toBe('failed run 2');
  });

  it('coalesces a @Coalesce field resolver per parent; one without @Coalesce runs per parent object', async () => {
    origin.hold('article:5');
    origin.hold('views:5');
    const replies = times(50, () => query('{ article(id: 5) { id views likes } }')).map((send) => send());
    await until(() => stampede.stats().waiting === 50, '50 callers on the article');
    origin.open('article:5');
    await until(() => origin.calls('views:5') === 1 && stampede.stats().waiting === 50, '50 callers on views');
    origin.open('views:5');
    const settled = await Promise.all(replies);
    expect(origin.calls('article:5')).toBe(1);
    expect(origin.calls('views:5')).toBe(1);
    expect(origin.calls('likes:5')).toBe(50);
    const articles = settled.map((r) => r.data!.article as { id: number; views: number; likes: number });
    expect(articles.every((a) => a.id === 5 && a.views === 1)).toBe(true);
    expect(new Set(articles.map((a) => a.likes)).size).toBe(50);
  });
});
