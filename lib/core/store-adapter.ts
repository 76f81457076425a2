import { MaybePromise, STAMPEDE_STORE, StampedeStore, StoredEntry } from './store';

/** The part of a cache-manager 7 `Cache` the coalescer uses. */
export interface CacheManagerLike {
  get<T>(key: string): Promise<T | undefined | null>;
  set<T>(key: string, value: T, ttl?: number): Promise<T>;
  del(key: string): Promise<boolean>;
  mget?<T>(keys: string[]): Promise<(T | undefined | null)[]>;
  wrap: unknown;
}

/** The part of a `Keyv` instance, a Keyv storage adapter or a `Map` the coalescer uses. */
export interface KeyvLike {
  get(key: string): unknown;
  set(key: string, value: unknown, ttl?: number): unknown;
  delete(key: string): unknown;
  getMany?(keys: string[]): unknown;
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

type Listener = (...args: unknown[]) => void;
interface Emitter {
  on(event: string, listener: Listener): unknown;
}
function isEmitter(value: unknown): value is Emitter {
  return value !== null && typeof value === 'object' && typeof (value as Emitter).on === 'function';
}

/**
 * Keyv and cache-manager swallow most store errors (they emit an event and
 * answer "not found"), so an outage would look like a run of misses. This
 * base class counts the errors they report and turns a call during which one
 * was reported into a failed call, so the guard can log the outage.
 */
abstract class ReportingStore implements StampedeStore {
  private errors = 0;
  private lastError: unknown;

  protected listen(emitter: unknown, event: string, pick: (...args: unknown[]) => unknown = (error) => error): void {
    if (!isEmitter(emitter)) return;
    emitter.on(event, (...args: unknown[]) => {
      const error = pick(...args);
      if (error === undefined || error === null) return;
      this.errors++;
      this.lastError = error;
    });
  }

  protected async reported<R>(call: () => Promise<R>): Promise<R> {
    const before = this.errors;
    const result = await call();
    if (this.errors !== before)
      throw this.lastError instanceof Error ? this.lastError : new Error(String(this.lastError));
    return result;
  }

  abstract get(key: string): Promise<StoredEntry | undefined>;
  abstract set(key: string, entry: StoredEntry, ttl: number): Promise<unknown>;
  abstract delete(key: string): Promise<unknown>;
}

/**
 * Keyv (and cache-manager, over Keyv) store values as JSON, which drops a
 * field set to `undefined`: an entry for a work that returned `undefined`
 * would come back without its value and read as a miss. Such an entry is
 * written with a mark, and read back with its `undefined` value.
 */
const UNDEFINED_MARK = 'u';

function marked(entry: StoredEntry): StoredEntry {
  return entry.v === undefined ? ({ ...entry, [UNDEFINED_MARK]: 1 } as StoredEntry) : entry;
}

function unmarked(read: unknown): StoredEntry | undefined {
  if (read === null || read === undefined) return undefined;
  if (typeof read !== 'object') return read as StoredEntry; // not an entry: the caller's check makes it a miss
  const entry = read as StoredEntry & { [UNDEFINED_MARK]?: unknown };
  if (entry[UNDEFINED_MARK] !== 1) return entry;
  const restored: Record<string, unknown> = { ...(entry as object), v: undefined };
  delete restored[UNDEFINED_MARK];
  return restored as unknown as StoredEntry;
}

/** Adapts a cache-manager `Cache` (its TTLs are milliseconds, as ours). */
class CacheManagerStore extends ReportingStore {
  constructor(private readonly cache: CacheManagerLike) {
    super();
    const pickError = (event: unknown) => (event as { error?: unknown } | undefined)?.error;
    for (const event of ['get', 'set', 'del']) this.listen(cache, event, pickError);
    for (const keyv of (cache as { stores?: unknown[] }).stores ?? []) this.listen(keyv, 'error');
  }
  get(key: string): Promise<StoredEntry | undefined> {
    return this.reported(async () => unmarked(await this.cache.get<StoredEntry>(key)));
  }
  set(key: string, entry: StoredEntry, ttl: number): Promise<unknown> {
    return this.reported(() => this.cache.set(key, marked(entry), ttl));
  }
  delete(key: string): Promise<unknown> {
    return this.reported(() => this.cache.del(key));
  }
  getMany(keys: readonly string[]): Promise<(StoredEntry | undefined)[]> {
    const mget = this.cache.mget;
    if (!mget) return Promise.all(keys.map((key) => this.get(key)));
    return this.reported(async () => (await mget.call(this.cache, [...keys])).map(unmarked));
  }
}

/** Adapts a `Keyv` instance (TTLs in milliseconds). */
class KeyvStore extends ReportingStore {
  constructor(private readonly keyv: KeyvLike) {
    super();
    this.listen(keyv, 'error');
  }
  get(key: string): Promise<StoredEntry | undefined> {
    return this.reported(async () => unmarked(await this.keyv.get(key)));
  }
  set(key: string, entry: StoredEntry, ttl: number): Promise<unknown> {
    return this.reported(async () => this.keyv.set(key, marked(entry), ttl));
  }
  delete(key: string): Promise<unknown> {
    return this.reported(async () => this.keyv.delete(key));
  }
  getMany(keys: readonly string[]): Promise<(StoredEntry | undefined)[]> {
    const getMany = this.keyv.getMany;
    if (!getMany) return Promise.all(keys.map((key) => this.get(key)));
    return this.reported(async () => ((await getMany.call(this.keyv, [...keys])) as unknown[]).map(unmarked));
  }
}

/**
 * A plain `Map` as a store, without Keyv: synchronous like the default
 * store (hits need no `await`), each entry kept with the time the store
 * drops it. Unbounded, as the `Map` it is: for tests and small fixed key sets.
 */
class MapStore implements StampedeStore {
  readonly synchronous = true;

