import { promiseDeadline } from '../core/deadline';
import type { ClusterClient } from './redis.cluster';

/** Milliseconds a channel nobody listens to any more stays subscribed (a hot key keeps its subscription). */
const IDLE_MS = 60_000;

/** Channels nobody listens to that stay subscribed at most (the oldest goes first). */
const MAX_IDLE = 1_024;

/** Milliseconds between two passes that subscribe again what node-redis may have dropped (a failover, a slot move). */
const RESUBSCRIBE_EVERY = 5_000;

/** Milliseconds a SSUBSCRIBE or SUNSUBSCRIBE may take (node-redis queues them while a node reconnects). */
const COMMAND_WAIT = 5_000;

/** What a sharded wake-up channel is told once it is subscribed (a wake-up sent before was not heard). */
export const SUBSCRIBED = 'subscribed';

interface Channel {
  /** Local listeners of the channel's key. */
  refs: number;
  /** What node-redis has (our listener is on the channel), as far as the last command said. */
  subscribed: boolean;
  /** A SSUBSCRIBE or SUNSUBSCRIBE of it is in flight: the next waits for it. */
  busy: boolean;
  /** Since the last listener left: unsubscribed when it fires. */
  idle?: ReturnType<typeof setTimeout>;
  /** When the last message of the channel came (epoch ms). */
  heardAt?: number;
}

/**
 * The sharded pub/sub subscriptions of one instance (`redis.wake:
 * 'sharded'`), on a cluster connection of their own: node-redis opens a
 * pub/sub connection per primary on its first `SSUBSCRIBE` and closes it on
 * its last `SUNSUBSCRIBE`, and those must not look like the invalidation
 * connection coming back (which drops L1).
 *
 * Reference-counted per channel: the first listener subscribes; when the
 * last leaves, the channel stays subscribed for `idleMs` (at most `maxIdle`
 * such channels), so a hot key and its node's connection are not
 * subscribed, unsubscribed and reconnected per flight. One command per
 * channel is in flight at a time and the next is decided when it is done,
 * so an unsubscribe followed at once by a subscribe ends subscribed. After
 * a slot map refresh the client asks for (after a node error), on
 * node-redis's failed channel move, and every 5 s, the channels in use are subscribed
 * again (a no-op where node-redis still has them; on the new primary after a
 * failover). Meanwhile waiters poll: a lost wake-up costs latency only.
 *
 * @example
 * ```ts
 * const wakes = new ShardedWakes(cluster.duplicate(), (channel, message) => console.log(channel, message));
 * await wakes.start();
 * wakes.hold('stampede:wake:{1a2b3c4d}GET /prices'); // SSUBSCRIBE; 'subscribed' once it is
 * wakes.release('stampede:wake:{1a2b3c4d}GET /prices'); // SUNSUBSCRIBE after idleMs, unless held again
 * ```
 */
export class ShardedWakes {
  private readonly channels = new Map<string, Channel>();
  /** Channels without listeners, still subscribed, oldest first. */
  private readonly idle = new Set<string>();
  private closed = false;
  private timer?: ReturnType<typeof setInterval>;
  /** Commands sent (for tests and figures); `resubscribes` are the passes' SSUBSCRIBEs. */
  readonly counts = { subscribes: 0, unsubscribes: 0, resubscribes: 0 };
  /** Milliseconds an unlistened channel stays subscribed (a field so a test can shorten it). */
  idleMs = IDLE_MS;
  maxIdle = MAX_IDLE;
  private readonly onMessage = (message: string, channel: string) => {
    const entry = this.channels.get(channel);
    if (entry) entry.heardAt = Date.now();
    this.deliver(channel, message);
  };

  constructor(
    readonly client: ClusterClient,
    private readonly deliver: (channel: string, message: string) => void,
  ) {
    // Its errors are the main connection's to report; unheard, node-redis would crash the process.
    client.on('error', () => undefined);
    client.onRediscovered(() => this.resubscribe());
    // node-redis could not move a channel whose slot moved (its name for the event has this spelling).
    client.on('sharded-shannel-moved-error', () => this.resubscribe());
  }

  get isReady(): boolean {
    return this.client.isReady;
  }

  /** Connects; the subscriptions come with the listeners. */
  async start(): Promise<void> {
    this.timer ??= setInterval(() => this.resubscribe(), RESUBSCRIBE_EVERY);
    this.timer.unref();
    // A cluster that cannot be reached yet is tried again every second by the client itself.
    if (!this.client.isOpen) await this.client.connect();
  }

  /** Channels subscribed or being subscribed (for tests and leak checks). */
  get size(): number {
    return this.channels.size;
  }

