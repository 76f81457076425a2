import type { Histogram, Link, Span } from '@opentelemetry/api';
import { waitAttributes } from './stampede.otel-attributes';

let stamp: number | undefined;
const settled = Promise.resolve();
const nextTurn = () => (stamp = undefined);

/**
 * `performance.now()` read once per turn of the event loop (until the
 * microtasks queued so far have run): a burst of callers joining together
 * shares one reading (a clock read costs as much as the rest of a join).
 * Off by at most the synchronous work done since, which held the event loop
 * (and so the joiner) anyway.
 */
export function turnNow(): number {
  if (stamp === undefined) {
    stamp = performance.now();
    void settled.then(nextTurn);
  }
  return stamp;
}

/**
 * The followers of one flight that are answered exactly when it settles
 * (the cheap join): kept compactly and told all at once, with no closure nor
 * Promise reaction of their own. When it settles, each wait is recorded in
 * the histogram and each recording request span gets its link and event.
 */
export class Followers {
  /** Run-length wait starts: `[start, count, start, count, …]` (a burst shares its start). */
  private readonly starts: number[] = [];
  /** The request spans that recorded when they joined. */
  private readonly requests: Span[] = [];

  add(timed: boolean, request: Span | undefined): void {
    if (timed) {
      const starts = this.starts;
      const at = turnNow();
      const last = starts.length - 2;
      if (last >= 0 && starts[last] === at) starts[last + 1]++;
      else starts.push(at, 1);
    }
    if (request !== undefined) this.requests.push(request);
  }

  settle(outcome: string, wait: Histogram | undefined, link: () => Link): void {
    const attributes = waitAttributes(outcome);
    const starts = this.starts;
    if (wait !== undefined && starts.length > 0) {
      const now = performance.now();
      for (let i = 0; i < starts.length; i += 2) {
        const waited = now - starts[i];
        for (let n = starts[i + 1]; n > 0; n--) wait.record(waited, attributes);
      }
    }
    if (this.requests.length === 0) return;
    // One link for all: by now a coordinator may have said which instance ran the work.
    const to = link();
    for (const request of this.requests) {
      if (!request.isRecording()) continue;
      request.addLink(to);
      request.addEvent('stampede.wait', attributes);
    }
  }
}
