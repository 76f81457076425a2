import { Inject, Injectable } from '@nestjs/common';
import { Observable, map } from 'rxjs';
import { valueOf } from '../core/answer';
import { Coalescer, RunPolicy } from '../core/coalescer';
import { LastJoin } from '../core/last-join';
import { StampedeListener, StampedeStats } from '../core/events';
import { FetchMissing } from '../core/batch';
import { BatchLoader } from '../core/batch-loader';
import { Work } from '../core/single-flight';
import { isPromiseLike } from '../core/store';
import { STAMPEDE_OPTIONS } from './stampede.constants';
import { StampedeEngine } from './stampede.engine';
import { ResolvedStampedeOptions } from './options/stampede.options';
import { RunOptions } from './options/stampede.run-options';
import { RunPolicies } from './options/run-policies';
import { StampedeOptionsError } from '../errors';
import { Duration, parseDuration } from '../core/duration';

/**
 * The coalescing engine, for code: `run(key, fn)` runs `fn` once for all
 * concurrent callers of `key` and keeps the result for `ttl` ms. The
 * interceptor and `@Coalesce` use the same instance, so they share its store.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class PricesService {
 *   constructor(private readonly stampede: StampedeService) {}
 *   price(sku: string) {
 *     return this.stampede.run(`price:${sku}`, () => this.upstream.fetchPrice(sku), { ttl: 10_000 });
 *   }
 * }
 * ```
 */
@Injectable()
export class StampedeService {
  private readonly coalescer: Coalescer;
  private readonly defaultTtl: number;
  private readonly policies: RunPolicies;
  // The flight `run` joined last: a stampede's next caller of its key joins it again without a lookup.
  private readonly lastJoin = new LastJoin();

  constructor(engine: StampedeEngine, @Inject(STAMPEDE_OPTIONS) options: ResolvedStampedeOptions) {
    this.coalescer = engine.coalescer;
    this.defaultTtl = engine.defaultTtl;
    this.policies = new RunPolicies(options);
  }

