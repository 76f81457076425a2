import 'reflect-metadata';
import { Controller, Get, Module, Query, Req, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { StampedeInterceptor, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';
import { serveParent } from '../shared/child';

/**
 * One app instance for the redis-cold and freshness scenarios, run as a child
 * process: `node fleet-app.js '<FleetConfig as JSON>'` (Express). Its
 * `StampedeModule` options come from the parent, so the same app runs in
 * process only, on Redis, with `staleTtl` or with `earlyRefresh`.
 */

export interface FleetConfig {
  /** Given to `StampedeModule.forRoot()` as is (ttl, staleTtl, earlyRefresh, redis…). */
  stampede: StampedeModuleOptions;
  /** Milliseconds `/item` takes. */
  originMs: number;
}

/** Origin calls of one key of `/item`, and the most that ran at once. */
export interface KeyCalls {
  calls: number;
  maxConcurrent: number;
}

/** Idle keep-alive sockets are kept this long, so load reuses warm connections. */
const KEEP_ALIVE_MS = 10 * 60_000;

const HOT_BODY = Object.freeze({
  id: 42,
  name: 'constant',
  tags: ['a', 'b', 'c'],
  price: { amount: 1999, currency: 'EUR' },
  updatedAt: '2025-01-01T00:00:00.000Z',
});

const perKey = new Map<string, { calls: number; running: number; maxConcurrent: number }>();
let hotCalls = 0;
let originMs = 100;

@Controller()
@UseInterceptors(StampedeInterceptor)
class FleetController {
  /**
   * The slow origin. Answers with the caller's `x-req` id: a caller that
   * reads back its own id ran the handler, any other got a shared result.
   */
  @Get('item')
  async item(@Query('k') key: string, @Req() request: { headers: Record<string, string | undefined> }) {
    // Read from the request, not by `@Headers('x-req')`, which would key by it: the id only traces who ran.
    const caller = request.headers['x-req'];
    let stats = perKey.get(key);
    if (!stats) perKey.set(key, (stats = { calls: 0, running: 0, maxConcurrent: 0 }));
    stats.calls++;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, ++stats.running);
    try {
      await sleep(originMs);
    } finally {
      stats.running--;
    }
    return { by: caller, key };
  }

  /** Constant body: the hit-path measurement. */
  @Get('hot')
  hot() {
    hotCalls++;
    return HOT_BODY;
  }
}

/** The host clients reach the fleet by. */
const PUBLIC_HOST = 'api.example';

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as FleetConfig;
  originMs = config.originMs;

  @Module({ imports: [StampedeModule.forRoot(config.stampede)], controllers: [FleetController] })
  class FleetModule {}

  const app = await NestFactory.create(FleetModule, { logger: ['error', 'warn'] });
  // Behind one load balancer every instance sees the public host (the host is part of a response's key).
  app.use((request: { headers: Record<string, string> }, _response: unknown, next: () => void) => {
    request.headers.host = PUBLIC_HOST;
    next();
  });
  await app.init();
  const server = app.getHttpServer() as Server;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  serveParent(
    {
      keyCalls: (key: string): KeyCalls => {
        const stats = perKey.get(key);
        return { calls: stats?.calls ?? 0, maxConcurrent: stats?.maxConcurrent ?? 0 };
      },
      hotCalls: () => hotCalls,
      // redis-cold's invalidation delay: an invalidation issued on this instance.
      invalidate: (key: string) => app.get(StampedeService).invalidate(key),
    },
    { port: (server.address() as AddressInfo).port },
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
