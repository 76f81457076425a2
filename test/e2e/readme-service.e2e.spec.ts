import { CACHE_MANAGER, CacheModule } from '@nestjs/cache-manager';
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Cache } from 'cache-manager';
import { readFileSync } from 'node:fs';
import { Observable, defer, firstValueFrom, lastValueFrom, map } from 'rxjs';
import { Coalesce, StampedeEvent, StampedeModule, StampedeService } from '../../lib';
import { deferred, until } from '../helpers/deferred';
import { README, readmeSnippet } from '../helpers/readme';

/**
 * README's service-method, StampedeService, store and event snippets, as
 * they stand there (checked first), compiled by the typecheck and run.
 */

interface Article {
  id: number;
  title: string;
}
interface Query {
  text: string;
}
interface User {
  id: string;
  name: string;
}

/** What the README leaves to the app: a database client (Prisma's shape) and an HTTP client (`@nestjs/axios`'s). */
@Injectable()
class PrismaService {
  queries = 0;
  gate = deferred<void>();
  article = {
    findUnique: async ({ where }: { where: { id: number } }): Promise<Article> => {
      this.queries++;
      await this.gate.promise;
      return { id: where.id, title: `article ${where.id}` };
    },
  };
  async findUser(id: string): Promise<User> {
    this.queries++;
    return { id, name: `user ${id}` };
  }
}
@Injectable()
class HttpService {
  requests: string[] = [];
  gate = deferred<void>();
  /** Cold, as axios's: the request goes out on subscription, and answers when the test opens the gate. */
  get<T>(url: string, config?: { params?: Record<string, string> }): Observable<{ data: T }> {
    return defer(async () => {
      this.requests.push(`${url}?${new URLSearchParams(config?.params)}`);
      await this.gate.promise;
      return { data: [{ id: 1, title: `found ${config?.params?.q ?? url}` }] as T };
    });
  }
}

// README:service-methods
@Injectable()
export class ArticlesRepository {
  constructor(
    private readonly db: PrismaService,
    private readonly http: HttpService,
  ) {}

  @Coalesce({ ttl: 1_000 })
  async byId(id: number): Promise<Article> {
    return this.db.article.findUnique({ where: { id } }); // once for 100 concurrent byId(42)
  }

  @Coalesce({ ttl: 0, key: (q: Query) => `search:${q.text}` })
  search(q: Query): Observable<Article[]> {
    return this.http.get<Article[]>('/search', { params: { q: q.text } }).pipe(map((r) => r.data));
  }
}
// README:end

/** Runs the StampedeService snippet where README places it: in a provider that has the service, a db and an http client. */
@Injectable()
class UsersService {
  constructor(
    private readonly stampede: StampedeService,
    private readonly db: PrismaService,
    private readonly http: HttpService,
  ) {}

  async tour(id: string) {
    const stampede = this.stampede;
    // README:service-api
    const user = await stampede.run(`user:${id}`, () => this.db.findUser(id), { ttl: '30s' });
    const rates$ = stampede.run$('rates', () => this.http.get('/rates'), { ttl: 0 });
    const cached = await stampede.get<User>('user:42'); // the fresh stored value, or undefined
    await stampede.set('user:42', user, 60_000); // store for 60 s
    const dropped = await stampede.invalidate('user:42'); // drop one key (resolves with the count dropped)
    await stampede.invalidate({ prefix: 'GET https://api.example.com/articles/' }); // drop many (stores that can list keys)
    const busy = stampede.inFlight(); // how many keys have work in progress
    const waiting = stampede.waiters('user:42'); // how many callers wait on that work, its leader included
    // README:end
    return { user, rates$, cached, dropped, busy, waiting };
  }
}

const SOURCE = readFileSync(__filename, 'utf8');

it.each(['service-methods', 'service-api', 'stores', 'events'])(
  'the README %s snippet is the code of this file, word for word',
  (name) => {
    expect(README).toContain(readmeSnippet(SOURCE, name));
  },
);

