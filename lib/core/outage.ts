import { CoreLogger } from './guarded-store';

/** What an `OutageTracker` says when a dependency goes away and when it is back. */
export interface OutageMessages {
  /** The warning logged once when an outage starts; given the first failure's reason. */
  down(reason: string): string;
  /** The line logged once when it answers again. */
  back: string;
}

/** The reason of a failure, for a log line. */
export function describeFailure(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

/**
 * Whether a dependency (a store, Redis) is down, logged once per outage: a
 * warning when it starts and one line when it ends, however many calls fail
 * in between. Listeners hear both edges (e.g. to resynchronise after one).
 */
export class OutageTracker {
  private down = false;
  private readonly listeners = new Set<(down: boolean) => void>();

  constructor(
    private readonly logger: CoreLogger,
    private readonly messages: OutageMessages,
  ) {}

  get isDown(): boolean {
    return this.down;
  }

  /** Notes a failure; true if it started an outage. */
  fail(reason: unknown): boolean {
    if (this.down) return false;
    this.down = true;
    this.logger.warn(this.messages.down(describeFailure(reason)));
    this.tell(true);
    return true;
  }

  /** Notes a success; true if it ended an outage. */
  succeed(): boolean {
    if (!this.down) return false;
    this.down = false;
    this.logger.log(this.messages.back);
    this.tell(false);
    return true;
  }

  /** Calls `listener(true)` when an outage starts and `listener(false)` when it ends; returns a function that stops it. */
  onChange(listener: (down: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private tell(down: boolean): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(down);
      } catch {
        // A listener's failure is its own; the state change stands.
      }
    }
  }
}
