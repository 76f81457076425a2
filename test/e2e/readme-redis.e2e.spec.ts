import { Module } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { StampedeModule, StampedeService } from '../../lib';
import { README, readmeSnippet } from '../helpers/readme';
import { RawClient, RedisServer, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';

let server: RedisServer;
let raw: RawClient;

beforeAll(async () => {
  ({ server, raw } = await startRedisWithClient());
  process.env.REDIS_URL = server.url; // before the module below is evaluated: its options read it then
});
afterAll(async () => {
  delete process.env.REDIS_URL;
  await stopRedisWithClient(server, raw);
});

/** The README's module, declared once REDIS_URL is set, as an app's module is declared after its environment. */
function declareAppModule() {
  // README:redis
  @Module({
    // or an existing node-redis v5 client: redis: { client }
    imports: [StampedeModule.forRoot({ ttl: '30s', redis: { url: process.env.REDIS_URL } })],
  })
  class AppModule {}
  // README:end
  return AppModule;
}

it('the README Redis snippet is the code of this file, word for word (but its export)', () => {
  const snippet = readmeSnippet(readFileSync(__filename, 'utf8'), 'redis');
  expect(README).toContain(snippet.replace('class AppModule {}', 'export class AppModule {}'));
});

it('two instances of the README module on one Redis make one origin call, and the value sits in Redis for 30 s', async () => {
  const instances: TestingModule[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const moduleRef = await Test.createTestingModule({ imports: [declareAppModule()] }).compile();
      await moduleRef.init();
      instances.push(moduleRef);
    }
    const [a, b] = instances.map((moduleRef) => moduleRef.get(StampedeService));
    let calls = 0;
    const origin = async () => ({ call: ++calls });
    expect(await a.run('rates', origin)).toEqual({ call: 1 });
    expect(await b.run('rates', origin)).toEqual({ call: 1 });
    expect(calls).toBe(1);
    const keys = await raw.keys('stampede:*');
    expect(keys.length).toBeGreaterThan(0);
    const pttl = Math.max(...(await Promise.all(keys.map((key) => raw.pTTL(key)))));
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000 + 60_000); // ttl, plus whatever stale windows the tier keeps
  } finally {
    for (const moduleRef of instances) await moduleRef.close();
  }
});