describe('README service snippets', () => {
  it('service methods: 100 concurrent byId(42) make one query; concurrent searches share one request', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRoot()],
      providers: [PrismaService, HttpService, ArticlesRepository],
    }).compile();
    await moduleRef.init();
    try {
      const repository = moduleRef.get(ArticlesRepository);
      const db = moduleRef.get(PrismaService);
      const calls = Array.from({ length: 100 }, () => repository.byId(42));
      db.gate.resolve();
      expect(new Set(await Promise.all(calls)).size).toBe(1);
      expect((await calls[99]).title).toBe('article 42');
      expect(db.queries).toBe(1);

      const http = moduleRef.get(HttpService);
      const searches = [
        lastValueFrom(repository.search({ text: 'nest' })),
        lastValueFrom(repository.search({ text: 'nest' })),
      ];
      await until(() => http.requests.length === 1, 'the search request sent');
      http.gate.resolve();
      const [a, b] = await Promise.all(searches);
      expect(a).toEqual([{ id: 1, title: 'found nest' }]);
      expect(b).toEqual(a);
      expect(http.requests).toEqual(['/search?q=nest']);
    } finally {
      await moduleRef.close();
    }
  });

  it('StampedeService: run, run$, get, set, invalidate, inFlight and waiters as the README says', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StampedeModule.forRoot()],
      providers: [PrismaService, HttpService, UsersService],
    }).compile();
    await moduleRef.init();
    try {
      const users = moduleRef.get(UsersService);
      const db = moduleRef.get(PrismaService);
      const stampede = moduleRef.get(StampedeService);
      moduleRef.get(HttpService).gate.resolve();
      const tour = await users.tour('42');
      expect(tour.user).toEqual({ id: '42', name: 'user 42' });
      expect(tour.cached).toEqual(tour.user); // run stored it under user:42 for 30 s
      expect(tour.dropped).toBe(1);
      expect(await stampede.get('user:42')).toBeUndefined(); // set, then invalidated
      expect(await firstValueFrom(tour.rates$)).toEqual({ data: [{ id: 1, title: 'found /rates' }] });
      expect(tour.busy).toBe(0);
      expect(tour.waiting).toBe(0);
      expect(db.queries).toBe(1);

      // While a work runs, inFlight and waiters count it and its callers.
      const gate = deferred<string>();
      const leader = stampede.run('slow', () => gate.promise);
      const follower = stampede.run('slow', () => 'never');
      await until(() => stampede.waiters('slow') === 2, 'the leader and one follower on "slow"');
      expect(stampede.inFlight()).toBe(1);
      gate.resolve('done');
      expect(await Promise.all([leader, follower])).toEqual(['done', 'done']);
    } finally {
      await moduleRef.close();
    }
  });

  it('stores: the cache-manager Cache given to @nestjs/cache-manager holds the entries', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        // README:stores
        CacheModule.register({ isGlobal: true }),
        StampedeModule.forRootAsync({
          inject: [CACHE_MANAGER],
          useFactory: (cache: Cache) => ({ store: cache }),
        }),
        // README:end
      ],
    }).compile();
    await moduleRef.init();
    try {
      const stampede = moduleRef.get(StampedeService);
      const cache = moduleRef.get<Cache>(CACHE_MANAGER);
      let runs = 0;
      expect(await stampede.run('k', () => ++runs)).toBe(1);
      expect(await stampede.run('k', () => ++runs)).toBe(1);
      expect(await cache.get('k')).toMatchObject({ v: 1 });
    } finally {
      await moduleRef.close();
    }
  });

  it('events: the listener sees each event, stats() counts them, off() stops it', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [StampedeModule.forRoot()] }).compile();
    await moduleRef.init();
    const stampede = moduleRef.get(StampedeService);
    const seen: StampedeEvent['type'][] = [];
    const counters = { inc: ({ type }: { type: StampedeEvent['type'] }) => seen.push(type) };
    try {
      // README:events
      const off = stampede.on((event) => {
        // event.type: 'hit' | 'miss' | 'coalesced' | 'stored' | 'error' | 'timeout' | 'bypass'
        // event.key, event.waiters (coalesced), event.reason (bypass), event.error, event.ttl (stored)
        counters.inc({ type: event.type });
      });
      const stats = stampede.stats(); // { hits, misses, coalesced, stored, errors, timeouts, bypasses, inFlight, waiting }
      // README:end
      expect(stats).toMatchObject({ hits: 0, misses: 0, inFlight: 0, waiting: 0 });
      await stampede.run('k', () => 1);
      await stampede.run('k', () => 2);
      expect(seen).toEqual(expect.arrayContaining(['miss', 'stored', 'hit']));
      expect(stampede.stats()).toMatchObject({ hits: 1, misses: 1, stored: 1 });
      off();
      const before = seen.length;
      await stampede.run('k', () => 3);
      expect(seen.length).toBe(before);
    } finally {
      await moduleRef.close();
    }
  });
});
