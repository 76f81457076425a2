import { ClassSerializerInterceptor, Controller, Get, Header, Headers, Logger, UseInterceptors } from '@nestjs/common';
import { Exclude } from 'class-transformer';
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, Reply, RunningApp, rawRequest, startApp } from '../apps/http-app';
import { Origin } from '../apps/origin';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

/**
 * The HTTP safety rules with the `redis` option: two instances on one Redis,
 * reached by one public host (as behind a load balancer). What one instance
 * must not share stays out of Redis, so the other never answers with it.
 */
class AccountEntity {
  id!: string;
  @Exclude()
  password!: string;

  constructor(fields: AccountEntity) {
    Object.assign(this, fields);
  }
}

@Controller('x')
@UseInterceptors(ClassSerializerInterceptor, StampedeInterceptor)
class SafetyController {
  constructor(private readonly origin: Origin) {}

  @Get('account')
  async account() {
    return new AccountEntity({ id: `run-${await this.origin.run('account')}`, password: 'hunter2' });
  }

  @Get('private')
  @Header('Cache-Control', 'private')
  async private() {
    await this.origin.run('private');
    return { execution: randomUUID() };
  }

  @Get('lang')
  @Header('Vary', 'Accept-Language')
  async lang(@Headers('accept-language') language?: string) {
    return { language: language ?? null, n: await this.origin.run('lang') };
  }

  @Get('api-key')
  async apiKey(@Headers('x-api-key') key?: string) {
    return { key: key ?? null, n: await this.origin.run('api-key') };
  }
}

const HOST = 'api.example';
const body = (reply: Reply) => JSON.parse(reply.text) as Record<string, unknown>;

describe.each(PLATFORMS)('HTTP safety with the redis option on %s', (platform) => {
  let server: RedisServer;
  let a: RunningApp;
  let b: RunningApp;
  let raw: ReturnType<typeof createClient>;

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    server = await startRedisServer();
    const instance = () =>
      startApp(platform, {
        imports: [StampedeModule.forRoot({ ttl: 60_000, redis: { url: server.url } })],
        controllers: [SafetyController],
        providers: [Origin],
      });
    [a, b] = [await instance(), await instance()];
    raw = createClient({ url: server.url });
    await raw.connect();
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await raw.quit();
    await server.stop();
    jest.restoreAllMocks();
  });

  const get = (on: RunningApp, path: string, headers: Record<string, string> = {}) =>
    rawRequest(on.url, path, { headers: { host: HOST, ...headers } });

  /** Everything Redis holds, keys and values, as text. */
  async function redisContents(): Promise<string> {
    const keys = await raw.keys('*');
    const values = await Promise.all(keys.map((key) => raw.get(key).catch(() => '')));
    return JSON.stringify([keys, values]);
  }

  it('shares a plain response across instances (the premise of the checks below)', async () => {
    const first = await get(a, '/x/lang', { 'accept-language': 'en' });
    const second = await get(b, '/x/lang', { 'accept-language': 'en' });
    expect(second.text).toBe(first.text);
    expect(second.headers['cache-status']).toMatch(/; hit;|collapsed/);
  });

  it('never puts a field the serializer excludes in Redis, nor in any response of either instance', async () => {
    const replies = [await get(a, '/x/account'), await get(b, '/x/account'), await get(a, '/x/account')];
    for (const reply of replies) expect(Object.keys(body(reply))).toEqual(['id']);
    expect(await redisContents()).not.toContain('hunter2');
  });

  it('never answers one instance’s caller with another’s private response', async () => {
    const first = await get(a, '/x/private');
    const second = await get(b, '/x/private');
    expect(body(second).execution).not.toBe(body(first).execution);
  });

  it('honours Vary across instances: a French caller on the other instance gets French', async () => {
    await get(a, '/x/lang', { 'accept-language': 'de' });
    expect(body(await get(b, '/x/lang', { 'accept-language': 'fr' }))).toMatchObject({ language: 'fr' });
  });

  it('runs API-key requests alone on every instance', async () => {
    const alice = await get(a, '/x/api-key', { 'x-api-key': 'alice' });
    const bob = await get(b, '/x/api-key', { 'x-api-key': 'bob' });
    expect([body(alice).key, body(bob).key]).toEqual(['alice', 'bob']);
    expect(await redisContents()).not.toContain('/x/api-key');
  });
});
