import { randomUUID } from 'node:crypto';
import { Observable, Subscriber, Subscription, defer } from 'rxjs';
import { CoordinatedWrite } from '../core/coordinator';
import { StoredEntry } from '../core/store';
import { mayHaveRun } from './redis.connection';
import { ACQUIRE, COMMIT } from './redis.lease-scripts';
import type { RedisLease } from './redis.lease';
import { leaseValue, sharedBy } from './redis.lease-value';
import type { Fill } from './redis.fills';
import { asText } from './redis.reads';
import { lastUse } from './redis.codec';

export { leaseValue, sharedBy } from './redis.lease-value';

type State = 'checking' | 'waiting' | 'holding' | 'settling' | 'own' | 'done';

/**
 * One in-process leader's way through the lease: check, then wait, hold or
 * run its own (see `RedisLease`).
 *
 * @example
 * ```ts
 * new Observable<T>((subscriber) => {
 *   const flight = new LeaseFlight(lease, key, work, write, subscriber);
 *   flight.start();
 *   return () => flight.stop();
 * });
 * ```
 */
export class LeaseFlight<T> {
  private state: State = 'checking';
  /** The lease value: a random token, and with tracing the holder's span (see `leaseValue`). */
  private readonly token: string;
  /** What the latest holder seen shares of its trace (never logged). */
  private holder?: string;
  private checking = false;
  private checkAgain = false;
  private pollTimer?: ReturnType<typeof setTimeout>;
  private deadline?: ReturnType<typeof setTimeout>;
  /** Whether another holder was waited for (then the answer is a collapsed request, not a hit). */
  private waited = false;
  private unlisten?: () => void;
  private work$?: Subscription;
  /** What this flight may put in process (a value read, written or computed): not once its key is invalidated. */
  private fill?: Fill;

  constructor(
    private readonly lease: RedisLease,
    private readonly key: string,
    private readonly work: () => Observable<T>,
    private readonly write: CoordinatedWrite<T>,
    private readonly subscriber: Subscriber<T>,
  ) {
    this.token = leaseValue(randomUUID(), write.trace?.share?.());
  }

  private get store() {
    return this.lease.store;
  }

  private get connection() {
    return this.lease.store.connection;
  }

  start(): void {
    this.fill = this.store.fills.begin(this.key);
    // Listen before the first look, so a wake-up sent right after it is not missed; sharded, only
    // once it says to wait (a subscription costs a command: a holder or a hit needs none).
    if (!this.lease.subscriber?.shards) this.listen();
    this.deadline = setTimeout(() => this.giveUp(), this.lease.lockTimeout);
    this.check();
  }

  /** Every caller left (or the flight timed out): stop, and let the lease go if it was ours. */
  stop(): void {
    const held = this.state === 'holding';
    // A commit in progress ends the fill itself.
    const settling = this.state === 'settling';
    this.state = 'done';
    this.stopWaiting();
    this.work$?.unsubscribe();
    if (held) void this.commit(undefined);
    else if (!settling) this.endFill();
  }

  private endFill(): void {
    if (this.fill) this.store.fills.end(this.key, this.fill);
  }

  private isWaiting(): boolean {
    return this.state === 'checking' || this.state === 'waiting';
  }

  private check(readValue = true): void {
    if (!this.isWaiting()) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    const { keys } = this.store;
    const epoch = this.connection.epoch;
    const sentAt = Date.now();
    this.connection
      .run<unknown[]>(
        ACQUIRE,
        [keys.value(this.key), keys.lock(this.key)],
        [
          this.token,
          String(this.lease.leaseTtl),
          readValue ? '1' : '0',
          String(this.store.maxValueBytes),
          this.write.trace?.ranElsewhere ? '1' : '0',
        ],
      )
      .then(
        (reply) => {
          this.checking = false;
          this.onChecked(reply, sentAt);
        },
        (error: unknown) => {
          this.checking = false;
          // Redis may still run it when it resumes and grant a lease nobody holds: hand it back then.
          if (mayHaveRun(error)) this.lease.retry(this.key, this.token, () => this.send(undefined));
          // Redis failed: serve anyway, coalesced and cached in process (the outage is logged once by the connection).
          if (this.isWaiting()) this.runOwn(epoch);
        },
      );
  }

