import { StoredEntry } from './store';

/**
 * How long a value is good for, past its time to live (RFC 5861's
 * stale-while-revalidate and stale-if-error, and XFetch early refresh).
 *
 * ```
 * stored ──── ttl ────▶ e ──── staleTtl ────▶ s
 *  fresh: served        stale: served at once, one refresh in the background
 *  (maybe refreshed     ──────────── staleIfError ────────────▶ f
 *   early by XFetch)    fallback: served in place of a failed call
 * ```
 */
export interface Freshness {
  /** Milliseconds a result is fresh. */
  ttl: number;
  /** Milliseconds after `ttl` during which the old value is served while one refresh runs. */
  staleTtl?: number;
  /** Milliseconds after `ttl` during which the old value stands in for an error. */
  staleIfError?: number;
}

/** Early refresh before expiry (Vattani et al., PVLDB 8(8) 2015): `beta` > 1 refreshes earlier. */
export interface EarlyRefresh {
  beta: number;
}

/** True for what a store handed back that has the shape of an entry (anything else is a miss). */
export function isEntry(value: unknown): value is StoredEntry {
  return value !== null && typeof value === 'object' && typeof (value as StoredEntry).e === 'number' && 'v' in value;
}

/** Where an entry stands at `now`. */
export type EntryState = 'fresh' | 'stale' | 'fallback-only' | 'dead';

export function entryState(entry: StoredEntry, now: number): EntryState {
  if (now < entry.e) return 'fresh';
  if (entry.s !== undefined && now < entry.s) return 'stale';
  if (entry.f !== undefined && now < entry.f) return 'fallback-only';
  return 'dead';
}

/** True while `entry` may replace an error (stale-if-error). */
export function usableOnError(entry: StoredEntry | undefined, now: number): entry is StoredEntry {
  return entry !== undefined && entry.f !== undefined && now < entry.f;
}

/**
 * XFetch: recompute early when `now - delta * beta * ln(random()) >= expiry`.
 * The closer to expiry and the slower the work, the likelier; at most one
 * caller then refreshes, as the refresh is a flight like any other.
 */
export function refreshesEarly(entry: StoredEntry, now: number, beta: number, random: () => number): boolean {
  if (entry.d === undefined || entry.d <= 0) return false;
  const r = random();
  // ln(0) is -Infinity: treat a 0 draw as the smallest positive one.
  return now - entry.d * beta * Math.log(r > 0 ? r : Number.MIN_VALUE) >= entry.e;
}

/** The entry for a result and how long the store must keep it (the longest of its windows). */
export function makeEntry<T>(
  value: T,
  now: number,
  startedAt: number,
  freshness: Freshness,
  tags?: string[],
): { entry: StoredEntry<T>; storeTtl: number } {
  const e = now + freshness.ttl;
  const entry: StoredEntry<T> = { v: value, e, t: startedAt, d: now - startedAt };
  const staleTtl = freshness.staleTtl ?? 0;
  const staleIfError = freshness.staleIfError ?? 0;
  if (staleTtl > 0) entry.s = e + staleTtl;
  if (staleIfError > 0) entry.f = e + staleIfError;
  if (tags && tags.length > 0) entry.g = tags;
  return { entry, storeTtl: freshness.ttl + Math.max(staleTtl, staleIfError) };
}
