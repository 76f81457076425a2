import { withoutPackage } from '../helpers/absent-package';

/**
 * An optional peer that is not installed is named with its install command
 * when the option that needs it is used, at bootstrap, and is not needed
 * otherwise. Each test loads the library and Nest afresh in a registry where
 * the package cannot be found.
 */

type Lib = typeof import('../../lib');
type Testing = typeof import('@nestjs/testing');

/** Compiles and initializes a module with `options` from the fresh copies of Nest and the library. */
async function bootstrap(options: object): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Test } = require('@nestjs/testing') as Testing;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { StampedeModule } = require('../../lib') as Lib;
  const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot(options)] }).compile();
  try {
    await moduleRef.init();
  } finally {
    await moduleRef.close();
  }
}

describe('a missing optional peer names itself and its install command', () => {
  it('redis: the redis option fails bootstrap with "npm install redis"', async () => {
    await withoutPackage('redis', async () => {
      await expect(bootstrap({ redis: { url: 'redis://127.0.0.1:6379' } })).rejects.toThrow(
        'invalid option "redis": expected the redis package installed (npm install redis), got "(an options object)" (in StampedeModule.forRoot)',
      );
    });
  });

  it('redis: a client of your own (from @redis/client) needs no redis package', async () => {
    await withoutPackage('redis', async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { createClient } = require('@redis/client') as typeof import('@redis/client');
      type RedisOptionsModule = typeof import('../../lib/redis/redis.options');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { validateRedisOptions } = require('../../lib/redis/redis.options') as RedisOptionsModule;
      const client = createClient();
      expect(validateRedisOptions({ client }).client).toBe(client);
    });
  });

  it('redis: an app without the redis option starts without it', async () => {
    await withoutPackage('redis', async () => {
      await expect(bootstrap({ ttl: 1_000 })).resolves.toBeUndefined();
    });
  });

  it('keyv: a Keyv storage adapter as the store fails bootstrap with "npm install keyv"; a plain Map does not need it', async () => {
    await withoutPackage('keyv', async () => {
      class AdapterMap extends Map<string, unknown> {} // a Map subclass is taken as a Keyv storage adapter
      await expect(bootstrap({ store: new AdapterMap() })).rejects.toThrow(/needs keyv \(npm install keyv\)/);
      await expect(bootstrap({ store: new Map() })).resolves.toBeUndefined();
    });
  });

  it('prom-client: metrics: true fails bootstrap with "npm install prom-client"', async () => {
    await withoutPackage('prom-client', async () => {
      await expect(bootstrap({ metrics: true })).rejects.toThrow(/option "metrics".*npm install prom-client/);
    });
  });

  it('@opentelemetry/api: openTelemetry: true fails bootstrap with "npm install @opentelemetry/api"', async () => {
    await withoutPackage('@opentelemetry/api', async () => {
      await expect(bootstrap({ openTelemetry: true })).rejects.toThrow(
        /option "openTelemetry".*npm install @opentelemetry\/api/,
      );
    });
  });
});
