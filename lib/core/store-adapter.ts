import { MaybePromise, StampedeStore, StoredEntry } from './store';

/** The part of a cache-manager 7 `Cache` the coalescer uses. */
export interface CacheManagerLike {
  get<T>(key: string): Promise<T | undefined | null>;
  set<T>(key: string, value: T, ttl?: number): Promise<T>;
  del(key: string): Promise<boolean>;
  wrap: unknown;
}

/** The part of a `Keyv` instance, a Keyv storage adapter or a `Map` the coalescer uses. */
export interface KeyvLike {
  get(key: string): unknown;
  set(key: string, value: unknown, ttl?: number): unknown;
  delete(key: string): unknown;
}

/** What the `store` option accepts. */
export type StoreInput = StampedeStore | CacheManagerLike | KeyvLike;

function isCacheManager(input: object): input is CacheManagerLike {
  const cache = input as Partial<CacheManagerLike>;
  return typeof cache.wrap === 'function' && typeof cache.del === 'function';
}

function isKeyvInstance(input: object): input is KeyvLike {
  // A Keyv instance carries its options and its storage adapter.
  return 'opts' in input && 'store' in input && typeof (input as Partial<KeyvLike>).delete === 'function';
}

function isStampedeStore(input: object): input is StampedeStore {
  return (input as { [STAMPEDE_STORE]?: true })[STAMPEDE_STORE] === true;
}

/** Marks a class as a native `StampedeStore`, so it is used as it is. */
export const STAMPEDE_STORE = Symbol.for('nestjs-stampede.store');

/** Adapts a cache-manager `Cache` (its TTLs are milliseconds, as ours). */
class CacheManagerStore implements StampedeStore {
  constructor(private readonly cache: CacheManagerLike) {}
  async get(key: string): Promise<StoredEntry | undefined> {
    return (await this.cache.get<StoredEntry>(key)) ?? undefined;
  }
  set(key: string, entry: StoredEntry, ttl: number): Promise<unknown> {
    return this.cache.set(key, entry, ttl);
  }
  delete(key: string): Promise<unknown> {
    return this.cache.del(key);
  }
}

/** Adapts a `Keyv` instance (TTLs in milliseconds). */
class KeyvStore implements StampedeStore {
  constructor(private readonly keyv: KeyvLike) {}
  async get(key: string): Promise<StoredEntry | undefined> {
    return ((await this.keyv.get(key)) as StoredEntry | null | undefined) ?? undefined;
  }
  async set(key: string, entry: StoredEntry, ttl: number): Promise<unknown> {
    return this.keyv.set(key, entry, ttl);
  }
  async delete(key: string): Promise<unknown> {
    return this.keyv.delete(key);
  }
}

/**
 * Turns what the `store` option was given into the coalescer's store port:
 * a cache-manager `Cache` (the one you may give `@nestjs/cache-manager` too),
 * a `Keyv` instance, a Keyv storage adapter (e.g. `new KeyvRedis(...)`) or a
 * `Map`, which are wrapped in a `Keyv` for their TTL handling.
 */
export function toStampedeStore(input: StoreInput): StampedeStore {
  if (isStampedeStore(input)) return input;
  if (isCacheManager(input)) return new CacheManagerStore(input);
  if (isKeyvInstance(input)) return new KeyvStore(input);
  // Loaded only here, so an app that passes no Keyv adapter never loads keyv.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Keyv } = require('keyv') as typeof import('keyv');
  return new KeyvStore(new Keyv({ store: input }) as KeyvLike);
}

/** True when `input` looks like something `toStampedeStore` can adapt. */
export function isStoreInput(input: unknown): input is StoreInput {
  if (input === null || typeof input !== 'object') return false;
  const store = input as Record<string, unknown>;
  return (
    typeof store.get === 'function' &&
    typeof store.set === 'function' &&
    (typeof store.delete === 'function' || typeof store.del === 'function')
  );
}

export type { MaybePromise };
