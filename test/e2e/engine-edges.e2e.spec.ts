import { Controller, Get, Header, Headers, Injectable, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test, TestingModule } from '@nestjs/testing';
import {
  Coalesce,
  StampedeInterceptor,
  StampedeEvent,
  StampedeMemoryStore,
  StampedeModule,
  StampedeService,
  StampedeTimeoutError,
} from '../../lib';
import { PLATFORMS, request, startApp } from '../apps/http-app';

/**
 * Edges where the engine's entry points used to disagree: each test failed
 * on the engine before it was split by flow, and names what a user saw.
 */
describe('engine edges', () => {
  let moduleRef: TestingModule;
  let stampede: StampedeService;
  let store: StampedeMemoryStore;

  beforeEach(async () => {
    store = new StampedeMemoryStore(1_000);
    moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ ttl: 60_000, store })] }).compile();
    await moduleRef.init();
    stampede = moduleRef.get(StampedeService);
  });
  afterEach(() => moduleRef.close());

  describe('keys over 1024 characters', () => {
    const long = `report:${'x'.repeat(2_000)}`;

    it('invalidate() drops the value run() stored, so the stale value is not served again', async () => {
      expect(await stampede.run(long, () => 'old')).toBe('old');
      expect(await stampede.invalidate(long)).toBe(1);
      expect(await stampede.run(long, () => 'new')).toBe('new');
    });

    it('get() and set() reach the same entry as run()', async () => {
      await stampede.set(long, 'written', 10_000);
      expect(await stampede.run(long, () => 'computed')).toBe('written');
      expect(await stampede.run(`${long}y`, () => 'computed')).toBe('computed');
      expect(await stampede.get(`${long}y`)).toBe('computed');
    });

    it('never equals a short key spelled like its bounded form', async () => {
      await stampede.run(long, () => 'long');
      const spelled = [...store['entries'].keys()].find((key) => key.length < 1024 && key.startsWith('report:'))!;
      expect(spelled).toContain('\u0000');
      expect(await stampede.run(spelled.replace('\u0000', '#'), () => 'short')).toBe('short');
    });
  });

  describe('the AbortSignal', () => {
    it('reaches a work written with a default parameter, and its timeout aborts it', async () => {
      let seen: AbortSignal | undefined;
      const work = (signal: AbortSignal | undefined = undefined) => {
        seen = signal;
        return new Promise<string>(() => undefined);
      };
      expect(work.length).toBe(0);
      await expect(stampede.run('slow', work, { timeout: 20 })).rejects.toBeInstanceOf(StampedeTimeoutError);
      expect(seen).toBeInstanceOf(AbortSignal);
      expect(seen!.aborted).toBe(true);
    });

    it('reaches a rest-parameter work', async () => {
      let seen: unknown;
      await stampede.run('rest', (...args: unknown[]) => ((seen = args[0]), 'ok'), { ttl: 0 });
      expect(seen).toBeInstanceOf(AbortSignal);
    });
  });

  describe('options a surface cannot honour', () => {
    it.each([
      ['keyHeaders', ['accept']],
      ['statusTtl', { 200: 1_000 }],
      ['keyBody', true],
      ['maxBodyBytes', 10],
    ])('run() refuses the HTTP option %s, naming it and run', async (name, value) => {
      await expect(stampede.run('k', () => 1, { [name]: value } as never)).rejects.toThrow(
        new RegExp(`option "${name}".*HTTP|option "${name}".*module and route.*\\(in StampedeService.run\\)`),
      );
    });

    it('fails bootstrap for an HTTP option on a provider method, naming the class and method', async () => {
      @Injectable()
      class Prices {
        @Coalesce({ keyHeaders: ['accept-language'] })
        async price(sku: string): Promise<string> {
          return sku;
        }
      }
      const compiling = Test.createTestingModule({
        imports: [StampedeModule.forRoot()],
        providers: [Prices],
      }).compile();
      await expect(compiling.then((m) => m.init())).rejects.toThrow(
        /option "keyHeaders".*\(in @Coalesce on Prices\.price\)/,
      );
    });
  });
});

