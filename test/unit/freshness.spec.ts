import { entryState, makeEntry, refreshesEarly, usableOnError } from '../../lib/core/freshness';
import { TagClock } from '../../lib/core/tags';
import { StoredEntry } from '../../lib/core/store';
import { mulberry32 } from '../helpers/random';

const T0 = 1_700_000_000_000;

/** A random source that must not be drawn from. */
const noDraw = () => {
  throw new Error('random() must not be called');
};

describe('entryState', () => {
  // Fresh until e, stale until s, a fallback until f.
  const entry: StoredEntry = { v: 'x', e: T0 + 100, s: T0 + 200, f: T0 + 300 };

  it.each([
    [T0, 'fresh'],
    [T0 + 99, 'fresh'],
    [T0 + 100, 'stale'],
    [T0 + 199, 'stale'],
    [T0 + 200, 'fallback-only'],
    [T0 + 299, 'fallback-only'],
    [T0 + 300, 'dead'],
    [T0 + 10_000, 'dead'],
  ])('at %d is %s', (now, state) => {
    expect(entryState(entry, now)).toBe(state);
  });

  it('is fresh until e and dead from then on without stale windows', () => {
    const plain: StoredEntry = { v: 'x', e: T0 + 100 };
    expect(entryState(plain, T0 + 99)).toBe('fresh');
    expect(entryState(plain, T0 + 100)).toBe('dead');
  });

  it('goes from fresh straight to fallback-only with staleIfError alone', () => {
    const entry: StoredEntry = { v: 'x', e: T0 + 100, f: T0 + 300 };
    expect(entryState(entry, T0 + 99)).toBe('fresh');
    expect(entryState(entry, T0 + 100)).toBe('fallback-only');
    expect(entryState(entry, T0 + 299)).toBe('fallback-only');
    expect(entryState(entry, T0 + 300)).toBe('dead');
  });

  it('goes from stale straight to dead when the stale window outlasts the fallback window', () => {
    const entry: StoredEntry = { v: 'x', e: T0 + 100, s: T0 + 300, f: T0 + 200 };
    expect(entryState(entry, T0 + 250)).toBe('stale');
    expect(entryState(entry, T0 + 299)).toBe('stale');
    expect(entryState(entry, T0 + 300)).toBe('dead');
  });
});

describe('usableOnError', () => {
  it('is true strictly before f, whatever the other windows', () => {
    const entry: StoredEntry = { v: 'x', e: T0 + 100, s: T0 + 200, f: T0 + 300 };
    expect(usableOnError(entry, T0)).toBe(true);
    expect(usableOnError(entry, T0 + 150)).toBe(true);
    expect(usableOnError(entry, T0 + 299)).toBe(true);
    expect(usableOnError(entry, T0 + 300)).toBe(false);
  });

  it('is false without an entry or without a stale-if-error window', () => {
    expect(usableOnError(undefined, T0)).toBe(false);
    expect(usableOnError({ v: 'x', e: T0 + 100 }, T0)).toBe(false);
    expect(usableOnError({ v: 'x', e: T0 + 100, s: T0 + 200 }, T0 + 150)).toBe(false);
  });
});

describe('makeEntry', () => {
  it('fills value, expiry, start time and duration; omits unset windows and tags', () => {
    const { entry, storeTtl } = makeEntry('v', T0 + 40, T0, { ttl: 1000 });
    expect(entry).toEqual({ v: 'v', e: T0 + 1040, t: T0, d: 40 });
    expect(storeTtl).toBe(1000);
  });

  it('sets s and f from the end of the fresh window', () => {
    const { entry } = makeEntry('v', T0, T0, { ttl: 1000, staleTtl: 500, staleIfError: 2000 });
    expect(entry).toMatchObject({ e: T0 + 1000, s: T0 + 1500, f: T0 + 3000, d: 0 });
  });

  it.each([
    [{ ttl: 1000 }, 1000],
    [{ ttl: 1000, staleTtl: 500 }, 1500],
    [{ ttl: 1000, staleIfError: 2000 }, 3000],
    [{ ttl: 1000, staleTtl: 500, staleIfError: 2000 }, 3000],
    [{ ttl: 1000, staleTtl: 4000, staleIfError: 2000 }, 5000],
    [{ ttl: 1000, staleTtl: 0, staleIfError: 0 }, 1000],
  ])('keeps %j in the store for ttl + max(staleTtl, staleIfError) = %d ms', (freshness, storeTtl) => {
    expect(makeEntry('v', T0, T0, freshness).storeTtl).toBe(storeTtl);
  });

  it('leaves zero windows out of the entry', () => {
    const { entry } = makeEntry('v', T0, T0, { ttl: 1000, staleTtl: 0, staleIfError: 0 });
    expect(entry).not.toHaveProperty('s');
    expect(entry).not.toHaveProperty('f');
  });

  it('stores tags, and no tag field for none or an empty list', () => {
    expect(makeEntry('v', T0, T0, { ttl: 1 }, ['a', 'b']).entry.g).toEqual(['a', 'b']);
    expect(makeEntry('v', T0, T0, { ttl: 1 }, []).entry).not.toHaveProperty('g');
    expect(makeEntry('v', T0, T0, { ttl: 1 }).entry).not.toHaveProperty('g');
  });
});

