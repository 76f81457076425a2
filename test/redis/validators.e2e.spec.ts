import { Controller, Get, UseInterceptors } from '@nestjs/common';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { bodyETag } from '../../lib/http/validators';
import { PLATFORMS, RunningApp, rawRequest, startApp, wireRequest } from '../apps/http-app';
import { Origin } from '../apps/origin';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

@Controller('v')
@UseInterceptors(StampedeInterceptor)
class ListController {
  constructor(private readonly origin: Origin) {}

  @Get('list')
  async list() {
    await this.origin.run('list');
    return { items: ['a', 'b', 'c'] };
  }
}

const HOST = 'api.example';

/** Two instances on one Redis: the validator is stored with the response, so either answers a 304 for it. */
describe.each(PLATFORMS)('validators with the redis option on %s', (platform) => {
  let server: RedisServer;
  let a: RunningApp;
  let b: RunningApp;

  beforeAll(async () => {
    server = await startRedisServer();
    const instance = () =>
      startApp(platform, {
        imports: [StampedeModule.forRoot({ ttl: 60_000, redis: { url: server.url } })],
        controllers: [ListController],
        providers: [Origin],
      });
    [a, b] = [await instance(), await instance()];
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await server.stop();
  });
  afterEach(() => jest.restoreAllMocks());

  it('answers with a 304 on the other instance, from the ETag computed once where the handler ran', async () => {
    const computed = jest.spyOn(bodyETag, 'of');
    // One public host for both instances, as behind a load balancer: one key.
    const first = await rawRequest(a.url, '/v/list', { headers: { host: HOST } });
    expect(first.headers['cache-status']).toMatch(/^nestjs-stampede; fwd=miss/);
    const etag = first.headers['etag'];
    expect(etag).toBe(bodyETag.of(first.text));
    computed.mockClear();

    const other = await wireRequest(b.url, '/v/list', { headers: { Host: HOST, 'If-None-Match': etag } });
    expect(other.status).toBe(304);
    expect(other.body.length).toBe(0);
    expect(other.headers['etag']).toBe(etag);
    expect(other.headers['cache-status']).toMatch(/; hit;/);
    const full = await rawRequest(b.url, '/v/list', { headers: { host: HOST } });
    expect(full.text).toBe(first.text);
    expect(full.headers['etag']).toBe(etag);
    expect(computed).not.toHaveBeenCalled();
    expect(a.app.get(Origin).calls('list') + b.app.get(Origin).calls('list')).toBe(1);
  });
});
