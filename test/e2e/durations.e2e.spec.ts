import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, RunningApp, request, startApp } from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';

/**
 * Configuration as it arrives from the environment: strings. `@nestjs/config`
 * is not installed here, so the module's `forRootAsync` gets a provider that
 * reads `process.env` the way `ConfigService.get` hands values over (strings,
 * `undefined` when unset).
 */
@Injectable()
class EnvConfig {
  get(name: string): string | undefined {
    return process.env[name];
  }
}
@Module({ providers: [EnvConfig], exports: [EnvConfig] })
class EnvConfigModule {}

const fromEnv = () =>
  StampedeModule.forRootAsync({
    imports: [EnvConfigModule],
    inject: [EnvConfig],
    useFactory: (config: EnvConfig) => ({
      ttl: config.get('STAMPEDE_TEST_TTL') as never,
      staleTtl: config.get('STAMPEDE_TEST_STALE_TTL') as never,
      maxEntries: config.get('STAMPEDE_TEST_MAX_ENTRIES') as never,
    }),
  });

let executions = 0;

@Controller('durations')
class DurationsController {
  @Get('module')
  byModule() {
    return { execution: ++executions };
  }

  @Get('route')
  @Coalesce({ ttl: '1.5s' })
  byRoute() {
    return { execution: ++executions };
  }
}

const ENV = ['STAMPEDE_TEST_TTL', 'STAMPEDE_TEST_STALE_TTL', 'STAMPEDE_TEST_MAX_ENTRIES'];

afterEach(() => {
  for (const name of ENV) delete process.env[name];
  jest.useRealTimers();
});

