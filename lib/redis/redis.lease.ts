import { Observable } from 'rxjs';
import { CoordinatedWrite, FlightCoordinator } from '../core/coordinator';
import { StoredEntry } from '../core/store';
import { LeaseFlight } from './redis.lease-flight';
import { ACQUIRE, COMMIT } from './redis.lease-scripts';
import { RetryQueue } from './redis.retry';
import { RedisStore } from './redis.store';
import { RedisSubscriber } from './redis.subscriber';

/** Releases and fenced writes kept for a retry at most (each is of use for `leaseTtl` only). */
const MAX_RETRIES = 10_000;

/**
 * Options of a `RedisLease`.
 *
 * @example
 * ```ts
 * new RedisLease(store, subscriber, { leaseTtl: 30_000, lockTimeout: 10_000 });
 * ```
 */
export interface RedisLeaseOptions {
  /** Milliseconds a lease lasts (see `RedisOptions.leaseTtl`). Default 10 000. */
  leaseTtl?: number;
  /** Milliseconds a waiter waits before running the work itself, uncached. Default 5000. */
  lockTimeout?: number;
  /** Tag invalidation times: a value another instance stored with an invalidated tag is not answered. */
  tags?: { isValid(entry: StoredEntry): boolean };
}

/**
 * The single flight across instances, on Redis (a `FlightCoordinator`).
 *
 * The in-process leader of a key that missed takes a lease,
 * `SET <prefix>lock:{<tag>}<key> <token> NX PX leaseTtl` (with tracing, the token is
 * followed by the `traceparent` of the holder's flight span, for the waiters
 * of other instances to link to). The holder runs the work,
 * writes the value only while it still holds the lease (a Lua script compares
 * the token: fencing), deletes the lease and publishes on `<prefix>wake:{<tag>}<key>`,
 * all in one script. The other instances wait for that message, polling the
 * value and the lease now and then (jittered) in case it is lost, and answer
 * with the stored value; after `lockTimeout` they run the work themselves
 * without storing, as nginx's `proxy_cache_lock_timeout` does.
 *
 * When the holder's work fails (or its result may not be stored, e.g. a 5xx
 * response) it releases the lease and nothing is stored: the waiters do not
 * share the error (it does not cross the process faithfully, and a failure
 * is not cached in process either). One of them takes the lease and makes
 * its own attempt, the others wait for it: attempts stay one at a time across
 * instances, at most one per instance per burst.
 *
 * When Redis fails (unreachable, slow, restarted), the leader runs the work
 * at once and keeps the result in process (`RedisStore.keepDuringOutage`):
 * requests are still served, coalesced and cached per instance. A lease
 * asked for by a call that timed out may still be granted when Redis
 * resumes; its release is sent when Redis answers again, as is a release or
 * fenced write that failed, so no lease outlives its holder's interest. A
 * holder that dies keeps others waiting until its lease expires (`leaseTtl`)
 * or their `lockTimeout`, whichever comes first.
 *
 * @example
 * ```ts
 * const lease = new RedisLease(store, subscriber, { leaseTtl: 10_000, lockTimeout: 5_000 });
 * new Coalescer({ store, coordinator: lease, logger: new Logger('Stampede') });
 * ```
 */
export class RedisLease implements FlightCoordinator {
  readonly leaseTtl: number;
  readonly lockTimeout: number;
  readonly tags?: { isValid(entry: StoredEntry): boolean };
  private readonly pollBase: number;
  private readonly retries = new RetryQueue(MAX_RETRIES);

  constructor(
    readonly store: RedisStore,
    readonly subscriber: RedisSubscriber | undefined,
    options: RedisLeaseOptions = {},
  ) {
    this.leaseTtl = options.leaseTtl ?? 10_000;
    this.lockTimeout = options.lockTimeout ?? 5_000;
    this.tags = options.tags;
    store.connection.preload(ACQUIRE);
    store.connection.preload(COMMIT);
    store.connection.onBack(() => void this.retries.flush());
    // Polling is the fallback for a lost message: a tenth of the wait, between 20 and 250 ms.
    this.pollBase = Math.min(250, Math.max(20, this.lockTimeout / 10));
  }

  lead<T>(key: string, work: () => Observable<T>, write: CoordinatedWrite<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      const flight = new LeaseFlight(this, key, work, write, subscriber);
      flight.start();
      return () => flight.stop();
    });
  }

  /** Releases and fenced writes waiting for Redis to answer again. */
  get pendingRetries(): number {
    return this.retries.size;
  }

  /**
   * Runs `commit` (a release or a fenced write of `key` by `token`) when
   * Redis answers again, while the lease could still be held.
   */
  retry(key: string, token: string, commit: () => Promise<unknown>): void {
    this.retries.add(`${key}\n${token}`, commit, Date.now() + this.leaseTtl);
  }

  /** Milliseconds to the next poll: jittered, so waiters of many instances do not poll in step. */
  pollDelay(lockPttl: number): number {
    const jittered = this.pollBase * (0.5 + Math.random());
    // A lease about to expire is worth a look right after it does.
    return lockPttl > 0 ? Math.min(jittered, lockPttl + 5) : jittered;
  }
}
