import {
  Controller,
  Get,
  Injectable,
  MiddlewareConsumer,
  Module,
  NestMiddleware,
  Req,
  UseInterceptors,
} from '@nestjs/common';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, RunningApp, Reply, request, startApp } from '../apps/http-app';

/**
 * A request whose response a middleware made its caller's own before the
 * handler ran, or whose caller a middleware authenticated, is never answered
 * with another caller's response: through the interceptor and at the edge.
 */

const json = (reply: Reply): unknown => JSON.parse(reply.text);
const hit = (reply: Reply): boolean => /; hit/.test(reply.headers['cache-status'] ?? '');

interface Marked {
  headers: Record<string, string>;
  preview?: boolean;
  user?: { id: string };
  raw?: Marked;
}

/** Preview mode (`x-preview: 1`): the handler shows the draft, and the response is the caller's own. */
@Injectable()
class PreviewMiddleware implements NestMiddleware {
  use(req: Marked, res: { setHeader(name: string, value: string): void }, next: () => void) {
    if (req.headers['x-preview'] === '1') {
      req.preview = true;
      res.setHeader('Cache-Control', 'private, no-store');
    }
    // A first visit gets a session cookie: that response is the visitor's own.
    if (req.headers['x-first-visit'] === '1') res.setHeader('Set-Cookie', 'session=new; HttpOnly');
    next();
  }
}

/** Authenticates from a header and sets `req.user`, as Passport does (on Fastify Nest hands it the Node request). */
@Injectable()
class AuthMiddleware implements NestMiddleware {
  use(req: Marked, _res: unknown, next: () => void) {
    const id = req.headers['x-user'];
    if (id) req.user = { id };
    next();
  }
}

const previewOf = (req: Marked) => Boolean(req.preview ?? req.raw?.preview);
const userOf = (req: Marked) => (req.user ?? req.raw?.user)?.id ?? null;

@Controller()
@UseInterceptors(StampedeInterceptor)
class PagesController {
  @Get('page')
  page(@Req() req: Marked) {
    return { draft: previewOf(req) };
  }

  @Get('edge-page')
  @Coalesce({ edge: true })
  edgePage(@Req() req: Marked) {
    return { draft: previewOf(req) };
  }

  @Get('me')
  me(@Req() req: Marked) {
    return { user: userOf(req) };
  }
}

@Module({
  imports: [StampedeModule.forRoot({ ttl: 60_000 })],
  controllers: [PagesController],
  providers: [PreviewMiddleware, AuthMiddleware],
})
class PagesModule {
  configure(consumer: MiddlewareConsumer) {
    consumer.apply(PreviewMiddleware, AuthMiddleware).forRoutes(PagesController);
  }
}

describe.each(PLATFORMS)('a response made its caller’s own before the handler (%s)', (platform) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startApp(platform, { imports: [PagesModule] });
  });
  afterAll(() => running.close());

  it.each(['page', 'edge-page'])(
    '/%s: a middleware’s Cache-Control: private is not answered from the store',
    async (path) => {
      await request(`${running.url}/${path}`);
      const stored = await request(`${running.url}/${path}`);
      expect(hit(stored)).toBe(true);
      expect(json(stored)).toEqual({ draft: false });
      const preview = await request(`${running.url}/${path}`, { headers: { 'x-preview': '1' } });
      expect(hit(preview)).toBe(false);
      expect(json(preview)).toEqual({ draft: true });
      expect(preview.headers['cache-control']).toBe('private, no-store');
    },
  );

  it('a middleware’s Set-Cookie: that caller runs its own handler and keeps its cookie', async () => {
    await request(`${running.url}/page`);
    const first = await request(`${running.url}/page`, { headers: { 'x-first-visit': '1' } });
    expect(hit(first)).toBe(false);
    expect(first.setCookie).toEqual(['session=new; HttpOnly']);
    expect(hit(await request(`${running.url}/page`))).toBe(true);
  });

  it('a request.user a middleware set: one user is never answered with another’s response', async () => {
    expect(json(await request(`${running.url}/me`, { headers: { 'x-user': 'alice' } }))).toEqual({ user: 'alice' });
    const bob = await request(`${running.url}/me`, { headers: { 'x-user': 'bob' } });
    expect(bob.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
    expect(json(bob)).toEqual({ user: 'bob' });
  });
});
