import { Observable } from 'rxjs';
import { Answer, answerFromEntry, collected, valueOrNothing } from './answer';
import { CoreContext } from './context';
import { FlightCoordinator } from './coordinator';
import { EventLog, StampedeEventType, StampedeEvent, StampedeListener, StampedeStats } from './events';
import { isEntry } from './freshness';
import { CoreLogger, GuardedStore } from './guarded-store';
import { MAX_KEY_LENGTH, boundKey } from './hash';
import { Batches, FetchMissing } from './batch';
import { BatchLoader, createBatchLoader } from './batch-loader';
import { Leading } from './leading';
import { CallerPaths } from './paths';
import { RunPolicy } from './policy';
import { BackgroundRefresh } from './refresh';
import { SingleFlight, Work } from './single-flight';
import { Flight } from './flight';
import { MaybePromise, StampedeStore, StoredEntry, isPromiseLike } from './store';
import { TagClock, TagIndex } from './tags';
import { KeyMarks } from './key-marks';
import { FlightObserver } from './observer';
import { Waiting } from './waiting';
import { Writes } from './writes';

export type { RunPolicy } from './policy';
export type { Answer, Lookup, Outcome } from './answer';

/** What the coalescer needs. */
export interface CoalescerDeps {
  store: StampedeStore;
  logger: CoreLogger;
  now?: () => number;
  /** Spans the single flight across instances (Redis lease); in-process only without it. */
  coordinator?: FlightCoordinator;
  /** Keys in flight at most; a caller beyond runs uncoalesced. 0: no bound. */
  maxInFlight?: number;
  /** Callers waiting on one key at most; one beyond runs uncoalesced. 0: no bound. */
  maxWaiters?: number;
  /** Milliseconds an asynchronous store call may take before it counts as failed. 0: no bound. */
  storeTimeout?: number;
  /** Keys remembered as uncacheable (hit-for-miss), and as failed recently, at most. Default 10 000 each. */
  maxMarks?: number;
  /** Watches flights (OpenTelemetry traces and timings); nothing is paid without one. */
  observer?: FlightObserver;
  /** Where tag invalidations are kept: in process by default; the Redis tier shares them across instances. */
  tags?: TagIndex;
  /** The random source of XFetch and jitter (injectable for tests). */
  random?: () => number;
}

const bounded = (key: string) => (key.length > MAX_KEY_LENGTH ? boundKey(key) : key);

/**
 * The engine's facade: a store in front of a single flight.
 *
 * A caller joins the flight in progress for its key if there is one
 * (`collapsed`), else is answered from the store while the value is fresh
 * (`hit`) or stale (`stale`, one refresh starts), else becomes the leader and
 * runs the work (`miss`); a result is stored when its policy's decision says
 * so. Errors reach every waiter of their flight and are never stored. The
 * store is guarded: when it fails the engine works as if nothing were cached.
 * Bounds (`maxInFlight`, `maxWaiters`), `waitTimeout` and unshareable results
 * make a caller run its own call rather than queue without end (`bypass`).
 * Keys over 1024 characters are bounded here, for every entry point.
 */
export class Coalescer {
  readonly store: GuardedStore;
  readonly tags: TagIndex;
  private readonly core: CoreContext;
  private readonly flights = new SingleFlight();
  private readonly events = new EventLog();
  private readonly writes: Writes;
  private readonly leading: Leading;
  private readonly waiting: Waiting;
  private readonly refresh: BackgroundRefresh;
  private readonly batches: Batches;
  private readonly paths: CallerPaths;
  private readonly now: () => number;

  constructor(deps: CoalescerDeps) {
    this.store = new GuardedStore(deps.store, deps.logger, deps.storeTimeout ?? 0);
    this.now = deps.now ?? (() => Date.now());
    this.tags = deps.tags ?? new TagClock(this.now);
    this.core = new CoreContext(
      this.store,
      this.flights,
      this.events,
      this.tags,
      new KeyMarks(deps.maxMarks ?? 10_000),
      new KeyMarks(deps.maxMarks ?? 10_000),
      deps.logger,
      this.now,
      deps.random ?? Math.random,
      { maxInFlight: deps.maxInFlight ?? 0, maxWaiters: deps.maxWaiters ?? 0 },
      deps.coordinator,
      deps.observer,
    );
    this.writes = new Writes(this.core);
    this.leading = new Leading(this.core, this.writes);
    this.waiting = new Waiting(this.core, this.leading);
    this.refresh = new BackgroundRefresh(this.core, this.leading);
    this.paths = new CallerPaths(this.core, this.waiting, this.leading, this.refresh);
    this.batches = new Batches(this.core, this.leading, this.refresh, (key, work, policy) =>
      this.value(key, work, policy),
    );
  }

