import 'reflect-metadata';
import { CACHE_MANAGER, CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import {
  CallHandler,
  Controller,
  Get,
  Req,
  INestApplication,
  Injectable,
  Module,
  ModuleMetadata,
  NestInterceptor,
  Type,
  UseInterceptors,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { bodyETag } from '../../lib/http/validators';
import { serveParent } from '../shared/child';
import { ALL_HTTP_SYSTEMS, COLD_MS, HttpSystem, PLATFORMS, Platform } from './http-systems';

/**
 * One benchmark server, run as a child process: `node http-app.js <platform> <system>`.
 * Each (platform, system) pair gets its own process so systems never share a JIT or a heap.
 */

/** Long enough that nothing expires during a run. */
const TTL_MS = 10 * 60_000;
/** Idle keep-alive sockets are kept this long, so bursts reuse warm connections. */
const KEEP_ALIVE_MS = 10 * 60_000;

/** A small JSON body, about what an API returns for one record. */
const HOT_BODY = Object.freeze({
  id: 42,
  name: 'constant',
  tags: ['a', 'b', 'c'],
  price: { amount: 1999, currency: 'EUR' },
  updatedAt: '2025-01-01T00:00:00.000Z',
});

/** A list an API might return whole: about 200 kB of JSON (the validators scenario). */
const BIG_BODY = Object.freeze({
  items: Array.from({ length: 820 }, (_, i) => ({
    id: i,
    sku: `SKU-${String(i).padStart(6, '0')}`,
    name: `Product number ${i} of the catalogue`,
    description: 'A constant description, long enough to make the list weigh what a real one does.',
    price: { amount: 1000 + i, currency: 'EUR' },
    tags: ['catalogue', `group-${i % 10}`],
  })),
});

/** `etags`: how many times nestjs-stampede computed an ETag (once per stored response, never per hit). */
const counts = { cold: 0, hot: 0, big: 0, etags: 0 };
const computeETag = bodyETag.of;
bodyETag.of = (body) => {
  counts.etags++;
  return computeETag(body);
};

@Controller()
class BenchController {
  /** Constant body: the hot-path scenarios measure only the layers in front of it. */
  @Get('hot')
  hot() {
    counts.hot++;
    return HOT_BODY;
  }

  /** A big constant body: what a validator saves is sending it again. */
  @Get('big')
  big() {
    counts.big++;
    return BIG_BODY;
  }

  /**
   * 100 ms of "work". Answers with the caller's `x-req` id: a caller that reads
   * back its own id ran the handler (an origin), any other was served a shared result.
   */
  @Get('cold')
  async cold(@Req() request: { headers: Record<string, string | undefined> }) {
    // Read from the request, not by `@Headers('x-req')`, which would key by it: the id only traces who ran.
    const caller = request.headers['x-req'];
    counts.cold++;
    await sleep(COLD_MS);
    return { by: caller };
  }
}

/** The cheapest possible interceptor: what any interceptor costs before doing anything. */
@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler) {
    return next.handle();
  }
}

function metadataFor(system: HttpSystem): ModuleMetadata {
  const interceptor: Record<HttpSystem, Type<NestInterceptor> | undefined> = {
    bare: undefined,
    noop: NoopInterceptor,
    'cache-manager': CacheInterceptor,
    stampede: StampedeInterceptor,
    edge: StampedeInterceptor,
  };
  const use = interceptor[system];
  // Applied the way users do, as a controller-level @UseInterceptors().
  if (use) UseInterceptors(use)(BenchController);
  return {
    imports:
      system === 'cache-manager'
        ? [CacheModule.register({ ttl: TTL_MS })]
        : system === 'stampede'
          ? [StampedeModule.forRoot({ ttl: TTL_MS })]
          : system === 'edge'
            ? [StampedeModule.forRoot({ ttl: TTL_MS, edge: true })]
            : [],
    controllers: [BenchController],
  };
}

async function listen(platform: Platform, system: HttpSystem): Promise<{ app: INestApplication; port: number }> {
  @Module(metadataFor(system))
  class BenchModule {}

  if (platform === 'fastify') {
    const adapter = new FastifyAdapter({ keepAliveTimeout: KEEP_ALIVE_MS });
    const app = await NestFactory.create<NestFastifyApplication>(BenchModule, adapter, { logger: ['error'] });
    // A deep backlog: a 1000-connection burst must not lose SYNs to a full accept queue.
    await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
    return { app, port: (app.getHttpServer().address() as AddressInfo).port };
  }
  const app = await NestFactory.create(BenchModule, { logger: ['error'] });
  await app.init();
  const server = app.getHttpServer() as Server;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  return { app, port: (server.address() as AddressInfo).port };
}

/**
 * Puts `n` other keys in the cache, as a long-running app's cache holds many:
 * a hit on a full store may cost more than one on an empty store (an LRU's upkeep).
 */
async function fill(app: INestApplication, system: HttpSystem, n: number): Promise<number> {
  const set =
    system === 'stampede' || system === 'edge'
      ? (key: string) => app.get(StampedeService).set(key, { ...HOT_BODY, key }, TTL_MS)
      : system === 'cache-manager'
        ? (key: string) =>
            app
              .get<{ set(k: string, v: unknown, ttl: number): Promise<unknown> }>(CACHE_MANAGER)
              .set(key, { ...HOT_BODY, key }, TTL_MS)
        : undefined;
  if (!set) return 0;
  for (let i = 0; i < n; i++) await set(`GET /other/${i}`);
  return n;
}

async function main(): Promise<void> {
  const [platform, system] = process.argv.slice(2) as [Platform, HttpSystem];
  if (!PLATFORMS.includes(platform) || !ALL_HTTP_SYSTEMS.includes(system)) {
    throw new Error(`usage: http-app <${PLATFORMS.join('|')}> <${ALL_HTTP_SYSTEMS.join('|')}>`);
  }
  const { app, port } = await listen(platform, system);
  serveParent({ counts: () => ({ ...counts }), fill: (n: number) => fill(app, system, n) }, { port });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
