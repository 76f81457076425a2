/** What the coalescer reports. */
export type StampedeEventType =
  'hit' | 'miss' | 'coalesced' | 'stored' | 'stale' | 'refresh' | 'error' | 'timeout' | 'bypass';

/**
 * One thing that happened to one key. `key` is the key as built (header
 * values in it are already hashed; a service-method key holds its arguments).
 *
 * @example
 * ```ts
 * stampede.on((event: StampedeEvent) => logger.debug(`${event.type} ${event.key}`));
 * ```
 */
export interface StampedeEvent {
  type: StampedeEventType;
  key: string;
  /** `coalesced`: callers now waiting on the flight, this one included. */
  waiters?: number;
  /** `bypass`: why the caller was not coalesced. */
  reason?: BypassReason;
  /** `error`, `timeout`: what the waiters got. */
  error?: unknown;
  /** `stored`: how long the value is fresh, ms. */
  ttl?: number;
  /** `stale`: why a stale value was served (`revalidate`: a refresh runs; `error`: the call failed). */
  staleReason?: 'revalidate' | 'error' | 'timeout';
  /** `refresh`: what started it (`stale`: a stale hit; `early`: XFetch before expiry). */
  trigger?: 'stale' | 'early';
}

/** Why a caller ran its own, uncoalesced call. */
export type BypassReason =
  | 'max-in-flight'
  | 'max-waiters'
  | 'wait-timeout'
  | 'credentials'
  | 'key-function'
  | 'unserializable-arguments'
  | 'request-no-store'
  | 'vary-mismatch'
  | 'uncacheable'
  | 'request-body';

/** Receives events; must not throw (a throw is caught and ignored). */
export type StampedeListener = (event: StampedeEvent) => void;

/** Counts since start, and what is in flight now.
 *
 * @example
 * ```ts
 * const { hits, misses, coalesced, inFlight } = stampede.stats();
 * ```
 */
export interface StampedeStats {
  hits: number;
  misses: number;
  coalesced: number;
  stored: number;
  stale: number;
  refreshes: number;
  errors: number;
  timeouts: number;
  bypasses: number;
  /** Keys with work in progress now. */
  inFlight: number;
  /** Callers waiting on that work now. */
  waiting: number;
}

/** Counter field of each event type. */
export const STAT_OF: Record<StampedeEventType, keyof Omit<StampedeStats, 'inFlight' | 'waiting'>> = {
  hit: 'hits',
  miss: 'misses',
  coalesced: 'coalesced',
  stored: 'stored',
  stale: 'stale',
  refresh: 'refreshes',
  error: 'errors',
  timeout: 'timeouts',
  bypass: 'bypasses',
};

/** The counters of `StampedeStats` and the listeners: what the coalescer reports goes here. */
export class EventLog {
  readonly counts: Record<(typeof STAT_OF)[StampedeEventType], number> = {
    hits: 0,
    misses: 0,
    coalesced: 0,
    stored: 0,
    stale: 0,
    refreshes: 0,
    errors: 0,
    timeouts: 0,
    bypasses: 0,
  };
  private listeners: StampedeListener[] = [];

  /** Calls `listener` for every event; returns a function that stops it. */
  on(listener: StampedeListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** A `coalesced` event: the hot path of joins, which builds no detail object while nobody listens. */
  coalesced(key: string, waiters: number): void {
    if (this.listeners.length === 0) this.counts.coalesced++;
    else this.report('coalesced', key, { waiters });
  }

  /** A `stored` event, on the write of every miss: no detail object while nobody listens. */
  stored(key: string, ttl: number): void {
    if (this.listeners.length === 0) this.counts.stored++;
    else this.report('stored', key, { ttl });
  }

  /** Counts an event and tells the listeners (a throwing listener is ignored). */
  report(type: StampedeEventType, key: string, detail?: Omit<StampedeEvent, 'type' | 'key'>): void {
    this.counts[STAT_OF[type]]++;
    if (this.listeners.length === 0) return;
    const event: StampedeEvent = { type, key, ...detail };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // Observability must never break serving.
      }
    }
  }
}
