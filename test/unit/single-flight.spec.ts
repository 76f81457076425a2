import { Observable, Subject, firstValueFrom, isObservable, lastValueFrom, of, toArray } from 'rxjs';
import { StampedeTimeoutError } from '../../lib/core/deadline';
import { FlightSignal } from '../../lib/core/flight-signal';
import { FlightHooks, FlightWork as Work, SingleFlight, flight$, toObservable } from '../../lib/core/single-flight';
import { deferred, flush } from '../helpers/deferred';
import { record } from '../helpers/record';

/** What a caller of a single flight does: join the flight in progress or start one. */
function call<T>(flights: SingleFlight, key: string, work: Work<T>, hooks?: FlightHooks<T>): Observable<T> {
  const flight = flights.find<T>(key) ?? flights.start(key, work, hooks);
  return flight$(flight);
}

describe('toObservable', () => {
  it('emits a plain value once and completes', async () => {
    expect(await lastValueFrom(toObservable(7).pipe(toArray()))).toEqual([7]);
  });

  it('emits what a Promise resolves to', async () => {
    expect(await lastValueFrom(toObservable(Promise.resolve('p')).pipe(toArray()))).toEqual(['p']);
  });

  it('emits what a non-Promise thenable resolves to', async () => {
    const thenable: PromiseLike<string> = {
      then: (onFulfilled) => Promise.resolve('thenable').then(onFulfilled),
    };
    expect(await lastValueFrom(toObservable(thenable).pipe(toArray()))).toEqual(['thenable']);
  });

  it('returns an Observable as it is', () => {
    const source = of(1, 2, 3);
    expect(toObservable(source)).toBe(source);
  });

  it('treats an object without a then function as a plain value', async () => {
    const value = { then: 'not a function' };
    const result = toObservable(value);
    expect(isObservable(result)).toBe(true);
    expect(await lastValueFrom(result)).toBe(value);
  });
});

