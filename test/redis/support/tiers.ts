import { CoreLogger } from '../../../lib/core/guarded-store';
import { RecordingLogger } from '../../helpers/logger';
import { RedisOptions, validateRedisOptions } from '../../../lib/redis/redis.options';
import { RedisTier } from '../../../lib/redis/redis.tier';

/**
 * Tiers made in the test process, each with its own connections: as many
 * "instances" as a test needs, all closed by `closeAll`.
 */
export class Tiers {
  private readonly made: RedisTier[] = [];

  /**
   * A tier on `url` (or on the `cluster` / `sentinel` of `options`). Resolves once it is connected and subscribed, or after
   * `wait` ms if Redis cannot be reached (it then works without it).
   */
  async make(
    url: string | undefined,
    options: Omit<RedisOptions, 'url' | 'client'> = {},
    logger: CoreLogger = new RecordingLogger(),
    wait?: number,
  ): Promise<RedisTier> {
    const tier = new RedisTier(validateRedisOptions({ url, ...options }), { logger, maxEntries: 1_000 });
    this.made.push(tier);
    await tier.ready(wait);
    return tier;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.made.splice(0).map((tier) => tier.close()));
  }
}
