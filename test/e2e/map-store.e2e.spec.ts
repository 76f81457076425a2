import { Test } from '@nestjs/testing';
import { StampedeModule, StampedeService } from '../../lib';
import { fakeDateOnly } from '../helpers/clock';

describe('store: new Map()', () => {
  afterEach(() => jest.useRealTimers());

  it('keeps results for their ttl, synchronously, without loading keyv', async () => {
    fakeDateOnly();
    const map = new Map<string, unknown>();
    const app = await Test.createTestingModule({
      imports: [StampedeModule.forRoot({ ttl: 1_000, store: map })],
    }).compile();
    await app.init();
    const stampede = app.get(StampedeService);
    let runs = 0;
    const work = () => ++runs;
    expect(await stampede.run('k', work)).toBe(1);
    expect(await stampede.run('k', work)).toBe(1);
    expect(map.has('k')).toBe(true);
    jest.setSystemTime(Date.now() + 1_001);
    expect(await stampede.run('k', work)).toBe(2);
    expect(await stampede.invalidate({ prefix: 'k' })).toBe(1);
    expect(Object.keys(require.cache).some((path) => /[\\/]node_modules[\\/]keyv[\\/]/.test(path))).toBe(false);
    await app.close();
  });
});