  /**
   * Runs `fn` once for every concurrent caller of `key` and resolves them all
   * with its result (or rejects them all with its error, which is not kept).
   * `fn` may return a value, a Promise or an Observable (its last value).
   *
   * @example
   * ```ts
   * const user = await stampede.run(`user:${id}`, () => this.db.findUser(id), { ttl: 30_000 });
   * ```
   */
  run<T>(key: string, fn: Work<T>, options?: RunOptions): Promise<T> {
    try {
      const policy = this.policies.forRun<T>(key, options);
      // A join first, as most callers of a stampede join: small enough for the JIT to inline here.
      return this.lastJoin.join(this.coalescer, key, policy) ?? this.answer(key, fn, policy);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private answer<T>(key: string, fn: Work<T>, policy: RunPolicy<T>): Promise<T> {
    const value = this.coalescer.value(key, fn, policy);
    return isPromiseLike<T>(value) ? (value as Promise<T>) : Promise.resolve(value);
  }

  /**
   * Like `run`, as an Observable: every concurrent subscriber for `key` shares
   * one execution and sees the same values. A subscriber that unsubscribes does
   * not cancel the work for the others; it is cancelled only when all are gone.
   *
   * @example
   * ```ts
   * stampede.run$('rates', () => this.http.get('/rates').pipe(map((r) => r.data)))
   * ```
   */
  run$<T>(key: string, fn: Work<T>, options?: RunOptions): Observable<T> {
    return this.coalescer.run$(key, fn, this.policies.for<T>(key, options)).pipe(map(valueOf));
  }

  /**
   * Batched get-or-set: resolves with the values of `keys`, in order. Each
   * key is coalesced and stored on its own (a concurrent `run(key)` joins
   * the batch's flight for it, and the other way round); the keys neither
   * fresh in the store nor in flight are fetched together by ONE call of
   * `fetchMissing(missingKeys, signal)`, which answers with a `Map` or an
   * array aligned with `missingKeys`. An `Error` as a value fails that key
   * alone; a key left out fails with `StampedeMissingKeyError`; a throw fails
   * the keys of that call. The store is read in one round trip where it can.
   *
   * @example
   * ```ts
   * const users = await stampede.runMany(
   *   ids.map((id) => `user:${id}`),
   *   async (keys) => new Map((await db.users(keys.map(idOf))).map((u) => [`user:${u.id}`, u])),
   *   { ttl: 30_000 },
   * );
   * ```
   */
  runMany<T>(keys: readonly string[], fetchMissing: FetchMissing<T>, options?: RunOptions): Promise<T[]> {
    try {
      if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) {
        throw new StampedeOptionsError('keys', keys, 'an array of strings', 'StampedeService.runMany');
      }
      if (typeof fetchMissing !== 'function') {
        throw new StampedeOptionsError('fetchMissing', fetchMissing, 'a function', 'StampedeService.runMany');
      }
      return this.coalescer.runMany(
        keys,
        fetchMissing,
        this.policies.for<T>('', options, 'StampedeService.runMany', 'batch'),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * A DataLoader on `runMany`: keys asked through it in the same tick, by any
   * caller (concurrent requests, every field resolver of a GraphQL query),
   * go out as one batch; keys cached or in flight are not fetched at all.
   * `load(key)` fails alone when its key fails. Options are validated here, once.
   *
   * @example
   * ```ts
   * private readonly authors = this.stampede.loader((keys: string[]) => this.db.authorsByKeys(keys), { ttl: 60_000 });
   * @ResolveField() author(@Parent() book: Book) { return this.authors.load(`author:${book.authorId}`); }
   * ```
   */
  loader<T>(fetchMissing: FetchMissing<T>, options?: RunOptions): BatchLoader<T> {
    if (typeof fetchMissing !== 'function') {
      throw new StampedeOptionsError('fetchMissing', fetchMissing, 'a function', 'StampedeService.loader');
    }
    return this.coalescer.loader(fetchMissing, this.policies.for<T>('', options, 'StampedeService.loader', 'batch'));
  }

  /**
   * The fresh stored value of `key`, or `undefined`.
   *
   * @example
   * ```ts
   * const cached = await stampede.get<User>('user:42');
   * ```
   */
  async get<T>(key: string): Promise<T | undefined> {
    return this.coalescer.get<T>(key);
  }

  /**
   * Stores `value` under `key` for `ttl` ms (default: the module's `ttl`).
   * Resolves once the store has it (a failing store is logged, not thrown).
   *
   * @example
   * ```ts
   * await stampede.set('user:42', user, 60_000);
   * ```
   */
  async set<T>(key: string, value: T, ttl: Duration = this.defaultTtl): Promise<void> {
    const ms = typeof ttl === 'string' ? parseDuration(ttl) : ttl;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      throw new StampedeOptionsError(
        'ttl',
        ttl,
        "a finite number of milliseconds > 0 (or a duration string, e.g. '1m')",
        'StampedeService.set',
      );
    }
    await this.coalescer.set(key, value, ms);
  }

  /**
   * Drops the stored value of `key` (or of every key starting with `prefix`,
   * where the store can list its keys: the default in-process store can). A
   * flight in progress for a dropped key still answers its own waiters, but
   * its result is not stored. HTTP keys look like
   * `GET https://api.example.com/articles/42?lang=en` (method, scheme, host, path, query as parsed).
   * Resolves to the number of keys dropped (for a single key: 0 or 1, where
   * the store tells); rejects when the store fails, as the value may remain.
   *
   * @example
   * ```ts
   * await stampede.invalidate('user:42');
   * await stampede.invalidate({ prefix: 'GET https://api.example.com/articles/' });
   * ```
   */
  async invalidate(target: string | { prefix: string }): Promise<number> {
    if (typeof target === 'string') {
      const deleted = await this.coalescer.invalidate(target, true);
      return deleted === false ? 0 : 1;
    }
    if (target === null || typeof target !== 'object' || typeof target.prefix !== 'string') {
      throw new StampedeOptionsError('invalidate', target, 'a key or { prefix: string }', 'StampedeService.invalidate');
    }
    return this.coalescer.invalidatePrefix(target.prefix);
  }

  /**
   * Drops every value stored with one of `tags` (given with the `tags`
   * option of `run`, `@Coalesce` on a method or a route). Works with any store:
   * a tag's invalidation time is kept, and values whose work started before
   * it are treated as gone. In-process: with many instances, call it on each
   * (or use the Redis tier's `invalidate`).
   *
   * @example
   * ```ts
   * await stampede.run(`article:${id}`, () => this.db.article(id), { tags: [`article:${id}`] });
   * stampede.invalidateTags([`article:${id}`]);
   * ```
   */
  invalidateTags(tags: readonly string[]): void {
    if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string')) {
      throw new StampedeOptionsError('invalidateTags', tags, 'an array of strings', 'StampedeService.invalidateTags');
    }
    this.coalescer.invalidateTags(tags);
  }

  /**
   * How many keys have work in progress right now (for diagnostics).
   *
   * @example
   * ```ts
   * logger.debug(`in flight: ${stampede.inFlight()}`);
   * ```
   */
  inFlight(): number {
    return this.coalescer.inFlight();
  }

  /**
   * How many callers wait on the work in progress for `key`, its leader
   * included; 0 when nothing runs for it (for diagnostics and tests).
   *
   * @example
   * ```ts
   * stampede.waiters('GET https://api.example.com/articles/42'); // 37
   * ```
   */
  waiters(key: string): number {
    return this.coalescer.waiters(key);
  }

  /**
   * Counts of what happened since start (hits, misses, coalesced callers,
   * stored values, errors, timeouts, bypasses) and what is in flight now.
   *
   * @example
   * ```ts
   * const { hits, misses, coalesced, inFlight } = stampede.stats();
   * ```
   */
  stats(): StampedeStats {
    return this.coalescer.stats();
  }

  /**
   * Calls `listener` for every event (`hit`, `miss`, `coalesced` with the
   * waiter count, `stored`, `error`, `timeout`, `bypass` with its reason).
   * Returns a function that removes it. A listener must be quick; a throw in
   * it is ignored.
   *
   * @example
   * ```ts
   * const off = stampede.on((event) => {
   *   if (event.type === 'coalesced') metrics.coalesced.inc();
   * });
   * ```
   */
  on(listener: StampedeListener): () => void {
    return this.coalescer.on(listener);
  }
}
