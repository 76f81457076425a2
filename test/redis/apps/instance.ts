/**
 * One instance of a small app, run in its own process by the multi-instance
 * suite (`fork` with `-r ./register.cjs`): a coalesced route with a gate the
 * test opens, and uncoalesced admin routes that report what happened here.
 * Configured by environment variables; says `{ type: 'ready', port }` on IPC.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Param, Post, UseInterceptors } from '@nestjs/common';
import { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Coalesce, SkipCoalesce, StampedeInterceptor, StampedeService } from '../../../lib';
import { StampedeEngine } from '../../../lib/nest/stampede.engine';
import { RedisOptions, RedisSentinelOptions } from '../../../lib/redis/redis.options';
import { createRedisApp } from './redis-app';

/** Executions per id, and gates that hold them. */

/** The host every instance is reached by, as behind one load balancer (the host is part of the key). */
const PUBLIC_HOST = 'api.example';

@Injectable()
class Origin {
  readonly executions = new Map<string, number>();
  private readonly gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  async run(id: string): Promise<{ id: string; execution: string }> {
    this.executions.set(id, (this.executions.get(id) ?? 0) + 1);
    await this.gates.get(id)?.promise;
    // One token per execution: equal bodies everywhere mean one execution answered everyone.
    return { id, execution: randomUUID() };
  }

  hold(id: string): void {
    if (this.gates.has(id)) return;
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.gates.set(id, { promise, open });
  }

  open(id: string): void {
    this.gates.get(id)?.open();
    this.gates.delete(id);
  }
}

@Controller()
@UseInterceptors(StampedeInterceptor)
class ItemsController {
  constructor(private readonly origin: Origin) {}

  @Get('item/:id')
  item(@Param('id') id: string) {
    return this.origin.run(id);
  }

  /** A write to the item's path: with `invalidateOnWrite`, drops its stored GET on every instance. */
  @Post('item/:id')
  update() {
    return {};
  }

  @Get('tagged/:id')
  @Coalesce({ tags: (body: { id: string }) => [`tag:${body.id}`] })
  tagged(@Param('id') id: string) {
    return this.origin.run(id);
  }
}

@Controller('admin')
@SkipCoalesce()
class AdminController {
  constructor(
    private readonly origin: Origin,
    private readonly stampede: StampedeService,
    private readonly engine: StampedeEngine,
  ) {
    engine.redis?.subscriber.onResubscribed(() => this.resubscribed++);
  }

  private resubscribed = 0;

  @Get('state/:id')
  state(@Param('id') id: string) {
    const redis = this.engine.redis;
    return {
      pid: process.pid,
      executions: this.origin.executions.get(id) ?? 0,
      waiters: this.stampede.waiters(`GET http://${PUBLIC_HOST}/item/${id}`),
      redisUp: redis !== undefined && !redis.connection.isDown && redis.connection.client.isReady,
      subscribed: redis?.subscriber.isSubscribed ?? false,
      // Sharded wake-ups: commands sent, and how often this instance dropped its L1 for a reconnection.
      shards: redis?.subscriber.shards?.counts,
      resubscribed: this.resubscribed,
    };
  }

  @Post('invalidate/:id')
  async invalidate(@Param('id') id: string) {
    return { deleted: await this.stampede.invalidate(`GET http://${PUBLIC_HOST}/item/${id}`) };
  }

  @Post('invalidate-prefix/:prefix')
  async invalidatePrefix(@Param('prefix') prefix: string) {
    return { deleted: await this.stampede.invalidate({ prefix: `GET http://${PUBLIC_HOST}/item/${prefix}` }) };
  }

  @Post('invalidate-tag/:id')
  invalidateTag(@Param('id') id: string) {
    this.stampede.invalidateTags([`tag:${id}`]);
    return {};
  }

  @Post('hold/:id')
  hold(@Param('id') id: string) {
    this.origin.hold(id);
    return {};
  }

  @Post('open/:id')
  open(@Param('id') id: string) {
    this.origin.open(id);
    return {};
  }
}

/** Loaded only when asked for: the other suites' instances run without OpenTelemetry. */
function loadTracing() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./tracing') as typeof import('./tracing')).startTracing();
}

/** The `redis` option's way to the server: a URL, a cluster's root nodes or Sentinel settings. */
function server(env: NodeJS.ProcessEnv): RedisOptions {
  if (env.STAMPEDE_REDIS_CLUSTER) return { cluster: { rootNodes: JSON.parse(env.STAMPEDE_REDIS_CLUSTER) as [] } };
  if (env.STAMPEDE_REDIS_SENTINEL) return { sentinel: JSON.parse(env.STAMPEDE_REDIS_SENTINEL) as RedisSentinelOptions };
  return { url: env.STAMPEDE_REDIS_URL };
}

async function main(): Promise<void> {
  const env = process.env;
  const tracing = env.STAMPEDE_TRACING === '1' ? loadTracing() : undefined;
  const app = await createRedisApp(
    { controllers: [ItemsController, AdminController], providers: [Origin, ...(tracing?.providers ?? [])] },
    {
      ttl: Number(env.STAMPEDE_TTL ?? 60_000),
      invalidateOnWrite: env.STAMPEDE_INVALIDATE_ON_WRITE === '1',
      ...(tracing && { openTelemetry: { tracer: tracing.tracer } }),
    },
    {
      ...server(env),
      l1Ttl: env.STAMPEDE_L1_TTL ? Number(env.STAMPEDE_L1_TTL) : undefined,
      keyPrefix: env.STAMPEDE_KEY_PREFIX,
      leaseTtl: env.STAMPEDE_LEASE_TTL ? Number(env.STAMPEDE_LEASE_TTL) : undefined,
      lockTimeout: env.STAMPEDE_LOCK_TIMEOUT ? Number(env.STAMPEDE_LOCK_TIMEOUT) : undefined,
      wake: env.STAMPEDE_REDIS_WAKE as RedisOptions['wake'],
    },
    ['log', 'warn', 'error'],
  );
  app.enableShutdownHooks();
  app.use((request: { headers: Record<string, string> }, _response: unknown, next: () => void) => {
    request.headers.host = PUBLIC_HOST;
    next();
  });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  process.send?.({ type: 'ready', port });
  // The test process going away takes this one with it.
  process.on('disconnect', () => void app.close().finally(() => process.exit(0)));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
