import { Injectable } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { PLATFORMS, request, startApp } from '../apps/http-app';
import { StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';
import { README, readmeSnippet } from '../helpers/readme';

/** What the README leaves to the app: a service the first call of which waits for the test's go. */
@Injectable()
export class ArticlesService {
  static calls = 0;
  static gate = deferred<void>();
  async byId(id: string) {
    ArticlesService.calls++;
    await ArticlesService.gate.promise;
    return { id, title: `article ${id}` };
  }
}

// README:quick-start
import { Controller, Get, Module, Param, UseInterceptors } from '@nestjs/common';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';

@Controller('articles')
@UseInterceptors(StampedeInterceptor)
export class ArticlesController {
  constructor(private readonly articles: ArticlesService) {}

  @Get(':id')
  @Coalesce({ ttl: 2_000 }) // optional: per-route settings
  byId(@Param('id') id: string) {
    return this.articles.byId(id); // runs once for all concurrent GET /articles/:id with this id
  }
}

@Module({
  imports: [StampedeModule.forRoot({ ttl: 5_000 })],
  controllers: [ArticlesController],
  providers: [ArticlesService],
})
export class AppModule {}
// README:end

it('the README quick start is the code of this file, word for word', () => {
  expect(README).toContain(readmeSnippet(readFileSync(__filename, 'utf8'), 'quick-start'));
});

describe.each(PLATFORMS)('README quick start (%s)', (platform) => {
  it('20 concurrent GET /articles/42 run the service once and all get its article', async () => {
    ArticlesService.calls = 0;
    ArticlesService.gate = deferred<void>();
    const running = await startApp(platform, { imports: [AppModule] });
    try {
      const replies = Array.from({ length: 20 }, () => request(`${running.url}/articles/42`));
      // Every request is in, 19 waiting on the first, before the one service call is let go.
      const stampede = running.app.get(StampedeService);
      await until(() => stampede.stats().waiting === 19, '19 requests waiting on the first');
      ArticlesService.gate.resolve();
      const bodies = (await Promise.all(replies)).map((reply) => JSON.parse(reply.text));
      expect(bodies).toEqual(Array(20).fill({ id: '42', title: 'article 42' }));
      expect(ArticlesService.calls).toBe(1);
    } finally {
      await running.close();
    }
  });
});
