import { CACHE_MANAGER, CacheModule } from '@nestjs/cache-manager';
import { Controller, Get, Headers, Logger, UseInterceptors } from '@nestjs/common';
import type { Cache } from 'cache-manager';
import { Keyv } from 'keyv';
import { Coalesce, StampedeInterceptor, StampedeMemoryStore, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, RunningApp, keyOf, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

@Controller('s')
@UseInterceptors(StampedeInterceptor)
class StoreController {
  constructor(private readonly origin: Origin) {}

  @Get('value')
  async value() {
    return { n: await this.origin.run('value') };
  }

  @Get('token')
  @Coalesce({ keyHeaders: ['authorization'] })
  async token(@Headers('authorization') authorization: string) {
    return { n: await this.origin.run(`token:${authorization}`) };
  }
}

/** A Keyv storage adapter whose every call fails, as a store would while its server is down. */
class BrokenStore extends Map<string, unknown> {
  calls = 0;
  override get(): never {
    this.calls++;
    throw new Error('ECONNREFUSED');
  }
  override set(): never {
    this.calls++;
    throw new Error('ECONNREFUSED');
  }
  override delete(): never {
    this.calls++;
    throw new Error('ECONNREFUSED');
  }
}

describe.each(PLATFORMS)('stores on %s', (platform) => {
  let running: RunningApp | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
    jest.restoreAllMocks();
  });

  it('stores through the cache-manager Cache given to @nestjs/cache-manager', async () => {
    running = await startApp(platform, {
      imports: [
        CacheModule.register({ isGlobal: true }),
        StampedeModule.forRootAsync({
          inject: [CACHE_MANAGER],
          useFactory: (cache: Cache) => ({ store: cache, ttl: 30_000 }),
        }),
      ],
      controllers: [StoreController],
      providers: [Origin],
    });
    const origin = running.app.get(Origin);
    const first = await request(`${running.url}/s/value`);
    const second = await request(`${running.url}/s/value`);
    expect(second.text).toBe(first.text);
    expect(second.headers['cache-status']).toMatch(/; hit; ttl=30$/);
    expect(origin.calls('value')).toBe(1);
    const cache = running.app.get<Cache>(CACHE_MANAGER);
    expect(await cache.get(keyOf(running, 'GET /s/value'))).toMatchObject({ v: { status: 200, body: { n: 1 } } });
  });

  it('never writes a key header value into a store key, only its hash', async () => {
    const map = new Map<string, unknown>();
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ store: new Keyv({ store: map }) })],
      controllers: [StoreController],
      providers: [Origin],
    });
    const secret = 'Bearer s3cr3t-t0ken';
    await request(`${running.url}/s/token`, { headers: { authorization: secret } });
    const again = await request(`${running.url}/s/token`, { headers: { authorization: secret } });
    expect(again.headers['cache-status']).toMatch(/; hit;/);
    const keys = [...map.keys()];
    expect(keys).toHaveLength(1);
    expect(keys[0]).toContain(`${keyOf(running, 'GET /s/token')}|h:authorization:`);
    expect(keys[0]).not.toContain('s3cr3t');
  });

  it('serves every request, coalesced, when the store throws on every call, and logs once', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const broken = new BrokenStore();
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ store: broken })],
      controllers: [StoreController],
      providers: [Origin],
    });
    const origin = running.app.get(Origin);
    const stampede = running.app.get(StampedeService);
    origin.hold('value');
    const replies = Array.from({ length: 20 }, () => request(`${running!.url}/s/value`));
    await until(() => stampede.waiters(keyOf(running!, 'GET /s/value')) === 20, '20 waiters');
    origin.open('value');
    const answered = await Promise.all(replies);
    expect(answered.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(answered.map((r) => r.text))).toEqual(new Set(['{"n":1}']));
    expect(origin.calls('value')).toBe(1);

    const next = await request(`${running.url}/s/value`);
    expect(next.status).toBe(200);
    expect(next.text).toBe('{"n":2}');
    // at least: a lookup and a write for the burst, a lookup for the next request
    expect(broken.calls).toBeGreaterThanOrEqual(3);
    const storeWarnings = warn.mock.calls.filter(([message]) => String(message).includes('ECONNREFUSED'));
    expect(storeWarnings).toHaveLength(1);
  });

  it('never serves a stored entry whose value is not a response snapshot', async () => {
    const store = new StampedeMemoryStore(10);
    const future = Date.now() + 60_000;
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ store })],
      controllers: [StoreController],
      providers: [Origin],
    });
    store.set(
      keyOf(running, 'GET /s/value'),
      { v: { shareable: true, status: 200, headers: 'oops', body: 'corrupt' }, e: future },
      60_000,
    );
    store.set(keyOf(running, 'GET /s/value?b='), { v: null, e: future }, 60_000);
    const first = await request(`${running.url}/s/value`);
    const second = await request(`${running.url}/s/value?b`);
    expect([first.status, first.text]).toEqual([200, '{"n":1}']);
    expect([second.status, second.text]).toEqual([200, '{"n":2}']);
    expect(first.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
  });
});
