import { CoreLogger } from '../../../lib/core/guarded-store';
import { RedisOptions, validateRedisOptions } from '../../../lib/redis/redis.options';
import { RedisTier } from '../../../lib/redis/redis.tier';

/** A logger that keeps its lines, to count them. */
export class RecordingLogger implements CoreLogger {
  readonly lines: string[] = [];
  warn(message: string): void {
    this.lines.push(`warn: ${message}`);
  }
  log(message: string): void {
    this.lines.push(`log: ${message}`);
  }
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }
}

/**
 * Tiers made in the test process, each with its own connections: as many
 * "instances" as a test needs, all closed by `closeAll`.
 */
export class Tiers {
  private readonly made: RedisTier[] = [];

  /**
   * A tier on `url`. Resolves once it is connected and subscribed, or after
   * `wait` ms if Redis cannot be reached (it then works without it).
   */
  async make(
    url: string,
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
