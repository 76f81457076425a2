import { Controller, Get, Headers, ModuleMetadata, Query, Res, UseInterceptors } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import { isDeepStrictEqual } from 'node:util';
import {
  Coalesce,
  StampedeEvent,
  StampedeInterceptor,
  StampedeMemoryStore,
  StampedeModule,
  StampedeService,
} from '../../lib';
import {
  PLATFORMS,
  PassthroughResponse,
  Platform,
  Reply,
  RunningApp,
  keyOf,
  request,
  setResponseHeader,
  startApp,
} from '../apps/http-app';
import { fakeDateOnly } from '../helpers/clock';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';
import { mulberry32 } from '../helpers/random';

/**
 * Response headers that belong to one client: never replayed to another (values per run `n`).
 * (`Set-Cookie` makes the whole response its caller's own: see the interceptor suite.)
 */
const PER_CLIENT_HEADERS: [name: string, value: (n: number) => string | string[]][] = [
  ['Set-Cookie2', (n) => `legacy=leader-${n}`],
  ['Access-Control-Allow-Origin', () => 'https://leader.example'],
  ['Access-Control-Expose-Headers', () => 'x-leader-only'],
  ['Access-Control-Max-Age', () => '600'],
  ['X-RateLimit-Limit', () => '100'],
  ['X-RateLimit-Remaining', (n) => String(100 - n)],
  ['X-Rate-Limit-Reset', () => '60'],
  ['RateLimit', () => 'limit=100, remaining=99, reset=60'],
  ['RateLimit-Policy', () => '100;w=60'],
  ['RateLimit-Remaining', () => '99'],
  ['Retry-After', () => '120'],
  ['Proxy-Authenticate', () => 'Basic realm="leader"'],
];

@Controller('sec')
@UseInterceptors(StampedeInterceptor)
class SecurityController {
  constructor(private readonly origin: Origin) {}

  /** No key headers: a request with Authorization or Cookie must run alone. */
  @Get('plain')
  async plain(@Headers('authorization') authorization?: string, @Headers('cookie') cookie?: string) {
    const n = await this.origin.run('plain');
    return { n, authorization: authorization ?? null, cookie: cookie ?? null };
  }

  /** Coalesced per Authorization value; a Cookie still makes a request run alone. */
  @Get('per-token')
  @Coalesce({ keyHeaders: ['authorization'] })
  async perToken(@Headers('authorization') authorization?: string, @Headers('cookie') cookie?: string) {
    const n = await this.origin.run('per-token');
    return { n, authorization: authorization ?? null, cookie: cookie ?? null };
  }

  @Get('per-client-headers')
  async perClientHeaders(@Res({ passthrough: true }) res: PassthroughResponse) {
    return this.setPerClientHeaders(res, await this.origin.run('per-client-headers'));
  }

  @Get('per-client-headers-swr')
  @Coalesce({ ttl: 1_000, staleTtl: 60_000 })
  async perClientHeadersSwr(@Res({ passthrough: true }) res: PassthroughResponse) {
    return this.setPerClientHeaders(res, await this.origin.run('per-client-headers-swr'));
  }

  /** Its key splits on two secrets; it varies on them too, so their fingerprint is stored. */
  @Get('keyed')
  @Coalesce({ keyHeaders: ['x-api-key', 'authorization'] })
  keyed(@Res({ passthrough: true }) res: PassthroughResponse) {
    setResponseHeader(res, 'vary', 'X-Api-Key, Authorization');
    return { ok: true };
  }

  /** Answers with what it was asked: the tenant and the query as parsed. */
  @Get('echo')
  @Coalesce({ keyHeaders: ['x-tenant'] })
  echo(@Headers('x-tenant') tenant: string | undefined, @Query() query: Record<string, unknown>) {
    return { tenant: tenant ?? null, query };
  }