describe('@Coalesce key prefixes', () => {
  // Two classes of one name, decorated in this order in every instance of the app.
  const First = (() => {
    @Injectable()
    class Catalog {
      @Coalesce()
      async item(id: number): Promise<string> {
        return `first ${id}`;
      }
    }
    return Catalog;
  })();
  const Second = (() => {
    @Injectable()
    class Catalog {
      @Coalesce()
      async item(id: number): Promise<string> {
        return `second ${id}`;
      }
    }
    return Catalog;
  })();

  it('are fixed when the class is decorated, not by which instance is called first', async () => {
    @Module({ imports: [StampedeModule.forRoot()], providers: [First, Second] })
    class AppModule {}
    const app = await Test.createTestingModule({ imports: [AppModule] }).compile();
    await app.init();
    const keys: string[] = [];
    app.get(StampedeService).on((event: StampedeEvent) => event.type === 'miss' && keys.push(event.key));
    // Called in the opposite order of their declaration.
    expect(await app.get(Second).item(1)).toBe('second 1');
    expect(await app.get(First).item(1)).toBe('first 1');
    expect(keys).toEqual(['Catalog~2.item([1])', 'Catalog.item([1])']);
    await app.close();
  });
});

describe('jitter', () => {
  it('spreads the expiry of entries written together, never past the ttl', async () => {
    const store = new StampedeMemoryStore(1_000);
    const app = await Test.createTestingModule({
      imports: [StampedeModule.forRoot({ ttl: 10_000, jitter: 0.2, store })],
    }).compile();
    await app.init();
    const stampede = app.get(StampedeService);
    const before = Date.now();
    await Promise.all(Array.from({ length: 50 }, (_, i) => stampede.run(`k${i}`, () => i)));
    const after = Date.now();
    const expiries = Array.from({ length: 50 }, (_, i) => store.get(`k${i}`)!.e);
    for (const e of expiries) {
      expect(e).toBeLessThanOrEqual(after + 10_000);
      expect(e).toBeGreaterThanOrEqual(before + 8_000);
    }
    expect(new Set(expiries).size).toBeGreaterThan(10);
    await app.close();
  });

  it('takes milliseconds from 1 on, per call', async () => {
    const store = new StampedeMemoryStore(1_000);
    const app = await Test.createTestingModule({ imports: [StampedeModule.forRoot({ store })] }).compile();
    await app.init();
    const stampede = app.get(StampedeService);
    const before = Date.now();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => stampede.run(`k${i}`, () => i, { ttl: 5_000, jitter: 1_000 })),
    );
    const expiries = Array.from({ length: 20 }, (_, i) => store.get(`k${i}`)!.e - before);
    expect(Math.min(...expiries)).toBeGreaterThanOrEqual(4_000);
    expect(Math.max(...expiries)).toBeLessThanOrEqual(5_000 + (Date.now() - before));
    expect(new Set(expiries).size).toBeGreaterThan(5);
    await app.close();
  });

  it('fails bootstrap for a negative jitter, naming it', async () => {
    await expect(
      Test.createTestingModule({ imports: [StampedeModule.forRoot({ jitter: -0.1 })] }).compile(),
    ).rejects.toThrow(/option "jitter".*got -0.1/);
  });
});

describe.each(PLATFORMS)('a Vary mismatch found on the hit path (%s)', (platform) => {
  @Controller('greeting')
  class GreetingController {
    runs = 0;
    @Get()
    @Header('Vary', 'Accept-Language')
    greet(@Headers('accept-language') language: string) {
      this.runs++;
      return { hello: language };
    }
  }

  it('is no hit: a caller of another variant gets its own, and the counts say so', async () => {
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: [GreetingController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    try {
      const stampede = running.app.get(StampedeService);
      const ask = (language: string) =>
        request(`${running.url}/greeting`, { headers: { 'accept-language': language } }).then((r) => r.text);
      expect(await ask('en')).toBe('{"hello":"en"}');
      expect(await ask('fr')).toBe('{"hello":"fr"}');
      expect(stampede.stats().hits).toBe(0);
      expect(await ask('fr')).toBe('{"hello":"fr"}');
      expect(stampede.stats().hits).toBe(1);
      expect(running.app.get(GreetingController).runs).toBe(2);
    } finally {
      await running.close();
    }
  });
});