describe.each(PLATFORMS)('durations from configuration strings (%s)', (platform) => {
  let running: RunningApp;

  beforeEach(async () => {
    fakeDateOnly();
    executions = 0;
    process.env.STAMPEDE_TEST_TTL = '30s';
    process.env.STAMPEDE_TEST_STALE_TTL = '0';
    process.env.STAMPEDE_TEST_MAX_ENTRIES = '100';
    running = await startApp(platform, {
      imports: [fromEnv()],
      controllers: [DurationsController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
  });
  afterEach(() => running.close());

  const body = async (path: string) => JSON.parse((await request(`${running.url}/durations/${path}`)).text);

  it("a module ttl of '30s' from the environment keeps a response 30 seconds, not 30 ms", async () => {
    expect(await body('module')).toEqual({ execution: 1 });
    jest.setSystemTime(Date.now() + 29_000);
    expect(await body('module')).toEqual({ execution: 1 });
    jest.setSystemTime(Date.now() + 2_000);
    expect(await body('module')).toEqual({ execution: 2 });
  });

  it("a route's @Coalesce({ ttl: '1.5s' }) is 1500 ms", async () => {
    expect(await body('route')).toEqual({ execution: 1 });
    jest.setSystemTime(Date.now() + 1_400);
    expect(await body('route')).toEqual({ execution: 1 });
    jest.setSystemTime(Date.now() + 200);
    expect(await body('route')).toEqual({ execution: 2 });
  });
});

describe('durations in run() and the service', () => {
  it("run({ ttl: '2m' }) keeps the value two minutes; '250ms' and '250' are milliseconds; set() takes '1m'", async () => {
    fakeDateOnly();
    const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    const stampede = moduleRef.get(StampedeService);
    let runs = 0;
    const work = () => ++runs;
    try {
      expect(await stampede.run('minutes', work, { ttl: '2m' })).toBe(1);
      jest.setSystemTime(Date.now() + 119_000);
      expect(await stampede.run('minutes', work, { ttl: '2m' })).toBe(1);
      jest.setSystemTime(Date.now() + 2_000);
      expect(await stampede.run('minutes', work, { ttl: '2m' })).toBe(2);

      expect(await stampede.run('ms', work, { ttl: '250ms', staleTtl: '0' })).toBe(3);
      jest.setSystemTime(Date.now() + 300);
      expect(await stampede.run('ms', work, { ttl: '250', staleTtl: '0' })).toBe(4);

      await stampede.set('set', 'kept', '1m');
      jest.setSystemTime(Date.now() + 59_000);
      expect(await stampede.get('set')).toBe('kept');
      jest.setSystemTime(Date.now() + 2_000);
      expect(await stampede.get('set')).toBeUndefined();
      await expect(stampede.set('set', 'x', '1 m' as never)).rejects.toThrow(
        /option "ttl".*got "1 m" \(in StampedeService.set\)/,
      );
    } finally {
      await moduleRef.close();
    }
  });
});

describe('bad duration strings fail with the option, the value and where', () => {
  it.each([['30 sec'], ['-5s'], [''], ['5 m'], ['1e3'], ['5d'], ['.5s']])(
    'module option ttl: %j fails bootstrap (forRootAsync from the environment)',
    async (value) => {
      process.env.STAMPEDE_TEST_TTL = value;
      const compiling = Test.createTestingModule({ imports: [fromEnv()] }).compile();
      await expect(compiling).rejects.toThrow(
        `invalid option "ttl": expected a finite number of milliseconds >= 0 or a duration string ('30000', '250ms', '30s', '1.5s', '5m', '1h'), got ${JSON.stringify(value)} (in StampedeModule.forRoot)`,
      );
    },
  );

  it('a count given as a non-integer string fails naming it', async () => {
    process.env.STAMPEDE_TEST_MAX_ENTRIES = '10.5';
    await expect(Test.createTestingModule({ imports: [fromEnv()] }).compile()).rejects.toThrow(
      /option "maxEntries": expected an integer >= 1 \(a number, or a string of digits\), got "10.5"/,
    );
  });

  it('a boolean given as a string fails naming it and saying how to read one', async () => {
    await expect(
      Test.createTestingModule({
        imports: [StampedeModule.forRoot({ respectCacheControl: 'false' as never })],
      }).compile(),
    ).rejects.toThrow(
      /option "respectCacheControl": expected a boolean \(from a string: value === 'true'\), got "false"/,
    );
  });

  it('@Coalesce with a bad duration throws where it is applied, naming @Coalesce', () => {
    expect(() => Coalesce({ staleTtl: '5 minutes' as never })).toThrow(
      /option "staleTtl".*got "5 minutes" \(in @Coalesce\)/,
    );
  });

  it('run() with a bad duration rejects naming StampedeService.run, and runs nothing', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    const stampede = moduleRef.get(StampedeService);
    let runs = 0;
    try {
      await expect(stampede.run('k', () => ++runs, { timeout: '-5s' as never })).rejects.toThrow(
        /option "timeout".*got "-5s" \(in StampedeService.run\)/,
      );
      expect(runs).toBe(0);
    } finally {
      await moduleRef.close();
    }
  });

  it.each([['timeout'], ['waitTimeout'], ['softTimeout'], ['storeTimeout']])(
    "%s past a Node timer's limit ('600h') fails bootstrap instead of firing at once",
    async (name) => {
      await expect(
        Test.createTestingModule({ imports: [StampedeModule.forRoot({ [name]: '600h' })] }).compile(),
      ).rejects.toThrow(
        new RegExp(
          `option "${name}": expected at most 2147483647 ms \\(~24.8 days: a Node timer's limit\\), got "600h"`,
        ),
      );
    },
  );

  it("a ttl may be longer than a timer's limit ('720h'): nothing waits on it", async () => {
    const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ ttl: '720h' })] }).compile();
    const stampede = moduleRef.get(StampedeService);
    try {
      let runs = 0;
      await stampede.run('k', () => ++runs);
      await stampede.run('k', () => ++runs);
      expect(runs).toBe(1);
    } finally {
      await moduleRef.close();
    }
  });

  it("jitter: '0.5ms' fails (below 1 a jitter is a fraction of the ttl); 0.5 and '250ms' are taken", async () => {
    await expect(
      Test.createTestingModule({ imports: [StampedeModule.forRoot({ jitter: '0.5ms' as never })] }).compile(),
    ).rejects.toThrow(/option "jitter".*a duration with a unit is at least 1 ms, got "0.5ms"/);
    for (const jitter of [0.5, '250ms', '0.5']) {
      const moduleRef = await Test.createTestingModule({
        imports: [StampedeModule.forRoot({ jitter: jitter as never })],
      }).compile();
      await moduleRef.close();
    }
  });

  it("redis.lockTimeout: '5 s' fails bootstrap naming redis.lockTimeout", async () => {
    await expect(
      Test.createTestingModule({
        imports: [StampedeModule.forRoot({ redis: { url: 'redis://127.0.0.1:1', lockTimeout: '5 s' as never } })],
      }).compile(),
    ).rejects.toThrow(/option "redis.lockTimeout".*got "5 s" \(in StampedeModule.forRoot\)/);
  });

  it("redis.lockTimeout: '600h' (past a Node timer's limit) fails bootstrap; redis: { leaseTtl: '10s' } type-checks", async () => {
    await expect(
      Test.createTestingModule({
        imports: [
          StampedeModule.forRoot({ redis: { url: 'redis://127.0.0.1:1', lockTimeout: '600h', leaseTtl: '10s' } }),
        ],
      }).compile(),
    ).rejects.toThrow(/option "redis.lockTimeout": expected an integer number of milliseconds >= 1 and <= 2147483647/);
  });
});