  private setPerClientHeaders(res: PassthroughResponse, n: number) {
    setResponseHeader(res, 'x-run', `run-${n}`);
    for (const [name, value] of PER_CLIENT_HEADERS) setResponseHeader(res, name, value(n));
    return { n };
  }
}

/** Like `startApp`, with CORS answering each request's own Origin (set before the handler runs). */
async function startWithCors(platform: Platform, metadata: ModuleMetadata): Promise<RunningApp> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  app.enableCors({ origin: true });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** Keep-alive connections for the many-request tests (much lighter than `fetch` per request). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
afterAll(() => agent.destroy());

/** A GET over `agent`: status, Cache-Status and body text. */
function quickGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; cacheStatus?: string; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            cacheStatus: res.headers['cache-status'] as string | undefined,
            text,
          }),
        );
      })
      .on('error', reject);
  });
}

/** Runs `task(0..count-1)`, at most `concurrency` at a time. */
async function pooled<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

/** Seeded draws (mulberry32), so a failing run can be replayed from its seed. */
function prng(seed: number) {
  const next = mulberry32(seed);
  return {
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)],
    chance: (p: number) => next() < p,
  };
}

const shuffle = <T>(items: T[], random: ReturnType<typeof prng>): T[] => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
};

const status = (reply: Reply) => reply.headers['cache-status'];
const body = (reply: Reply) => JSON.parse(reply.text) as Record<string, unknown>;

