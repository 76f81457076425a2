// The package's public errors, in one place: the options error is defined here; the engine's
// own are defined where they are thrown (the core imports nothing from outside it).
export { StampedeTimeoutError } from './core/deadline';
export { StampedeMissingKeyError } from './core/batch';

/** Thrown at bootstrap (or where `@Coalesce` is applied) for an invalid option.
 *
 * @example
 * ```ts
 * StampedeModule.forRoot({ ttl: -1 });
 * // app creation fails: nestjs-stampede: invalid option "ttl": expected a finite number of milliseconds >= 0, got -1
 * ```
 */
export class StampedeOptionsError extends Error {
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
    /** Where it was given: `StampedeModule.forRoot`, `@Coalesce on Class.method`, `StampedeService.run`... */
    readonly where?: string,
  ) {
    super(
      `nestjs-stampede: invalid option "${option}": expected ${expected}, got ${describe(value)}${where ? ` (in ${where})` : ''}`,
    );
    this.name = 'StampedeOptionsError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `a function`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
