/** The units a duration string may end with: milliseconds, seconds, minutes, hours. */
export type DurationUnit = 'ms' | 's' | 'm' | 'h';

/**
 * A length of time: milliseconds as a number, or a string as configuration
 * hands it over: `'30000'` (milliseconds) or a number with a unit (`'250ms'`,
 * `'30s'`, `'1.5s'`, `'5m'`, `'1h'`). Every millisecond option takes one.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ ttl: '30s', staleTtl: '5m', timeout: 2_000 });
 * ```
 */
export type Duration = number | `${number}` | `${number}${DurationUnit}`;

const UNIT_MS: Record<DurationUnit, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

// Digits, an optional fraction, an optional unit; nothing else (no sign, no exponent, no spaces):
// '30 sec', '-5s' and '' are mistakes to report, not values to guess at.
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/**
 * The milliseconds a duration string stands for, or `undefined` when the
 * string is not one. Numbers are not handled here: they are milliseconds.
 *
 * @example
 * ```ts
 * parseDuration('1.5s'); // => 1500
 * parseDuration('30 sec'); // => undefined
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (match === null) return undefined;
  const ms = Number(match[1]) * UNIT_MS[(match[2] ?? 'ms') as DurationUnit];
  // Rounded to a microsecond: '1.1s' is 1100, not 1100.0000000000002.
  return Number.isFinite(ms) ? Math.round(ms * 1_000) / 1_000 : undefined;
}

/**
 * Options with every `Duration` field in its resolved form, milliseconds:
 * what the library reads once options have been validated.
 *
 * @example
 * ```ts
 * const resolved: InMilliseconds<CoalesceOptions> = validateCoalesceOptions({ ttl: '30s' }); // ttl: 30000
 * ```
 */
export type InMilliseconds<T> = { [K in keyof T]: T[K] extends Duration | undefined ? Exclude<T[K], string> : T[K] };