describe.each(PLATFORMS)('security on %s', (platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;
  const memory = new StampedeMemoryStore(20_000);

  beforeAll(async () => {
    running = await startWithCors(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, store: memory })],
      controllers: [SecurityController],
      providers: [Origin],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running.close());
  beforeEach(async () => {
    origin.reset();
    await stampede.invalidate({ prefix: '' });
  });
  afterEach(() => jest.useRealTimers());

  const get = (path: string, headers: Record<string, string> = {}) => request(`${running.url}${path}`, { headers });

  describe('Authorization and Cookie under concurrency', () => {
    type Caller = { headers: Record<string, string>; authorization: string | null; cookie: string | null };

    it('runs every credentialed request alone with its own answer, and never shares or stores it for anonymous callers', async () => {
      const random = prng(0x5eed);
      for (let round = 0; round < 4; round++) {
        await stampede.invalidate({ prefix: '' });
        origin.reset();
        const anonymous = 8 + random.int(8);
        const callers: Caller[] = Array.from({ length: anonymous }, () => ({
          headers: {},
          authorization: null,
          cookie: null,
        }));
        const credentialed = 6 + random.int(8);
        for (let i = 0; i < credentialed; i++) {
          const secret = randomBytes(6).toString('hex');
          const kind = i % 3; // Authorization, Cookie, or both
          const authorization = kind !== 1 ? `Bearer ${secret}` : null;
          const cookie = kind !== 0 ? `sid=${secret}` : null;
          const headers: Record<string, string> = {};
          if (authorization) headers.authorization = authorization;
          if (cookie) headers.cookie = cookie;
          callers.push({ headers, authorization, cookie });
        }
        shuffle(callers, random);

        origin.hold('plain');
        const replies = callers.map((caller) => get('/sec/plain', caller.headers));
        // Every anonymous caller waits on one flight; every credentialed one is in its own handler.
        await until(
          () =>
            stampede.waiters(keyOf(running, 'GET /sec/plain')) === anonymous &&
            origin.calls('plain') === 1 + credentialed,
          `${anonymous} anonymous waiters and ${credentialed} credentialed handlers`,
        );
        origin.open('plain');
        const answered = await Promise.all(replies);

        const anonymousBodies = new Set<string>();
        const credentialedRuns = new Set<unknown>();
        answered.forEach((reply, i) => {
          const caller = callers[i];
          expect(reply.status).toBe(200);
          const answer = body(reply);
          expect(answer).toMatchObject({ authorization: caller.authorization, cookie: caller.cookie });
          if (caller.authorization || caller.cookie) {
            expect(status(reply)).toBe('nestjs-stampede; fwd=bypass');
            credentialedRuns.add(answer.n);
          } else {
            anonymousBodies.add(reply.text);
          }
        });
        expect(anonymousBodies.size).toBe(1);
        expect(credentialedRuns.size).toBe(credentialed);
        expect(credentialedRuns.has(JSON.parse([...anonymousBodies][0]).n)).toBe(false);

        // What is stored, and what the next anonymous caller gets, is the anonymous answer.
        const stored = memory.get(keyOf(running, 'GET /sec/plain'))?.v as { body: unknown } | undefined;
        expect(stored?.body).toEqual(JSON.parse([...anonymousBodies][0]));
        const next = await get('/sec/plain');
        expect(status(next)).toMatch(/; hit;/);
        expect(next.text).toBe([...anonymousBodies][0]);

        // With the anonymous answer stored, credentialed callers still each run alone.
        origin.hold('plain');
        const late = callers.filter((c) => c.authorization || c.cookie).slice(0, 4);
        const lateReplies = late.map((caller) => get('/sec/plain', caller.headers));
        await until(() => origin.calls('plain') === 1 + credentialed + late.length, 'late credentialed handlers');
        origin.open('plain');
        (await Promise.all(lateReplies)).forEach((reply, i) => {
          expect(body(reply)).toMatchObject({ authorization: late[i].authorization, cookie: late[i].cookie });
          expect(status(reply)).toBe('nestjs-stampede; fwd=bypass');
        });
      }
    });

    it('coalesces per Authorization value where it is a key header, but still runs a request with a Cookie alone', async () => {
      const tokens = ['Bearer alice', 'Bearer bob', 'Bearer carol'];
      const callers: Caller[] = [];
      for (const token of tokens) {
        for (let i = 0; i < 5; i++)
          callers.push({ headers: { authorization: token }, authorization: token, cookie: null });
      }
      for (let i = 0; i < 5; i++) callers.push({ headers: {}, authorization: null, cookie: null });
      for (let i = 0; i < 3; i++) {
        const cookie = `sid=${i}`;
        callers.push({ headers: { authorization: tokens[0], cookie }, authorization: tokens[0], cookie });
      }
      shuffle(callers, prng(7));

      origin.hold('per-token');
      const replies = callers.map((caller) => get('/sec/per-token', caller.headers));
      // Four flights (three tokens, anonymous) of five waiters each, and three lone cookie-bearing handlers.
      await until(
        () => stampede.stats().waiting === 20 && origin.calls('per-token') === 4 + 3,
        '20 waiters on 4 flights and 3 lone handlers',
      );
      origin.open('per-token');
      const answered = await Promise.all(replies);
      const runsByGroup = new Map<string, Set<unknown>>();
      answered.forEach((reply, i) => {
        const caller = callers[i];
        const answer = body(reply);
        expect(answer).toMatchObject({ authorization: caller.authorization, cookie: caller.cookie });
        const group = caller.cookie ? `cookie ${caller.cookie}` : String(caller.authorization);
        runsByGroup.set(group, (runsByGroup.get(group) ?? new Set()).add(answer.n));
        if (caller.cookie) expect(status(reply)).toBe('nestjs-stampede; fwd=bypass');
      });
      // One run per group, and no two groups share a run.
      const runs = [...runsByGroup.values()];
      expect(runs.every((r) => r.size === 1)).toBe(true);
      expect(new Set(runs.flatMap((r) => [...r])).size).toBe(runs.length);
    });
  });

  describe('per-client response headers', () => {
    const ORIGINS = Array.from({ length: 3 }, (_, i) => `https://client-${i}.example`);

    function expectOwnHeadersOnly(reply: Reply, clientOrigin: string, run: number): void {
      expect(reply.status).toBe(200);
      expect(reply.headers['x-run']).toBe(`run-${run}`);
      expect(reply.setCookie).toEqual([]);
      // CORS answered this request's own Origin; the leader's value is never replayed.
      expect(reply.headers['access-control-allow-origin']).toBe(clientOrigin);
      for (const [name] of PER_CLIENT_HEADERS) {
        if (name === 'Access-Control-Allow-Origin') continue;
        expect([name, reply.headers[name.toLowerCase()]]).toEqual([name, undefined]);
      }
    }

    it('keeps them on the leader only: never replayed to a follower or from the store', async () => {
      // Three clients per Origin. CORS answers `Vary: Origin`, so each Origin is a variant of its own,
      // led once and shared among the clients of that Origin only.
      const clients = [...ORIGINS, ...ORIGINS, ...ORIGINS];
      origin.hold('per-client-headers');
      const replies = clients.map((o) => get('/sec/per-client-headers', { origin: o }));
      await until(
        () => stampede.waiters(keyOf(running, 'GET /sec/per-client-headers')) === clients.length,
        'every client waiting',
      );
      origin.open('per-client-headers');
      const answered = await Promise.all(replies);
      const runOf = new Map<string, number>();
      for (const o of ORIGINS) {
        const group = answered.filter((_, i) => clients[i] === o);
        const leaders = group.filter((r) => status(r) === 'nestjs-stampede; fwd=miss; stored');
        expect(leaders).toHaveLength(1);
        const leader = leaders[0];
        const run = Number(leader.headers['x-run'].slice('run-'.length));
        runOf.set(o, run);
        // The handler did set them: the leader gets its own.
        expect(leader.headers['access-control-allow-origin']).toBe('https://leader.example');
        expect(leader.headers['x-ratelimit-remaining']).toBe(String(100 - run));
        expect(leader.headers['ratelimit']).toBe('limit=100, remaining=99, reset=60');
        expect(leader.headers['retry-after']).toBe('120');
        for (const reply of group) {
          if (reply === leader) continue;
          expect(status(reply)).toBe('nestjs-stampede; fwd=miss; collapsed');
          expectOwnHeadersOnly(reply, o, run);
        }
      }
      expect(new Set(runOf.values()).size).toBe(ORIGINS.length);

      for (const o of ORIGINS) {
        const hit = await get('/sec/per-client-headers', { origin: o });
        expect(status(hit)).toMatch(/; hit;/);
        expectOwnHeadersOnly(hit, o, runOf.get(o)!);
      }
      expect(origin.calls('per-client-headers')).toBe(ORIGINS.length);
    });

    it('serves no stale answer from a route that sets its own headers, so its refresh never writes to a sent response', async () => {
      await get('/sec/per-client-headers-swr', { origin: ORIGINS[0] });
      // Past the ttl (1 s), within staleTtl: only the clock moves.
      fakeDateOnly();
      jest.setSystemTime(Date.now() + 2_000);
      const next = await get('/sec/per-client-headers-swr', { origin: ORIGINS[0] });
      expect(status(next)).toBe('nestjs-stampede; fwd=miss; stored');
      expect(origin.calls('per-client-headers-swr')).toBe(2);
      // It ran its own handler: its own per-client headers, nobody else's.
      expect(next.headers['x-run']).toBe('run-2');
      expect(next.headers['x-ratelimit-remaining']).toBe('98');
    });
  });

  it('answers 5 000 random requests over tenants and query strings (10 000 on both platforms), each with its own answer', async () => {
    const seed = Date.now() >>> 0;
    const random = prng(seed);
    const TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'ACME', ''];
    const NAMES = ['a', 'b', 'c', 'B', 'tenant'];
    const VALUES = ['1', '2', '', 'x+y', 'x%20y', '%26', '%3D', 'caf%C3%A9', 'acme'];
    // A few shapes often (and in any order, which must share a key), the rest random.
    const COMMON = ['', 'a=1', 'a=1&b=2', 'b=2&a=1', 'a=1&a=2', 'a=2&a=1', 'tenant=acme', 'c=x+y&B=%26'];
    const randomQuery = () => {
      if (random.chance(0.5)) return random.pick(COMMON);
      return Array.from({ length: random.int(4) }, () => {
        const name = random.pick(NAMES);
        return random.chance(0.1) ? name : `${name}=${random.pick(VALUES)}`;
      }).join('&');
    };
    const requests = Array.from({ length: 10_000 / PLATFORMS.length }, () => ({
      tenant: random.chance(0.15) ? undefined : random.pick(TENANTS),
      headerName: random.pick(['x-tenant', 'X-Tenant']),
      query: randomQuery(),
    }));

    const mismatches: unknown[] = [];
    const outcomes = new Map<string, number>();
    await pooled(requests.length, 50, async (i) => {
      const { tenant, headerName, query } = requests[i];
      const reply = await quickGet(
        `${running.url}/sec/echo${query ? `?${query}` : ''}`,
        tenant === undefined ? {} : { [headerName]: tenant },
      );
      const expected = { tenant: tenant ?? null, query: JSON.parse(JSON.stringify(parseQuery(query))) as unknown };
      const outcome = (reply.cacheStatus ?? 'none').replace(/; ttl=\d+/, '');
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (reply.status !== 200 || !isDeepStrictEqual(JSON.parse(reply.text), expected)) {
        mismatches.push({ seed, request: requests[i], status: reply.status, got: reply.text, outcome });
      }
    });
    expect(mismatches.slice(0, 5)).toEqual([]);
    // Shared answers were actually served (from the store and from flights), or the check proves little.
    expect(outcomes.get('nestjs-stampede; hit') ?? 0).toBeGreaterThan(requests.length / 4);
    expect(stampede.inFlight()).toBe(0);
  });
});

