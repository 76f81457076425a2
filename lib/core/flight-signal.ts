/**
 * A flight's `AbortSignal`, made only when something asks for it. An
 * `AbortController` costs microseconds in Node 20 (more than the rest of a
 * flight), and most works cannot read their signal at all: `() => db.find(id)`.
 * An abort before the signal exists is remembered: a signal asked for later
 * is born aborted, with the same reason.
 */
export class FlightSignal {
  private controller?: AbortController;
  private aborted = false;
  private reason: unknown;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

// `() =>` and `async () =>`: an arrow function has no `arguments`, so with no
// parameter it cannot see what it is called with. Anything else might.
const NO_PARAMETERS = /^(?:async\s*)?\(\s*\)\s*=>/;
const sourceOf = Function.prototype.toString;

/** False only for a work that cannot see its arguments (an arrow function without parameters). */
export function readsArguments(work: (...args: never[]) => unknown): boolean {
  return work.length > 0 || !NO_PARAMETERS.test(sourceOf.call(work));
}
