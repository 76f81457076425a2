/**
 * Fakes only `Date` (to move past a TTL, optionally starting at `now`) and
 * leaves timers, promises, I/O and `performance` real.
 */
export function fakeDateOnly(now?: number): void {
  jest.useFakeTimers({
    now,
    doNotFake: [
      'nextTick',
      'setImmediate',
      'clearImmediate',
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'queueMicrotask',
      'hrtime',
      'performance',
    ],
  });
}
