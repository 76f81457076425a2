import { Injectable } from '@nestjs/common';
import { promiseDeadline } from '../../core/deadline';
import { StampedeEngine } from '../stampede.engine';

/** What `StampedeHealthIndicator.isHealthy` answers: `@nestjs/terminus`'s indicator result shape. */
export type StampedeHealth<Key extends string = string> = Record<
  Key,
  { status: 'up' | 'down'; reason?: string; redisRoundTripMs?: number }
>;

/** Milliseconds a health probe of Redis may take. */
const PROBE_TIMEOUT = 1_000;

/**
 * A health indicator for `@nestjs/terminus` (which it does not import: it
 * answers terminus's result shape): `up`, or `down` with the reason (Redis
 * unreachable, the store failing). Never throws and never makes a request
 * fail: requests are served, coalesced, through either outage. With the
 * `redis` option, `redisRoundTripMs` is the time of a `PING`.
 *
 * @example
 * ```ts
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.stampede.isHealthy('cache')]);
 * }
 * ```
 */
@Injectable()
export class StampedeHealthIndicator {
  constructor(private readonly engine: StampedeEngine) {}

  async isHealthy<Key extends string = 'stampede'>(key: Key = 'stampede' as Key): Promise<StampedeHealth<Key>> {
    const result = (status: 'up' | 'down', detail: { reason?: string; redisRoundTripMs?: number } = {}) =>
      ({ [key]: { status, ...detail } }) as StampedeHealth<Key>;
    const redis = this.engine.redis;
    if (redis) {
      if (redis.connection.isDown) return result('down', { reason: 'Redis unreachable' });
      const started = performance.now();
      try {
        await promiseDeadline(redis.connection.command(['PING']), PROBE_TIMEOUT, () => new Error('no answer'));
      } catch {
        return result('down', { reason: 'Redis unreachable' });
      }
      return result('up', { redisRoundTripMs: Math.round((performance.now() - started) * 100) / 100 });
    }
    if (this.engine.coalescer.store.isDown) return result('down', { reason: 'store failing' });
    return result('up');
  }
}
