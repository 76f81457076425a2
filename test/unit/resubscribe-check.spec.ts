import { ResubscribeCheck } from '../../lib/redis/redis.resubscribe-check';

/**
 * The probe round of `ResubscribeCheck`, with a client that holds each
 * PUBLISH until the test answers it (as node-redis does while a Sentinel's
 * primary is away). Its use on real servers: test/redis/cluster.spec and
 * test/redis/sentinel.e2e.spec.
 */
class HeldPublish {
  isReady = true;
  readonly sent: Array<{ probe: string; answer(): void }> = [];
  sendCommand(args: readonly string[]): Promise<unknown> {
    return new Promise((resolve) => this.sent.push({ probe: String(args[2]), answer: () => resolve(1) }));
  }
}

describe('ResubscribeCheck', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs one round at a time, one probe out at a time, and calls back once its own probe is heard', async () => {
    const client = new HeldPublish();
    let back = 0;
    const check = new ResubscribeCheck(client as never, 'stampede:invalidate', () => back++);
    expect(check.lost()).toBe(true);
    expect(check.lost()).toBe(false);
    await jest.advanceTimersByTimeAsync(10_000);
    // Held by the client: no pile of probes behind it.
    expect(client.sent).toHaveLength(1);
    client.sent[0].answer();
    await jest.advanceTimersByTimeAsync(2_000);
    expect(client.sent).toHaveLength(2);
    expect(check.heard('{"k":"other","o":"x"}')).toBe(false);
    expect(check.heard(client.sent[1].probe)).toBe(true);
    expect(back).toBe(1);
    // The round is over: a late copy of its probe means nothing.
    expect(check.heard(client.sent[1].probe)).toBe(false);
    // A new round waits for the probe still out; closed, it sends nothing more.
    expect(check.lost()).toBe(true);
    check.close();
    client.sent.forEach((sent) => sent.answer());
    await jest.advanceTimersByTimeAsync(10_000);
    expect(client.sent).toHaveLength(2);
    expect(back).toBe(1);
  });
});
