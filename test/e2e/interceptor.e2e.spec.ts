import { StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, Reply, RunningApp, keyOf, request, startApp } from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { ClassSettingsController, RoutesController } from '../apps/routes.controller';

const TTL = 60_000;

describe.each(PLATFORMS)('StampedeInterceptor on %s', (platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: TTL })],
      controllers: [RoutesController, ClassSettingsController],
      providers: [Origin],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    await stampede.invalidate({ prefix: '' });
  });
  afterEach(() => jest.useRealTimers());

  const get = (path: string, headers: Record<string, string> = {}) => request(`${running.url}${path}`, { headers });

  /** Sends `n` requests while `name` is held, waits until all of them wait on `key`, then opens. */
  async function burst(n: number, name: string, key: string, send: () => Promise<Reply>): Promise<Reply[]> {
    origin.hold(name);
    const replies = Array.from({ length: n }, send);
    await until(() => stampede.waiters(keyOf(running, key)) === n, `${n} waiters on ${key}`);
    origin.open(name);
    return Promise.all(replies);
  }

  it('runs the handler once for 50 concurrent requests, all answered with the same status and body', async () => {
    const replies = await burst(50, 'slow', 'GET /r/slow?a=1', () => get('/r/slow?a=1'));
    expect(origin.calls('slow')).toBe(1);
    expect(new Set(replies.map((r) => `${r.status} ${r.text}`))).toEqual(
      new Set([`200 ${JSON.stringify({ n: 1, query: { a: '1' } })}`]),
    );
    const statuses = replies.map((r) => r.headers['cache-status']);
    expect(statuses.filter((s) => s === 'nestjs-stampede; fwd=miss; stored')).toHaveLength(1);
    expect(statuses.filter((s) => s === 'nestjs-stampede; fwd=miss; collapsed')).toHaveLength(49);
    expect(stampede.inFlight()).toBe(0);
  });

  it('answers from the store within the ttl and runs the handler again after it', async () => {
    const first = await get('/r/slow');
    const second = await get('/r/slow');
    expect(origin.calls('slow')).toBe(1);
    expect(second.text).toBe(first.text);
    expect(second.headers['cache-status']).toBe(`nestjs-stampede; hit; ttl=${TTL / 1000}`);

    fakeDateOnly();
    jest.setSystemTime(Date.now() + TTL + 1);
    const third = await get('/r/slow');
    expect(origin.calls('slow')).toBe(2);
    expect(third.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
  });

  it('with ttl 0 coalesces concurrent requests but stores nothing', async () => {
    const replies = await burst(10, 'nottl', 'GET /r/nottl', () => get('/r/nottl'));
    expect(origin.calls('nottl')).toBe(1);
    expect(replies.every((r) => r.text === '{"n":1}')).toBe(true);
    expect(replies.filter((r) => r.headers['cache-status'] === 'nestjs-stampede; fwd=miss')).toHaveLength(1);
    const later = await get('/r/nottl');
    expect(later.text).toBe('{"n":2}');
  });

  it('shares a key between query strings that differ only in parameter order', async () => {
    await get('/r/slow?a=1&b=2');
    const reordered = await get('/r/slow?b=2&a=1');
    expect(reordered.headers['cache-status']).toMatch(/; hit;/);
    expect(origin.calls('slow')).toBe(1);
    const other = await get('/r/slow?a=1&b=3');
    expect(other.headers['cache-status']).toMatch(/fwd=miss/);
    expect(origin.calls('slow')).toBe(2);
  });

  it('splits keys by path, query and method', async () => {
    await get('/r/item/1');
    await get('/r/item/2');
    await get('/r/item/1?x=1');
    expect(origin.calls('item:1')).toBe(2);
    expect(origin.calls('item:2')).toBe(1);
    const head = await request(`${running.url}/r/item/2`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['cache-status']).toMatch(/fwd=miss/);
    expect(origin.calls('item:2')).toBe(2);
  });

  it('splits keys by the listed key headers, case-insensitively', async () => {
    const a1 = await get('/r/tenant', { 'x-tenant': 'a' });
    const a2 = await get('/r/tenant', { 'X-TENANT': 'a' });
    const b = await get('/r/tenant', { 'x-tenant': 'b' });
    expect(a2.text).toBe(a1.text);
    expect(JSON.parse(b.text)).toEqual({ tenant: 'b', n: 1 });
    expect(origin.calls('tenant:a')).toBe(1);
    expect(origin.calls('tenant:b')).toBe(1);
  });

  it('replays the status and the headers the handler set, but never CORS or rate-limit headers', async () => {
    const replies = await burst(5, 'replay', 'GET /r/replay', () => get('/r/replay'));
    const cached = await get('/r/replay');
    expect(origin.calls('replay')).toBe(1);
    const leader = replies.find((r) => r.headers['cache-status'] === 'nestjs-stampede; fwd=miss; stored')!;
    const others = [...replies.filter((r) => r !== leader), cached];
    expect(leader.headers['access-control-allow-origin']).toBe('https://leader.example');
    expect(leader.headers['x-ratelimit-remaining']).toBe('41');
    for (const reply of [leader, ...others]) {
      expect(reply.status).toBe(203);
      expect(reply.headers['x-custom']).toBe('run-1');
      expect(reply.headers['x-static']).toBe('from-decorator');
      expect(reply.text).toBe('{"n":1}');
    }
    for (const reply of others) {
      expect(reply.headers['access-control-allow-origin']).toBeUndefined();
      expect(reply.headers['x-ratelimit-remaining']).toBeUndefined();
      expect(reply.headers['ratelimit-policy']).toBeUndefined();
    }
    expect(cached.headers['cache-status']).toMatch(/; hit;/);
  });

  it('never shares a response that sets a cookie: each caller runs its own handler and gets its own cookie', async () => {
    origin.hold('cookie');
    const concurrent = Array.from({ length: 4 }, () => get('/r/cookie'));
    await until(() => origin.calls('cookie') >= 1, 'the first handler');
    origin.open('cookie');
    const replies = [...(await Promise.all(concurrent)), await get('/r/cookie'), await get('/r/cookie')];
    const runs = replies.map((reply) => (JSON.parse(reply.text) as { n: number }).n);
    // Every caller got the body of its own run, with that run's cookie, never another's.
    expect(new Set(runs).size).toBe(replies.length);
    replies.forEach((reply, i) => expect(reply.setCookie).toEqual([`session=run-${runs[i]}`]));
    expect(origin.calls('cookie')).toBe(replies.length);
  });

  it('shares an error with every waiter, does not store it, and runs again on the next request', async () => {
    const replies = await burst(10, 'fail', 'GET /r/fail', () => get('/r/fail'));
    expect(origin.calls('fail')).toBe(1);
    for (const reply of replies) {
      expect(reply.status).toBe(503);
      expect(JSON.parse(reply.text).message).toBe('origin down (run 1)');
    }
    const next = await get('/r/fail');
    expect(JSON.parse(next.text).message).toBe('origin down (run 2)');
  });

  it('shares a non-2xx response with its waiters but does not store it', async () => {
    const replies = await burst(4, 'created', 'GET /r/created', () => get('/r/created'));
    expect(replies.map((r) => r.status)).toEqual([500, 500, 500, 500]);
    expect(replies.filter((r) => r.headers['cache-status'] === 'nestjs-stampede; fwd=miss')).toHaveLength(1);
    await get('/r/created');
    expect(origin.calls('created')).toBe(2);
  });

  it('lets POST requests through untouched', async () => {
    origin.hold('post');
    const replies = Array.from({ length: 5 }, () => request(`${running.url}/r/slow`, { method: 'POST' }));
    await until(() => origin.calls('post') === 5, '5 POST executions');
    origin.open('post');
    const answered = await Promise.all(replies);
    expect(answered.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(answered.every((r) => r.headers['cache-status'] === undefined)).toBe(true);
  });

  it('lets @SkipCoalesce() routes through', async () => {
    await get('/r/skip');
    const second = await get('/r/skip');
    expect(origin.calls('skip')).toBe(2);
    expect(second.headers['cache-status']).toBeUndefined();
  });

  it('applies a controller-level @Coalesce, overridden by the route', async () => {
    await get('/class/inherits');
    await get('/class/inherits');
    expect(origin.calls('class:inherits')).toBe(2);
    await get('/class/overrides');
    const hit = await get('/class/overrides');
    expect(origin.calls('class:overrides')).toBe(1);
    expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
  });

  it('never answers a request carrying Authorization or Cookie with another caller’s response', async () => {
    await get('/r/slow');
    const authed = await get('/r/slow', { authorization: 'Bearer alice' });
    const cookied = await get('/r/slow', { cookie: 'sid=bob' });
    expect(origin.calls('slow')).toBe(3);
    for (const reply of [authed, cookied]) {
      expect(reply.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
      expect(JSON.parse(reply.text).n).toBeGreaterThan(1);
    }
    // ...and such a response is not stored for anyone else either.
    origin.reset();
    await stampede.invalidate({ prefix: '' });
    const personal = await get('/r/slow', { authorization: 'Bearer alice' });
    const anonymous = await get('/r/slow');
    expect(JSON.parse(personal.text).n).toBe(1);
    expect(JSON.parse(anonymous.text).n).toBe(2);
  });

  it('coalesces Authorization requests per credential when the header is a key header', async () => {
    const alice = await get('/r/authed', { authorization: 'Bearer alice' });
    const alice2 = await get('/r/authed', { authorization: 'Bearer alice' });
    const bob = await get('/r/authed', { authorization: 'Bearer bob' });
    expect(alice2.text).toBe(alice.text);
    expect(JSON.parse(bob.text).authorization).toBe('Bearer bob');
    expect(origin.calls('authed:Bearer alice')).toBe(1);
    expect(origin.calls('authed:Bearer bob')).toBe(1);
  });

  it('uses a custom key function, and lets a request through when it returns undefined', async () => {
    await get('/r/custom', { 'x-user': 'u1' });
    const again = await get('/r/custom', { 'x-user': 'u1', cookie: 'sid=1' });
    expect(again.headers['cache-status']).toMatch(/; hit;/);
    expect(origin.calls('custom:u1')).toBe(1);
    await get('/r/custom');
    await get('/r/custom');
    expect(origin.calls('custom:undefined')).toBe(2);
  });

  it('lets each caller run its own handler when the response is a stream', async () => {
    const replies = await burst(3, 'stream', 'GET /r/stream', () => get('/r/stream'));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(replies.map((r) => r.text).sort()).toEqual(['stream-1', 'stream-2', 'stream-3']);
    expect(stampede.inFlight()).toBe(0);
  });

  it('leaves routes that send through @Res() alone', async () => {
    const first = await get('/r/manual');
    const second = await get('/r/manual');
    expect([first.text, second.text]).toEqual(['manual-1', 'manual-2']);
    expect(second.headers['cache-status']).toBeUndefined();
  });
});
