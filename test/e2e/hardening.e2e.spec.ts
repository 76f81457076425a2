import { Controller, Get, Query, UseInterceptors } from '@nestjs/common';
import {
  Coalesce,
  StampedeEvent,
  StampedeInterceptor,
  StampedeMemoryStore,
  StampedeModule,
  StampedeService,
  StampedeTimeoutError,
} from '../../lib';
import { PLATFORMS, RunningApp, keyOf, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

@Controller('h')
@UseInterceptors(StampedeInterceptor)
class HardeningController {
  constructor(private readonly origin: Origin) {}

  @Get('slow')
  @Coalesce({ timeout: 100 })
  async slow() {
    return { n: await this.origin.run('slow') };
  }

  @Get('wait')
  @Coalesce({ waitTimeout: 100 })
  async wait() {
    return { n: await this.origin.run('wait') };
  }

  @Get('wait-fail')
  @Coalesce({ waitTimeout: 100, onWaitTimeout: 'fail' })
  async waitFail() {
    return { n: await this.origin.run('wait-fail') };
  }

  @Get('big')
  @Coalesce({ maxBodyBytes: 1_000 })
  async big(@Query('size') size: string) {
    return { n: await this.origin.run('big'), data: 'x'.repeat(Number(size)) };
  }

  @Get('any')
  async any(@Query('q') q: string) {
    return { q, n: await this.origin.run('any') };
  }
}

describe.each(PLATFORMS)('hardening on %s', (platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;
  const store = new StampedeMemoryStore(100);
  const events: StampedeEvent[] = [];

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, store })],
      controllers: [HardeningController],
      providers: [Origin],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
    stampede.on((event) => events.push(event));
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    events.length = 0;
    await stampede.invalidate({ prefix: '' });
  });

  const get = (path: string, init: RequestInit = {}) => request(`${running.url}${path}`, init);

  it('answers every waiter 504 when the handler outlives `timeout`, stores nothing, and runs again next time', async () => {
    origin.hold('slow');
    const replies = await Promise.all(Array.from({ length: 5 }, () => get('/h/slow')));
    expect(replies.map((r) => r.status)).toEqual([504, 504, 504, 504, 504]);
    expect(origin.calls('slow')).toBe(1);
    expect(events.filter((e) => e.type === 'timeout')).toHaveLength(1);
    origin.open('slow');
    const next = await get('/h/slow');
    expect(next.status).toBe(200);
    expect(origin.calls('slow')).toBe(2);
    expect(stampede.inFlight()).toBe(0);
  });

  it('lets a caller that waited `waitTimeout` run its own, uncached call', async () => {
    origin.hold('wait');
    const leader = get('/h/wait');
    await until(() => origin.calls('wait') === 1, 'the leader in its handler');
    const follower = get('/h/wait');
    // The follower gives up waiting and runs the handler itself (which waits at the same gate).
    await until(() => origin.calls('wait') === 2, 'the follower in its own handler');
    origin.open('wait');
    const [first, second] = [await leader, await follower];
    expect(first.status).toBe(200);
    expect(second.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
    expect(events.find((e) => e.type === 'bypass')?.reason).toBe('wait-timeout');
  });

  it('answers 504 to a caller that waited `waitTimeout` with onWaitTimeout: fail', async () => {
    origin.hold('wait-fail');
    const leader = get('/h/wait-fail');
    await until(() => stampede.waiters(keyOf(running, 'GET /h/wait-fail')) === 1, 'the leader');
    const follower = await get('/h/wait-fail');
    expect(follower.status).toBe(504);
    origin.open('wait-fail');
    expect((await leader).status).toBe(200);
    expect(origin.calls('wait-fail')).toBe(1);
  });

  it('shares a body over maxBodyBytes with its waiters but does not store it', async () => {
    await get('/h/big?size=10');
    const small = await get('/h/big?size=10');
    expect(small.headers['cache-status']).toMatch(/; hit;/);
    origin.hold('big');
    const replies = Array.from({ length: 3 }, () => get('/h/big?size=5000'));
    await until(() => stampede.waiters(keyOf(running, 'GET /h/big?size=5000')) === 3, '3 waiters');
    origin.open('big');
    const answered = await Promise.all(replies);
    expect(new Set(answered.map((r) => r.text)).size).toBe(1);
    expect(answered.filter((r) => r.headers['cache-status'] === 'nestjs-stampede; fwd=miss')).toHaveLength(1);
    const again = await get('/h/big?size=5000');
    expect(again.headers['cache-status']).toBe('nestjs-stampede; fwd=miss');
    expect(origin.calls('big')).toBe(3);
  });

  it('keeps the shared work going when one client disconnects', async () => {
    origin.hold('any');
    const leaving = new AbortController();
    const gone = get('/h/any?q=1', { signal: leaving.signal }).catch((e: Error) => e.name);
    const staying = Array.from({ length: 3 }, () => get('/h/any?q=1'));
    await until(() => stampede.waiters(keyOf(running, 'GET /h/any?q=1')) === 4, '4 waiters');
    leaving.abort();
    expect(await gone).toBe('AbortError');
    origin.open('any');
    const answered = await Promise.all(staying);
    expect(answered.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(origin.calls('any')).toBe(1);
    expect((await get('/h/any?q=1')).headers['cache-status']).toMatch(/; hit;/);
  });

  it('keeps the store within its bound under random query strings', async () => {
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => get(`/h/any?q=${batch}-${i}-${Math.random()}`)));
    }
    expect(origin.calls('any')).toBe(500);
    expect(store.size).toBeLessThanOrEqual(100);
  });

  it('reports hits, misses and coalesced callers in stats() and events', async () => {
    const before = stampede.stats();
    origin.hold('any');
    const replies = Array.from({ length: 4 }, () => get('/h/any?q=stats'));
    await until(() => stampede.waiters(keyOf(running, 'GET /h/any?q=stats')) === 4, '4 waiters');
    expect(stampede.stats()).toMatchObject({ inFlight: 1, waiting: 4 });
    origin.open('any');
    await Promise.all(replies);
    await get('/h/any?q=stats');
    const after = stampede.stats();
    expect(after.misses - before.misses).toBe(1);
    expect(after.coalesced - before.coalesced).toBe(3);
    expect(after.hits - before.hits).toBe(1);
    expect(after.stored - before.stored).toBe(1);
    expect(after.inFlight).toBe(0);
    const coalesced = events.filter((e) => e.type === 'coalesced').map((e) => e.waiters);
    expect(coalesced).toEqual([2, 3, 4]);
    expect(events.filter((e) => e.type === 'bypass')).toEqual([]);
  });

  it('reports a bypass for a request with credentials', async () => {
    await get('/h/any?q=cred', { headers: { authorization: 'Bearer x' } });
    expect(events).toEqual([{ type: 'bypass', key: 'GET /h/any?q=cred', reason: 'credentials' }]);
  });
});