  constructor(private readonly map: Map<string, unknown>) {}

  get(key: string): StoredEntry | undefined {
    const held = this.map.get(key) as { entry: StoredEntry; until: number } | undefined;
    if (held === undefined || typeof held !== 'object' || typeof held.until !== 'number') return undefined;
    if (held.until > Date.now()) return held.entry;
    this.map.delete(key);
    return undefined;
  }
  set(key: string, entry: StoredEntry, ttl: number): void {
    this.map.set(key, { entry, until: Date.now() + ttl });
  }
  delete(key: string): boolean {
    return this.map.delete(key);
  }
  deletePrefix(prefix: string): number {
    let deleted = 0;
    for (const key of this.map.keys()) if (key.startsWith(prefix) && this.map.delete(key)) deleted++;
    return deleted;
  }
}

/**
 * Turns what the `store` option was given into the coalescer's store port:
 * a cache-manager `Cache` (the one you may give `@nestjs/cache-manager` too),
 * a `Keyv` instance, a Keyv storage adapter (e.g. `new KeyvRedis(...)`) or a
 * `Map` (used as it is, synchronously); a Keyv storage adapter is wrapped in a
 * `Keyv` for its TTL handling (then `keyv` must be installed: the error says so).
 */
export function toStampedeStore(input: StoreInput): StampedeStore {
  if (isStampedeStore(input)) return input;
  if (isCacheManager(input)) return new CacheManagerStore(input);
  if (isKeyvInstance(input)) return new KeyvStore(input);
  // A plain Map only: a Map subclass is a Keyv storage adapter (it may store Keyv's own format).
  if (Object.getPrototypeOf(input) === Map.prototype) return new MapStore(input as unknown as Map<string, unknown>);
  // Loaded only here, so an app that passes no Keyv adapter never loads keyv.
  let Keyv: typeof import('keyv').Keyv;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ({ Keyv } = require('keyv') as typeof import('keyv'));
  } catch {
    throw new Error(
      'nestjs-stampede: the store option was given a Keyv storage adapter, which needs keyv (npm install keyv)',
    );
  }
  // throwOnErrors: the adapter's failures reach the guard instead of reading as misses.
  return new KeyvStore(new Keyv({ store: input, throwOnErrors: true }) as KeyvLike);
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
