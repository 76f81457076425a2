import type { Coalescer } from './coalescer';
import type { Flight } from './flight';
import type { RunPolicy } from './policy';

/**
 * The flight an entry point's callers joined last. A stampede's callers come
 * one after another with one key: each after the first joins that flight
 * again on a field check (is it still its key's flight?) instead of a
 * lookup of the key and the checks of `Waiting.joinsCheaply`.
 *
 * It holds one flight past its end, until the next join: one result per
 * entry point at most, answered to nobody once its flight is over.
 */
export class LastJoin {
  private flight?: Flight<unknown>;
  private key?: string;
  private policy?: RunPolicy<unknown>;

  /** `Coalescer.joinInFlight`, and the flight joined kept for the next caller. */
  join<T>(coalescer: Coalescer, key: string, policy: RunPolicy<T>): Promise<T> | undefined {
    if (this.flight !== undefined && key === this.key && policy === this.policy) {
      const again = coalescer.joinAgain(this.flight as Flight<T>);
      if (again !== undefined) return again;
    }
    const flight = coalescer.cheapFlight(key, policy);
    if (flight === undefined) return undefined;
    this.flight = flight as Flight<unknown>;
    this.key = key;
    this.policy = policy as RunPolicy<unknown>;
    return coalescer.joinAgain(flight);
  }

  /** Forgets the flight (its app is closing). */
  clear(): void {
    this.flight = this.key = this.policy = undefined;
  }
}
