import { CoreContext } from './context';
import { sha256 } from './hash';
import { Leading } from './leading';
import { RunPolicy, failSafeThrottle } from './policy';
import { Work } from './single-flight';
import { StoredEntry } from './store';

/**
 * Background refresh: one flight per key that nobody waits on, started by a
 * stale hit (stale-while-revalidate) or early by XFetch. Callers answered
 * with the stale value do not wait for it; callers that find the value past
 * stale join it, and may still fall back on that value when it fails. A
 * failed refresh keeps the stale value and backs off.
 */
export class BackgroundRefresh {
  /** Keys whose refresh failed, and until when not to try again. */
  private readonly backoff = new Map<string, number>();

  constructor(
    private readonly core: CoreContext,
    private readonly leading: Leading,
  ) {}

  start<T>(
    key: string,
    work: Work<T>,
    policy: RunPolicy<T>,
    trigger: 'stale' | 'early',
    current: StoredEntry<T>,
  ): void {
    const core = this.core;
    if (core.flights.find(key) || core.failedRecently.has(key, core.now())) return;
    if (core.limits.maxInFlight > 0 && core.flights.size >= core.limits.maxInFlight) return;
    core.events.report('refresh', key, { trigger });
    const flight = this.leading.startFlight(key, work, policy, 'refresh', current);
    flight.settledPromise().catch((error: unknown) => {
      core.events.report('error', key, { error });
      core.failedRecently.mark(key, failSafeThrottle(policy as RunPolicy<unknown>), core.now());
      core.logger.warn(
        `refresh of key #${sha256(key).slice(0, 12)} failed (${error instanceof Error ? error.message : String(error)}); serving the stale value`,
      );
    });
  }
}
