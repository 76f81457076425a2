import { Test, TestingModule } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { Observable, Subject, firstValueFrom, lastValueFrom, of, toArray } from 'rxjs';
import { StampedeModule, StampedeOptionsError, StampedeService } from '../../lib';
import { deferred } from '../helpers/deferred';

describe('StampedeService', () => {
  let moduleRef: TestingModule;
  let stampede: StampedeService;

  beforeEach(async () => {
    moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ ttl: 60_000 })] }).compile();
    await moduleRef.init();
    stampede = moduleRef.get(StampedeService);
  });
  afterEach(() => moduleRef.close());

  it('run() executes the work once for concurrent callers and keeps the result', async () => {
    let runs = 0;
    const done = new Subject<string>();
    const callers = Array.from({ length: 50 }, () => stampede.run('k', () => (runs++, firstValueFrom(done))));
    expect(stampede.waiters('k')).toBe(50);
    done.next('value');
    expect(await Promise.all(callers)).toEqual(Array(50).fill('value'));
    expect(await stampede.run('k', () => 'other')).toBe('value');
    expect(runs).toBe(1);
  });

  it('run() checks every call, one repeating the last { ttl } included: a key, other options, their values', async () => {
    const done = new Subject<string>();
    const leader = stampede.run('same', () => firstValueFrom(done), { ttl: 1_000 });
    expect(await Promise.race([stampede.run('same', () => 'own', { ttl: 1_000 }), 'pending'])).toBe('pending');
    await expect(stampede.run(42 as never, () => 'own', { ttl: 1_000 })).rejects.toThrow(/option "key".*a string/);
    await expect(stampede.run('same', () => 'own', { ttl: 1_000, staleTtl: -1 })).rejects.toThrow(/option "staleTtl"/);
    await expect(stampede.run('same', () => 'own', { ttl: 1_000, tll: 5 } as never)).rejects.toThrow(/"tll"/);
    // `{}` caches its (default) policy: what is no options object must not find it.
    await stampede.run('other', () => 'other', {});
    await expect(stampede.run('same', () => 'own', null as never)).rejects.toThrow(StampedeOptionsError);
    await expect(stampede.run('same', () => 'own', [] as never)).rejects.toThrow(StampedeOptionsError);
    // A `ttl` from a class getter is no option of its own: the one option here is the typo.
    class Typo {
      tll = 5;
      get ttl() {
        return 1_000;
      }
    }
    await expect(stampede.run('same', () => 'own', new Typo() as never)).rejects.toThrow(/"tll"/);
    // Another option with the same ttl is its own policy: this caller's waitTimeout gives up and runs its own.
    const impatient = stampede.run('same', () => 'own', { ttl: 1_000, waitTimeout: 1 });
    expect(await impatient).toBe('own');
    done.next('shared');
    expect(await leader).toBe('shared');
    // The leader and 'other' missed; both callers of 'same' joined, the impatient one left at its waitTimeout.
    expect(stampede.stats()).toMatchObject({ misses: 2, coalesced: 2, bypasses: 1 });
  });

  it('run() accepts a plain value, a Promise or an Observable (its last value)', async () => {
    expect(await stampede.run('plain', () => 1, { ttl: 0 })).toBe(1);
    expect(await stampede.run('promise', async () => 2, { ttl: 0 })).toBe(2);
    expect(await stampede.run('observable', () => of(3, 4), { ttl: 0 })).toBe(4);
  });

  it('run() settles every waiter when the work throws synchronously, and keeps nothing', async () => {
    const callers = [1, 2, 3].map(() =>
      stampede.run('throws', () => {
        throw new Error('boom');
      }),
    );
    for (const caller of callers) await expect(caller).rejects.toThrow('boom');
    expect(stampede.inFlight()).toBe(0);
    expect(await stampede.get('throws')).toBeUndefined();
  });

  it('run$() shares values among subscribers; one leaving does not cancel the work for the others', async () => {
    const source = new Subject<number>();
    let teardowns = 0;
    const work = () =>
      new Observable<number>((subscriber) => {
        const subscription = source.subscribe(subscriber);
        return () => {
          teardowns++;
          subscription.unsubscribe();
        };
      });
    const leaving = stampede.run$('feed', work, { ttl: 0 }).subscribe();
    const staying = lastValueFrom(stampede.run$('feed', work, { ttl: 0 }).pipe(toArray()));
    source.next(1);
    leaving.unsubscribe();
    expect(teardowns).toBe(0);
    source.next(2);
    source.complete();
    expect(await staying).toEqual([1, 2]);
  });

  it('run$() cancels the work when every subscriber has gone, and the next caller starts afresh', async () => {
    let subscribed = 0;
    let teardowns = 0;
    const work = () =>
      new Observable<number>(() => {
        subscribed++;
        return () => teardowns++;
      });
    const a = stampede.run$('cancel', work).subscribe();
    const b = stampede.run$('cancel', work).subscribe();
    a.unsubscribe();
    b.unsubscribe();
    await Promise.resolve(); // cancellation waits for the current microtasks
    expect(teardowns).toBe(1);
    expect(stampede.inFlight()).toBe(0);
    stampede.run$('cancel', work).subscribe().unsubscribe();
    expect(subscribed).toBe(2);
  });

  it('get() and set() read and write the store', async () => {
    expect(await stampede.get('user:1')).toBeUndefined();
    await stampede.set('user:1', { name: 'Ada' }, 1_000);
    expect(await stampede.get('user:1')).toEqual({ name: 'Ada' });
    expect(await stampede.run('user:1', () => ({ name: 'other' }))).toEqual({ name: 'Ada' });
    await expect(stampede.set('user:1', 1, -1)).rejects.toThrow(/option "ttl"/);
  });

  it('invalidate(key) drops a value; a flight in progress still answers but stores nothing', async () => {
    await stampede.run('a', () => 1);
    expect(await stampede.invalidate('a')).toBe(1);
    expect(await stampede.get('a')).toBeUndefined();

    const done = new Subject<number>();
    const inFlight = stampede.run('b', () => firstValueFrom(done));
    await stampede.invalidate('b');
    done.next(2);
    expect(await inFlight).toBe(2);
    expect(await stampede.get('b')).toBeUndefined();
  });

  it('run() joins a flight only while it is its key’s: not once invalidated, not once it ended', async () => {
    const first = deferred<string>();
    const second = deferred<string>();
    const leader = stampede.run('k', () => first.promise, { ttl: 0 });
    const joiner = stampede.run('k', () => 'own', { ttl: 0 });
    await stampede.invalidate('k');
    // The next callers of 'k' make a flight of their own, though the one before was joined last.
    const next = stampede.run('k', () => second.promise, { ttl: 0 });
    const nextJoiner = stampede.run('k', () => 'own', { ttl: 0 });
    expect(stampede.waiters('k')).toBe(2);
    first.resolve('first');
    second.resolve('second');
    expect(await Promise.all([leader, joiner, next, nextJoiner])).toEqual(['first', 'first', 'second', 'second']);
    // Both flights ended (nothing stored with ttl 0): the next caller runs.
    expect(await stampede.run('k', () => 'third', { ttl: 0 })).toBe('third');
    expect(stampede.stats()).toMatchObject({ misses: 3, coalesced: 2 });
  });

  it('run() joins a flight again and again up to maxWaiters, then runs each caller beyond on its own', async () => {
    const bounded = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ maxWaiters: 3 })] }).compile();
    const service = bounded.get(StampedeService);
    const done = deferred<string>();
    let runs = 0;
    const callers = Array.from({ length: 5 }, () => service.run('k', () => (runs++, done.promise)));
    expect(service.waiters('k')).toBe(3);
    expect(runs).toBe(3);
    done.resolve('v');
    expect(await Promise.all(callers)).toEqual(Array(5).fill('v'));
    expect(service.stats()).toMatchObject({ coalesced: 2, bypasses: 2 });
    await bounded.close();
  });

  it('invalidate({ prefix }) drops every key under the prefix', async () => {
    await stampede.run('article:1', () => 1);
    await stampede.run('article:2', () => 2);
    await stampede.run('user:1', () => 3);
    expect(await stampede.invalidate({ prefix: 'article:' })).toBe(2);
    expect(await stampede.get('article:1')).toBeUndefined();
    expect(await stampede.get('user:1')).toBe(3);
  });

  it('invalidate({ prefix }) says so when the store cannot list keys', async () => {
    const other = await Test.createTestingModule({
      imports: [StampedeModule.forRoot({ store: new Keyv() })],
    }).compile();
    await expect(other.get(StampedeService).invalidate({ prefix: 'x' })).rejects.toThrow(/cannot list its keys/);
    await other.close();
  });
});
