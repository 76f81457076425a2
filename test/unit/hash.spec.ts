import { createHash } from 'node:crypto';
import { MAX_KEY_LENGTH, boundKey, sha256 } from '../../lib/core/hash';

describe('sha256', () => {
  it('is the base64url SHA-256 digest of the text', () => {
    expect(sha256('abc')).toBe(createHash('sha256').update('abc').digest('base64url'));
    expect(sha256('abc')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('differs for different texts, including the empty one', () => {
    expect(sha256('')).not.toBe(sha256(' '));
  });
});

describe('boundKey', () => {
  it('keeps a key of up to MAX_KEY_LENGTH characters as it is', () => {
    const key = 'k'.repeat(MAX_KEY_LENGTH);
    expect(boundKey(key)).toBe(key);
  });

  it('turns a longer key into its first 128 characters and a hash of the whole', () => {
    const key = 'k'.repeat(MAX_KEY_LENGTH + 1);
    // After a NUL, which no request target or header hash contains: no key given as it is can equal it.
    expect(boundKey(key)).toBe(`${key.slice(0, 128)}\u0000${sha256(key)}`);
    expect(boundKey(key).length).toBe(128 + 1 + 43);
  });

  it('answers each long key with its own hash when keys alternate (the last one is remembered)', () => {
    const a = 'a'.repeat(MAX_KEY_LENGTH + 1);
    const b = 'b'.repeat(MAX_KEY_LENGTH + 1);
    const expected = (key: string) => `${key.slice(0, 128)}\u0000${sha256(key)}`;
    expect([boundKey(a), boundKey(a), boundKey(b), boundKey(a)]).toEqual([
      expected(a),
      expected(a),
      expected(b),
      expected(a),
    ]);
  });

  it('keeps long keys that share their first 128 characters apart', () => {
    const prefix = 'p'.repeat(2000);
    expect(boundKey(`${prefix}1`)).not.toBe(boundKey(`${prefix}2`));
  });
});
