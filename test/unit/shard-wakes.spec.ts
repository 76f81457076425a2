import { ShardedWakes } from '../../lib/redis/redis.shard-wakes';

/**
 * The bookkeeping of `ShardedWakes` where a real cluster cannot be made to
 * misbehave on cue: a SSUBSCRIBE that node-redis completes only after it was
 * given up on (it queues pub/sub commands while a node reconnects). The
 * client here answers when the test says so and records what node-redis
 * would hold; everything else about sharded wake-ups runs on a real cluster
 * (test/redis/cluster-sharded*).
 */
class SlowPubSub {
  readonly isReady = true;
  isOpen = true;
  /** Channels node-redis holds a listener of. */
  readonly listening = new Set<string>();
  /** Subscribes sent and not answered yet: call one to let it through. */
  readonly pending: Array<() => void> = [];
  on(): this {
    return this;
  }
  onRediscovered(): void {}
  stopRetrying(): void {}
  async close(): Promise<void> {
    this.isOpen = false;
  }
  destroy(): void {
    this.isOpen = false;
  }
  sSubscribe(channel: string): Promise<void> {
    return new Promise((resolve) =>
      this.pending.push(() => {
        this.listening.add(channel);
        resolve();
      }),
    );
  }
  async sUnsubscribe(channel: string): Promise<void> {
    this.listening.delete(channel);
  }
}

const CHANNEL = 'stampede:wake:{00000000}k';

describe('ShardedWakes, a subscribe answered after it was given up on', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function wakes() {
    const client = new SlowPubSub();
    const made = new ShardedWakes(client as never, () => undefined);
    made.idleMs = 1_000;
    return { client, made };
  }

  it('is undone when the channel is no longer wanted by then', async () => {
    const { client, made } = wakes();
    made.hold(CHANNEL);
    await jest.advanceTimersByTimeAsync(5_001);
    made.release(CHANNEL);
    client.pending.shift()!();
    await jest.advanceTimersByTimeAsync(2_000);
    expect(made.size).toBe(0);
    expect([...client.listening]).toEqual([]);
    await made.close();
  });

  it('is kept, and counted as subscribed, when the channel is still wanted', async () => {
    const { client, made } = wakes();
    made.hold(CHANNEL);
    await jest.advanceTimersByTimeAsync(5_001);
    client.pending.shift()!();
    await jest.advanceTimersByTimeAsync(0);
    expect([...client.listening]).toEqual([CHANNEL]);
    made.release(CHANNEL);
    await jest.advanceTimersByTimeAsync(2_000);
    // Idle long enough: unsubscribed like any other.
    expect([...client.listening]).toEqual([]);
    expect(made.size).toBe(0);
    await made.close();
  });
});
