import { Outcome, StaleReason } from '../core/answer';

/** The cache's name in `Cache-Status` (RFC 9211). */
export const CACHE_NAME = 'nestjs-stampede';

/**
 * The `Cache-Status` value for one answer (RFC 9211):
 * `hit; ttl=N` (seconds of freshness left), `fwd=miss; stored` for the
 * caller that ran the handler, `fwd=miss; collapsed` for one that waited on it,
 * `fwd=bypass` for a request that was not coalesced, `hit; ttl=-N; detail=...`
 * for a stale value served while one refresh runs, in place of an error, or
 * past `softTimeout` (`detail=soft-timeout`).
 */
export function cacheStatus(
  outcome: Outcome,
  detail: { stored?: boolean; ttlMs?: number; staleReason?: StaleReason } = {},
): string {
  switch (outcome) {
    case 'hit':
      return `${CACHE_NAME}; hit; ttl=${Math.max(0, Math.ceil((detail.ttlMs ?? 0) / 1000))}`;
    case 'stale': {
      // RFC 9211: a negative ttl is a stale response; detail says why it was used.
      const ttl = Math.min(0, Math.floor((detail.ttlMs ?? 0) / 1000));
      const why =
        detail.staleReason === 'error'
          ? 'stale-if-error'
          : detail.staleReason === 'timeout'
            ? 'soft-timeout'
            : 'stale-while-revalidate';
      return `${CACHE_NAME}; hit; ttl=${ttl}; detail=${why}`;
    }
    case 'miss':
      return detail.stored ? `${CACHE_NAME}; fwd=miss; stored` : `${CACHE_NAME}; fwd=miss`;
    case 'collapsed':
      return `${CACHE_NAME}; fwd=miss; collapsed`;
    case 'bypass':
      return `${CACHE_NAME}; fwd=bypass`;
  }
}
