import { Controller, Get } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import { StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

/**
 * Keyv stores values as JSON, and JSON drops a field set to `undefined`: an
 * entry for a work (or a handler) that returned `undefined` used to come back
 * without its value and read as a miss, so the work ran again on every call.
 * It is a hit, as in the other stores: with Keyv's own Map and with a real
 * storage adapter (`@keyv/redis` on a real redis-server).
 */

let executions = 0;

@Controller('nothing')
class NothingController {
  @Get()
  nothing(): undefined {
    executions++;
    return undefined;
  }
}

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(() => server.stop());

const stores: [string, () => Keyv][] = [
  ['Keyv with its default Map', () => new Keyv()],
  ['Keyv over @keyv/redis', () => new Keyv({ store: new KeyvRedis(server.url), namespace: `t${Math.random()}` })],
];

describe.each(stores)('%s: a stored undefined is a hit', (_label, makeStore) => {
  let keyv: Keyv;
  beforeEach(() => {
    executions = 0;
    keyv = makeStore();
  });
  afterEach(() => keyv.disconnect());

  it('run(): a work that returned undefined runs once; the next calls are hits', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRoot({ ttl: 60_000, store: keyv })],
    }).compile();
    await moduleRef.init();
    const stampede = moduleRef.get(StampedeService);
    let runs = 0;
    const work = (): undefined => {
      runs++;
      return undefined;
    };
    try {
      expect(await stampede.run('nothing', work)).toBeUndefined();
      expect(await stampede.run('nothing', work)).toBeUndefined();
      expect(await stampede.run('nothing', work)).toBeUndefined();
      expect(runs).toBe(1);
      expect(stampede.stats()).toMatchObject({ hits: 2, misses: 1 });
    } finally {
      await moduleRef.close();
    }
  });

  it.each(PLATFORMS)(
    'over HTTP (%s): a handler returning undefined runs once; the second caller gets a hit',
    async (platform) => {
      const running = await startApp(platform, {
        imports: [StampedeModule.forRoot({ ttl: 60_000, store: keyv })],
        controllers: [NothingController],
        providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
      });
      try {
        const first = await request(`${running.url}/nothing`);
        const second = await request(`${running.url}/nothing`);
        expect(first.status).toBe(200);
        expect(second.status).toBe(200);
        expect(second.text).toBe(first.text);
        expect(second.headers['cache-status']).toMatch(/; hit;/);
        expect(executions).toBe(1);
      } finally {
        await running.close();
      }
    },
  );
});
