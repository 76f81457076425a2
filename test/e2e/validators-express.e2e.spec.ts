import { Controller, Get, UseInterceptors } from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { createHash } from 'node:crypto';
import { SkipCoalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { RunningApp, request, startApp, wireRequest } from '../apps/http-app';

@Controller('e')
@UseInterceptors(StampedeInterceptor)
class DocumentsController {
  runs = 0;

  @Get('doc')
  doc() {
    this.runs++;
    return { items: ['a', 'b', 'c'] };
  }

  @Get('alone')
  @SkipCoalesce()
  alone() {
    return { items: ['a', 'b', 'c'] };
  }
}

/**
 * Express computes an ETag in `res.send` (the `etag` setting, on by default)
 * unless the response has one, and answers 304 itself when the request
 * matches. Ours is set first, so Express neither hashes again nor sends
 * another tag, whichever the setting.
 */
describe.each([
  ['on (the default)', true],
  ['on, counted (a function)', 'counting'],
  ['off', false],
] as const)("Express's etag setting %s", (_name, setting) => {
  let running: RunningApp;
  let expressTags = 0;

  beforeAll(async () => {
    running = await startApp(
      'express',
      { imports: [StampedeModule.forRoot({ ttl: 60_000 })], controllers: [DocumentsController] },
      (app) => {
        // A weak tag as Express's default computes, counted.
        const counted = (body: Buffer | string) => {
          expressTags++;
          const hash = createHash('sha1').update(body).digest('base64').slice(0, 27);
          return `W/"${Buffer.byteLength(body).toString(16)}-${hash}"`;
        };
        (app as NestExpressApplication).set('etag', setting === 'counting' ? counted : setting);
      },
    );
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    expressTags = 0;
    await running.app.get(StampedeService).invalidate({ prefix: '' });
  });

  it('keeps our strong ETag on the leader and on hits, and Express computes none', async () => {
    const first = await request(`${running.url}/e/doc`);
    const etag = first.headers['etag'];
    expect(etag).toMatch(/^"[\w-]{43}"$/);
    const hit = await request(`${running.url}/e/doc`);
    expect(hit.headers['cache-status']).toMatch(/; hit;/);
    expect(hit.headers['etag']).toBe(etag);
    const notModified = await wireRequest(running.url, '/e/doc', { headers: { 'If-None-Match': etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
    expect(notModified.headers['etag']).toBe(etag);
    expect(expressTags).toBe(0);
  });

  it('agrees with Express on a leader whose request already matches: 304, the same tag', async () => {
    const etag = (await request(`${running.url}/e/doc`)).headers['etag'];
    await running.app.get(StampedeService).invalidate({ prefix: '' });
    const lead = await wireRequest(running.url, '/e/doc', { headers: { 'If-None-Match': `W/${etag}` } });
    expect(lead.status).toBe(304);
    expect(lead.headers['cache-status']).toBe('nestjs-stampede; fwd=miss; stored');
    expect(lead.headers['etag']).toBe(etag);
    expect(lead.body.length).toBe(0);
    expect(expressTags).toBe(0);
  });

  it('leaves a route it does not coalesce to Express (the setting is in effect)', async () => {
    const alone = await request(`${running.url}/e/alone`);
    if (setting !== false) {
      expect(alone.headers['etag']).toMatch(/^W\//);
      expect(expressTags).toBe(setting === 'counting' ? 1 : 0);
    } else {
      expect(alone.headers['etag']).toBeUndefined();
    }
  });
});
