import { INestApplication } from '@nestjs/common';
import { createClient } from 'redis';
import { StampedeService } from '../../lib';
import { createRedisApp } from './apps/redis-app';
import { RedisServer, startRedisServer } from '../helpers/redis-server';

/** Calls of each command the server has run, from INFO commandstats. */
async function commandCalls(url: string): Promise<Record<string, number>> {
  const client = createClient({ url });
  await client.connect();
  const info = await client.sendCommand<string>(['INFO', 'commandstats']);
  await client.close();
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls[match[1]] = Number(match[2]);
  return calls;
}

describe('runMany with the redis option', () => {
  let server: RedisServer;
  let app: INestApplication;

  beforeAll(async () => {
    server = await startRedisServer();
    app = await createRedisApp({}, { ttl: 60_000 }, { url: server.url });
    await app.init();
  });
  afterAll(async () => {
    await app?.close();
    await server?.stop();
  });

  it('reads 50 keys from Redis in one round trip, and each key is stored on its own', async () => {
    const stampede = app.get(StampedeService);
    const keys = Array.from({ length: 50 }, (_, i) => `user:${i}`);
    let fetches = 0;
    const fetch = async (missing: string[]) => ((fetches += missing.length), missing.map((key) => `row ${key}`));
    expect(await stampede.runMany(keys, fetch)).toEqual(keys.map((key) => `row ${key}`));
    expect(fetches).toBe(50);

    const before = await commandCalls(server.url);
    expect(await stampede.runMany(keys, fetch)).toEqual(keys.map((key) => `row ${key}`));
    const after = await commandCalls(server.url);
    const ran = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
    // One script call read every key (the GETs it counts ran inside it, on the server).
    expect(ran('evalsha')).toBe(1);
    expect(ran('eval')).toBe(0);
    expect(ran('get')).toBe(50);
    expect(fetches).toBe(50);
    expect(await stampede.run('user:7', () => 'recomputed')).toBe('row user:7');
  });
});
