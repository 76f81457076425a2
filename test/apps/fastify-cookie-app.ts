/**
 * A Fastify app with `@fastify/cookie`, run in its own process by
 * fastify-cookie.e2e.spec.ts (the plugin loads `cookie` through a dynamic
 * `import()`, which Jest's module sandbox refuses). Says `{ port }` on IPC.
 */
import 'reflect-metadata';
import fastifyCookie from '@fastify/cookie';
import { Controller, Get, Post, Res, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Module } from '@nestjs/common';
import { AddressInfo } from 'node:net';
import { SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { Origin } from './origin';

@Controller()
@UseInterceptors(StampedeInterceptor)
class SessionController {
  constructor(
    private readonly origin: Origin,
    private readonly stampede: StampedeService,
  ) {}

  @Get('session')
  async start(@Res({ passthrough: true }) reply: { setCookie(name: string, value: string): unknown }) {
    const n = await this.origin.run('session');
    reply.setCookie('session', `run-${n}`);
    return { session: `run-${n}` };
  }

  @Get('admin/waiting')
  @SkipCoalesce()
  waiting() {
    return { waiting: this.stampede.stats().waiting };
  }

  @Post('admin/open')
  @SkipCoalesce()
  open() {
    this.origin.open('session');
    return {};
  }
}

@Module({
  imports: [StampedeModule.forRoot({ ttl: 60_000 })],
  controllers: [SessionController],
  providers: [Origin],
})
class SessionModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestFastifyApplication>(SessionModule, new FastifyAdapter(), { logger: false });
  await app.register(fastifyCookie);
  app.get(Origin).hold('session');
  await app.listen(0, '127.0.0.1');
  process.send?.({ port: (app.getHttpServer().address() as AddressInfo).port });
  process.on('disconnect', () => void app.close().finally(() => process.exit(0)));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
