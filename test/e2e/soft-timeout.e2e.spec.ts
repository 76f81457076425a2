import { Test, TestingModule } from '@nestjs/testing';
import { StampedeEvent, StampedeModule, StampedeService } from '../../lib';
import { fakeDateOnly } from '../helpers/clock';

/** A work that waits for `release()`, counting its calls. */
function gated<T>() {
  let release!: (value: T) => void;
  let calls = 0;
  const work = () => {
    calls++;
    return new Promise<T>((resolve) => (release = resolve));
  };
  return { work, release: (value: T) => release(value), calls: () => calls };
}

describe('softTimeout and failSafeThrottle', () => {
  let moduleRef: TestingModule;
  let stampede: StampedeService;
  let events: StampedeEvent[];
  const windows = { ttl: 1_000, staleIfError: 60_000 };

  beforeEach(async () => {
    fakeDateOnly();
    moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    await moduleRef.init();
    stampede = moduleRef.get(StampedeService);
    events = [];
    stampede.on((event) => events.push(event));
    await stampede.run('k', () => 'old', windows);
    jest.setSystemTime(Date.now() + 1_001); // past ttl, within staleIfError
  });
  afterEach(async () => {
    await moduleRef.close();
    jest.useRealTimers();
  });

  it('answers with the old value at the soft timeout, and stores the work’s result when it comes', async () => {
    const slow = gated<string>();
    const answers = await Promise.all([
      stampede.run('k', slow.work, { ...windows, softTimeout: 20 }),
      stampede.run('k', slow.work, { ...windows, softTimeout: 20 }),
    ]);
    expect(answers).toEqual(['old', 'old']);
    expect(events.filter((e) => e.type === 'stale').map((e) => e.staleReason)).toEqual(['timeout', 'timeout']);
    expect(slow.calls()).toBe(1);
    const stored = new Promise<void>((resolve) => stampede.on((e) => e.type === 'stored' && resolve()));
    slow.release('new');
    await stored;
    expect(await stampede.run('k', () => 'not run', windows)).toBe('new');
    expect(slow.calls()).toBe(1);
  });

  it('changes nothing without an old value that may stand in', async () => {
    const slow = gated<string>();
    let settled = false;
    const answer = stampede
      .run('fresh-key', slow.work, { ...windows, softTimeout: 5 })
      .then((v) => ((settled = true), v));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(settled).toBe(false);
    slow.release('computed');
    expect(await answer).toBe('computed');
  });

  it('after a failure answered by the old value, lets it stand in for failSafeThrottle before the next try', async () => {
    let calls = 0;
    const failing = () => {
      calls++;
      return Promise.reject(new Error('origin down'));
    };
    const options = { ...windows, failSafeThrottle: 10_000 };
    expect(await stampede.run('k', failing, options)).toBe('old');
    expect(await stampede.run('k', failing, options)).toBe('old');
    expect(await stampede.run('k', failing, options)).toBe('old');
    expect(calls).toBe(1);
    jest.setSystemTime(Date.now() + 10_001);
    expect(await stampede.run('k', failing, options)).toBe('old');
    expect(calls).toBe(2);
  });

  it('fails bootstrap for a negative softTimeout or failSafeThrottle, naming it', async () => {
    for (const option of ['softTimeout', 'failSafeThrottle']) {
      await expect(
        Test.createTestingModule({ imports: [StampedeModule.forRoot({ [option]: -1 })] }).compile(),
      ).rejects.toThrow(new RegExp(`option "${option}".*got -1`));
    }
  });
});