describe('refreshesEarly (XFetch)', () => {
  const D = 200;
  const E = T0 + 10_000;
  const entry: StoredEntry = { v: 'x', e: E, d: D };

  it('never refreshes an entry without a measured duration, and draws nothing', () => {
    expect(refreshesEarly({ v: 'x', e: E }, E - 1, 1, noDraw)).toBe(false);
    expect(refreshesEarly({ v: 'x', e: E, d: 0 }, E - 1, 1, noDraw)).toBe(false);
    expect(refreshesEarly({ v: 'x', e: E, d: -5 }, E - 1, 1, noDraw)).toBe(false);
  });

  it('follows now - d * beta * ln(r) >= e for single draws', () => {
    // gap = d: refresh iff r <= e^-1 (about 0.3679).
    expect(refreshesEarly(entry, E - D, 1, () => 0.36)).toBe(true);
    expect(refreshesEarly(entry, E - D, 1, () => 0.37)).toBe(false);
    // beta 2 doubles the reach: gap = 2d with beta 2 is gap = d with beta 1.
    expect(refreshesEarly(entry, E - 2 * D, 2, () => 0.36)).toBe(true);
    expect(refreshesEarly(entry, E - 2 * D, 2, () => 0.37)).toBe(false);
  });

  it('refreshes at or past the expiry for any draw, and for a draw of 0', () => {
    expect(refreshesEarly(entry, E, 1, () => 0.999999)).toBe(true);
    expect(refreshesEarly(entry, E + 5, 1, () => 0.999999)).toBe(true);
    // ln(0) counts as ln(Number.MIN_VALUE), about -744: a reach of 744 d.
    expect(refreshesEarly(entry, E - 700 * D, 1, () => 0)).toBe(true);
    expect(refreshesEarly(entry, E - 800 * D, 1, () => 0)).toBe(false);
  });

  it('never refreshes before the expiry for a draw of 1', () => {
    expect(refreshesEarly(entry, E - 1, 1, () => 1)).toBe(false);
  });

  describe('refresh rate over 20,000 seeded trials matches exp(-gap / (d * beta))', () => {
    const TRIALS = 20_000;
    const TOLERANCE = 0.015;
    const cases: Array<[string, number, number]> = [];
    for (const beta of [1, 2]) {
      for (const [label, gap] of [
        ['d/2', D / 2],
        ['d', D],
        ['2d', 2 * D],
      ] as const) {
        cases.push([label, gap, beta]);
      }
    }

    it.each(cases)('gap %s (%d ms), beta %d', (_label, gap, beta) => {
      const random = mulberry32(0x5eed + gap * 31 + beta);
      let refreshed = 0;
      for (let i = 0; i < TRIALS; i++) if (refreshesEarly(entry, E - gap, beta, random)) refreshed++;
      const predicted = Math.exp(-gap / (D * beta));
      expect(Math.abs(refreshed / TRIALS - predicted)).toBeLessThanOrEqual(TOLERANCE);
    });

    it('is likelier the nearer the expiry, the slower the work and the larger beta', () => {
      const rate = (e: StoredEntry, now: number, beta: number) => {
        const random = mulberry32(42);
        let refreshed = 0;
        for (let i = 0; i < TRIALS; i++) if (refreshesEarly(e, now, beta, random)) refreshed++;
        return refreshed / TRIALS;
      };
      expect(rate(entry, E - D / 2, 1)).toBeGreaterThan(rate(entry, E - 2 * D, 1));
      expect(rate({ ...entry, d: 4 * D }, E - D, 1)).toBeGreaterThan(rate(entry, E - D, 1));
      expect(rate(entry, E - D, 2)).toBeGreaterThan(rate(entry, E - D, 1));
      // Far from expiry it practically never refreshes: e^-50.
      expect(rate(entry, E - 50 * D, 1)).toBe(0);
    });
  });
});

