import { CACHE_NAME, cacheStatus } from '../../lib/http/cache-status';

describe('cacheStatus', () => {
  it('names the cache', () => {
    expect(CACHE_NAME).toBe('nestjs-stampede');
  });

  describe('hit', () => {
    it.each([
      [60_000, 60],
      [1000, 1],
      [1500, 2],
      [1, 1],
      [999, 1],
      [0, 0],
      [-5000, 0],
    ])('gives %i ms of freshness left as ttl=%i seconds, rounded up and never negative', (ttlMs, seconds) => {
      expect(cacheStatus('hit', { ttlMs })).toBe(`nestjs-stampede; hit; ttl=${seconds}`);
    });

    it('says ttl=0 when the freshness left is unknown', () => {
      expect(cacheStatus('hit')).toBe('nestjs-stampede; hit; ttl=0');
    });
  });

  it('marks a stored miss', () => {
    expect(cacheStatus('miss', { stored: true })).toBe('nestjs-stampede; fwd=miss; stored');
  });

  it('leaves out "stored" for a miss that was not stored', () => {
    expect(cacheStatus('miss', { stored: false })).toBe('nestjs-stampede; fwd=miss');
    expect(cacheStatus('miss')).toBe('nestjs-stampede; fwd=miss');
  });

  it('marks a collapsed caller', () => {
    expect(cacheStatus('collapsed')).toBe('nestjs-stampede; fwd=miss; collapsed');
  });

  it('marks a bypass', () => {
    expect(cacheStatus('bypass')).toBe('nestjs-stampede; fwd=bypass');
  });
});