  /** True if `channel` is subscribed and heard a message at `since` (epoch ms) or after. */
  heardSince(channel: string, since: number): boolean {
    const entry = this.channels.get(channel);
    return entry?.subscribed === true && entry.heardAt !== undefined && entry.heardAt >= since;
  }

  /** A listener of `channel` arrived: subscribe it if it is not yet. */
  hold(channel: string): void {
    if (this.closed) return;
    let entry = this.channels.get(channel);
    if (!entry) this.channels.set(channel, (entry = { refs: 0, subscribed: false, busy: false }));
    entry.refs++;
    clearTimeout(entry.idle);
    entry.idle = undefined;
    this.idle.delete(channel);
    this.sync(channel, entry);
  }

  /** A listener of `channel` left: after the last, it is unsubscribed once idle long enough. */
  release(channel: string): void {
    const entry = this.channels.get(channel);
    if (!entry || entry.refs === 0 || --entry.refs > 0 || this.closed) return;
    this.idle.add(channel);
    entry.idle = setTimeout(() => this.drop(channel), this.idleMs);
    entry.idle.unref();
    // Over the bound: the channels idle the longest go now.
    while (this.idle.size > this.maxIdle) this.drop(this.idle.values().next().value!);
  }

  private drop(channel: string): void {
    const entry = this.channels.get(channel);
    if (!entry || entry.refs > 0) return;
    clearTimeout(entry.idle);
    entry.idle = undefined;
    this.idle.delete(channel);
    this.sync(channel, entry);
  }

  private wanted(channel: string, entry: Channel): boolean {
    return entry.refs > 0 || this.idle.has(channel);
  }

  /** Sends what brings node-redis to the wanted state, one command at a time. */
  private sync(channel: string, entry: Channel, again = false): void {
    if (entry.busy || this.closed) return;
    const want = this.wanted(channel, entry);
    if (want === entry.subscribed && !(want && again)) {
      if (!want) this.channels.delete(channel);
      return;
    }
    // Not connected: the next pass subscribes it (a failed unsubscribe leaves a listener nobody hears).
    if (want && !this.client.isReady) return;
    entry.busy = true;
    if (!want) this.counts.unsubscribes++;
    else if (again) this.counts.resubscribes++;
    else this.counts.subscribes++;
    const sent = want
      ? this.client.sSubscribe(channel, this.onMessage)
      : this.client.sUnsubscribe(channel, this.onMessage);
    // One that never ends (a node that never answers) would block the channel: given up after a while.
    // A subscribe given up on may still go through later (node-redis queues it): then it is undone.
    let late = false;
    if (want)
      sent.then(
        () => late && this.undoLate(channel),
        () => undefined,
      );
    void promiseDeadline(sent, COMMAND_WAIT, () => ((late = true), new Error('timed out')))
      .then(
        () => {
          entry.subscribed = want;
          if (want && this.wanted(channel, entry)) this.deliver(channel, SUBSCRIBED);
          return true;
        },
        () => {
          entry.subscribed = false;
          return !want;
        },
      )
      .then((settled) => {
        entry.busy = false;
        // A failed subscribe waits for the next pass; anything else goes on to the state wanted now.
        if (settled || !this.wanted(channel, entry)) this.sync(channel, entry);
      });
  }

  /** A SSUBSCRIBE given up on went through after all: kept if the channel is wanted, else undone. */
  private undoLate(channel: string): void {
    if (this.closed) return;
    const entry = this.channels.get(channel);
    // A command in flight for it decides its state.
    if (entry?.busy) return;
    if (entry && this.wanted(channel, entry)) {
      entry.subscribed = true;
      if (entry.refs > 0) this.deliver(channel, SUBSCRIBED);
      return;
    }
    this.counts.unsubscribes++;
    this.client.sUnsubscribe(channel, this.onMessage).catch(() => undefined);
  }

  /** Subscribes every channel in use again: a no-op where node-redis still has it. */
  resubscribe(): void {
    if (this.closed || !this.client.isReady) return;
    for (const [channel, entry] of this.channels) if (this.wanted(channel, entry)) this.sync(channel, entry, true);
  }

  /** Unsubscribes nothing (the connection goes): closes it. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const entry of this.channels.values()) clearTimeout(entry.idle);
    this.channels.clear();
    this.idle.clear();
    // A connection that never came up is not closed below, but may still be trying to.
    this.client.stopRetrying();
    if (!this.client.isOpen) return;
    try {
      await promiseDeadline(this.client.close(), 1_000, () => undefined, { resolve: true });
    } finally {
      if (this.client.isOpen) this.client.destroy();
    }
  }
}
