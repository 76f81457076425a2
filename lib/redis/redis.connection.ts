import { createHash } from 'node:crypto';
import { promiseDeadline } from '../core/deadline';
import { CoreLogger } from '../core/guarded-store';
import { OutageTracker, describeFailure } from '../core/outage';
import { RedisClientLike } from './redis.options';

/**
 * Milliseconds one Redis call may take. node-redis bounds a command only
 * until it is written, so a Redis that accepts connections but stops
 * answering would otherwise hang requests for good.
 */
export const COMMAND_TIMEOUT = 1_000;

/** After a call timed out, milliseconds during which calls fail at once, but for one probe. */
export const PROBE_INTERVAL = 1_000;

/**
 * Thrown (and caught inside the Redis tier) when Redis is not answering.
 *
 * @example
 * ```ts
 * await connection.command(['PING']).catch((error) => error instanceof RedisUnavailableError);
 * ```
 */
export class RedisUnavailableError extends Error {
  constructor(
    reason: string,
    /** False when the call was refused before it was sent: Redis cannot have run it. */
    readonly sent = true,
  ) {
    super(reason);
    this.name = 'RedisUnavailableError';
  }
}

/**
 * True when Redis may have run a call that failed (it timed out, or the
 * connection dropped after it was written): e.g. a lease it asked for may
 * have been granted after all.
 */
export function mayHaveRun(error: unknown): boolean {
  return !(error instanceof RedisUnavailableError && !error.sent);
}

/**
 * A Lua script run by `EVALSHA`, falling back to `EVAL` the first time a
 * server does not know it (and after a restart, which forgets scripts).
 *
 * @example
 * ```ts
 * const GET_TWICE = new LuaScript(`return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[1])}`);
 * await connection.run(GET_TWICE, ['some-key'], []);
 * ```
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects after `ms`, deciding
 * after the I/O phase (a reply already in the socket buffer still wins after
 * a stall). `overdue` is called as the timer fires, before that decision.
 */
function bounded<T>(promise: Promise<T>, ms: number, overdue: () => void): Promise<T> {
  return promiseDeadline(promise, ms, () => new RedisUnavailableError(`no answer within ${ms} ms`), {
    afterIo: true,
    onFire: overdue,
  });
}

/**
 * The Redis tier's one way to the server: every call bounded in time, and the
 * connection's health tracked in one place, so an outage is logged once (a
 * warning when it starts, a line when Redis answers again) however many
 * requests run into it. While Redis is known to be down (disconnected, or a
 * call just timed out) calls fail at once instead of each paying the timeout.
 *
 * @example
 * ```ts
 * const connection = new RedisConnection(client, new Logger('Stampede'));
 * const value = await connection.command<string | null>(['GET', 'stampede:v:GET /prices']);
 * ```
 */
export class RedisConnection {
  private readonly outage: OutageTracker;
  private probeAt = 0;
  private outages = 0;
  private readonly scripts = new Map<string, LuaScript>();
  private probeTimer?: ReturnType<typeof setInterval>;
  /** Set when a call's time ran out, until it is decided: calls that follow (a caller bounded by the same time) fail fast. */
  private overdue = false;
  private readonly onOverdue = () => (this.overdue = true);
  private readonly onError = (error: unknown) => this.fail(error);
  private readonly onReady = () => {
    this.loadScripts();
    this.succeed();
  };

  constructor(
    readonly client: RedisClientLike,
    logger: CoreLogger,
    private readonly timeout = COMMAND_TIMEOUT,
  ) {
    this.outage = new OutageTracker(logger, {
      down: (reason) => `Redis unreachable (${reason}): caching and coalescing per instance until it answers again`,
      back: 'Redis answers again: shared caching and cross-instance coalescing resumed',
    });
    // node-redis emits 'error' on every failed reconnection attempt; one listener keeps that from
    // crashing the process, and turns the stream into one line per outage.
    client.on('error', this.onError);
    client.on('ready', this.onReady);
    // While down, a probe now and then finds Redis back even when no request asks: what waits
    // for its return (replayed invalidations, leases to release) does not wait for traffic.
    this.outage.onChange((down) => {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
      if (!down) return;
      this.probeTimer = setInterval(() => {
        if (this.client.isReady) this.command(['PING']).catch(() => undefined);
      }, PROBE_INTERVAL);
      this.probeTimer.unref();
    });
  }

  /** True on a Redis Cluster: a multi-key call must stay within one hash slot. */
  get isCluster(): boolean {
    return typeof this.client.primaries === 'function';
  }

