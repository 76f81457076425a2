import { Controller, Get, Injectable, Module, UseInterceptors } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';

function compileWith(options: unknown) {
  return Test.createTestingModule({ imports: [StampedeModule.forRoot(options as StampedeModuleOptions)] }).compile();
}

describe('StampedeModule options', () => {
  it.each([
    [{ ttl: -1 }, /option "ttl".*got -1/],
    [{ ttl: '5 s' }, /option "ttl".*got "5 s"/],
    [{ ttl: Number.NaN }, /option "ttl"/],
    [{ keyHeaders: 'x' }, /option "keyHeaders".*got "x"/],
    [{ keyHeaders: ['ok', 'not a header'] }, /option "keyHeaders"/],
    [{ maxEntries: 0 }, /option "maxEntries".*got 0/],
    [{ maxEntries: 1.5 }, /option "maxEntries".*got 1.5/],
    [{ methods: 'GET' }, /option "methods"/],
    [{ cacheStatusHeader: 'yes' }, /option "cacheStatusHeader"/],
    [{ store: {} }, /option "store"/],
    [{ key: 'path' }, /option "key".*got "path"/],
    [{ tll: 5000 }, /option "tll".*expected one of ttl/],
    [{ timeout: -5 }, /option "timeout".*got -5/],
    [{ waitTimeout: 'soon' }, /option "waitTimeout".*got "soon"/],
    [{ onWaitTimeout: 'retry' }, /option "onWaitTimeout".*got "retry"/],
    [{ maxBodyBytes: -1 }, /option "maxBodyBytes".*got -1/],
    [{ staleTtl: -1 }, /option "staleTtl".*got -1/],
    [{ staleIfError: Infinity }, /option "staleIfError".*got Infinity/],
    [{ earlyRefresh: { beta: 0 } }, /option "earlyRefresh"/],
    [{ tags: 'article' }, /option "tags".*got "article"/],
    [{ statusTtl: { 999: 1000 } }, /option "statusTtl"/],
    [{ statusTtl: { 404: -1 } }, /option "statusTtl"/],
    [{ respectCacheControl: 'yes' }, /option "respectCacheControl"/],
    [{ keyBody: { maxBytes: 0 } }, /option "keyBody"/],
    [{ maxInFlight: 0 }, /option "maxInFlight".*got 0/],
    [{ maxWaiters: 2.5 }, /option "maxWaiters".*got 2.5/],
    [{ storeTimeout: -1 }, /option "storeTimeout".*got -1/],
    [{ invalidateOnWrite: 1 }, /option "invalidateOnWrite".*got 1/],
    [{ metrics: 'on' }, /option "metrics"/],
    [{ methods: ['GET', 'FETCH'] }, /option "methods".*FETCH/],
    [{ credentialHeaders: 'x-api-key' }, /option "credentialHeaders".*got "x-api-key"/],
    [{ credentialHeaders: ['x api key'] }, /option "credentialHeaders"/],
    [{ keyUser: 'id' }, /option "keyUser".*got "id"/],
  ])('fails app creation for %j, naming the option and the value', async (options, message) => {
    await expect(compileWith(options)).rejects.toThrow(message);
  });

  it('fails app creation for an invalid option from forRootAsync', async () => {
    @Injectable()
    class Config {
      readonly ttl = -5;
    }
    @Module({ providers: [Config], exports: [Config] })
    class ConfigModule {}
    const compiling = Test.createTestingModule({
      imports: [
        StampedeModule.forRootAsync({
          imports: [ConfigModule],
          inject: [Config],
          useFactory: (config: Config) => ({ ttl: config.ttl }),
        }),
      ],
    }).compile();
    await expect(compiling).rejects.toThrow(/option "ttl".*got -5/);
  });

  it('applies options from forRootAsync', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRootAsync({ useFactory: async () => ({ ttl: 0 }) })],
    }).compile();
    const stampede = moduleRef.get(StampedeService);
    let runs = 0;
    await stampede.run('k', () => ++runs);
    await stampede.run('k', () => ++runs);
    expect(runs).toBe(2);
  });

  it('rejects invalid @Coalesce options where the decorator is applied', () => {
    expect(() => Coalesce({ ttl: -1 })).toThrow(/option "ttl".*got -1/);
    expect(() => Coalesce({ keyHeaders: 'x' } as never)).toThrow(/option "keyHeaders"/);
    expect(() => Coalesce({ tl: 1 } as never)).toThrow(/option "tl"/);
  });

  it('is global by default, so feature modules can use the interceptor without importing it', async () => {
    @Controller('feature')
    @UseInterceptors(StampedeInterceptor)
    class FeatureController {
      calls = 0;
      @Get()
      get() {
        return { n: ++this.calls };
      }
    }
    @Module({ controllers: [FeatureController] })
    class FeatureModule {}
    const running = await startApp('express', { imports: [StampedeModule.forRoot(), FeatureModule] });
    try {
      await request(`${running.url}/feature`);
      const second = await request(`${running.url}/feature`);
      expect(second.text).toBe('{"n":1}');
      expect(second.headers['cache-status']).toMatch(/; hit;/);
    } finally {
      await running.close();
    }
  });
});

describe.each(PLATFORMS)('cacheStatusHeader: false on %s', (platform) => {
  it('adds no Cache-Status header but still coalesces and stores', async () => {
    @Controller()
    @UseInterceptors(StampedeInterceptor)
    class CountController {
      calls = 0;
      @Get('count')
      count() {
        return { n: ++this.calls };
      }
    }
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ cacheStatusHeader: false })],
      controllers: [CountController],
    });
    try {
      const first = await request(`${running.url}/count`);
      const second = await request(`${running.url}/count`);
      expect(second.text).toBe(first.text);
      expect(first.headers['cache-status']).toBeUndefined();
      expect(second.headers['cache-status']).toBeUndefined();
    } finally {
      await running.close();
    }
  });
});

describe('methods option', () => {
  it('coalesces the listed methods only', async () => {
    @Controller()
    @UseInterceptors(StampedeInterceptor)
    class SearchController {
      calls = 0;
      @Get('search')
      get() {
        return { n: ++this.calls };
      }
    }
    const running = await startApp('express', {
      imports: [StampedeModule.forRoot({ methods: ['HEAD'] })],
      controllers: [SearchController],
    });
    try {
      await request(`${running.url}/search`);
      const second = await request(`${running.url}/search`);
      expect(second.text).toBe('{"n":2}');
      expect(second.headers['cache-status']).toBeUndefined();
    } finally {
      await running.close();
    }
  });
});
