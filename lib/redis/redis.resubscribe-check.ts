import { randomUUID } from 'node:crypto';
import { RedisClientLike } from './redis.options';

/** Milliseconds between two probes, at first; doubled up to `MAX_EVERY` while none is heard. */
const FIRST_EVERY = 100;
const MAX_EVERY = 2_000;

/**
 * Tells when a cluster's pub/sub connection is subscribed again after a
 * loss. node-redis says when a node connection drops (`node-reconnecting`)
 * but not when a pub/sub connection came back and resubscribed: so this
 * publishes a probe on the channel until the connection hears it, which
 * proves the subscription live again. Other instances ignore a probe (it
 * is no invalidation message).
 *
 * @example
 * ```ts
 * const check = new ResubscribeCheck(clusterClient, 'stampede:invalidate', () => l1.clear());
 * check.lost(); // on 'node-reconnecting': calls back once this instance hears its probe
 * ```
 */
export class ResubscribeCheck {
  private probe?: string;
  private timer?: ReturnType<typeof setTimeout>;
  private closed = false;

  constructor(
    private readonly client: RedisClientLike,
    private readonly channel: string,
    private readonly back: () => void,
  ) {}

  /** The connection dropped: probe until a probe comes back (one round at a time). */
  lost(): void {
    if (this.closed || this.probe !== undefined) return;
    this.probe = JSON.stringify({ probe: randomUUID() });
    this.send(FIRST_EVERY);
  }

  /** A message of the channel: true if it was this instance's probe (then the connection is back). */
  heard(message: string): boolean {
    if (message !== this.probe) return false;
    this.probe = undefined;
    clearTimeout(this.timer);
    this.back();
    return true;
  }

  close(): void {
    this.closed = true;
    this.probe = undefined;
    clearTimeout(this.timer);
  }

  private send(every: number): void {
    const probe = this.probe;
    if (this.closed || probe === undefined) return;
    // Unanswered while Redis is away: the next goes out later.
    if (this.client.isReady) this.client.sendCommand(['PUBLISH', this.channel, probe]).catch(() => undefined);
    this.timer = setTimeout(() => this.send(Math.min(every * 2, MAX_EVERY)), every);
    this.timer.unref();
  }
}
