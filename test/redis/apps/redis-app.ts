import { ConsoleLogger, DynamicModule, INestApplication, LogLevel, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { StampedeModule, StampedeOptionsError } from '../../../lib';
import { RedisOptions, validateRedisOptions } from '../../../lib/redis/redis.options';
import { STAMPEDE_OPTIONS } from '../../../lib/nest/stampede.constants';
import { StampedeModuleOptions } from '../../../lib/nest/options/stampede.options';
import { resolveStampedeOptions } from '../../../lib/nest/options/stampede.validation';

/** True once `StampedeModule.forRoot()` accepts the `redis` option itself. */
function redisOptionWired(): boolean {
  try {
    resolveStampedeOptions({ redis: { url: 'redis://127.0.0.1:1' } });
    return true;
  } catch (error) {
    if (error instanceof StampedeOptionsError && error.option === 'redis') return false;
    throw error;
  }
}

/**
 * Builds a Nest app whose `StampedeModule` has the `redis` option. Through
 * `forRoot({ redis })` when the module accepts it; until then the validated
 * options are given to the engine directly (the same object `forRoot` would
 * resolve to).
 */
export async function createRedisApp(
  metadata: ModuleMetadata,
  options: StampedeModuleOptions,
  redis: RedisOptions,
  logLevels: LogLevel[] = ['warn', 'error'],
): Promise<INestApplication> {
  const wired = redisOptionWired();
  const stampede: DynamicModule = StampedeModule.forRoot(
    wired ? ({ ...options, redis } as StampedeModuleOptions) : options,
  );
  const builder = Test.createTestingModule({ ...metadata, imports: [...(metadata.imports ?? []), stampede] });
  if (!wired) {
    builder
      .overrideProvider(STAMPEDE_OPTIONS)
      .useValue({ ...resolveStampedeOptions(options), redis: validateRedisOptions(redis) });
  }
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication();
  // The testing module would keep only errors; the multi-instance suite reads the warnings and notices.
  app.useLogger(new ConsoleLogger({ logLevels, colors: false }));
  return app;
}
