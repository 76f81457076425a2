import { Injectable } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { Coalesce, StampedeMemoryStore, StampedeModule, StampedeService, WorkContext, currentWork } from '../../lib';
import { fakeDateOnly } from '../helpers/clock';

@Injectable()
class Rates {
  calls = 0;

  @Coalesce({ ttl: 1_000 })
  async rates(currency: string): Promise<string> {
    const work = currentWork(); // before the first await
    this.calls++;
    const rates = await Promise.resolve(`${currency} rates`);
    // The upstream says how long its answer holds.
    work?.setFreshness({ ttl: 30_000 });
    return rates;
  }
}

describe('the work context', () => {
  let moduleRef: TestingModule;
  let stampede: StampedeService;
  let store: StampedeMemoryStore;

  beforeEach(async () => {
    fakeDateOnly();
    store = new StampedeMemoryStore(100);
    moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRoot({ ttl: 1_000, store })],
      providers: [Rates],
    }).compile();
    await moduleRef.init();
    stampede = moduleRef.get(StampedeService);
  });
  afterEach(async () => {
    await moduleRef.close();
    jest.useRealTimers();
  });

  const storedEvent = () => new Promise<void>((resolve) => stampede.on((e) => e.type === 'stored' && resolve()));

  it('hands a refresh the old value; notModified() keeps it, fresh for a new ttl', async () => {
    const first = { rows: [1, 2, 3], etag: '"v1"' };
    await stampede.run('report', () => first, { staleTtl: 60_000 });
    jest.setSystemTime(Date.now() + 1_500); // stale: answered at once, one refresh behind it
    let seen: WorkContext<typeof first>['stale'];
    let upstreamAsked = 0;
    const stored = storedEvent();
    const answer = await stampede.run(
      'report',
      (_signal, work: WorkContext<typeof first>) => {
        seen = work.stale;
        upstreamAsked++;
        return work.notModified(); // the upstream answered 304 to If-None-Match: "v1"
      },
      { staleTtl: 60_000 },
    );
    expect(answer).toBe(first);
    await stored;
    expect(upstreamAsked).toBe(1);
    expect(seen?.value).toBe(first);
    const entry = store.get('report')!;
    expect(entry.v).toBe(first);
    expect(entry.e).toBeGreaterThan(Date.now() + 900);
    // Fresh again: the next caller is a hit, no refresh.
    expect(await stampede.run('report', () => ({ rows: [], etag: '"v2"' }), { staleTtl: 60_000 })).toBe(first);
    expect(upstreamAsked).toBe(1);
  });

  it('lets the work set this result’s ttl, or keep it out of the store while still sharing it', async () => {
    await stampede.run('token', (_signal, work) => (work.setFreshness({ ttl: 50_000 }), 'abc'));
    expect(store.get('token')!.e).toBeGreaterThan(Date.now() + 49_000);

    let release!: (value: string) => void;
    let runs = 0;
    const work = (_signal: AbortSignal, context: WorkContext<string>) => {
      runs++;
      context.skipStore();
      return new Promise<string>((resolve) => (release = resolve));
    };
    const both = Promise.all([stampede.run('once', work), stampede.run('once', work)]);
    release('shared');
    expect(await both).toEqual(['shared', 'shared']);
    expect(runs).toBe(1);
    expect(store.get('once')).toBeUndefined();
  });

  it('lets the work tag its own result', async () => {
    await stampede.run('article:1', (_signal, work) => (work.setTags(['author:7']), 'text'));
    stampede.invalidateTags(['author:7']);
    expect(await stampede.run('article:1', () => 'rewritten')).toBe('rewritten');
  });

  it('is current inside a @Coalesce method (taken before its first await), and only there', async () => {
    const rates = moduleRef.get(Rates);
    expect(await rates.rates('EUR')).toBe('EUR rates');
    expect(store.get('Rates.rates(["EUR"])')!.e).toBeGreaterThan(Date.now() + 29_000);
    jest.setSystemTime(Date.now() + 2_000); // past the method's own ttl, within the one the work set
    expect(await rates.rates('EUR')).toBe('EUR rates');
    expect(rates.calls).toBe(1);
    expect(currentWork()).toBeUndefined();
  });

  it('says notModified() needs an old value', async () => {
    await expect(stampede.run('nothing-yet', (_signal, work) => work.notModified())).rejects.toThrow(
      /notModified\(\) needs an old value/,
    );
  });
});
