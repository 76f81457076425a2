import { createCache } from 'cache-manager';
import Keyv from 'keyv';
import { MemoryStore } from '../../lib/core/memory-store';
import { StampedeStore, StoredEntry } from '../../lib/core/store';
import { StoreInput, isStoreInput, toStampedeStore } from '../../lib/core/store-adapter';
import { STAMPEDE_STORE } from '../../lib/core/store';
import { fakeDateOnly } from '../helpers/clock';
import { FlakyAdapter } from '../helpers/stores';

const T0 = 1_700_000_000_000;
const TTL = 1000;

/** Fakes only the clock (Date), so real Promises and I/O keep working. */
const fakeClock = () => fakeDateOnly(T0);

describe('toStampedeStore', () => {
  afterEach(() => jest.useRealTimers());

  it('uses a store marked as a native StampedeStore as it is', () => {
    const native: StampedeStore & { [STAMPEDE_STORE]: true } = {
      [STAMPEDE_STORE]: true,
      get: () => undefined,
      set: () => undefined,
      delete: () => false,
    };
    expect(toStampedeStore(native)).toBe(native);
  });

  it('uses the MemoryStore as it is', () => {
    const memory = new MemoryStore(10);
    expect(toStampedeStore(memory)).toBe(memory);
  });

  const inputs: [string, () => { input: StoreInput; peek: (key: string) => Promise<unknown> }][] = [
    [
      'a cache-manager 7 Cache',
      () => {
        const cache = createCache();
        return { input: cache, peek: (key) => cache.get(key) };
      },
    ],
    [
      'a cache-manager 7 Cache over a Keyv with a Map',
      () => {
        const cache = createCache({ stores: [new Keyv({ store: new Map() })] });
        return { input: cache, peek: (key) => cache.get(key) };
      },
    ],
    [
      'a Keyv instance',
      () => {
        const keyv = new Keyv();
        return { input: keyv, peek: (key) => keyv.get(key) };
      },
    ],
    [
      'a Map',
      () => {
        const map = new Map<string, unknown>();
        // The Map is used as it is (no Keyv): each entry kept with when the store drops it.
        return { input: map, peek: (key) => Promise.resolve((map.get(key) as { entry?: unknown } | undefined)?.entry) };
      },
    ],
  ];

  describe.each(inputs)('%s', (_label, make) => {
    it('round-trips an entry and answers undefined for a missing key', async () => {
      const { input, peek } = make();
      const store = toStampedeStore(input);
      const entry: StoredEntry = { v: { id: 1, tags: ['a'] }, e: T0 + TTL };
      await store.set('k', entry, TTL);
      expect(await store.get('k')).toEqual(entry);
      expect(await store.get('missing')).toBeUndefined();
      // Written to the very cache that was given, not a copy of it.
      expect(await peek('k')).toEqual(entry);
    });

    it('reads an entry of a work that returned undefined back as one (a hit), also through getMany', async () => {
      const { input } = make();
      const store = toStampedeStore(input);
      const entry: StoredEntry = { v: undefined, e: T0 + TTL, t: T0 };
      await store.set('k', entry, TTL);
      const read = await store.get('k');
      expect(read).toEqual(entry);
      expect(read !== undefined && 'v' in read).toBe(true);
      const [many] = store.getMany ? await store.getMany(['k']) : [read];
      expect(many !== undefined && 'v' in many && many.v === undefined).toBe(true);
    });

    it('deletes an entry', async () => {
      const { input } = make();
      const store = toStampedeStore(input);
      await store.set('k', { v: 1, e: T0 + TTL }, TTL);
      await store.delete('k');
      expect(await store.get('k')).toBeUndefined();
    });

    it('takes the ttl in milliseconds', async () => {
      fakeClock();
      const { input } = make();
      const store = toStampedeStore(input);
      await store.set('k', { v: 'x', e: T0 + TTL }, TTL);
      jest.setSystemTime(T0 + TTL - 1);
      expect(await store.get('k')).toEqual({ v: 'x', e: T0 + TTL });
      jest.setSystemTime(T0 + TTL + 1);
      expect(await store.get('k')).toBeUndefined();
    });

    it('offers deletePrefix only where it can list its keys (a Map can)', () => {
      const { input } = make();
      const deletePrefix = toStampedeStore(input).deletePrefix;
      if (input instanceof Map) expect(deletePrefix).toBeDefined();
      else expect(deletePrefix).toBeUndefined();
    });
  });

  it('stores a Map entry through Keyv, under a Keyv key with its expiry', async () => {
    fakeClock();
    const map = new Map<string, unknown>();
    await toStampedeStore(map).set('k', { v: 1, e: T0 + TTL }, TTL);
    expect(map.size).toBe(1);
    const [[key, raw]] = [...map.entries()];
    expect(key).toContain('k');
    expect(JSON.stringify(raw)).toContain(String(T0 + TTL));
  });
});

