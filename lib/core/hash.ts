import { createHash } from 'node:crypto';

/** SHA-256 of `text`, base64url: what stands in a key for a header value or a long key. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** Keys longer than this are hashed, so a store never sees an unbounded key. */
export const MAX_KEY_LENGTH = 1024;

/**
 * `key` itself when short; else its first 128 characters and a hash of the
 * whole, after a NUL: no request line or header hash can spell that, so a
 * bounded key never equals a key given as it is.
 */
export function boundKey(key: string): string {
  if (key.length <= MAX_KEY_LENGTH) return key;
  // A burst of one long key (its callers, and the steps of one call) hashes it once. The last long key
  // stays in memory until another comes (header values in a key are hashed already).
  if (key !== lastLong) {
    lastBounded = `${key.slice(0, 128)}\u0000${sha256(key)}`;
    lastLong = key;
  }
  return lastBounded;
}

let lastLong: string | undefined;
let lastBounded = '';
