/**
 * Which response headers may be replayed to a caller other than the one whose
 * request produced them. Denied: cookies (another user's session), CORS (set
 * per request origin by the CORS layer), rate-limit state (per client),
 * hop-by-hop headers (per connection, RFC 9110 §7.6.1), and headers the
 * framework computes for each response anyway.
 */
const DENIED = new Set([
  'set-cookie',
  'set-cookie2',
  'retry-after',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'date',
  'cache-status',
  'age',
]);

const DENIED_PREFIXES = ['access-control-', 'x-ratelimit', 'x-rate-limit', 'ratelimit'];

/** True if the response header `name` (any case) may be replayed to other callers. */
export function isReplayableHeader(name: string): boolean {
  const lower = name.toLowerCase();
  if (DENIED.has(lower)) return false;
  for (const prefix of DENIED_PREFIXES) if (lower.startsWith(prefix)) return false;
  return true;
}

/** A response header as stored: lowercase name and value. */
export type HeaderEntry = readonly [name: string, value: string | number | readonly string[]];

/**
 * The headers a handler added or changed: those in `after` that differ from
 * `before`, without the denied ones. Headers set before the handler ran (by
 * middleware, guards, `@Header()`) belong to every response and are not replayed.
 */
export function replayableHeaderChanges(
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
): HeaderEntry[] {
  const changed: HeaderEntry[] = [];
  for (const name of Object.keys(after)) {
    const value = after[name];
    if (value === undefined || !isReplayableHeader(name)) continue;
    const previous = before[name];
    if (previous === value || (Array.isArray(value) && sameList(previous, value))) continue;
    changed.push([name.toLowerCase(), value as HeaderEntry[1]]);
  }
  return changed;
}

function sameList(previous: unknown, value: readonly unknown[]): boolean {
  return Array.isArray(previous) && previous.length === value.length && previous.every((v, i) => v === value[i]);
}