describe.each(PLATFORMS)('key headers in a Keyv store on %s', (platform) => {
  let running: RunningApp;
  let stampede: StampedeService;
  const map = new Map<string, unknown>();
  const events: StampedeEvent[] = [];

  beforeAll(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, store: new Keyv({ store: map }) })],
      controllers: [SecurityController],
      providers: [Origin],
    });
    stampede = running.app.get(StampedeService);
    stampede.on((event) => events.push(event));
  });
  afterAll(() => running.close());

  it('stores and reports only hashes of key header values, never a secret in clear', async () => {
    const pairs = Array.from({ length: 100 }, () => ({
      apiKey: randomBytes(16).toString('hex'),
      authorization: `Bearer ${randomBytes(24).toString('base64url')}`,
    }));
    // Each pair three times, shuffled: misses, collapsed callers and hits.
    const sends = shuffle(
      pairs.flatMap((p) => [p, p, p]),
      prng(11),
    );
    const replies = await pooled(sends.length, 50, (i) =>
      quickGet(`${running.url}/sec/keyed`, { 'x-api-key': sends[i].apiKey, authorization: sends[i].authorization }),
    );
    expect(replies.every((r) => r.status === 200 && r.text === '{"ok":true}')).toBe(true);
    expect(replies.filter((r) => /; hit;/.test(r.cacheStatus ?? '')).length).toBeGreaterThan(0);

    const keys = [...map.keys()];
    expect(keys).toHaveLength(pairs.length);
    const hash = '[A-Za-z0-9_-]{43}';
    for (const key of keys) {
      expect(key).toMatch(new RegExp(`GET ${running.url}/sec/keyed\\|h:authorization:${hash}\\|h:x-api-key:${hash}$`));
    }
    const stored = [...map.entries()].map(([key, value]) => `${key} ${JSON.stringify(value)}`).join('\n');
    const reported = events.map((e) => e.key).join('\n');
    for (const { apiKey, authorization } of pairs) {
      const token = authorization.slice('Bearer '.length);
      for (const secret of [apiKey, token, apiKey.slice(0, 12), token.slice(0, 12)]) {
        expect(stored.includes(secret)).toBe(false);
        expect(reported.includes(secret)).toBe(false);
      }
    }
  });
});