  /**
   * The clients a `SCAN` must visit: every primary of a cluster, or the one
   * connection. Rejects when Redis is unreachable.
   */
  async primaries(): Promise<RedisClientLike[]> {
    if (!this.client.primaries) return [this.client];
    this.admit();
    try {
      return await bounded(this.client.primaries(), this.timeout, this.onOverdue);
    } catch (error) {
      this.fail(error);
      throw error;
    }
  }

  /** True while Redis is considered unreachable. */
  get isDown(): boolean {
    return this.outage.isDown;
  }

  /**
   * Counts the outages that ended: what was kept in process during one is
   * not kept once it is over (`epoch` changed in between).
   */
  get epoch(): number {
    return this.outages;
  }

  /**
   * Calls `listener` each time Redis answers again after an outage (after a
   * reconnection too): what was learned in process meanwhile is suspect.
   * Returns a function that stops it.
   */
  onBack(listener: () => void): () => void {
    return this.outage.onChange((down) => {
      if (!down) listener();
    });
  }

  /**
   * Loads `script` on the server whenever the connection becomes ready, so
   * the first call after a restart is one `EVALSHA`, not a `NOSCRIPT` and an `EVAL`.
   */
  preload(script: LuaScript): void {
    if (this.scripts.has(script.sha)) return;
    this.scripts.set(script.sha, script);
    if (this.client.isReady) this.load(script);
  }

  /**
   * Sends one command (`['SET', key, value, 'PX', '1000']`), on `via` if
   * given (one primary of a cluster); rejects when Redis is unreachable,
   * slow, or answers with an error.
   *
   * @example
   * ```ts
   * await connection.command(['PUBLISH', 'stampede:wake:k', 'done']);
   * ```
   */
  async command<T>(args: readonly string[], via: RedisClientLike = this.client): Promise<T> {
    this.admit();
    const sent = via.sendCommand<T>(args);
    try {
      const reply = await bounded(sent, this.timeout, this.onOverdue);
      this.succeed();
      return reply;
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.probeAt = Date.now() + PROBE_INTERVAL;
        // A late answer proves Redis is back (a stall ended): no need to wait for the next probe.
        sent.then(
          () => this.succeed(),
          () => undefined,
        );
      }
      // A script error or a wrong-type reply is an answer: the server is up.
      if (isServerReply(error)) this.succeed();
      else this.fail(error);
      throw error;
    }
  }

  /**
   * Runs a Lua script with `keys` and `args`.
   *
   * @example
   * ```ts
   * const released = await connection.run<number>(RELEASE, [lockKey], [token]);
   * ```
   */
  async run<T>(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<T> {
    if (!this.scripts.has(script.sha)) this.scripts.set(script.sha, script);
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.command<T>(['EVALSHA', script.sha, ...tail]);
    } catch (error) {
      if (!describeFailure(error).startsWith('NOSCRIPT')) throw error;
      return this.command<T>(['EVAL', script.source, ...tail]);
    }
  }

  /** Stops listening to the client (which stays open: closing is the owner's business). */
  detach(): void {
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.client.off('error', this.onError);
    this.client.off('ready', this.onReady);
  }

  /** Fails fast while Redis is known to be unreachable; lets one call through now and then as a probe. */
  private admit(): void {
    if (!this.client.isReady) {
      const error = new RedisUnavailableError('not connected', false);
      this.fail(error);
      throw error;
    }
    if (this.overdue && !this.outage.isDown) throw new RedisUnavailableError('not answering', false);
    if (!this.outage.isDown || this.probeAt === 0) return;
    const now = Date.now();
    if (now < this.probeAt) throw new RedisUnavailableError('not answering', false);
    this.probeAt = now + this.timeout + PROBE_INTERVAL;
  }

  private fail(error: unknown): void {
    this.overdue = false;
    this.outage.fail(error);
  }

  private succeed(): void {
    this.overdue = false;
    this.probeAt = 0;
    if (!this.outage.isDown) return;
    this.outages++;
    this.outage.succeed();
  }

  private loadScripts(): void {
    for (const script of this.scripts.values()) this.load(script);
  }

  // Sent ahead of any call on the fresh connection: replies come in order, so no call waits for it.
  private load(script: LuaScript): void {
    this.client.sendCommand(['SCRIPT', 'LOAD', script.source]).catch(() => undefined);
  }
}

/**
 * An error reply from a server that works (a script error, a wrong type), as
 * opposed to a connection failure or a server that cannot serve yet.
 */
function isServerReply(error: unknown): boolean {
  if (!(error instanceof Error) || /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(error.message))
    return false;
  for (let proto = Object.getPrototypeOf(error); proto; proto = Object.getPrototypeOf(proto)) {
    if ((proto as { constructor?: { name?: string } }).constructor?.name === 'ErrorReply') return true;
  }
  return false;
}