  /** Number of keys whose work is in progress. */
  inFlight(): number {
    return this.flights.size;
  }

  /** Number of callers waiting on the flight of `key` (the leader included); 0 if none. */
  waiters(key: string): number {
    return this.flights.waiters(bounded(key));
  }

  /** Counts since start and what is in flight now. */
  stats(): StampedeStats {
    return { ...this.events.counts, inFlight: this.flights.size, waiting: this.flights.waiting() };
  }

  /** Calls `listener` for every event; returns a function that stops it. */
  on(listener: StampedeListener): () => void {
    return this.events.on(listener);
  }

  /** Counts an event and tells the listeners (a throwing listener is ignored). */
  report(type: StampedeEventType, key: string, detail?: Omit<StampedeEvent, 'type' | 'key'>): void {
    this.events.report(type, key, detail);
  }

  /**
   * Runs `work` once for all concurrent callers of `key` and answers this
   * one: synchronously when it can (a hit in a synchronous store, a
   * synchronous work), else as a Promise. Throws (or rejects) what the work did.
   */
  run<T>(key: string, work: Work<T>, policy: RunPolicy<T>): MaybePromise<Answer<T>> {
    key = bounded(key);
    const hit = this.paths.hitEntry(key, policy);
    if (hit !== undefined) return answerFromEntry(hit, 'hit');
    // Settled synchronously (a synchronous work, a synchronous store): answered without a Promise.
    return collected((sink) => this.paths.into(key, work, policy, sink));
  }

  /**
   * `run` for callers that want the value alone (`StampedeService.run`,
   * `@Coalesce` methods): a hit, a cheap join and the leader of a key with
   * nothing stored allocate no answer and no sink.
   */
  value<T>(key: string, work: Work<T>, policy: RunPolicy<T>): MaybePromise<T> {
    key = bounded(key);
    // The cheap join first, for callers that have not tried `joinInFlight` (a method whose shape is not known yet).
    const flight = this.flights.find<T>(key);
    if (flight !== undefined && this.waiting.joinsCheaply(flight, policy)) return this.waiting.joinPromise(flight);
    return this.valueOtherwise(key, flight, work, policy);
  }

  /** `value` for a caller that does not join cheaply; `key` is bounded, `flight` its flight if any. */
  private valueOtherwise<T>(
    key: string,
    flight: Flight<T> | undefined,
    work: Work<T>,
    policy: RunPolicy<T>,
  ): MaybePromise<T> {
    // A flight of `key` answers what the store would (the store holds at most its pending write).
    if (flight !== undefined) {
      const hit = this.paths.hitEntry(key, policy);
      if (hit !== undefined) return hit.v;
    } else {
      const found = this.paths.lookup(key, policy);
      if (found === 'absent') {
        if (this.leading.leadsCheaply(key, policy)) return this.leading.leadValue(key, work, policy);
      } else if (found !== undefined) return found.v;
    }
    // The store was asked for a hit above already: only the full choice of path is left.
    const answer = collected<T>((sink) => this.paths.into(key, work, policy, sink));
    return isPromiseLike(answer) ? answer.then(valueOrNothing) : valueOrNothing(answer);
  }

  /** The shared Promise of a flight of `key` this caller may join cheaply (see `Waiting.joinsCheaply`), else `undefined`. */
  joinInFlight<T>(key: string, policy: RunPolicy<T>): Promise<T> | undefined {
    const flight = this.cheapFlight(key, policy);
    return flight === undefined ? undefined : this.waiting.joinPromise(flight);
  }

  /** The flight of `key` a caller under `policy` may join cheaply, if any; join it with `joinAgain`. */
  cheapFlight<T>(key: string, policy: RunPolicy<T>): Flight<T> | undefined {
    const flight = this.flights.find<T>(bounded(key));
    return flight !== undefined && this.waiting.joinsCheaply(flight, policy) ? flight : undefined;
  }

  /**
   * Joins cheaply a flight `cheapFlight` gave (for a policy it was given
   * for), while it is still its key's flight and has room; else `undefined`.
   */
  joinAgain<T>(flight: Flight<T>): Promise<T> | undefined {
    return this.waiting.joinAgain(flight);
  }

