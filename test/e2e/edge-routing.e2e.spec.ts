import { CanActivate, Controller, Get, Injectable, UseGuards, UseInterceptors } from '@nestjs/common';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, Platform, RunningApp, rawRequest, startApp } from '../apps/http-app';

/**
 * The edge answers a route only with a response that route produced: a URL
 * that routing sends past another route first (Express tries every
 * `@Controller({ host })` route of a path in turn) never gets that route's answer.
 * On Fastify each route has a context of its own, which is what the edge is keyed by.
 */
@Injectable()
class AdminGuard implements CanActivate {
  static runs = 0;
  canActivate(): boolean {
    AdminGuard.runs++;
    return true;
  }
}

@Controller({ path: 'home', host: 'public.test' })
@UseInterceptors(StampedeInterceptor)
@Coalesce({ edge: true })
class PublicController {
  @Get()
  home() {
    return { site: 'public' };
  }
}

@Controller({ path: 'home', host: 'admin.test' })
@UseInterceptors(StampedeInterceptor)
@UseGuards(AdminGuard)
class AdminController {
  @Get()
  home() {
    return { site: 'admin' };
  }
}

// Express only: Fastify refuses two routes of one method and path ("already declared"), hosts or not.
describe.each(PLATFORMS.filter((p) => p === 'express'))('edge and host routing on %s', (platform: Platform) => {
  let running: RunningApp;
  afterEach(() => running.close());

  it("never answers a request for another route's host with that route's stored response", async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: [PublicController, AdminController],
      providers: [AdminGuard],
    });
    const get = (host: string) => rawRequest(running.url, '/home', { headers: { host } });
    await get('public.test');
    const publicHit = await get('public.test');
    expect(JSON.parse(publicHit.text)).toEqual({ site: 'public' });
    expect(publicHit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');

    AdminGuard.runs = 0;
    const first = await get('admin.test');
    const second = await get('admin.test');
    expect(JSON.parse(second.text)).toEqual({ site: 'admin' });
    // A hit of the interceptor, behind the guard: the edge of the public route did not answer it.
    expect(first.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expect(second.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(AdminGuard.runs).toBe(2);
  });
});