describe('SingleFlight', () => {
  let flights: SingleFlight;
  beforeEach(() => {
    flights = new SingleFlight();
  });

  describe('one execution per key', () => {
    it('runs the work once for 100 concurrent subscribers and gives them all the same value', async () => {
      const gate = deferred<{ id: number }>();
      let runs = 0;
      const work = () => {
        runs++;
        return gate.promise;
      };
      const results = Array.from({ length: 100 }, () => lastValueFrom(call(flights, 'k', work)));

      expect(runs).toBe(1);
      expect(flights.waiters('k')).toBe(100);
      const value = { id: 1 };
      gate.resolve(value);
      const values = await Promise.all(results);
      expect(runs).toBe(1);
      // The very same object, not copies.
      expect(values.every((v) => v === value)).toBe(true);
      expect(flights.size).toBe(0);
    });

    it('runs the work once, as soon as the flight starts', () => {
      let runs = 0;
      flights.start('k', () => {
        runs++;
        return new Promise(() => undefined);
      });
      expect(runs).toBe(1);
      expect(flights.size).toBe(1);
    });

    it('keeps flights of different keys apart', async () => {
      const a = deferred<string>();
      const b = deferred<string>();
      const ra = record(call(flights, 'a', () => a.promise));
      const rb = record(call(flights, 'b', () => b.promise));
      expect(flights.size).toBe(2);
      b.resolve('B');
      a.resolve('A');
      await flush();
      expect(ra.values).toEqual(['A']);
      expect(rb.values).toEqual(['B']);
    });

    it('starts a new execution for a caller that comes after the flight settled', async () => {
      let runs = 0;
      const work = () => Promise.resolve(++runs);
      expect(await lastValueFrom(call(flights, 'k', work))).toBe(1);
      expect(flights.size).toBe(0);
      expect(await lastValueFrom(call(flights, 'k', work))).toBe(2);
    });

    it('serves a plain (synchronous) value to its subscriber and frees the key', () => {
      const r = record(call(flights, 'k', () => 'sync'));
      expect(r.values).toEqual(['sync']);
      expect(r.completed).toBe(true);
      expect(flights.size).toBe(0);
    });
  });

  describe('Observable work', () => {
    it('replays every value to a late joiner and shares the rest with all subscribers', () => {
      const source = new Subject<number>();
      let runs = 0;
      const work = () => {
        runs++;
        return source;
      };
      const early = record(call(flights, 'k', work));
      source.next(1);
      source.next(2);
      const late = record(call(flights, 'k', work));
      expect(late.values).toEqual([1, 2]);
      source.next(3);
      source.complete();

      expect(runs).toBe(1);
      expect(early.values).toEqual([1, 2, 3]);
      expect(late.values).toEqual([1, 2, 3]);
      expect(early.completed && late.completed).toBe(true);
      expect(flights.size).toBe(0);
    });

    it('cancels the work when every subscriber unsubscribes before it settles, and the next caller starts anew', async () => {
      let runs = 0;
      let teardowns = 0;
      const work = () =>
        new Observable<number>(() => {
          runs++;
          return () => {
            teardowns++;
          };
        });
      const a = record(call(flights, 'k', work));
      const b = record(call(flights, 'k', work));
      expect(runs).toBe(1);

      a.subscription.unsubscribe();
      expect(teardowns).toBe(0);
      expect(flights.size).toBe(1);
      b.subscription.unsubscribe();
      await Promise.resolve(); // cancellation waits for the current microtasks
      expect(teardowns).toBe(1);
      expect(flights.size).toBe(0);
      expect(flights.find('k')).toBeUndefined();

      record(call(flights, 'k', work));
      expect(runs).toBe(2);
    });

    it('keeps the work running for the others when one subscriber unsubscribes', () => {
      const source = new Subject<string>();
      let teardowns = 0;
      const work = () =>
        new Observable<string>((subscriber) => {
          const inner = source.subscribe(subscriber);
          return () => {
            teardowns++;
            inner.unsubscribe();
          };
        });
      const leaving = record(call(flights, 'k', work));
      const staying = record(call(flights, 'k', work));
      leaving.subscription.unsubscribe();
      expect(flights.waiters('k')).toBe(1);

      source.next('v');
      source.complete();
      expect(leaving.values).toEqual([]);
      expect(staying.values).toEqual(['v']);
      expect(staying.completed).toBe(true);
      // The source ended on its own: torn down once, at completion, not cancelled early.
      expect(teardowns).toBe(1);
      expect(flights.size).toBe(0);
    });
  });

  describe('errors', () => {
    it('delivers the error to every waiter and empties the map', async () => {
      const gate = deferred<number>();
      let runs = 0;
      const work = () => {
        runs++;
        return gate.promise;
      };
      const waiters = Array.from({ length: 20 }, () => record(call(flights, 'k', work)));
      const failure = new Error('boom');
      gate.reject(failure);
      await flush();

      expect(runs).toBe(1);
      expect(waiters.every((w) => w.errored && w.error === failure)).toBe(true);
      expect(flights.size).toBe(0);
    });

    it('frees the key before the waiters see the error, so a retry from the error handler starts a new flight', async () => {
      const gate = deferred<number>();
      let runs = 0;
      let sizeSeenInHandler = -1;
      let retried: Promise<number> | undefined;
      const work = () => {
        runs++;
        return runs === 1 ? gate.promise : Promise.resolve(2);
      };
      call(flights, 'k', work).subscribe({
        error: () => {
          sizeSeenInHandler = flights.size;
          retried = lastValueFrom(call(flights, 'k', work));
        },
      });
      gate.reject(new Error('first'));
      await flush();

      expect(sizeSeenInHandler).toBe(0);
      expect(await retried).toBe(2);
      expect(runs).toBe(2);
    });

    it('turns a synchronous throw in the work into an error for all waiters, with one execution', () => {
      let runs = 0;
      const failure = new Error('sync');
      const work = (): number => {
        runs++;
        throw failure;
      };
      const started = flight$(flights.start('k', work));
      // Settled at once: the key is free again, and every waiter of this flight gets the error.
      expect(flights.find('k')).toBeUndefined();
      const a = record(started);
      const b = record(started);

      expect(runs).toBe(1);
      expect(a.error).toBe(failure);
      expect(b.error).toBe(failure);
      expect(flights.size).toBe(0);
    });

    it('delivers an Observable error to a late joiner too', () => {
      const source = new Subject<number>();
      const work = () => source;
      const a = record(call(flights, 'k', work));
      const joined = flight$(flights.find<number>('k')!);
      source.next(1);
      source.error(new Error('late'));
      const b = record(joined);
      expect(a.values).toEqual([1]);
      expect(b.values).toEqual([1]);
      expect((b.error as Error).message).toBe('late');
      expect(flights.size).toBe(0);
    });

    it('never calls onSuccess when the work fails', async () => {
      const onSuccess = jest.fn();
      const r = record(call(flights, 'k', () => Promise.reject(new Error('x')), { onSuccess }));
      await flush();
      expect(r.errored).toBe(true);
      expect(onSuccess).not.toHaveBeenCalled();
    });
  });

  describe('leaving the map', () => {
    it('empties the map after success', async () => {
      await lastValueFrom(call(flights, 'k', () => Promise.resolve(1)));
      expect(flights.size).toBe(0);
      expect(flights.find('k')).toBeUndefined();
      expect(flights.waiters('k')).toBe(0);
    });

    it('keeps a Promise work joinable when every subscriber has gone, so a newcomer runs no duplicate', async () => {
      const gate = deferred<number>();
      const onSuccess = jest.fn();
      let runs = 0;
      const work = () => (runs++, gate.promise);
      const a = record(call(flights, 'k', work, { onSuccess }));
      a.subscription.unsubscribe();
      await flush();
      expect(flights.size).toBe(1);
      const b = record(call(flights, 'k', work, { onSuccess }));
      gate.resolve(1);
      await flush();
      expect(runs).toBe(1);
      expect(b.values).toEqual([1]);
      expect(onSuccess).toHaveBeenCalledWith(1, true, true, expect.anything());
      expect(flights.size).toBe(0);
    });

    it('with cancelWhenAbandoned, aborts the signal of a Promise work and forgets it when every subscriber has gone', async () => {
      const gate = deferred<number>();
      const onSuccess = jest.fn();
      let signal: AbortSignal | undefined;
      const work = (s: FlightSignal) => ((signal = s.signal), gate.promise);
      const a = record(flight$(flights.start('k', work, { onSuccess }, { cancelWhenAbandoned: true })));
      const b = record(flight$(flights.find<number>('k')!));
      a.subscription.unsubscribe();
      expect(signal?.aborted).toBe(false);
      b.subscription.unsubscribe();
      await Promise.resolve(); // cancellation waits for the current microtasks
      expect(signal?.aborted).toBe(true);
      expect(flights.size).toBe(0);
      gate.resolve(1);
      await flush();
      expect(a.values).toEqual([]);
      expect(onSuccess).not.toHaveBeenCalled();
    });

    it('fails every waiter with a timeout error, aborts the signal and leaves the map when the work outlives its timeout', async () => {
      jest.useFakeTimers();
      try {
        let signal: AbortSignal | undefined;
        const work = (s: FlightSignal) => ((signal = s.signal), new Promise<number>(() => undefined));
        const a = record(flight$(flights.start('k', work, {}, { timeout: 500 })));
        const b = record(flight$(flights.find<number>('k')!));
        await jest.advanceTimersByTimeAsync(499);
        expect(a.error).toBeUndefined();
        await jest.advanceTimersByTimeAsync(1);
        expect(a.error).toBeInstanceOf(StampedeTimeoutError);
        expect(b.error).toBe(a.error);
        expect(signal?.aborted).toBe(true);
        expect(flights.size).toBe(0);
      } finally {
        jest.useRealTimers();
      }
    });

    it('counts waiters as they subscribe and unsubscribe', async () => {
      const gate = deferred<number>();
      const work = () => gate.promise;
      expect(flights.waiters('k')).toBe(0);
      const a = record(call(flights, 'k', work));
      const b = record(call(flights, 'k', work));
      const c = record(call(flights, 'k', work));
      expect(flights.waiters('k')).toBe(3);
      b.subscription.unsubscribe();
      expect(flights.waiters('k')).toBe(2);
      expect(flights.waiters('other')).toBe(0);

      gate.resolve(1);
      await flush();
      expect(a.values).toEqual([1]);
      expect(c.values).toEqual([1]);
      expect(flights.waiters('k')).toBe(0);
    });
  });

  describe('onSuccess', () => {
    it('gets the last value, whether anything was emitted, and whether the flight is still current', () => {
      const source = new Subject<number>();
      const onSuccess = jest.fn();
      record(call(flights, 'k', () => source, { onSuccess }));
      source.next(1);
      source.next(2);
      expect(onSuccess).not.toHaveBeenCalled();
      source.complete();
      expect(onSuccess).toHaveBeenCalledTimes(1);
      expect(onSuccess).toHaveBeenCalledWith(2, true, true, expect.anything());
    });

    it('reports emitted=false for work that completes without a value', () => {
      const onSuccess = jest.fn();
      record(call(flights, 'k', () => new Observable<number>((s) => s.complete()), { onSuccess }));
      expect(onSuccess).toHaveBeenCalledWith(undefined, false, true, expect.anything());
    });

    it('runs before the waiters see completion', () => {
      const order: string[] = [];
      call(flights, 'k', () => 'v', { onSuccess: () => order.push('onSuccess') }).subscribe({
        next: () => order.push('next'),
        complete: () => order.push('complete'),
      });
      expect(order.indexOf('onSuccess')).toBeLessThan(order.indexOf('complete'));
      expect(order).toHaveLength(3);
    });

    it('keeps the flight joinable while its returned Promise is pending: a joiner gets the replayed value without a second execution', async () => {
      const write = deferred<void>();
      let runs = 0;
      const work = () => Promise.resolve(++runs);
      const hooks = { onSuccess: () => write.promise };
      const leader = record(call(flights, 'k', work, hooks));
      await flush();
      expect(leader.values).toEqual([1]);
      expect(leader.completed).toBe(true);
      expect(flights.size).toBe(1);

      const joiner = record(call(flights, 'k', work, hooks));
      await flush();
      expect(joiner.values).toEqual([1]);
      expect(joiner.completed).toBe(true);
      expect(runs).toBe(1);

      write.resolve();
      await flush();
      expect(flights.size).toBe(0);
      expect(await lastValueFrom(call(flights, 'k', work))).toBe(2);
    });

    it('frees the key when the Promise returned by onSuccess rejects', async () => {
      const write = deferred<void>();
      const r = record(call(flights, 'k', () => 1, { onSuccess: () => write.promise }));
      expect(r.completed).toBe(true);
      expect(flights.size).toBe(1);
      write.reject(new Error('store write failed'));
      await flush();
      expect(flights.size).toBe(0);
    });

    it('does not turn a success into an error when onSuccess throws', () => {
      const r = record(
        call(flights, 'k', () => 'ok', {
          onSuccess: () => {
            throw new Error('hook failed');
          },
        }),
      );
      expect(r.values).toEqual(['ok']);
      expect(r.completed).toBe(true);
      expect(r.errored).toBe(false);
      expect(flights.size).toBe(0);
    });
  });

  describe('forget', () => {
    it('lets the flight finish for its waiters, tells onSuccess it is no longer current, and lets the next caller start anew', async () => {
      const first = deferred<string>();
      const second = deferred<string>();
      const onSuccess = jest.fn();
      let runs = 0;
      const work = () => (++runs === 1 ? first.promise : second.promise);
      const a = record(call(flights, 'k', work, { onSuccess }));
      const b = record(call(flights, 'k', work, { onSuccess }));

      expect(flights.forget('k')).toBe(true);
      expect(flights.find('k')).toBeUndefined();
      expect(flights.forget('k')).toBe(false);

      const c = record(call(flights, 'k', work, { onSuccess }));
      expect(runs).toBe(2);

      first.resolve('old');
      await flush();
      expect(a.values).toEqual(['old']);
      expect(b.values).toEqual(['old']);
      expect(onSuccess).toHaveBeenCalledWith('old', true, false, expect.anything());
      // The old flight settling does not remove the new one.
      expect(flights.size).toBe(1);
      expect(flights.waiters('k')).toBe(1);

      second.resolve('new');
      await flush();
      expect(c.values).toEqual(['new']);
      expect(onSuccess).toHaveBeenLastCalledWith('new', true, true, expect.anything());
      expect(flights.size).toBe(0);
    });

    it('forgetPrefix forgets only the keys that start with the prefix and counts them', async () => {
      const gate = deferred<number>();
      const onSuccess = jest.fn();
      for (const key of ['user:1', 'user:2', 'post:1']) record(call(flights, key, () => gate.promise, { onSuccess }));
      expect(flights.forgetPrefix('user:')).toBe(2);
      expect(flights.find('user:1')).toBeUndefined();
      expect(flights.find('user:2')).toBeUndefined();
      expect(flights.find('post:1')).toBeDefined();
      expect(flights.forgetPrefix('none:')).toBe(0);

      gate.resolve(1);
      await flush();
      const currentByCall = onSuccess.mock.calls.map((args) => args[2]);
      expect(currentByCall.sort()).toEqual([false, false, true]);
    });
  });

  it('gives a late caller of a completed-and-joinable flight the value via firstValueFrom', async () => {
    const write = deferred<void>();
    record(call(flights, 'k', () => 'v', { onSuccess: () => write.promise }));
    await expect(firstValueFrom(call(flights, 'k', () => 'second run'))).resolves.toBe('v');
    write.resolve();
  });
});
