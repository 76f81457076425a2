import { Controller, DynamicModule, Get, Injectable, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { Duration, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';
import { README, readmeSnippet } from '../helpers/readme';

/**
 * `@nestjs/config` is not installed here: these two stand in for it with
 * its API and its behaviour that matters, values read from `process.env`
 * as the strings they are (`undefined` when unset; `getOrThrow` throws then).
 */
@Injectable()
class ConfigService {
  get<T = string>(name: string): T | undefined {
    return process.env[name] as T | undefined;
  }
  getOrThrow<T = string>(name: string): T {
    const value = this.get<T>(name);
    if (value === undefined) throw new TypeError(`Configuration key "${name}" does not exist`);
    return value;
  }
}
@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {
  static forRoot(): DynamicModule {
    return { module: ConfigModule, global: true };
  }
}

// README:config
@Module({
  imports: [
    ConfigModule.forRoot(),
    StampedeModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        ttl: config.getOrThrow<Duration>('CACHE_TTL'), // a string from the environment: '30000', '30s', '5m'
        staleTtl: config.get<Duration>('CACHE_STALE_TTL'), // unset: the default
      }),
    }),
  ],
})
export class AppModule {}
// README:end

let executions = 0;
@Controller('report')
class ReportController {
  @Get()
  report() {
    return { execution: ++executions };
  }
}

it('the README configuration recipe is the code of this file, word for word', () => {
  expect(README).toContain(readmeSnippet(readFileSync(__filename, 'utf8'), 'config'));
});

afterEach(() => {
  delete process.env.CACHE_TTL;
  delete process.env.CACHE_STALE_TTL;
  jest.useRealTimers();
});

describe.each(PLATFORMS)('README configuration recipe (%s)', (platform) => {
  it.each([['30s'], ['30000']])('CACHE_TTL=%s keeps a response 30 seconds', async (ttl) => {
    fakeDateOnly();
    executions = 0;
    process.env.CACHE_TTL = ttl;
    const running = await startApp(platform, {
      imports: [AppModule],
      controllers: [ReportController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    try {
      const body = async () => JSON.parse((await request(`${running.url}/report`)).text);
      expect(await body()).toEqual({ execution: 1 });
      jest.setSystemTime(Date.now() + 29_000);
      expect(await body()).toEqual({ execution: 1 });
      jest.setSystemTime(Date.now() + 2_000); // past ttl; no staleTtl (unset) to serve it stale
      expect(await body()).toEqual({ execution: 2 });
    } finally {
      await running.close();
    }
  });
});

it('CACHE_TTL=30 sec fails bootstrap naming ttl and the value', async () => {
  process.env.CACHE_TTL = '30 sec';
  await expect(Test.createTestingModule({ imports: [AppModule] }).compile()).rejects.toThrow(
    /invalid option "ttl".*got "30 sec" \(in StampedeModule.forRoot\)/,
  );
});
