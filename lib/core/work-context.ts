import { Observable, isObservable } from 'rxjs';
import { FlightSignal, readsArguments } from './flight-signal';
import { Freshness } from './freshness';
import { Decision } from './policy';
import { StoredEntry } from './store';

/**
 * What a work function may know and say about the one result it computes
 * (the second argument of a `run()` work; `currentWork()` inside a
 * `@Coalesce` method; `@CurrentWork()`, a parameter, in a route handler).
 *
 * @example
 * ```ts
 * await stampede.run('rates', async (signal, work) => {
 *   const response = await fetch(url, { signal, headers: work.stale ? { 'if-none-match': work.stale.value.etag } : {} });
 *   if (response.status === 304) return work.notModified();
 *   work.setFreshness({ ttl: maxAgeOf(response) });
 *   return { etag: response.headers.get('etag'), rates: await response.json() };
 * }, { staleIfError: 60_000 });
 * ```
 */
export interface WorkContext<T = unknown> {
  /** Aborts when the flight is cancelled or times out. */
  readonly signal: AbortSignal;
  /**
   * The old value of this key, when the store still had one (stale, or
   * standing by for errors). On a route: the body the handler returned, with
   * the validators stored with its response (`etag`, `lastModified`).
   */
  readonly stale?: StaleValue<T>;
  /** This result's freshness instead of the policy's (ms): `ttl`, `staleTtl`, `staleIfError`. */
  setFreshness(freshness: Partial<Freshness>): void;
  /** This result's tags instead of the policy's. */
  setTags(tags: string[]): void;
  /** Share this result with the waiters but store nothing. */
  skipStore(): void;
  /** The upstream said "not modified": returns the old value, stored again as fresh for a new `ttl`. */
  notModified(): T;
}

/** What a work knows of the old value of its key. */
export interface StaleValue<T> {
  readonly value: T;
  /** Epoch ms when the work that produced it started. */
  readonly storedAt?: number;
  /** Epoch ms when it stopped being fresh. */
  readonly expiresAt: number;
  /** Routes: the `ETag` stored with the response (the handler's own, or the one computed from its body). */
  readonly etag?: string;
  /** Routes: the `Last-Modified` the handler set on the response. */
  readonly lastModified?: string;
}

// The work running now, while its synchronous part runs. Not an AsyncLocalStorage: that would
// make every Promise of the app pay for async hooks; a work takes its context before its first await.
let running: WorkContext | undefined;

/**
 * The context of the work starting now (inside a `@Coalesce` method that
 * leads its flight); `undefined` elsewhere. Take it before the first
 * `await` of the method: after that it is another's. A route handler takes
 * `@CurrentWork()` as a parameter instead.
 *
 * @example
 * ```ts
 * @Coalesce({ ttl: 60_000 })
 * async rates(currency: string) {
 *   const work = currentWork(); // before the first await
 *   const rates = await this.upstream.rates(currency);
 *   work?.setFreshness({ ttl: rates.validForMs });
 *   return rates;
 * }
 * ```
 */
export function currentWork<T = unknown>(): WorkContext<T> | undefined {
  return running as WorkContext<T> | undefined;
}

/** Runs `fn` with `context` current for its synchronous part. */
function within<R>(context: WorkContext, fn: () => R): R {
  const outer = running;
  running = context;
  try {
    return fn();
  } finally {
    running = outer;
  }
}

/** One flight's context: what its work said, applied to the decision about its result. */
export class FlightContext<T> implements WorkContext<T> {
  readonly stale?: StaleValue<T>;
  private freshness?: Partial<Freshness>;
  private tags?: string[];
  private skip = false;
  private flightSignal?: FlightSignal;
  /** Set once the work runs here (a coordinator may answer with another instance's value instead). */
  ran = false;

  constructor(old: StoredEntry<T> | undefined) {
    if (old) this.stale = { value: old.v, storedAt: old.t, expiresAt: old.e };
  }

  get signal(): AbortSignal {
    return this.flightSignal!.signal;
  }

  /**
   * Runs `work` with this context current (for an Observable, at each
   * subscription too), handing it the flight's signal and this context, the
   * signal made only when the work can read it.
   */
  call<R>(work: (signal: AbortSignal, context: this) => R, signal: FlightSignal): R {
    this.flightSignal = signal;
    this.ran = true;
    return this.run(readsArguments(work) ? () => work(signal.signal, this) : (work as unknown as () => R));
  }

  setFreshness(freshness: Partial<Freshness>): void {
    this.freshness = { ...this.freshness, ...freshness };
  }

  setTags(tags: string[]): void {
    this.tags = [...tags];
  }

  skipStore(): void {
    this.skip = true;
  }

  notModified(): T {
    if (!this.stale) throw new Error('nestjs-stampede: notModified() needs an old value (work.stale is undefined)');
    return this.stale.value;
  }

  /** The policy's decision, with what the work said. */
  adjust(decision: Decision): Decision {
    if (this.skip) return { ...decision, store: undefined };
    // What the policy refuses to store (a 5xx, a body too big, class instances...), the work cannot store.
    if (!decision.cacheable || (this.freshness === undefined && this.tags === undefined)) return decision;
    const store = decision.store ?? (this.freshness?.ttl ? { ttl: 0 } : undefined);
    if (store === undefined) return decision;
    const adjusted: Decision = { ...decision, store: { ...store, ...this.freshness } };
    if (this.tags) adjusted.tags = this.tags;
    if (adjusted.store!.ttl <= 0) adjusted.store = undefined;
    return adjusted;
  }

  /** Runs `work` with this context current (for an Observable, at each subscription too). */
  run<R>(work: () => R): R {
    const result = within(this, work);
    if (!isObservable(result)) return result;
    return new Observable((subscriber) => within(this, () => result.subscribe(subscriber))) as R;
  }
}
