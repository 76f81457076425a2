import { CallKeys, argumentsKey } from '../../lib/core/arguments-key';

describe('CallKeys', () => {
  const expected = (args: unknown[]) => `Prices.price(${argumentsKey(args)})`;

  it('gives the key argumentsKey gives, on the first call and on every remembered one', () => {
    const keys = new CallKeys('Prices.price(');
    const calls: unknown[][] = [
      ['sku-1'],
      [42],
      [0],
      [-0],
      [NaN],
      ['1'],
      [1],
      [true],
      [undefined],
      [null],
      [],
      ['a', 1],
    ];
    for (let round = 0; round < 3; round++) {
      for (const args of calls) expect(keys.of(args)).toBe(expected(args));
    }
  });

  it('never gives 0 and -0, or 1 and "1", one key (a Map alone would take -0 for 0)', () => {
    const keys = new CallKeys('m(');
    const zero = keys.of([0]);
    expect(keys.of([-0])).not.toBe(zero);
    expect(keys.of([0])).toBe(zero);
    expect(keys.of(['1'])).not.toBe(keys.of([1]));
  });

  it('stays right past what it remembers, and for long strings it does not remember', () => {
    const keys = new CallKeys('m(');
    for (let i = 0; i < 1_000; i++) expect(keys.of([`user:${i}`])).toBe(`m(${argumentsKey([`user:${i}`])})`);
    const long = 'x'.repeat(300);
    expect(keys.of([long])).toBe(`m(${argumentsKey([long])})`);
    expect(keys.of([long])).toBe(`m(${argumentsKey([long])})`);
  });
});
