import { isStoreInput } from './core/store-adapter';
import { StampedeOptionsError } from './stampede.options-error';

/** How each kind of option value is checked; every failure names the option, the value and where it was given. */

export type Check = (value: unknown, name: string, where: string) => void;

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
export const milliseconds: Check = (value, name, where) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(name, value, 'a finite number of milliseconds >= 0', where);
  }
};
export const count =
  (min: number): Check =>
  (value, name, where) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      fail(name, value, `an integer >= ${min}`, where);
    }
  };
export const boolean: Check = (value, name, where) => {
  if (typeof value !== 'boolean') fail(name, value, 'a boolean', where);
};
export const fn: Check = (value, name, where) => {
  if (typeof value !== 'function') fail(name, value, 'a function', where);
};
export const oneOf =
  (...allowed: string[]): Check =>
  (value, name, where) => {
    if (!allowed.includes(value as string)) fail(name, value, allowed.map((a) => `'${a}'`).join(' or '), where);
  };
export const headerNames: Check = (value, name, where) => {
  if (!Array.isArray(value) || !value.every((h) => typeof h === 'string' && TOKEN.test(h))) {
    fail(name, value, 'an array of header names', where);
  }
};
export const jitter: Check = (value, name, where) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(name, value, 'a fraction of the ttl (0 to < 1) or milliseconds (>= 1)', where);
  }
};
export const earlyRefresh: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const beta = (value as { beta?: unknown } | null)?.beta;
  if (typeof value !== 'object' || typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0) {
    fail(name, value, 'true, false or { beta: a number > 0 }', where);
  }
};
export const tags: Check = (value, name, where) => {
  if (typeof value === 'function') return;
  if (!Array.isArray(value) || !value.every((tag) => typeof tag === 'string')) {
    fail(name, value, 'an array of strings or a function', where);
  }
};
export const statusTtl: Check = (value, name, where) => {
  if (typeof value === 'function') return;
  const valid =
    typeof value === 'object' &&
    value !== null &&
    Object.entries(value).every(
      ([status, ms]) => /^[1-5]\d\d$/.test(status) && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0,
    );
  if (!valid) fail(name, value, 'a map of HTTP status to ms >= 0, or a function', where);
};
export const keyBody: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const maxBytes = (value as { maxBytes?: unknown } | null)?.maxBytes;
  if (typeof value !== 'object' || !Number.isSafeInteger(maxBytes) || (maxBytes as number) <= 0) {
    fail(name, value, 'true, false or { maxBytes: an integer > 0 }', where);
  }
};
export const methods: Check = (value, name, where) => {
  if (
    !Array.isArray(value) ||
    !value.every((m) => typeof m === 'string' && TOKEN.test(m) && KNOWN_METHODS.has(m.toUpperCase()))
  ) {
    fail(name, value, `an array of HTTP methods (${[...KNOWN_METHODS].join(', ')})`, where);
  }
};
export const metrics: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const prefix = (value as { prefix?: unknown } | null)?.prefix;
  if (
    typeof value !== 'object' ||
    value === null ||
    (prefix !== undefined && (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)))
  ) {
    fail(name, value, 'true, false or { prefix?: a metric name prefix, registry? }', where);
  }
};
export const openTelemetry: Check = (value, name, where) => {
  if (typeof value === 'boolean') return;
  const known = ['traces', 'metrics', 'tracer', 'meter'];
  const given = value as Record<string, unknown> | null;
  if (
    typeof value !== 'object' ||
    given === null ||
    Object.keys(given).some((key) => !known.includes(key)) ||
    (given.traces !== undefined && typeof given.traces !== 'boolean') ||
    (given.metrics !== undefined && typeof given.metrics !== 'boolean')
  ) {
    fail(name, value, 'true, false or { traces?: boolean, metrics?: boolean, tracer?, meter? }', where);
  }
};
export const store: Check = (value, name, where) => {
  if (!isStoreInput(value)) fail(name, value, 'a cache-manager Cache, a Keyv instance, a Keyv store or a Map', where);
};
export const anything: Check = () => undefined;
