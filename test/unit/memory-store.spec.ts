import { MemoryStore } from '../../lib/core/memory-store';
import { mulberry32 } from '../helpers/random';

const T0 = 1_700_000_000_000;

describe('MemoryStore', () => {
  let time: number;
  const now = () => time;
  const fresh = (v: unknown) => ({ v, e: time + 1000 });

  beforeEach(() => {
    time = T0;
  });

  it('returns what was set, synchronously', () => {
    const store = new MemoryStore(10, now);
    const entry = fresh('a');
    store.set('k', entry);
    expect(store.get('k')).toBe(entry);
    expect(store.get('missing')).toBeUndefined();
  });

  it('replaces the entry of a key that is set again without growing', () => {
    const store = new MemoryStore(10, now);
    store.set('k', fresh(1));
    store.set('k', fresh(2));
    expect(store.size).toBe(1);
    expect(store.get('k')?.v).toBe(2);
  });

  it('evicts the least recently set entry when it exceeds maxEntries', () => {
    const store = new MemoryStore(3, now);
    for (const key of ['a', 'b', 'c', 'd']) store.set(key, fresh(key));
    expect(store.size).toBe(3);
    expect(store.get('a')).toBeUndefined();
    expect(['b', 'c', 'd'].map((key) => store.get(key)?.v)).toEqual(['b', 'c', 'd']);
  });

  it('never holds more than maxEntries however many keys are set', () => {
    const store = new MemoryStore(5, now);
    for (let i = 0; i < 100; i++) store.set(`k${i}`, fresh(i));
    expect(store.size).toBe(5);
    expect(store.get('k95')?.v).toBe(95);
    expect(store.get('k94')).toBeUndefined();
  });

  it('counts a get as a use: the entry read survives and the next oldest is evicted', () => {
    const store = new MemoryStore(3, now);
    for (const key of ['a', 'b', 'c']) store.set(key, fresh(key));
    expect(store.get('a')?.v).toBe('a');
    store.set('d', fresh('d'));
    expect(store.get('a')?.v).toBe('a');
    expect(store.get('b')).toBeUndefined();
    expect(store.get('c')?.v).toBe('c');
  });

  it('counts setting an existing key as a use', () => {
    const store = new MemoryStore(2, now);
    store.set('a', fresh(1));
    store.set('b', fresh(1));
    store.set('a', fresh(2));
    store.set('c', fresh(1));
    expect(store.get('a')?.v).toBe(2);
    expect(store.get('b')).toBeUndefined();
  });

  it('returns undefined for an expired entry and drops it', () => {
    const store = new MemoryStore(10, now);
    store.set('k', { v: 'x', e: T0 + 1000 });
    time = T0 + 999;
    expect(store.get('k')?.v).toBe('x');
    time = T0 + 1000;
    expect(store.get('k')).toBeUndefined();
    expect(store.size).toBe(0);
    // Dropped, not just hidden: going back in time does not bring it back.
    time = T0;
    expect(store.get('k')).toBeUndefined();
  });

  it('uses Date.now when no clock is given', () => {
    const store = new MemoryStore(10);
    store.set('past', { v: 1, e: Date.now() - 1 });
    store.set('future', { v: 2, e: Date.now() + 60_000 });
    expect(store.get('past')).toBeUndefined();
    expect(store.get('future')?.v).toBe(2);
  });

  it('delete removes one key and says whether it was there', () => {
    const store = new MemoryStore(10, now);
    store.set('a', fresh(1));
    store.set('b', fresh(2));
    expect(store.delete('a')).toBe(true);
    expect(store.delete('a')).toBe(false);
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')?.v).toBe(2);
  });

  it('deletePrefix removes exactly the keys starting with the prefix and counts them', () => {
    const store = new MemoryStore(10, now);
    for (const key of ['user:1', 'user:2', 'user', 'post:user:1', 'users:1']) store.set(key, fresh(key));
    expect(store.deletePrefix('user:')).toBe(2);
    expect(store.get('user:1')).toBeUndefined();
    expect(store.get('user:2')).toBeUndefined();
    expect(['user', 'post:user:1', 'users:1'].map((key) => store.get(key)?.v)).toEqual([
      'user',
      'post:user:1',
      'users:1',
    ]);
    expect(store.deletePrefix('nothing')).toBe(0);
  });

  it('deletePrefix with an empty prefix removes everything', () => {
    const store = new MemoryStore(10, now);
    for (const key of ['a', 'b', 'c']) store.set(key, fresh(key));
    expect(store.deletePrefix('')).toBe(3);
    expect(store.size).toBe(0);
  });

  it('clear removes everything', () => {
    const store = new MemoryStore(10, now);
    store.set('a', fresh(1));
    store.clear();
    expect(store.size).toBe(0);
    expect(store.get('a')).toBeUndefined();
  });

  it('evicts in least-recently-used order through any mix of sets, reads, deletes and clears', () => {
    // The model: a list, oldest first, with the store's rule that a read moves a key back only
    // once it has left the newest quarter.
    const max = 8;
    const store = new MemoryStore(max, now);
    const model: { key: string; touched: number }[] = [];
    let tick = 0;
    const random = mulberry32(7);
    for (let step = 0; step < 20_000; step++) {
      const key = `k${Math.floor(random() * 20)}`;
      const at = model.findIndex((held) => held.key === key);
      const op = random();
      if (op < 0.5) {
        store.set(key, fresh(step));
        if (at >= 0) model.splice(at, 1);
        model.push({ key, touched: ++tick });
        if (model.length > max) model.shift();
      } else if (op < 0.9) {
        expect(store.get(key) !== undefined).toBe(at >= 0);
        if (at >= 0 && tick - model[at].touched > max >> 2) {
          const [held] = model.splice(at, 1);
          held.touched = ++tick;
          model.push(held);
        }
      } else if (op < 0.99) {
        expect(store.delete(key)).toBe(at >= 0);
        if (at >= 0) model.splice(at, 1);
      } else {
        store.clear();
        model.length = 0;
      }
      expect(store.size).toBe(model.length);
    }
    expect(model.every(({ key }) => store.get(key) !== undefined)).toBe(true);
  });
});
