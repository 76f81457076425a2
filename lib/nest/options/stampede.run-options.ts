import { MethodCoalesceOptions } from './stampede.options';

/** Per-call options of `StampedeService.run()` and `run$()`. Unset ones take the module's. */
export interface RunOptions extends Omit<MethodCoalesceOptions, 'key' | 'tags'> {
  /**
   * When every waiter has gone before a Promise work settled: abort its
   * signal and forget the flight (`true`), or let it run on, joinable, and
   * store its result (`false`, default). An Observable work is always
   * cancelled (unsubscribed) when every subscriber has gone.
   */
  cancelWhenAbandoned?: boolean;
  /** Tags stored with the result, for `invalidateTags`: a list or a function of the result. */
  tags?: string[] | ((result: unknown) => string[]);
}

const hasOwn = Object.prototype.hasOwnProperty;

/** Distinct sets of plain option values remembered at most (a program has a handful). */
export const MAX_POLICIES = 1_000;

/** `name=value;` for each option when every value is a primitive; `undefined` when one is not (tags, objects). */
export function signatureOf(options: RunOptions): string | undefined {
  let signature = '';
  for (const name in options) {
    // An inherited option is no option (`validateOptions` reads own ones): no signature, validated each call.
    if (!hasOwn.call(options, name)) return undefined;
    const value = (options as Record<string, unknown>)[name];
    const type = typeof value;
    if (value !== null && type !== 'number' && type !== 'boolean' && type !== 'string' && type !== 'undefined') {
      return undefined;
    }
    signature += `${name}=${type === 'string' ? JSON.stringify(value) : String(value)};`;
  }
  return signature;
}

/** True when `ttl` is the one option of `options`, its own (as `validateOptions` reads them). */
export function hasOnlyTtl(options: RunOptions): boolean {
  let count = 0;
  // `hasOwnProperty` of the key for-in gives: a check the JIT makes free for a plain object.
  for (const name in options) if (name !== 'ttl' || !hasOwn.call(options, name) || ++count > 1) return false;
  return count === 1;
}

/**
 * The name of the one option of `options` when it has exactly one, of a
 * primitive value; else `undefined`. A name, not a pair: this runs on every
 * `run()` call, and an object per call is garbage per call.
 */
export function onlyOption(options: RunOptions): string | undefined {
  let found: string | undefined;
  for (const name in options) {
    if (found !== undefined || !hasOwn.call(options, name)) return undefined;
    const type = typeof (options as Record<string, unknown>)[name];
    if (type !== 'number' && type !== 'boolean' && type !== 'string') return undefined;
    found = name;
  }
  return found;
}
