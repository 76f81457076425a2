import { Injectable, Logger, Scope, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Test, TestingModule } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { Observable, Subject, firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { Coalesce, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';

/** A promise the test resolves by hand: the work waits on it. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

let gateOf = gate();
const calls: string[] = [];

@Injectable()
class ArticlesRepository {
  @Coalesce()
  async byId(id: number): Promise<{ id: number; run: number }> {
    calls.push(`byId:${id}`);
    await gateOf.promise;
    return { id, run: calls.filter((c) => c === `byId:${id}`).length };
  }

  @Coalesce()
  async search(filter: Record<string, unknown>): Promise<string> {
    calls.push(`search:${Object.keys(filter).length}`);
    await gateOf.promise;
    return `found ${calls.length}`;
  }

  @Coalesce()
  async failing(id: number): Promise<never> {
    calls.push(`failing:${id}`);
    await gateOf.promise;
    throw new Error(`failed run ${calls.filter((c) => c === `failing:${id}`).length}`);
  }

  @Coalesce()
  sync(id: number): string {
    calls.push(`sync:${id}`);
    return `sync ${id} run ${calls.filter((c) => c === `sync:${id}`).length}`;
  }

  @Coalesce()
  async withCallback(callback: () => void): Promise<string> {
    calls.push('withCallback');
    callback();
    return 'ok';
  }
}

@Injectable()
class UsersRepository {
  @Coalesce()
  async byId(id: number): Promise<string> {
    calls.push(`users.byId:${id}`);
    return `user ${id}`;
  }
}

const subscriptions: number[] = [];
let source = new Subject<number>();

@Injectable()
class PricesFeed {
  @Coalesce({ ttl: 0 })
  prices(sku: string): Observable<number> {
    return new Observable<number>((subscriber) => {
      subscriptions.push(1);
      calls.push(`prices:${sku}`);
      return source.subscribe(subscriber);
    });
  }
}

const Audited = (label: string) => SetMetadata('audit', label);
function Counted(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as (...args: unknown[]) => unknown;
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      calls.push('counted');
      return original.apply(this, args);
    };
    return descriptor;
  };
}

@Injectable()
class StackedService {
  @Audited('above')
  @Coalesce()
  @Counted()
  async value(id: number): Promise<number> {
    calls.push(`stacked:${id}`);
    return id * 2;
  }
}

async function compile(options: StampedeModuleOptions = {}, providers: unknown[] = []): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [StampedeModule.forRoot(options)],
    providers: [ArticlesRepository, UsersRepository, PricesFeed, StackedService, ...(providers as never[])],
  }).compile();
  await moduleRef.init();
  return moduleRef;
}

describe('@Coalesce on provider methods', () => {
  let moduleRef: TestingModule;
  let articles: ArticlesRepository;

  beforeEach(async () => {
    calls.length = 0;
    subscriptions.length = 0;
    source = new Subject<number>();
    gateOf = gate();
    moduleRef = await compile({ ttl: 60_000 });
    articles = moduleRef.get(ArticlesRepository);
  });
  afterEach(async () => {
    await moduleRef.close();
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('runs once for 100 concurrent calls with equal arguments', async () => {
    const results = Array.from({ length: 100 }, () => articles.byId(42));
    gateOf.open();
    const values = await Promise.all(results);
    expect(calls).toEqual(['byId:42']);
    expect(values.every((v) => v === values[0])).toBe(true);
    expect(values[0]).toEqual({ id: 42, run: 1 });
    expect(moduleRef.get(StampedeService).inFlight()).toBe(0);
  });

  it('joins a call in flight only while it is its key’s: not once invalidated, and never 0’s for -0', async () => {
    const stampede = moduleRef.get(StampedeService);
    const zeros = [articles.byId(0), articles.byId(0), articles.byId(-0)];
    await stampede.invalidate({ prefix: 'ArticlesRepository.byId(' });
    // Joined last, the first flight of 0 is no longer its key's: this call makes its own.
    const again = [articles.byId(0), articles.byId(0)];
    expect(calls).toEqual(['byId:0', 'byId:0', 'byId:0']);
    gateOf.open();
    await Promise.all([...zeros, ...again]);
    expect(stampede.stats()).toMatchObject({ misses: 3, coalesced: 2 });
  });

  it('runs separately for different arguments', async () => {
    const results = [articles.byId(1), articles.byId(2), articles.byId(1)];
    gateOf.open();
    await Promise.all(results);
    expect(calls.sort()).toEqual(['byId:1', 'byId:2']);
  });

  it('shares calls whose object arguments differ only in key order', async () => {
    const a = articles.search({ tag: 'nest', page: 1, sort: { by: 'date', desc: true } });
    const b = articles.search({ sort: { desc: true, by: 'date' }, page: 1, tag: 'nest' });
    gateOf.open();
    expect(await a).toBe(await b);
    expect(calls).toHaveLength(1);
  });

  it('keeps the result for the ttl and runs again after it', async () => {
    gateOf.open();
    await articles.byId(7);
    await articles.byId(7);
    expect(calls).toEqual(['byId:7']);
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'setTimeout', 'clearTimeout'] });
    jest.setSystemTime(Date.now() + 60_001);
    expect(await articles.byId(7)).toEqual({ id: 7, run: 2 });
  });

  it('shares an error with the concurrent callers and does not keep it', async () => {
    const results = Array.from({ length: 10 }, () => articles.failing(1).catch((e: Error) => e.message));
    gateOf.open();
    expect(new Set(await Promise.all(results))).toEqual(new Set(['failed run 1']));
    await expect(articles.failing(1)).rejects.toThrow('failed run 2');
  });

  it('shares one subscription of an Observable-returning method among concurrent subscribers', async () => {
    const feeds = Array.from({ length: 10 }, () =>
      lastValueFrom(moduleRef.get(PricesFeed).prices('sku-1').pipe(toArray())),
    );
    expect(subscriptions).toHaveLength(1);
    source.next(1);
    source.next(2);
    source.complete();
    for (const values of await Promise.all(feeds)) expect(values).toEqual([1, 2]);
    expect(calls).toEqual(['prices:sku-1']);
  });

  it('returns a plain value from a synchronous method, kept for the ttl', () => {
    expect(articles.sync(3)).toBe('sync 3 run 1');
    expect(articles.sync(3)).toBe('sync 3 run 1');
    expect(calls).toEqual(['sync:3']);
  });

  it('never shares between two classes with a method of the same name', async () => {
    gateOf.open();
    const [article, user] = await Promise.all([articles.byId(5), moduleRef.get(UsersRepository).byId(5)]);
    expect(article).toEqual({ id: 5, run: 1 });
    expect(user).toBe('user 5');
  });

  it('calls through, uncoalesced, with an argument it cannot serialize, warning once', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    let called = 0;
    await articles.withCallback(() => called++);
    await articles.withCallback(() => called++);
    expect(called).toBe(2);
    expect(calls).toEqual(['withCallback', 'withCallback']);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toContain('ArticlesRepository.withCallback: argument $[0] is a function');

    const circular: Record<string, unknown> = {};
    circular.self = circular;
    gateOf.open();
    await expect(articles.search(circular)).resolves.toMatch(/found/);
  });

  it('keeps other decorators stacked with it working, and their metadata', async () => {
    const stacked = moduleRef.get(StackedService);
    expect(await stacked.value(4)).toBe(8);
    expect(await stacked.value(4)).toBe(8);
    // @Counted sits below @Coalesce: it runs only when the work runs.
    expect(calls).toEqual(['counted', 'stacked:4']);
    expect(moduleRef.get(Reflector).get('audit', stacked.value)).toBe('above');
    expect(stacked.value.name).toBe('value');
  });

  it('coalesces on an instance made outside Nest, with the defaults', async () => {
    const standalone = new ArticlesRepository();
    const results = [standalone.byId(9), standalone.byId(9)];
    gateOf.open();
    await Promise.all(results);
    expect(calls).toEqual(['byId:9']);
  });
});

describe('@Coalesce on provider methods, configured by the module', () => {
  beforeEach(() => {
    calls.length = 0;
    gateOf = gate();
    gateOf.open();
  });

  it('applies the ttl of forRootAsync', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRootAsync({ useFactory: async () => ({ ttl: 0 }) })],
      providers: [ArticlesRepository],
    }).compile();
    await moduleRef.init();
    const articles = moduleRef.get(ArticlesRepository);
    await articles.byId(1);
    await articles.byId(1);
    expect(calls).toEqual(['byId:1', 'byId:1']);
    await moduleRef.close();
  });

  it('stores in the module’s store', async () => {
    const map = new Map<string, unknown>();
    const moduleRef = await compile({ store: new Keyv({ store: map }) });
    await moduleRef.get(ArticlesRepository).byId(11);
    expect([...map.keys()]).toEqual(['keyv:ArticlesRepository.byId([11])']);
    expect(await moduleRef.get(StampedeService).get('ArticlesRepository.byId([11])')).toEqual({ id: 11, run: 1 });
    await moduleRef.close();
  });

  it('answers each instance from its own module’s store when two apps call in turn, and one closed app’s instance from none of them', async () => {
    const mapA = new Map<string, unknown>();
    const mapB = new Map<string, unknown>();
    const appA = await compile({ store: new Keyv({ store: mapA }) });
    const appB = await compile({ store: new Keyv({ store: mapB }) });
    const a = appA.get(ArticlesRepository);
    const b = appB.get(ArticlesRepository);
    await a.byId(1);
    await b.byId(2);
    await a.byId(3);
    expect([...mapA.keys()]).toEqual(['keyv:ArticlesRepository.byId([1])', 'keyv:ArticlesRepository.byId([3])']);
    expect([...mapB.keys()]).toEqual(['keyv:ArticlesRepository.byId([2])']);
    await appA.close();
    // Unbound: the in-process default engine, not app A's store (closed) nor app B's.
    await a.byId(4);
    await a.byId(4);
    expect(calls.filter((c) => c === 'byId:4')).toHaveLength(1);
    expect(mapA.size + mapB.size).toBe(3);
    await appB.close();
  });

  it('joins only a call in flight of its own app, with its own argument', async () => {
    gateOf = gate();
    const appA = await compile({});
    const appB = await compile({});
    const a = appA.get(ArticlesRepository);
    const b = appB.get(ArticlesRepository);
    // Each call repeats the last one's argument or instance but one: none may take the other's flight.
    const results = [a.byId(5), a.byId(5), b.byId(5), a.byId(6), a.byId(5), b.byId(5)];
    expect(appA.get(StampedeService).waiters('ArticlesRepository.byId([5])')).toBe(3);
    expect(appB.get(StampedeService).waiters('ArticlesRepository.byId([5])')).toBe(2);
    gateOf.open();
    const values = await Promise.all(results);
    expect(calls.sort()).toEqual(['byId:5', 'byId:5', 'byId:6']);
    expect(values.map((v) => v.id)).toEqual([5, 5, 5, 6, 5, 5]);
    await appA.close();
    await appB.close();
  });

  it('does not join the flight of an app closed while it ran: the next call runs on its own engine', async () => {
    gateOf = gate();
    const app = await compile({});
    const articles = app.get(ArticlesRepository);
    const first = articles.byId(7);
    await app.close();
    const second = articles.byId(7);
    gateOf.open();
    await Promise.all([first, second]);
    expect(calls).toEqual(['byId:7', 'byId:7']);
  });

  it('coalesces a method whose tags are a function of its arguments, tagging each result', async () => {
    @Injectable()
    class Tagged {
      @Coalesce({ tags: (_result: unknown, id: number) => [`tagged:${id}`] })
      async byId(id: number): Promise<string> {
        calls.push(`tagged:${id}`);
        await gateOf.promise;
        return `tagged ${id} run ${calls.length}`;
      }
    }
    gateOf = gate();
    const app = await compile({}, [Tagged]);
    const tagged = app.get(Tagged);
    const results = [1, 2, 1, 2, 1].map((id) => tagged.byId(id));
    gateOf.open();
    const values = await Promise.all(results);
    expect(calls.sort()).toEqual(['tagged:1', 'tagged:2']);
    const [one, two] = values;
    expect(values).toEqual([one, two, one, two, one]);
    // Each result got its own call's tags: invalidating id 2's leaves id 1's stored.
    app.get(StampedeService).invalidateTags(['tagged:2']);
    expect(await tagged.byId(1)).toBe(one);
    expect(await tagged.byId(2)).not.toBe(two);
    expect(calls).toHaveLength(3);
    await app.close();
  });

  it('refuses a request-scoped provider without a key function, naming it', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @Coalesce()
      async me(): Promise<string> {
        return 'me';
      }
    }
    await expect(compile({}, [PerRequest])).rejects.toThrow(
      /@Coalesce\(\) on PerRequest\.me: PerRequest is request-scoped/,
    );
  });

  it('serves a request-scoped provider with a key function, shared across its instances', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class Tenants {
      @Coalesce({ key: (id: string) => `tenant:${id}` })
      async byId(id: string): Promise<string> {
        calls.push(`tenant:${id}`);
        return `tenant ${id}`;
      }
    }
    const moduleRef = await compile({}, [Tenants]);
    const a = await moduleRef.resolve(Tenants, { id: 1 });
    const b = await moduleRef.resolve(Tenants, { id: 2 });
    expect(a).not.toBe(b);
    expect(await a.byId('x')).toBe('tenant x');
    expect(await b.byId('x')).toBe('tenant x');
    expect(calls).toEqual(['tenant:x']);
    expect(await firstValueFrom(moduleRef.get(StampedeService).run$('tenant:x', () => 'other'))).toBe('tenant x');
    await moduleRef.close();
  });
});
