import { Test, TestingModule } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { StampedeMissingKeyError, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';

/** A batched origin: counts its calls and the keys each fetched; answers after `open()`. */
function origin() {
  const calls: string[][] = [];
  let open!: () => void;
  let opened = new Promise<void>((resolve) => (open = resolve));
  const fetch = async (keys: string[]) => {
    calls.push(keys);
    await opened;
    return new Map(keys.map((key) => [key, `value of ${key}`]));
  };
  return {
    calls,
    fetch,
    open: () => open(),
    reset() {
      opened = new Promise<void>((resolve) => (open = resolve));
    },
    fetchedKeys: () => calls.flat(),
  };
}

describe.each<[string, () => StampedeModuleOptions]>([
  ['in-process', () => ({ ttl: 60_000 })],
  ['Keyv', () => ({ ttl: 60_000, store: new Keyv() })],
])('StampedeService.runMany (%s store)', (_name, options) => {
  let moduleRef: TestingModule;
  let stampede: StampedeService;

  beforeEach(async () => {
    moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot(options())] }).compile();
    await moduleRef.init();
    stampede = moduleRef.get(StampedeService);
  });
  afterEach(() => moduleRef.close());

  it('fetches every key exactly once across 100 concurrent overlapping batches', async () => {
    const db = origin();
    const batches = Array.from({ length: 100 }, (_, i) => {
      const keys = [`k${i % 30}`, `k${(i * 7) % 30}`, `k${(i + 11) % 30}`];
      return stampede.runMany(keys, db.fetch).then((values) => ({ keys, values }));
    });
    db.open();
    for (const { keys, values } of await Promise.all(batches)) {
      expect(values).toEqual(keys.map((key) => `value of ${key}`));
    }
    const fetched = db.fetchedKeys();
    expect(new Set(fetched).size).toBe(30);
    expect(fetched).toHaveLength(30);
    // Fewer calls than batches: the later ones found everything in flight.
    expect(db.calls.length).toBeLessThan(100);
    // Stored one by one: a single run() of any of them is a hit.
    expect(await stampede.run('k5', () => 'recomputed')).toBe('value of k5');
  });

  it('lets a concurrent run(key) join the batch, and a batch join a run(key)', async () => {
    const db = origin();
    let single = 0;
    let own = 0;
    const alone = stampede.run('solo', async () => (single++, 'solo value'));
    const batch = stampede.runMany(['a', 'solo', 'b'], db.fetch);
    const joiner = stampede.run('a', () => (own++, 'from run'));
    db.open();
    const values = await batch;
    // Whichever of the two reached 'a' first (an asynchronous store lets run() lead), 'a' ran once and both agree.
    expect(await joiner).toBe(values[0]);
    expect(db.fetchedKeys().filter((key) => key === 'a').length + own).toBe(1);
    expect(values.slice(1)).toEqual(['solo value', 'value of b']);
    expect(await alone).toBe('solo value');
    expect(single).toBe(1);
    expect(db.fetchedKeys()).not.toContain('solo');
  });

  it('answers repeated keys once per position and fetches them once', async () => {
    const db = origin();
    db.open();
    expect(await stampede.runMany(['x', 'y', 'x'], db.fetch)).toEqual(['value of x', 'value of y', 'value of x']);
    expect(db.calls).toEqual([['x', 'y']]);
  });

  it('fails only the key a Map leaves out, and stores the others', async () => {
    const partial = async (keys: string[]) => new Map(keys.filter((k) => k !== 'gone').map((k) => [k, `v:${k}`]));
    await expect(stampede.runMany(['here', 'gone'], partial)).rejects.toBeInstanceOf(StampedeMissingKeyError);
    expect(await stampede.get('here')).toBe('v:here');
    expect(await stampede.get('gone')).toBeUndefined();
  });

  it('takes an array aligned with the keys, and an Error as the value of one key', async () => {
    const fetch = async (keys: string[]) => keys.map((key) => (key === 'bad' ? new Error('no such row') : `v:${key}`));
    await expect(stampede.runMany(['ok', 'bad'], fetch)).rejects.toThrow('no such row');
    expect(await stampede.runMany(['ok'], fetch)).toEqual(['v:ok']);
    expect(await stampede.get('bad')).toBeUndefined();
  });

  it('fails every key of a call that throws, stores nothing, and fetches again next time', async () => {
    let calls = 0;
    const failing = async (keys: string[]) => {
      calls++;
      if (calls === 1) throw new Error('db down');
      return keys.map((key) => `v:${key}`);
    };
    await expect(stampede.runMany(['p', 'q'], failing)).rejects.toThrow('db down');
    expect(stampede.inFlight()).toBe(0);
    expect(await stampede.runMany(['p', 'q'], failing)).toEqual(['v:p', 'v:q']);
    expect(calls).toBe(2);
  });

  it('refuses keys that are not strings, naming runMany', async () => {
    await expect(stampede.runMany([1] as never, async () => [])).rejects.toThrow(
      /option "keys".*\(in StampedeService.runMany\)/,
    );
  });
});

describe('StampedeService.runMany store reads', () => {
  it('reads a Keyv store in one getMany per batch', async () => {
    const keyv = new Keyv();
    let reads = 0;
    const getMany = keyv.getMany.bind(keyv);
    keyv.getMany = ((keys: string[]) => (reads++, getMany(keys))) as typeof keyv.getMany;
    const app = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ store: keyv })] }).compile();
    await app.init();
    const stampede = app.get(StampedeService);
    const keys = Array.from({ length: 50 }, (_, i) => `key${i}`);
    await stampede.runMany(keys, async (missing) => missing.map((key) => key.toUpperCase()));
    expect(await stampede.runMany(keys, async () => [])).toEqual(keys.map((key) => key.toUpperCase()));
    expect(reads).toBe(2);
    await app.close();
  });
});

describe('StampedeService.runMany freshness', () => {
  it('answers stale keys at once and refreshes them in one background call; falls back on error', async () => {
    const { fakeDateOnly } = await import('../helpers/clock');
    fakeDateOnly();
    const app = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    await app.init();
    const stampede = app.get(StampedeService);
    const windows = { ttl: 1_000, staleTtl: 10_000, staleIfError: 60_000 };
    const calls: string[][] = [];
    const fetch = async (keys: string[]) => (calls.push(keys), keys.map((key) => `${key}#${calls.length}`));
    expect(await stampede.runMany(['a', 'b'], fetch, windows)).toEqual(['a#1', 'b#1']);

    jest.setSystemTime(Date.now() + 1_500); // stale
    const refreshed = new Promise<void>((resolve) => {
      let stored = 0;
      stampede.on((e) => e.type === 'stored' && ++stored === 2 && resolve());
    });
    expect(await stampede.runMany(['a', 'b'], fetch, windows)).toEqual(['a#1', 'b#1']);
    await refreshed;
    expect(calls).toEqual([
      ['a', 'b'],
      ['a', 'b'],
    ]);
    expect(await stampede.runMany(['a', 'b'], fetch, windows)).toEqual(['a#2', 'b#2']);

    jest.setSystemTime(Date.now() + 20_000); // past stale, within staleIfError
    const failing = async () => Promise.reject(new Error('db down'));
    expect(await stampede.runMany(['a', 'b'], failing, windows)).toEqual(['a#2', 'b#2']);
    await app.close();
    jest.useRealTimers();
  });
});
