import { isStoreInput } from '../../core/store-adapter';
import { MAX_TIMER_MS } from '../../core/deadline';
import { parseDuration } from '../../core/duration';
import { StampedeOptionsError } from '../../errors';

/**
 * How each kind of option value is checked; every failure names the option,
 * the value and where it was given. A check returns the value as the library
 * uses it: the same value, or its normal form (a duration string as
 * milliseconds, a number string as the number), so configuration read from
 * the environment is taken as it arrives.
 */

export type Check = (value: unknown, name: string, where: string) => unknown;

// RFC 9110 token: what a header name may be made of.
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// The methods Node's HTTP parser accepts that a cache can make sense of (RFC 9110 §9, the QUERY draft).
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'SEARCH',
  'QUERY',
  'PROPFIND',
  'REPORT',
]);

export const fail = (name: string, value: unknown, expected: string, where: string): never => {
  throw new StampedeOptionsError(name, value, expected, where);
};
const DURATION_EXPECTED =
  "a finite number of milliseconds >= 0 or a duration string ('30000', '250ms', '30s', '1.5s', '5m', '1h')";

/** A duration string as milliseconds; anything else as it is (the caller checks it). */
function durationOf(value: unknown): unknown {
  return typeof value === 'string' ? (parseDuration(value) ?? value) : value;
}

export const milliseconds: Check = (value, name, where) => {
  const ms = durationOf(value);
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) fail(name, value, DURATION_EXPECTED, where);
  return ms;
};

/** Milliseconds some timer waits: bounded, as Node would fire a longer one at once. */
export const timerMilliseconds: Check = (value, name, where) => {
  const ms = milliseconds(value, name, where) as number;
  if (ms > MAX_TIMER_MS) fail(name, value, `at most ${MAX_TIMER_MS} ms (~24.8 days: a Node timer's limit)`, where);
  return ms;
};
export const count =
  (min: number): Check =>
  (value, name, where) => {
    // Digits only: '1e3' or '10.5' are no counts to guess at.
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
      fail(name, value, `an integer >= ${min} (a number, or a string of digits)`, where);
    }
    return n;
  };
// Strings are refused, 'true' as well: `'false'` is truthy wherever a value is read as it was given
// (Nest reads `isGlobal` before this check runs), and a string that quietly means true is worse than an error.
export const boolean: Check = (value, name, where) => {
  if (typeof value !== 'boolean') {
    fail(name, value, typeof value === 'string' ? "a boolean (from a string: value === 'true')" : 'a boolean', where);
  }
  return value;
};
export const fn: Check = (value, name, where) => {
  if (typeof value !== 'function') fail(name, value, 'a function', where);
  return value;
};
export const oneOf =
  (...allowed: string[]): Check =>
  (value, name, where) => {
    if (!allowed.includes(value as string)) fail(name, value, allowed.map((a) => `'${a}'`).join(' or '), where);
    return value;
  };
export const headerNames: Check = (value, name, where) => {
  if (!Array.isArray(value) || !value.every((h) => typeof h === 'string' && TOKEN.test(h))) {
    fail(name, value, 'an array of header names', where);
  }
  return value;
};
const JITTER_EXPECTED = "a fraction of the ttl (0 to < 1) or milliseconds (>= 1, or a string such as '250ms')";
export const jitter: Check = (value, name, where) => {
  const n = durationOf(value);
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) fail(name, value, JITTER_EXPECTED, where);
  // Below 1 a number is a fraction of the ttl: '0.5ms' must not become half of it.
  if (typeof value === 'string' && /[a-z]$/i.test(value.trim()) && (n as number) > 0 && (n as number) < 1) {
    fail(name, value, `${JITTER_EXPECTED}; a duration with a unit is at least 1 ms`, where);
  }
  return n;
};
export const earlyRefresh: Check = (value, name, where) => {
  if (typeof value === 'boolean') return value;
  const beta = (value as { beta?: unknown } | null)?.beta;
  if (typeof value !== 'object' || typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0) {
    fail(name, value, 'true, false or { beta: a number > 0 }', where);
  }
  return value;
};
export const tags: Check = (value, name, where) => {
  if (typeof value === 'function') return value;
  if (!Array.isArray(value) || !value.every((tag) => typeof tag === 'string')) {
    fail(name, value, 'an array of strings or a function', where);
  }
  return value;
};
export const statusTtl: Check = (value, name, where) => {
  if (typeof value === 'function') return value;
  const entries = typeof value === 'object' && value !== null ? Object.entries(value) : undefined;
  const resolved = entries?.map(([status, ms]) => [status, durationOf(ms)] as const);
  const valid = resolved?.every(
    ([status, ms]) => /^[1-5]\d\d$/.test(status) && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0,
  );
  if (!valid) fail(name, value, "a map of HTTP status to ms >= 0 (or a duration such as '5s'), or a function", where);
  return Object.fromEntries(resolved as (readonly [string, unknown])[]);
};
export const keyBody: Check = (value, name, where) => {
  if (typeof value === 'boolean') return value;
  const maxBytes = (value as { maxBytes?: unknown } | null)?.maxBytes;
  if (typeof value !== 'object' || !Number.isSafeInteger(maxBytes) || (maxBytes as number) <= 0) {
    fail(name, value, 'true, false or { maxBytes: an integer > 0 }', where);
  }
  return value;
};
export const methods: Check = (value, name, where) => {
  if (
    !Array.isArray(value) ||
    !value.every((m) => typeof m === 'string' && TOKEN.test(m) && KNOWN_METHODS.has(m.toUpperCase()))
  ) {
    fail(name, value, `an array of HTTP methods (${[...KNOWN_METHODS].join(', ')})`, where);
  }
  return value;
};
export const metrics: Check = (value, name, where) => {
  if (typeof value === 'boolean') return value;
  const prefix = (value as { prefix?: unknown } | null)?.prefix;
  if (
    typeof value !== 'object' ||
    value === null ||
    (prefix !== undefined && (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)))
  ) {
    fail(name, value, 'true, false or { prefix?: a metric name prefix, registry? }', where);
  }
  return value;
};
export const openTelemetry: Check = (value, name, where) => {
  if (typeof value === 'boolean') return value;
  const known = ['traces', 'metrics', 'tracer', 'meter', 'hitEvents'];
  const given = value as Record<string, unknown> | null;
  if (
    typeof value !== 'object' ||
    given === null ||
    Object.keys(given).some((key) => !known.includes(key)) ||
    (given.traces !== undefined && typeof given.traces !== 'boolean') ||
    (given.metrics !== undefined && typeof given.metrics !== 'boolean') ||
    (given.hitEvents !== undefined && typeof given.hitEvents !== 'boolean')
  ) {
    const shape = '{ traces?: boolean, metrics?: boolean, tracer?, meter?, hitEvents?: boolean }';
    fail(name, value, `true, false or ${shape}`, where);
  }
  return value;
};
export const store: Check = (value, name, where) => {
  if (!isStoreInput(value)) fail(name, value, 'a cache-manager Cache, a Keyv instance, a Keyv store or a Map', where);
  return value;
};
export const anything: Check = (value) => value;
