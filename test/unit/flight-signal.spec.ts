import { FlightSignal, readsArguments } from '../../lib/core/flight-signal';

describe('FlightSignal', () => {
  it('makes no AbortSignal until one is asked for, and then always the same one', () => {
    const flight = new FlightSignal();
    const signal = flight.signal;
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(flight.signal).toBe(signal);
    expect(signal.aborted).toBe(false);
  });

  it('aborts the signal made before the abort, with its reason, once', () => {
    const flight = new FlightSignal();
    const signal = flight.signal;
    const reasons: unknown[] = [];
    signal.addEventListener('abort', () => reasons.push(signal.reason));
    const reason = new Error('timed out');
    flight.abort(reason);
    flight.abort(new Error('again'));
    expect(signal.aborted).toBe(true);
    expect(reasons).toEqual([reason]);
  });

  it('hands a signal asked for after the abort already aborted, with the first reason', () => {
    const flight = new FlightSignal();
    const reason = new Error('flight cancelled');
    flight.abort(reason);
    flight.abort(new Error('again'));
    expect(flight.signal.aborted).toBe(true);
    expect(flight.signal.reason).toBe(reason);
  });
});

describe('readsArguments', () => {
  it('is false only for arrow functions without parameters', () => {
    expect(readsArguments(() => 1)).toBe(false);
    expect(readsArguments(async () => 1)).toBe(false);
    expect(readsArguments(() => 1)).toBe(false);
  });

  it('is true for every work that can see its arguments, whatever its length says', () => {
    /* eslint-disable prefer-rest-params */
    const cases: ((...args: never[]) => unknown)[] = [
      (signal: AbortSignal) => signal,
      (signal: AbortSignal | undefined = undefined) => signal,
      (...args: unknown[]) => args,
      ({ aborted }: AbortSignal = new AbortController().signal) => aborted,
      function () {
        return arguments[0];
      },
      function named() {
        return arguments.length;
      },
      {
        method() {
          return 1;
        },
      }.method,
      ((signal: AbortSignal) => signal).bind(undefined),
      (() => 1).bind(undefined),
    ];
    /* eslint-enable prefer-rest-params */
    expect(cases.map((work) => readsArguments(work))).toEqual(cases.map(() => true));
  });
});
