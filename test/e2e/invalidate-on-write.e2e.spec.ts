import { Controller, Delete, Get, Param, UseInterceptors } from '@nestjs/common';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, RunningApp, request, startApp } from '../apps/http-app';

/** `invalidateOnWrite`: a write drops what is stored for its path however a GET spelled it. */

const articles = new Map<string, string>();

@Controller('articles')
@UseInterceptors(StampedeInterceptor)
class ArticlesController {
  @Get(':id')
  get(@Param('id') id: string) {
    return { id, title: articles.get(id) ?? null };
  }

  @Delete(':id')
  remove(@Param('id') id: string) {
    articles.delete(id);
    return { deleted: id };
  }
}

describe.each(PLATFORMS)('invalidateOnWrite, paths spelled otherwise (%s)', (platform) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, invalidateOnWrite: true })],
      controllers: [ArticlesController],
    });
  });
  afterAll(() => running.close());

  // Every spelling the platform's router takes for /articles/a: percent-escapes on both; a trailing slash
  // and another case on Express, whose routing is neither strict nor case-sensitive by default.
  const spellings = platform === 'express' ? ['/articles/%61', '/articles/a/', '/ARTICLES/a'] : ['/articles/%61'];

  it.each(spellings)('a DELETE of /articles/a drops the stored GET %s', async (spelling) => {
    articles.set('a', 'Hello');
    await request(`${running.url}/articles/a`, { method: 'DELETE' });
    articles.set('a', 'Hello');
    expect(JSON.parse((await request(`${running.url}${spelling}`)).text)).toEqual({ id: 'a', title: 'Hello' });
    expect((await request(`${running.url}${spelling}`)).headers['cache-status']).toMatch(/; hit/);
    expect((await request(`${running.url}/articles/a`, { method: 'DELETE' })).status).toBe(200);
    expect(JSON.parse((await request(`${running.url}${spelling}`)).text)).toEqual({ id: 'a', title: null });
  });
});
