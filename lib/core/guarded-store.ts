import { promiseDeadline } from './deadline';
import { OutageTracker } from './outage';
import { MaybePromise, StampedeStore, StoredEntry, isPromiseLike } from './store';

// Keyv and cache-manager answer a failed read as a miss: only a value read
// back proves the store healthy, or an outage would log per request.
const isFound = (entry: StoredEntry | undefined) => entry !== undefined;
const accepted = (result: unknown) => result !== false;

/** Where the core reports; the Nest glue passes a Nest `Logger`. */
export interface CoreLogger {
  warn(message: string): void;
  log(message: string): void;
}

/**
 * Shields the coalescer from a broken store: a store call that throws or
 * rejects answers "not cached" instead, so requests are served (still
 * coalesced) while the store is down. One warning per outage, one line when
 * the store answers again, never a line per request.
 */
export class GuardedStore implements StampedeStore {
  private readonly outage: OutageTracker;

  constructor(
    private readonly store: StampedeStore,
    logger: CoreLogger,
    /** Milliseconds an asynchronous call may take before it counts as failed; 0: no bound. */
    private readonly timeout = 0,
  ) {
    this.outage = new OutageTracker(logger, {
      down: (reason) => `store ${reason}; serving uncached, still coalesced, until the store answers again`,
      back: 'store answers again; caching resumed',
    });
  }

  /** True if the guarded store answers `get` synchronously. */
  get synchronous(): boolean {
    return this.store.synchronous === true;
  }

  /** True while the last store call failed. */
  get isDown(): boolean {
    return this.outage.isDown;
  }

  get(key: string): MaybePromise<StoredEntry | undefined> {
    if (this.store.synchronous) {
      // The hit path of the in-process store: no closures, no Promise.
      try {
        const entry = this.store.get(key) as StoredEntry | undefined;
        if (entry !== undefined) this.succeed();
        return entry;
      } catch (error) {
        this.fail(error, 'get');
        return undefined;
      }
    }
    return this.guard(() => this.store.get(key), undefined, 'get', isFound);
  }

  /** Reads `keys` at once where the store can (one round trip), else one by one; a failure reads as misses. */
  getMany(keys: readonly string[]): MaybePromise<(StoredEntry | undefined)[]> {
    const getMany = this.store.getMany;
    const none = () => keys.map(() => undefined);
    if (getMany) {
      return this.guard(
        () => getMany.call(this.store, keys),
        none(),
        'getMany',
        (found) => found.some((entry) => entry !== undefined),
      );
    }
    const each = keys.map((key) => this.get(key));
    return each.some(isPromiseLike) ? Promise.all(each) : (each as (StoredEntry | undefined)[]);
  }

  /** Stores `entry`; answers whether the store accepted it (a failure, or a store's own `false`, is not). */
  set(key: string, entry: StoredEntry, ttl: number): MaybePromise<boolean> {
    if (this.store.synchronous) {
      // The write of every miss in the in-process store: no closure.
      try {
        const written = this.store.set(key, entry, ttl);
        if (!isPromiseLike(written)) {
          this.succeed();
          return accepted(written);
        }
        return this.settled(written, false, 'set').then(accepted);
      } catch (error) {
        this.fail(error, 'set');
        return false;
      }
    }
    const result = this.guard(() => this.store.set(key, entry, ttl), false, 'set');
    return isPromiseLike(result) ? Promise.resolve(result).then(accepted) : accepted(result);
  }

  /**
   * Deletes `key`. With `strict`, a failure is thrown (an invalidation must
   * not look like "nothing was there" while the value stays); it is still
   * logged once per outage.
   */
  delete(key: string, strict = false): MaybePromise<unknown> {
    if (!strict) return this.guard(() => this.store.delete(key), false, 'delete');
    const failed = Symbol('failed');
    // What the store threw or rejected with; unset when it did not answer within `storeTimeout`.
    let thrown: { error: unknown } | undefined;
    const result = this.guard(
      () => {
        try {
          const r = this.store.delete(key);
          return isPromiseLike(r)
            ? Promise.resolve(r).catch((error: unknown) => ((thrown = { error }), Promise.reject(error)))
            : r;
        } catch (error) {
          thrown = { error };
          throw error;
        }
      },
      failed,
      'delete',
    );
    const unwrap = (value: unknown) => {
      if (value !== failed) return value;
      if (thrown === undefined) throw new Error(`store delete failed: no answer within ${this.timeout} ms`);
      const { error } = thrown;
      throw error instanceof Error ? error : new Error(`store delete failed: ${String(error)}`);
    };
    return isPromiseLike(result) ? Promise.resolve(result).then(unwrap) : unwrap(result);
  }

  get deletePrefix(): ((prefix: string) => MaybePromise<number>) | undefined {
    const deletePrefix = this.store.deletePrefix;
    if (!deletePrefix) return undefined;
    return (prefix) => this.guard(() => deletePrefix.call(this.store, prefix), 0, 'deletePrefix');
  }

  private guard<R, F>(
    call: () => MaybePromise<R>,
    fallback: F,
    operation: string,
    provesHealth: (result: R) => boolean = () => true,
  ): MaybePromise<R | F> {
    let result: MaybePromise<R>;
    try {
      result = call();
    } catch (error) {
      this.fail(error, operation);
      return fallback;
    }
    if (!isPromiseLike<R>(result)) {
      if (provesHealth(result)) this.succeed();
      return result;
    }
    return this.settled(result, fallback, operation, provesHealth);
  }

  /** An asynchronous store call, bounded by `timeout`: its result, or `fallback` once it failed. */
  private settled<R, F>(
    result: PromiseLike<R>,
    fallback: F,
    operation: string,
    provesHealth: (result: R) => boolean = () => true,
  ): Promise<R | F> {
    return this.bounded(result, operation).then(
      (value) => {
        if (provesHealth(value)) this.succeed();
        return value;
      },
      (error: unknown) => {
        this.fail(error, operation);
        return fallback;
      },
    );
  }

  /** A hung store must not hang requests: past `timeout` the call counts as failed. */
  private bounded<R>(result: PromiseLike<R>, operation: string): Promise<R> {
    if (this.timeout <= 0) return Promise.resolve(result);
    return promiseDeadline(result, this.timeout, () => new Error(`${operation} took over ${this.timeout} ms`));
  }

  private fail(error: unknown, operation: string): void {
    if (this.outage.isDown) return;
    const reason = error instanceof Error ? error.message : String(error);
    this.outage.fail(`${operation} failed (${reason})`);
  }

  private succeed(): void {
    this.outage.succeed();
  }
}
