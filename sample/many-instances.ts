/**
 * `npm run sample:many`: three instances of one app behind no load balancer,
 * a cold burst of 300 concurrent requests spread over them, and how many
 * times the slow query ran: once per instance when each coalesces alone,
 * once in all with the `redis` option.
 *
 * Starts its own `redis-server` when one is installed (or uses `REDIS_URL`).
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Param, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { AddressInfo, createServer } from 'node:net';
import { SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions } from '../lib';
import { RedisOptions } from '../lib/redis/redis.options';

const HOST = '127.0.0.1';
const INSTANCES = 3;
const REQUESTS = 300;
const QUERY_MS = 1_000;

/** The slow work: a report query that takes a second, counted. */
@Injectable()
class Reports {
  queries = 0;

  async build(id: string): Promise<{ id: string; rows: number; builtBy: number }> {
    this.queries++;
    await new Promise((resolve) => setTimeout(resolve, QUERY_MS));
    return { id, rows: 1_000, builtBy: process.pid };
  }
}

@Controller()
@UseInterceptors(StampedeInterceptor)
class ReportsController {
  constructor(private readonly reports: Reports) {}

  @Get('reports/:id')
  report(@Param('id') id: string) {
    return this.reports.build(id);
  }

  @Get('stats')
  @SkipCoalesce()
  stats() {
    return { queries: this.reports.queries };
  }
}

/** One instance: in-process coalescing only, or shared through Redis when `REDIS_URL` is set. */
async function runInstance(): Promise<void> {
  const url = process.env.REDIS_URL;
  // With `redis`, every instance on that Redis shares the cache and the single flight.
  const options: StampedeModuleOptions & { redis?: RedisOptions } = url
    ? { ttl: 30_000, redis: { url } }
    : { ttl: 30_000 };

  @Module({ imports: [StampedeModule.forRoot(options)], controllers: [ReportsController], providers: [Reports] })
  class AppModule {}

  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(0, HOST);
  process.send?.({ port: (app.getHttpServer().address() as AddressInfo).port });
  process.on('disconnect', () => void app.close().finally(() => process.exit(0)));
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  return port;
}

/** A private redis-server on a free port, or `undefined` (with the reason printed) if none is installed. */
async function startRedis(): Promise<{ url: string; stop(): void } | undefined> {
  if (spawnSync('redis-server', ['--version']).error) {
    console.log('redis-server is not installed, so only the in-process run is shown.');
    console.log(
      'Install it (e.g. `apt-get install redis-server`, `brew install redis`) or set REDIS_URL=redis://host:port.\n',
    );
    return undefined;
  }
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no']);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    redis.stdout.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Ready to accept connections')) resolve();
    });
    redis.once('exit', () => reject(new Error(`redis-server stopped:\n${log}`)));
  });
  return { url: `redis://${HOST}:${port}`, stop: () => redis.kill() };
}

/** Forks `INSTANCES` copies of this file as instances; resolves with their base URLs. */
async function startInstances(redisUrl: string | undefined): Promise<{ urls: string[]; children: ChildProcess[] }> {
  const env = { ...process.env, REDIS_URL: redisUrl ?? '' };
  const children = Array.from({ length: INSTANCES }, () => fork(__filename, ['--instance'], { env }));
  const ports = await Promise.all(
    children.map(
      (child) =>
        new Promise<number>((resolve, reject) => {
          child.once('message', (message: { port: number }) => resolve(message.port));
          child.once('exit', (code) => reject(new Error(`an instance exited (code ${code}) before listening`)));
        }),
    ),
  );
  return { urls: ports.map((port) => `http://${HOST}:${port}`), children };
}

interface Run {
  mode: string;
  queries: number;
  failed: number;
  bodies: number;
}

/** A cold burst of `REQUESTS` concurrent GETs of one new report, spread evenly over the instances. */
async function coldBurst(mode: string, redisUrl: string | undefined): Promise<Run> {
  const { urls, children } = await startInstances(redisUrl);
  try {
    const id = `q${Date.now()}`;
    const replies = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, i) => {
        try {
          const response = await fetch(`${urls[i % urls.length]}/reports/${id}`);
          return { ok: response.ok, body: await response.text() };
        } catch {
          return { ok: false, body: '' };
        }
      }),
    );
    const stats = await Promise.all(
      urls.map(async (url) => (await (await fetch(`${url}/stats`)).json()) as { queries: number }),
    );
    return {
      mode,
      queries: stats.reduce((total, s) => total + s.queries, 0),
      failed: replies.filter((reply) => !reply.ok).length,
      bodies: new Set(replies.filter((reply) => reply.ok).map((reply) => reply.body)).size,
    };
  } finally {
    for (const child of children) child.kill();
  }
}

async function main(): Promise<void> {
  console.log(
    `\n${INSTANCES} instances, ${REQUESTS} concurrent requests for one uncached report (${REQUESTS / INSTANCES} per instance, the query takes ${QUERY_MS} ms)\n`,
  );
  const redis = process.env.REDIS_URL ? { url: process.env.REDIS_URL, stop: () => undefined } : await startRedis();
  const runs: Run[] = [await coldBurst('in-process only', undefined)];
  const expected = [INSTANCES];
  if (redis) {
    try {
      runs.push(await coldBurst(`redis (${redis.url})`, redis.url));
      expected.push(1);
    } finally {
      redis.stop();
    }
  }

  const width = Math.max(...runs.map((run) => run.mode.length));
  console.log(`${'coalescing'.padEnd(width)}  origin calls  failed  distinct bodies`);
  for (const run of runs) {
    console.log(
      `${run.mode.padEnd(width)}  ${String(run.queries).padStart(12)}  ${String(run.failed).padStart(6)}  ${String(run.bodies).padStart(15)}`,
    );
  }
  console.log(
    '\nIn process, each instance coalesces its own callers: one query per instance. With `redis`, the first' +
      '\ninstance takes a lease, the others wait for its value: one query in all.',
  );
  const problems = runs
    .map((run, i) =>
      run.queries !== expected[i] || run.failed > 0
        ? `${run.mode}: ${run.queries} origin calls, ${run.failed} failed; expected ${expected[i]}, 0`
        : '',
    )
    .filter(Boolean);
  for (const problem of problems) console.error(`\nFAILED: ${problem}`);
  process.exitCode = problems.length > 0 ? 1 : 0;
}

(process.argv.includes('--instance') ? runInstance() : main()).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
