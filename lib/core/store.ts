/**
 * What the coalescer keeps in a store: the value and when it stops being fresh.
 * A small envelope, so a store that ignores TTLs (or rounds them) can't serve
 * a value past its time, and so a hit can tell how long it has left.
 *
 * @example
 * ```ts
 * const entry: StoredEntry<User> = { v: user, e: Date.now() + 5_000 };
 * ```
 */
export interface StoredEntry<T = unknown> {
  /** The value. */
  v: T;
  /** Epoch milliseconds after which the value is no longer fresh. */
  e: number;
  /** Epoch ms when the work that produced it started (its age counts from there). */
  t?: number;
  /** Epoch ms until which it may be served stale while one refresh runs (`staleTtl`). */
  s?: number;
  /** Epoch ms until which it may stand in for a failed call (`staleIfError`). */
  f?: number;
  /** Milliseconds the work took (XFetch's delta). */
  d?: number;
  /** Tags it was stored with, for `invalidateTags`. */
  g?: string[];
}

/**
 * Marks an object as a native `StampedeStore`, used as it is (not wrapped in
 * Keyv): set `readonly [STAMPEDE_STORE] = true` on a class implementing it.
 *
 * @example
 * ```ts
 * class MyStore implements StampedeStore {
 *   readonly [STAMPEDE_STORE] = true;
 *   get(key: string) { ... } set(key: string, entry: StoredEntry, ttl: number) { ... } delete(key: string) { ... }
 * }
 * ```
 */
export const STAMPEDE_STORE = Symbol.for('nestjs-stampede.store');

/** A value that may or may not come back synchronously. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The port the coalescer stores through. The in-process store answers
 * synchronously, which keeps the hit path free of `await`s; adapters for
 * cache-manager and Keyv answer with Promises.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ store: new MyStore() }); // see STAMPEDE_STORE
 * ```
 */
export interface StampedeStore {
  get(key: string): MaybePromise<StoredEntry | undefined>;
  set(key: string, entry: StoredEntry, ttl: number): MaybePromise<unknown>;
  delete(key: string): MaybePromise<unknown>;
  /** Reads many keys in one round trip where the store can (`MGET`, Keyv's `getMany`); aligned with `keys`. */
  getMany?(keys: readonly string[]): MaybePromise<(StoredEntry | undefined)[]>;
  /** Deletes every key that starts with `prefix`, where the store can list its keys. */
  deletePrefix?(prefix: string): MaybePromise<number>;
  /** True if `get` always answers synchronously (then hits skip the Observable machinery). */
  readonly synchronous?: boolean;
}

/** True for a Promise or any thenable. */
export function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<T>).then === 'function'
  );
}