  /**
   * Batched single flight: the values of `keys` (aligned), each coalesced and
   * stored on its own; the keys neither fresh nor in flight are fetched by
   * one call of `fetchMissing`. See `Batches`.
   */
  runMany<T>(keys: readonly string[], fetchMissing: FetchMissing<T>, policy: RunPolicy<T>): Promise<T[]> {
    return this.batches.run(keys, fetchMissing, policy);
  }

  /** A DataLoader on `runMany`: keys asked in one tick, by any caller, go out as one batch. */
  loader<T>(fetchMissing: FetchMissing<T>, policy: RunPolicy<T>): BatchLoader<T> {
    return createBatchLoader((keys, fetch) => this.batches.each(keys, fetch, policy), fetchMissing);
  }

  /** `run` as an Observable: each subscription is one caller; an Observable work's values all reach it. */
  run$<T>(key: string, work: Work<T>, policy: RunPolicy<T>): Observable<Answer<T>> {
    const at = bounded(key);
    return new Observable<Answer<T>>((subscriber) => this.paths.into(at, work, policy, subscriber));
  }

  /**
   * A fresh, valid value of `key` in a synchronous store, as a `hit`
   * (reported); `undefined` when there is none. A value `accept` turns down
   * (say, another variant of a response) is handed back as `declined`, and
   * not counted as a hit.
   */
  peek<T>(key: string, policy: RunPolicy<T>): Answer<T> | undefined;
  peek<T>(key: string, policy: RunPolicy<T>, accept: (value: T) => boolean): Answer<T> | { declined: T } | undefined;
  peek<T>(key: string, policy: RunPolicy<T>, accept?: (value: T) => boolean): Answer<T> | { declined: T } | undefined {
    const hit = this.paths.hitEntry(bounded(key), policy, accept);
    if (hit === undefined || 'declined' in hit) return hit;
    return answerFromEntry(hit, 'hit');
  }

  /** The fresh stored value for `key`, if any. */
  get<T>(key: string): MaybePromise<T | undefined> {
    const cached = this.store.get(bounded(key));
    const unwrap = (entry: StoredEntry | undefined) =>
      isEntry(entry) && entry.e > this.now() && this.tags.isValid(entry) ? (entry.v as T) : undefined;
    return isPromiseLike(cached) ? Promise.resolve(cached).then(unwrap) : unwrap(cached);
  }

  /** Stores `value` under `key` for `ttl` ms; answers whether the store accepted it. */
  set<T>(key: string, value: T, ttl: number): MaybePromise<boolean> {
    const now = this.now();
    return this.store.set(bounded(key), { v: value, e: now + ttl, t: now }, ttl);
  }

  /** Drops every value stored with one of `tags` (flights in progress store nothing tagged so). */
  invalidateTags(tags: readonly string[]): void {
    this.tags.invalidate(tags);
  }

  /**
   * Drops the stored value of `key`; a flight in progress for it still answers
   * its waiters but stores nothing, and the next caller starts afresh. With
   * `strict`, a store failure is thrown instead of answered as `false`.
   */
  invalidate(key: string, strict = false): MaybePromise<unknown> {
    key = bounded(key);
    this.flights.forget(key);
    this.core.uncacheable.forget(key);
    this.core.failedRecently.forget(key);
    // A write still in progress would land after the delete and bring the value back.
    const pending = this.writes.pendingFor(key);
    if (pending) return Promise.resolve(pending).then(() => this.store.delete(key, strict));
    return this.store.delete(key, strict);
  }

  /** `invalidate` for every key that starts with `prefix`; needs a store that can list its keys. */
  async invalidatePrefix(prefix: string): Promise<number> {
    this.flights.forgetPrefix(prefix);
    this.core.uncacheable.forgetPrefix(prefix);
    this.core.failedRecently.forgetPrefix(prefix);
    const deletePrefix = this.store.deletePrefix;
    if (!deletePrefix) {
      throw new Error(
        'nestjs-stampede: this store cannot list its keys, so invalidate({ prefix }) is unavailable; invalidate keys one by one',
      );
    }
    // Writes still in progress would land after the delete and bring their values back.
    const pending = this.writes.pendingWithPrefix(prefix);
    if (pending.length > 0) await Promise.allSettled(pending);
    return deletePrefix(prefix);
  }
}