describe('TagClock', () => {
  let time: number;
  let clock: TagClock;
  const tagged = (t: number | undefined, ...g: string[]): StoredEntry => ({ v: 'x', e: T0 + 1_000_000, t, g });

  beforeEach(() => {
    time = T0;
    clock = new TagClock(() => time);
  });

  it('holds every entry valid before any invalidation', () => {
    expect(clock.isValid(tagged(T0, 'a'))).toBe(true);
    expect(clock.isValid({ v: 'x', e: T0 + 1 })).toBe(true);
    expect(clock.size).toBe(0);
  });

  it('kills entries of an invalidated tag whose work started at or before the invalidation, not later ones', () => {
    time = T0 + 100;
    clock.invalidate(['a']);
    expect(clock.isValid(tagged(T0, 'a'))).toBe(false);
    expect(clock.isValid(tagged(T0 + 99, 'a'))).toBe(false);
    expect(clock.isValid(tagged(T0 + 100, 'a'))).toBe(false);
    expect(clock.isValid(tagged(T0 + 101, 'a'))).toBe(true);
  });

  it('kills an entry when any one of its tags was invalidated', () => {
    clock.invalidate(['b']);
    expect(clock.isValid(tagged(T0 - 1, 'a', 'b'))).toBe(false);
    expect(clock.isValid(tagged(T0 - 1, 'a', 'c'))).toBe(true);
  });

  it('leaves untagged entries and entries of other tags alone', () => {
    clock.invalidate(['a']);
    expect(clock.isValid({ v: 'x', e: T0 + 1, t: T0 - 1 })).toBe(true);
    expect(clock.isValid({ v: 'x', e: T0 + 1, t: T0 - 1, g: [] })).toBe(true);
    expect(clock.isValid(tagged(T0 - 1, 'b'))).toBe(true);
  });

  it('treats an entry with no start time as started at the epoch', () => {
    clock.invalidate(['a']);
    expect(clock.isValid(tagged(undefined, 'a'))).toBe(false);
  });

  it('moves the invalidation time of a tag invalidated again', () => {
    clock.invalidate(['a']);
    const between = tagged(T0 + 50, 'a');
    expect(clock.isValid(between)).toBe(true);
    time = T0 + 100;
    clock.invalidate(['a']);
    expect(clock.isValid(between)).toBe(false);
    expect(clock.size).toBe(1);
  });

  it('keeps an invalidation time for as long as the longest life noted, then prunes it', () => {
    clock.noteLife(1000);
    clock.noteLife(10); // a shorter life does not shorten it
    clock.invalidate(['a']);
    time = T0 + 1000;
    clock.invalidate(['b']);
    expect(clock.size).toBe(2);
    time = T0 + 1001;
    clock.invalidate(['c']);
    expect(clock.size).toBe(2); // 'a' is older than any entry can be: dropped
    expect(clock.isValid(tagged(T0 + 500, 'b'))).toBe(false);
    expect(clock.isValid(tagged(T0 + 500, 'c'))).toBe(false);
  });

  it('stays bounded however many distinct tags are invalidated over time', () => {
    clock.noteLife(1000);
    for (let i = 0; i < 2000; i++) {
      time += 300;
      clock.invalidate([`tag-${i}`, `other-${i}`]);
      // Only invalidations within the last 1000 ms remain: at most 4 steps of 2 tags.
      expect(clock.size).toBeLessThanOrEqual(8);
    }
  });

  // Entries are judged by when their work started (t), so the life to note
  // is counted from there: d + storeTtl. Noting storeTtl alone (what
  // Coalescer.startFlight does) lets a flight that straddled an invalidation
  // come back once the invalidation is pruned: see coalescer-freshness.spec.ts.
  it('keeps an entry whose work straddled the invalidation dead while it lives, given its life from its start', () => {
    // Work started at T0, tag invalidated at T0 + 1, result stored at T0 + 500 for 1000 ms.
    time = T0 + 1;
    clock.invalidate(['a']);
    time = T0 + 500;
    const { entry, storeTtl } = makeEntry('x', time, T0, { ttl: 1000 }, ['a']);
    clock.noteLife(entry.d! + storeTtl);
    expect(clock.isValid(entry)).toBe(false);

    time = T0 + 1_499; // the entry is fresh until T0 + 1500
    clock.invalidate(['unrelated']);
    expect(entryState(entry, time)).toBe('fresh');
    expect(clock.isValid(entry)).toBe(false);
  });
});