describe('StampedeService hardening', () => {
  let running: RunningApp;
  let stampede: StampedeService;
  beforeAll(async () => {
    running = await startApp('express', { imports: [StampedeModule.forRoot({ maxInFlight: 2, maxWaiters: 3 })] });
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());

  it('rejects every waiter with StampedeTimeoutError and aborts the work’s signal on `timeout`', async () => {
    let signal: AbortSignal | undefined;
    const work = (s: AbortSignal) => ((signal = s), new Promise<never>(() => undefined));
    const callers = [stampede.run('t', work, { timeout: 20 }), stampede.run('t', work, { timeout: 20 })];
    for (const caller of callers) await expect(caller).rejects.toBeInstanceOf(StampedeTimeoutError);
    expect(signal?.aborted).toBe(true);
    expect(stampede.inFlight()).toBe(0);
  });

  it('runs a caller beyond maxWaiters on its own instead of queueing it', async () => {
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const work = async () => {
      runs++;
      await gate;
      return runs;
    };
    const callers = Array.from({ length: 5 }, () => stampede.run('w', work, { ttl: 0 }));
    expect(runs).toBe(3); // 1 leader + 2 followers = 3 waiters; the 4th and 5th run alone
    release();
    await Promise.all(callers);
  });

  it('runs a new key uncoalesced when maxInFlight keys are already in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = [stampede.run('a', () => gate, { ttl: 0 }), stampede.run('b', () => gate, { ttl: 0 })];
    let runs = 0;
    const extra = [1, 2].map(() => stampede.run('c', () => ++runs, { ttl: 0 }));
    expect(await Promise.all(extra)).toEqual([1, 2]);
    expect(stampede.inFlight()).toBe(2);
    release();
    await Promise.all(held);
  });

  it('rejects invalid per-call options with the option name', () => {
    expect(() => stampede.run$('k', () => 1, { timeout: -1 })).toThrow(/option "timeout"/);
    expect(() => stampede.run$('k', () => 1, { onWaitTimeout: 'maybe' as never })).toThrow(/option "onWaitTimeout"/);
  });
});
