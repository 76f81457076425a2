import { hasOnlyTtl, onlyOption, signatureOf } from '../../lib/nest/options/stampede.run-options';

/** Options read as `validateOptions` reads them: own enumerable ones; what the prototype holds is no option. */
describe('run() options, as the per-call policy lookups read them', () => {
  const inherited = Object.create({ ttl: 1_000 }) as { ttl?: number };

  it('hasOnlyTtl: true for an own ttl alone, false for anything more, less or inherited', () => {
    expect(hasOnlyTtl({ ttl: 1_000 })).toBe(true);
    expect(hasOnlyTtl({ ttl: 1_000, staleTtl: 5 })).toBe(false);
    expect(hasOnlyTtl({ staleTtl: 5 })).toBe(false);
    expect(hasOnlyTtl({})).toBe(false);
    expect(hasOnlyTtl(inherited)).toBe(false);
  });

  it('onlyOption: the name of one own primitive option, else undefined', () => {
    expect(onlyOption({ ttl: 1_000 })).toBe('ttl');
    expect(onlyOption({ timeout: '5s' } as never)).toBe('timeout');
    expect(onlyOption({ ttl: 1_000, timeout: 5 })).toBeUndefined();
    expect(onlyOption({ tags: ['a'] })).toBeUndefined();
    expect(onlyOption(inherited)).toBeUndefined();
  });

  it('signatureOf: one text per set of own primitive values, none with an inherited one', () => {
    expect(signatureOf({ ttl: 1_000, staleTtl: 5 })).toBe('ttl=1000;staleTtl=5;');
    expect(signatureOf({ tags: ['a'] })).toBeUndefined();
    expect(signatureOf(inherited)).toBeUndefined();
  });
});
