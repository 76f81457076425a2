import { Controller, Get, INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { AddressInfo } from 'node:net';
import { StampedeHealthIndicator, StampedeModule } from '../../lib';
import { createRedisApp } from './apps/redis-app';
import { until } from '../helpers/deferred';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

// README:health
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly stampede: StampedeHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.stampede.isHealthy('cache')]);
  }
}
// README:end

async function health(app: INestApplication) {
  const { port } = app.getHttpServer().address() as AddressInfo;
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: response.status, body: (await response.json()) as { info?: unknown; error?: unknown } };
}

describe('StampedeHealthIndicator with @nestjs/terminus', () => {
  let server: RedisServer;
  let app: INestApplication;

  beforeAll(async () => {
    server = await startRedisServer();
    app = await createRedisApp(
      { imports: [TerminusModule.forRoot({ logger: false })], controllers: [HealthController] },
      { ttl: 1_000 },
      { url: server.url },
    );
    await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await server?.stop();
  });

  it('is up with the Redis round trip, down naming Redis while it is stopped, and up again after', async () => {
    const up = await health(app);
    expect(up.status).toBe(200);
    expect(up.body.info).toMatchObject({ cache: { status: 'up', redisRoundTripMs: expect.any(Number) } });

    await server.stop();
    const down = await health(app);
    expect(down.status).toBe(503);
    expect(down.body.error).toEqual({ cache: { status: 'down', reason: 'Redis unreachable' } });

    await server.restart();
    let again = await health(app);
    await until(async () => (again = await health(app)).status === 200, 'health up again');
    expect(again.body.info).toMatchObject({ cache: { status: 'up' } });
  });

  it('is shown in the README as tested here', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const source = readFileSync(__filename, 'utf8');
    expect(readme).toContain(source.split('// README:health\n')[1].split('// README:end')[0].trim());
  });

  it('is up for the in-process store, with no Redis', async () => {
    const { Test } = await import('@nestjs/testing');
    const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    expect(await moduleRef.get(StampedeHealthIndicator).isHealthy()).toEqual({ stampede: { status: 'up' } });
    await moduleRef.close();
  });
});