describe('toStampedeStore with a failing storage adapter', () => {
  const entry: StoredEntry = { v: 'x', e: T0 + TTL };

  const wrappers: [string, (adapter: FlakyAdapter) => StoreInput][] = [
    ['the adapter itself', (adapter) => adapter as unknown as StoreInput],
    ['a Keyv instance over it', (adapter) => new Keyv({ store: adapter })],
    ['a cache-manager Cache over it', (adapter) => createCache({ stores: [new Keyv({ store: adapter })] })],
  ];

  describe.each(wrappers)('given %s', (_label, wrap) => {
    it('rejects set and delete with the adapter error, so the guard can see the outage', async () => {
      const adapter = new FlakyAdapter();
      const store = toStampedeStore(wrap(adapter));
      adapter.failing = true;
      await expect(store.set('k', entry, TTL)).rejects.toThrow('adapter set down');
      await expect(store.delete('k')).rejects.toThrow('adapter delete down');
    });

    it('answers normally again once the adapter recovers', async () => {
      const adapter = new FlakyAdapter();
      const store = toStampedeStore(wrap(adapter));
      adapter.failing = true;
      await expect(store.set('k', entry, TTL)).rejects.toThrow();
      adapter.failing = false;
      await store.set('k', entry, TTL);
      expect(await store.get('k')).toEqual(entry);
    });
  });

  it('rejects a get with the adapter error for a bare adapter (wrapped in a Keyv that throws on errors)', async () => {
    const adapter = new FlakyAdapter();
    const store = toStampedeStore(adapter as unknown as StoreInput);
    adapter.failing = true;
    await expect(store.get('k')).rejects.toThrow('adapter get down');
  });

  // Keyv 5.6 swallows a failed read of its adapter (no 'error' event unless throwOnErrors,
  // which we do not set on a caller's own instance): it reads as a miss. The guard then
  // counts only a value read back as proof of health, so an outage still logs once.
  it.each(wrappers.slice(1))('answers a get whose adapter fails as a miss, given %s', async (_label, wrap) => {
    const adapter = new FlakyAdapter();
    const store = toStampedeStore(wrap(adapter));
    adapter.failing = true;
    await expect(store.get('k')).resolves.toBeUndefined();
  });
});

describe('isStoreInput', () => {
  it.each([
    ['a cache-manager Cache', createCache()],
    ['a Keyv instance', new Keyv()],
    ['a Map', new Map()],
    ['a MemoryStore', new MemoryStore(1)],
    ['an object with get, set and del', { get() {}, set() {}, del() {} }],
  ])('accepts %s', (_label, input) => {
    expect(isStoreInput(input)).toBe(true);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'redis://localhost'],
    ['a function', () => undefined],
    ['an object without delete or del', { get() {}, set() {} }],
    ['an object whose get is not a function', { get: 1, set() {}, delete() {} }],
    ['an empty object', {}],
  ])('rejects %s', (_label, input) => {
    expect(isStoreInput(input)).toBe(false);
  });
});
