import { Controller, Get, Logger, UseInterceptors } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';

/** Mistakes a new user makes, told at bootstrap with the name of what is wrong. */

@Controller('forgotten')
class ForgottenController {
  @Get()
  @Coalesce({ ttl: 1_000 })
  list() {
    return { ok: true };
  }
}

@Controller('wired')
@UseInterceptors(StampedeInterceptor)
class WiredController {
  @Get()
  @Coalesce({ ttl: 1_000 })
  list() {
    return { ok: true };
  }
}

@Controller('class-level')
@Coalesce({ ttl: 1_000 })
class ClassLevelController {
  @Get()
  list() {
    return { ok: true };
  }
}

describe.each(PLATFORMS)('bootstrap checks on %s', (platform) => {
  let warn: jest.SpyInstance;
  beforeEach(() => (warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined)));
  afterEach(() => warn.mockRestore());
  const warnings = () => warn.mock.calls.map(([message]) => String(message)).filter((m) => m.includes('@Coalesce'));

  it('warns once, naming the class and method, for @Coalesce on a route no StampedeInterceptor reaches', async () => {
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot()],
      controllers: [ForgottenController, WiredController, ClassLevelController],
    });
    // The route still answers; it is just not coalesced, which is what the warning says.
    expect((await request(`${running.url}/forgotten`)).headers['cache-status']).toBeUndefined();
    await running.close();
    expect(warnings()).toEqual([
      expect.stringContaining('@Coalesce() on ForgottenController.list has no effect'),
      expect.stringContaining('@Coalesce() on ClassLevelController.list has no effect'),
    ]);
  });

  it('says nothing when StampedeInterceptor is global', async () => {
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot()],
      controllers: [ForgottenController, ClassLevelController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    expect((await request(`${running.url}/forgotten`)).headers['cache-status']).toBe(
      'nestjs-stampede; fwd=miss; stored',
    );
    await running.close();
    expect(warnings()).toEqual([]);
  });
});

describe('bootstrap errors', () => {
  it('fails bootstrap for a method that is not an HTTP method, naming the option', async () => {
    const compiling = Test.createTestingModule({ imports: [StampedeModule.forRoot({ methods: ['FETCH'] })] }).compile();
    await expect(compiling).rejects.toThrow(/option "methods".*FETCH/s);
  });

  it('tells a StampedeInterceptor used without the module to import StampedeModule.forRoot()', async () => {
    const compiling = Test.createTestingModule({ controllers: [WiredController] }).compile();
    await expect(compiling).rejects.toThrow(/StampedeModule\.forRoot\(\)/);
  });
});
