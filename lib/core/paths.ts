import { AnswerSink, Teardown, answerFromEntry } from './answer';
import { CoreContext } from './context';
import { entryState, isEntry, refreshesEarly, usableOnError } from './freshness';
import { Leading } from './leading';
import { RunPolicy } from './policy';
import { BackgroundRefresh } from './refresh';
import { Work } from './single-flight';
import { StoredEntry, isPromiseLike } from './store';
import { Waiting } from './waiting';

/**
 * Which path one caller takes (only the choice; each path lives in its own
 * file): join the flight in progress, be answered from the store (fresh,
 * stale with a refresh behind it, or the old value standing in after a
 * failure), or lead.
 */
export class CallerPaths {
  constructor(
    private readonly core: CoreContext,
    private readonly waiting: Waiting,
    private readonly leading: Leading,
    private readonly refresh: BackgroundRefresh,
  ) {}

  /** Chooses the path of one caller: join, answer from the store, or lead. */
  into<T>(key: string, work: Work<T>, policy: RunPolicy<T>, sink: AnswerSink<T>): Teardown {
    // A background refresh is not waited on by callers the store can still answer (stale).
    const flight = this.core.flights.find<T>(key);
    if (flight !== undefined && flight.kind === 'lead') return this.waiting.join(flight, work, policy, sink);
    if (policy.ttl <= 0 && !policy.freshnessFor) return this.leading.lead(key, work, policy, sink);
    const cached = this.core.store.get(key);
    if (!isPromiseLike(cached)) return this.fromStore(key, cached, work, policy, sink);
    let closed = false;
    let inner: Teardown;
    cached.then((entry) => {
      if (!closed) inner = this.fromStore(key, entry, work, policy, sink);
    });
    return () => {
      closed = true;
      inner?.();
    };
  }

  /** Answers from what the store had for `key`: fresh, stale, or not at all (join or lead). */
  private fromStore<T>(
    key: string,
    cached: StoredEntry | undefined,
    work: Work<T>,
    policy: RunPolicy<T>,
    sink: AnswerSink<T>,
  ): Teardown {
    const now = this.core.now();
    const entry = this.core.usable(cached, policy);
    const state = entry ? entryState(entry, now) : 'dead';
    if (entry && state === 'fresh') {
      if (policy.earlyRefresh && refreshesEarly(entry, now, policy.earlyRefresh.beta, this.core.random)) {
        this.refresh.start(key, work, policy, 'early', entry);
      }
      this.core.events.report('hit', key);
      this.core.observer?.answered(key, 'hit');
      sink.next(answerFromEntry(entry, 'hit'));
      sink.complete();
      return undefined;
    }
    if (entry && state === 'stale') {
      this.refresh.start(key, work, policy, 'stale', entry);
      this.core.events.report('stale', key, { staleReason: 'revalidate' });
      this.core.observer?.answered(key, 'stale');
      sink.next(answerFromEntry(entry, 'stale', 'revalidate'));
      sink.complete();
      return undefined;
    }
    // Join a flight in progress (a background refresh, or one that started while the store answered).
    const flight = this.core.flights.find<T>(key);
    if (flight !== undefined) return this.waiting.join(flight, work, policy, sink);
    if (entry && state === 'fallback-only' && this.core.failedRecently.has(key, now)) {
      // The last call failed moments ago: the old value stands in again rather than a retry per caller.
      this.core.events.report('stale', key, { staleReason: 'error' });
      sink.next(answerFromEntry(entry, 'stale', 'error'));
      sink.complete();
      return undefined;
    }
    return this.leading.lead(key, work, policy, sink, usableOnError(entry, now) ? entry : undefined);
  }

  /**
   * What a synchronous store says at once, for a caller that wants the value
   * alone: a fresh hit (reported), `'absent'` when nothing is stored for `key`
   * (or nothing ever is: `ttl` 0), or `undefined` when only `into` can tell.
   */
  lookup<T>(key: string, policy: RunPolicy<T>): StoredEntry<T> | 'absent' | undefined {
    if (policy.ttl <= 0 && !policy.freshnessFor) return 'absent';
    if (!this.core.store.synchronous) return undefined;
    const cached = this.core.store.get(key) as StoredEntry | undefined;
    if (cached === undefined) return 'absent';
    return policy.earlyRefresh ? undefined : (this.hit(key, cached, policy) as StoredEntry<T> | undefined);
  }

  /** The hit path: no closures, no Promise; reports the hit. */
  hitEntry<T>(key: string, policy: RunPolicy<T>): StoredEntry<T> | undefined;
  hitEntry<T>(
    key: string,
    policy: RunPolicy<T>,
    accept: ((value: T) => boolean) | undefined,
  ): StoredEntry<T> | { declined: T } | undefined;
  hitEntry<T>(
    key: string,
    policy: RunPolicy<T>,
    accept?: (value: T) => boolean,
  ): StoredEntry<T> | { declined: T } | undefined {
    if (!this.core.store.synchronous || policy.earlyRefresh || (policy.ttl <= 0 && !policy.freshnessFor))
      return undefined;
    const cached = this.core.store.get(key) as StoredEntry | undefined;
    return cached === undefined ? undefined : this.hit(key, cached, policy, accept);
  }

  /** `cached` as a hit (reported) when it is fresh and usable; a value `accept` turns down comes back `declined`. */
  private hit<T>(
    key: string,
    cached: StoredEntry,
    policy: RunPolicy<T>,
    accept?: (value: T) => boolean,
  ): StoredEntry<T> | { declined: T } | undefined {
    if (!isEntry(cached) || cached.e <= this.core.now() || this.core.usable(cached, policy) === undefined) {
      return undefined;
    }
    if (accept !== undefined && !accept(cached.v as T)) return { declined: cached.v as T };
    this.core.events.report('hit', key);
    this.core.observer?.answered(key, 'hit');
    return cached as StoredEntry<T>;
  }
}
