import { INestApplication, LoggerService } from '@nestjs/common';
import { StampedeService } from '../../lib';
import { StampedeEngine } from '../../lib/nest/stampede.engine';
import { createRedisApp } from './apps/redis-app';
import { until } from '../helpers/deferred';
import { RecordingLogger } from '../helpers/logger';
import { RawClient, RedisServer, startRedisWithClient, stopRedisWithClient } from '../helpers/redis-server';

/** The app's logger, recorded (errors among the warnings: none is expected). */
class RecordingNestLogger extends RecordingLogger implements LoggerService {
  error(message: string): void {
    this.warn(`error: ${message}`);
  }
}

/**
 * A Redis that stops answering with its connections open (the server paused,
 * SIGSTOP), behind `StampedeModule`: the tier's connection bounds every call
 * by `storeTimeout` and logs the outage; the engine does not bound or log it
 * a second time.
 */
describe('a Redis stall behind StampedeModule', () => {
  let server: RedisServer;
  let raw: RawClient;
  let app: INestApplication;
  let logger: RecordingNestLogger;

  beforeAll(async () => ({ server, raw } = await startRedisWithClient()));
  afterAll(() => stopRedisWithClient(server, raw));
  beforeEach(async () => {
    await raw.flushAll();
    logger = new RecordingNestLogger();
    app = await createRedisApp({}, { ttl: 60_000 }, { url: server.url }, ['log', 'warn', 'error']);
    app.useLogger(logger);
    await app.init();
  });
  afterEach(async () => {
    server.resume();
    await app.close();
  });

  it('invalidate() during a stall resolves, logs one outage, and its delete reaches Redis when it answers', async () => {
    const stampede = app.get(StampedeService);
    const tier = app.get(StampedeEngine).redis!;
    expect(await stampede.run('k', () => 'v1', { ttl: 60_000 })).toBe('v1');
    await until(async () => (await raw.keys('stampede:v:*')).length === 1, 'the value in Redis');
    server.pause();
    let outcome: { value: number } | { error: string };
    try {
      outcome = await stampede.invalidate('k').then(
        (value) => ({ value }),
        (error: Error) => ({ error: error.message }),
      );
    } finally {
      server.resume();
    }
    expect(outcome).toEqual({ value: 0 });
    await until(() => !tier.connection.isDown && tier.store.pendingReplays === 0, 'the delete replayed');
    expect(await raw.keys('stampede:v:*')).toEqual([]);
    // Answered from the origin, not from a copy kept in process.
    expect(await stampede.run('k', () => 'v2', { ttl: 60_000 })).toBe('v2');
    expect(logger.count(/Redis unreachable/)).toBe(1);
    expect(logger.count(/Redis answers again/)).toBe(1);
    expect(logger.count(/store \w+ failed|store answers again/)).toBe(0);
    expect(logger.count(/^warn: error:/)).toBe(0);
  });
});