  private onChecked(reply: unknown[], sentAt: number): void {
    const kind = Array.isArray(reply) ? asText(reply[0]) : undefined;
    if (!this.isWaiting()) {
      // Stopped or gave up while the lease was being taken: hand it back at once.
      if (kind === 'l') void this.commit(undefined);
      return;
    }
    if (kind === 'v') {
      const entry = this.store.accept(this.key, asText(reply[1]), Number(reply[2]), sentAt, this.fill);
      if (entry && entry.e > Date.now() && (this.lease.tags?.isValid(entry) ?? true)) {
        // Already there on the first look: a hit from the shared store, not a wait on another holder.
        if (!this.waited) this.write.found?.(entry as StoredEntry<T>);
        this.write.trace?.ranElsewhere?.(this.holder, this.waited);
        return this.answer(entry.v as T);
      }
      // Unreadable, stale (what a refresh replaces) or of an invalidated tag: go for the lease, the holder's write replaces it.
      return this.check(false);
    }
    if (kind === 'l') return this.hold();
    if (kind !== 'w') return this.runOwn();
    this.state = 'waiting';
    this.waited = true;
    this.listen(sentAt);
    if (reply.length > 2) this.holder = sharedBy(asText(reply[2]));
    if (this.checkAgain) {
      this.checkAgain = false;
      return this.check();
    }
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.check(), this.lease.pollDelay(Number(reply[1])));
  }

  private answer(value: T): void {
    this.state = 'done';
    this.stopWaiting();
    this.endFill();
    this.subscriber.next(value);
    this.subscriber.complete();
  }

  /** Waited `lockTimeout`: run the work here, uncached. */
  private giveUp(): void {
    if (this.isWaiting()) this.runOwn();
  }

  /**
   * Runs the work here. With the outage `epoch` (Redis failed), a result
   * that may be stored is kept in process while the outage lasts.
   */
  private runOwn(epoch?: number): void {
    this.state = 'own';
    this.stopWaiting();
    if (epoch === undefined) {
      this.endFill();
      this.work$ = defer(this.work).subscribe(this.subscriber);
      return;
    }
    this.runWork(
      (error) => {
        this.endFill();
        this.subscriber.error(error);
      },
      (last) => {
        if (last && this.write.storable(last.value)) {
          this.store.keepDuringOutage(this.key, this.write.entry(last.value), epoch, this.fill);
        }
        this.endFill();
        this.subscriber.complete();
      },
    );
  }

  private hold(): void {
    this.state = 'holding';
    this.stopWaiting();
    this.runWork(
      (error) => {
        this.state = 'settling';
        void this.commit(undefined).then(() => this.subscriber.error(error));
      },
      (last) => {
        this.state = 'settling';
        const storable = last !== undefined && this.write.storable(last.value);
        void this.commit(storable ? this.write.entry(last!.value) : undefined).then(() => this.subscriber.complete());
      },
    );
  }

  /** Runs the work here, its values passed on to the callers; `done` gets the last one (`undefined`: none). */
  private runWork(failed: (error: unknown) => void, done: (last: { value: T } | undefined) => void): void {
    let last: { value: T } | undefined;
    this.work$ = defer(this.work).subscribe({
      next: (value) => {
        last = { value };
        this.subscriber.next(value);
      },
      error: failed,
      complete: () => done(last),
    });
  }

  /**
   * Writes `entry` (if any) and releases the lease, both only if it is still
   * ours; never rejects. When Redis fails, it is tried again once Redis
   * answers (while the lease lasts), and the entry is kept in process.
   */
  private async commit(entry: StoredEntry | undefined): Promise<void> {
    const epoch = this.connection.epoch;
    try {
      await this.send(entry);
    } catch (error) {
      if (entry) this.write.stored?.(false);
      if (mayHaveRun(error) || this.connection.isDown) this.lease.retry(this.key, this.token, () => this.send(entry));
      if (entry) this.store.keepDuringOutage(this.key, entry, epoch, this.fill);
    } finally {
      this.endFill();
    }
  }

  /** Runs COMMIT for `entry`, its time to live counted from now; keeps a value it wrote in L1. */
  private async send(entry: StoredEntry | undefined): Promise<void> {
    let text = '';
    // Kept as long as any of its windows (fresh, stale, fallback) lasts, as the coalescer's own writes are.
    const px = entry ? Math.ceil(lastUse(entry) - Date.now()) : 0;
    // Not representable in JSON (circular) or over maxValueBytes: shared with this instance's callers, not stored.
    if (entry && px > 0) text = this.store.encode(entry, Date.now() + px) ?? '';
    const kept = await this.connection.run<number>(COMMIT, this.leaseKeys(), this.release(text, px));
    const stored = Number(kept) === 1 && entry !== undefined && text !== '';
    if (stored) this.store.remember(this.key, entry, this.fill);
    if (entry) this.write.stored?.(stored);
  }

  private leaseKeys(): string[] {
    const { keys } = this.store;
    return [keys.lock(this.key), keys.value(this.key)];
  }

  private release(text = '', px = 0): string[] {
    const [channel, sharded] = [this.store.keys.wake(this.key), this.lease.subscriber?.shards ? 's' : 'p'];
    return [this.token, text, String(px), channel, text ? 'stored' : 'released', sharded];
  }

  /** Listens to the key's wake-ups (once); `since`: a wake-up heard after it counts too. */
  private listen(since?: number): void {
    this.unlisten ??= this.lease.subscriber?.listen(this.key, () => this.check(), since);
  }

  private stopWaiting(): void {
    clearTimeout(this.pollTimer);
    clearTimeout(this.deadline);
    this.unlisten?.();
    this.unlisten = undefined;
  }
}
