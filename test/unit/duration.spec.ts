import { parseDuration } from '../../lib';
import { resolveStampedeOptions, validateOptions } from '../../lib/nest/options/stampede.validation';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['30000', 30_000],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['1.1s', 1_100],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['0.5ms', 0.5],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '30 sec', '-5s', ' 5s', '5s ', '5S', '1e3', '5d', '.5s', '5.s', 'Infinity', 'NaN', '0x10'])(
    '%j is no duration',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe('durations resolved once, from the rule table', () => {
  it('every millisecond option of the module takes a duration string, and is a number once resolved', () => {
    const resolved = resolveStampedeOptions({
      ttl: '30s',
      timeout: '2s',
      waitTimeout: '500ms',
      staleTtl: '5m',
      staleIfError: '1h',
      softTimeout: '200',
      failSafeThrottle: '1.5s',
      uncacheableTtl: '2m',
      storeTimeout: '250ms',
      jitter: '100ms',
      maxEntries: '500',
      statusTtl: { 404: '1s' },
    } as never);
    expect(resolved).toMatchObject({
      ttl: 30_000,
      timeout: 2_000,
      waitTimeout: 500,
      staleTtl: 300_000,
      staleIfError: 3_600_000,
      softTimeout: 200,
      failSafeThrottle: 1_500,
      uncacheableTtl: 120_000,
      storeTimeout: 250,
      jitter: 100,
      maxEntries: 500,
      statusTtl: { 404: 1_000 },
    });
  });

  it("the redis tier's milliseconds take durations too", () => {
    const { redis } = resolveStampedeOptions({
      redis: { url: 'redis://127.0.0.1:6379', leaseTtl: '10s', lockTimeout: '5s', l1Ttl: '250ms' } as never,
    });
    expect(redis).toMatchObject({ leaseTtl: 10_000, lockTimeout: 5_000, l1Ttl: 250 });
  });

  it('validation returns a resolved copy and leaves what it was given as it was', () => {
    const given = Object.freeze({ ttl: '2s', staleTtl: 100 });
    expect(validateOptions(given, 'run', 'StampedeService.run')).toEqual({ ttl: 2_000, staleTtl: 100 });
    expect(given).toEqual({ ttl: '2s', staleTtl: 100 });
  });

  it('a jitter fraction given as a string stays a fraction', () => {
    expect(resolveStampedeOptions({ jitter: '0.1' } as never).jitter).toBe(0.1);
  });
});
