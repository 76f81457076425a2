import { firstValueFrom } from 'rxjs';
import { StampedeService } from '../../lib';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { RunningMicroservice, pricesService } from './tcp-app';

describe('Message handlers on a TCP microservice', () => {
  let running: RunningMicroservice;
  let origin: Origin;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await pricesService();
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running?.close());
  beforeEach(() => origin.reset());

  const send = <T>(pattern: unknown, data: unknown) => firstValueFrom(running.client.send<T>(pattern, data));
  const settle = <T>(pattern: unknown, data: unknown) =>
    send<T>(pattern, data).then(
      (value) => ({ value }),
      (error: unknown) => ({ error: (error as { message?: string }).message ?? String(error) }),
    );

  /** Sends `sends` while `names` are held, waits until `ready()`, then opens. */
  async function burst<T>(names: string[], sends: (() => Promise<T>)[], ready: () => boolean, what: string) {
    for (const name of names) origin.hold(name);
    const replies = Promise.all(sends.map((go) => go()));
    try {
      await until(ready, what);
    } finally {
      for (const name of names) origin.open(name);
    }
    return replies;
  }
  const times = <T>(n: number, go: () => Promise<T>) => Array.from({ length: n }, () => go);

  it('runs a @MessagePattern handler once for 50 concurrent identical messages, all answered with its reply', async () => {
    const replies = await burst(
      ['price:a'],
      times(50, () => send('price', { sku: 'a' })),
      () => stampede.stats().waiting === 50,
      '50 callers on one flight',
    );
    expect(origin.calls('price:a')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r)))).toEqual(new Set([JSON.stringify({ sku: 'a', run: 1 })]));
    expect(stampede.inFlight()).toBe(0);
  });

  it('keys by a stable serialization of the payload: key order does not split, other values never share', async () => {
    const replies = await burst(
      ['price:b', 'price:c'],
      [
        ...times(10, () => send('price', { sku: 'b', currency: 'EUR' })),
        ...times(10, () => send('price', { currency: 'EUR', sku: 'b' })),
        ...times(10, () => send('price', { sku: 'c', currency: 'EUR' })),
        ...times(10, () => send('price', { sku: 'b', currency: 'USD' })),
      ],
      () => stampede.stats().waiting === 40 && stampede.inFlight() === 3,
      'three flights',
    );
    expect(origin.calls('price:b')).toBe(2);
    expect(origin.calls('price:c')).toBe(1);
    const runs = (from: number) => new Set(replies.slice(from, from + 10).map((r) => JSON.stringify(r)));
    expect(runs(0)).toEqual(runs(10));
    expect(runs(0).size).toBe(1);
    expect(runs(20)).toEqual(new Set([JSON.stringify({ sku: 'c', run: 1 })]));
    expect(runs(30).size).toBe(1);
    expect([...runs(30)]).not.toEqual([...runs(0)]);
  });

  it('keys by the transport pattern: one payload on two patterns never shares', async () => {
    const [price, stock] = await burst(
      ['price:d', 'stock:d'],
      [() => send('price', { sku: 'd' }), () => send({ cmd: 'stock' }, { sku: 'd' })],
      () => origin.calls('price:d') === 1 && origin.calls('stock:d') === 1,
      'both handlers',
    );
    expect(price).toEqual({ sku: 'd', run: 1 });
    expect(stock).toBe('stock d run 1');
  });

  it('never coalesces @EventPattern handlers: 10 identical events run 10 times', async () => {
    origin.hold('viewed:e');
    for (let i = 0; i < 10; i++) running.client.emit('viewed', 'e');
    await until(() => origin.calls('viewed:e') === 10, '10 event runs');
    origin.open('viewed:e');
    expect(origin.calls('viewed:e')).toBe(10);
  });

  it.each([
    ['takes @Ctx()', 'traced'],
    ['is request-scoped', 'scoped'],
  ])('runs a handler that %s alone for each message', async (_what, pattern) => {
    const replies = await burst(
      [`${pattern}:f`],
      times(10, () => send<string>(pattern, 'f')),
      () => origin.calls(`${pattern}:f`) === 10,
      '10 own runs',
    );
    expect(new Set(replies).size).toBe(10);
  });

  it('coalesces a handler that takes @Ctx() by its key function', async () => {
    const replies = await burst(
      ['tagged:f'],
      times(10, () => send<string>('tagged', 'f')),
      () => stampede.stats().waiting === 10,
      '10 callers on one flight',
    );
    expect(new Set(replies)).toEqual(new Set(['tagged f run 1']));
  });

  it('shares an error with the callers of that flight only; the next message runs again', async () => {
    const replies = await burst(
      ['failing:g'],
      times(20, () => settle('failing', 'g')),
      () => stampede.stats().waiting === 20,
      '20 callers on one flight',
    );
    expect(origin.calls('failing:g')).toBe(1);
    expect(new Set(replies.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ error: 'failed run 1' })]),
    );
    await expect(settle('failing', 'g')).resolves.toEqual({ error: 'failed run 2' });
  });

  it('takes @Coalesce settings: a ttl keeps the reply for later messages', async () => {
    await expect(send('quote', 'h')).resolves.toBe('quote h run 1');
    await expect(send('quote', 'h')).resolves.toBe('quote h run 1');
    await expect(send('quote', 'i')).resolves.toBe('quote i run 1');
    expect(origin.calls('quote:h')).toBe(1);
  });
});
