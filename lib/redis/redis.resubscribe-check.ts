import { randomUUID } from 'node:crypto';
import { RedisClientLike } from './redis.options';

/** Milliseconds between two probes, at first; doubled up to `MAX_EVERY` while none is heard. */
const FIRST_EVERY = 100;
const MAX_EVERY = 2_000;

/**
 * Tells when a pub/sub connection (a Cluster's, a Sentinel's) is subscribed
 * again after a loss. node-redis says when it drops but not when it came
 * back and resubscribed: so this publishes a probe on the channel until the
 * connection hears it, which proves the subscription live again. One probe
 * is out at a time (a client may hold a command until Redis answers).
 * Other instances ignore a probe (it is no invalidation message).
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
  private sending = false;

  constructor(
    private readonly client: RedisClientLike,
    private readonly channel: string,
    private readonly back: () => void,
  ) {}

  /** The connection dropped: probe until a probe comes back. True if this started a round (one at a time). */
  lost(): boolean {
    if (this.closed || this.probe !== undefined) return false;
    this.probe = JSON.stringify({ probe: randomUUID() });
    this.send(FIRST_EVERY);
    return true;
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
    // Unanswered while Redis is away: the next goes out later, once the last one is done.
    if (this.client.isReady && !this.sending) {
      this.sending = true;
      this.client
        .sendCommand(['PUBLISH', this.channel, probe])
        .catch(() => undefined)
        .finally(() => (this.sending = false));
    }
    this.timer = setTimeout(() => this.send(Math.min(every * 2, MAX_EVERY)), every);
    this.timer.unref();
  }
}
