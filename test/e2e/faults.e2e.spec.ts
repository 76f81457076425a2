import { Controller, Get, UseInterceptors } from '@nestjs/common';
import {
  STAMPEDE_STORE,
  StampedeInterceptor,
  StampedeModule,
  StampedeService,
  StampedeStore,
  StoredEntry,
} from '../../lib';
import { PLATFORMS, Reply, RunningApp, keyOf, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

/** Milliseconds a store call may take before it counts as failed: what bounds a hung store. */
const STORE_TIMEOUT = 50;
const BURST = 20;
const FOLLOW_UPS = 5;
const KEY = 'GET /f/value';

@Controller('f')
@UseInterceptors(StampedeInterceptor)
class FaultsController {
  constructor(private readonly origin: Origin) {}

  @Get('value')
  async value() {
    return { route: 'value', n: await this.origin.run('value') };
  }
}

/** What one store call does: work, throw, reject, never answer, or answer with garbage. */
type Behaviour = 'ok' | 'throw' | 'reject' | 'reject-non-error' | 'hang' | { garbage: unknown; async?: boolean };

/** A response the store pretends to have: it must never reach a client. */
const FORGED = { shareable: true, status: 200, headers: [['x-forged', 'yes']], body: { route: 'value', n: -1 } };
const LATER = () => Date.now() + 3_600_000;

/** A native store whose `get` and `set` misbehave as told; it keeps every entry it is asked to write. */
class FaultyStore implements StampedeStore {
  readonly [STAMPEDE_STORE] = true;
  readonly writes: StoredEntry[] = [];
  private readonly entries = new Map<string, StoredEntry>();

  constructor(
    private readonly onGet: Behaviour,
    private readonly onSet: Behaviour,
  ) {}

  get(key: string) {
    return this.act(this.onGet, () => this.entries.get(key)) as StoredEntry | Promise<StoredEntry | undefined>;
  }
  set(key: string, entry: StoredEntry) {
    this.writes.push(entry);
    return this.act(this.onSet, () => void this.entries.set(key, entry));
  }
  delete(key: string) {
    return this.entries.delete(key);
  }

  private act(behaviour: Behaviour, ok: () => unknown): unknown {
    if (behaviour === 'ok') return ok();
    if (behaviour === 'throw') throw new Error('ECONNRESET');
    if (behaviour === 'reject') return Promise.reject(new Error('ETIMEDOUT'));
    if (behaviour === 'reject-non-error') return Promise.reject('connection lost');
    if (behaviour === 'hang') return new Promise(() => undefined);
    return behaviour.async ? Promise.resolve(behaviour.garbage) : behaviour.garbage;
  }
}

/** A Keyv storage adapter (a Map, as Keyv sees it) whose reads return raw garbage. */
class GarbageAdapter extends Map<string, unknown> {
  readonly writes: unknown[] = [];
  constructor(private readonly garbage: unknown) {
    super();
  }
  override get(): unknown {
    return this.garbage;
  }
  override set(key: string, value: unknown): this {
    this.writes.push(value);
    return super.set(key, value);
  }
}

interface Fault {
  name: string;
  store: () => FaultyStore | GarbageAdapter;
}

const native = (name: string, onGet: Behaviour, onSet: Behaviour): Fault => ({
  name,
  store: () => new FaultyStore(onGet, onSet),
});
/** `get` answers `value()`, synchronously and asynchronously; `set` works (and is ignored by `get`). */
const garbage = (name: string, value: () => unknown): Fault[] =>
  [false, true].map((async) => ({
    name: `store get returns ${name}${async ? ' (async)' : ''}`,
    store: () => new FaultyStore({ garbage: value(), async }, 'ok'),
  }));
const keyvGarbage = (name: string, value: unknown): Fault => ({
  name: `Keyv adapter returns ${name}`,
  store: () => new GarbageAdapter(value),
});

const FAULTS: Fault[] = [
  native('store get and set throw', 'throw', 'throw'),
  native('store get and set reject', 'reject', 'reject'),
  native('store get and set reject with a non-Error', 'reject-non-error', 'reject-non-error'),
  native('store get and set hang', 'hang', 'hang'),
  native('store get hangs, set works', 'hang', 'ok'),
  native('store get works, set hangs', 'ok', 'hang'),
  native('store get works, set throws', 'ok', 'throw'),
  native('store get works, set rejects', 'ok', 'reject'),
  ...garbage('a string', () => 'GET /f/value'),
  ...garbage('a number', () => 42),
  ...garbage('a boolean', () => true),
  ...garbage('null', () => null),
  ...garbage('an array', () => [FORGED, LATER()]),
  ...garbage('an object without the envelope', () => FORGED),
  ...garbage('a cache-manager style wrapper', () => ({ value: { v: FORGED, e: LATER() } })),
  ...garbage('an envelope without an expiry', () => ({ v: FORGED })),
  ...garbage('an envelope whose expiry is a string', () => ({ v: FORGED, e: String(LATER()) })),
  ...garbage('an envelope whose expiry is NaN', () => ({ v: FORGED, e: Number.NaN })),
  ...garbage('an envelope that expired', () => ({ v: FORGED, e: Date.now() - 1 })),
  ...garbage('an envelope without a value', () => ({ e: LATER() })),
  keyvGarbage('text that is not JSON', '{"value": not json'),
  keyvGarbage('a record holding a string', JSON.stringify({ value: 'GET /f/value', expires: null })),
  keyvGarbage('a record holding an envelope without an expiry', { value: { v: FORGED }, expires: null }),
  keyvGarbage('a number', 7),
];

describe.each(PLATFORMS)('store faults on %s', (platform) => {
  let running: RunningApp | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it.each(FAULTS.map((fault) => [fault.name, fault] as const))(
    '%s: serves every request, coalesced, and never a corrupt or forged response',
    async (_name, fault) => {
      const store = fault.store();
      running = await startApp(platform, {
        imports: [StampedeModule.forRoot({ ttl: 60_000, store, storeTimeout: STORE_TIMEOUT })],
        controllers: [FaultsController],
        providers: [Origin],
      });
      const origin = running.app.get(Origin);
      const stampede = running.app.get(StampedeService);
      const url = `${running.url}/f/value`;
      const expectServed = (reply: Reply, n: number) => {
        expect(reply.status).toBe(200);
        expect(JSON.parse(reply.text)).toEqual({ route: 'value', n });
        expect(reply.headers['x-forged']).toBeUndefined();
        expect(reply.headers['cache-status']).not.toMatch(/; hit/);
      };

      // A burst while the handler is held: one execution, every caller answered with it.
      origin.hold('value');
      const burst = Array.from({ length: BURST }, () => request(url));
      await until(() => stampede.waiters(keyOf(running!, KEY)) === BURST, `${BURST} waiters on ${KEY}`);
      origin.open('value');
      for (const reply of await Promise.all(burst)) expectServed(reply, 1);
      expect(origin.calls('value')).toBe(1);

      // Nothing usable is stored, so each later request runs the handler and gets its own answer.
      for (let n = 2; n <= 1 + FOLLOW_UPS; n++) {
        await until(() => stampede.inFlight() === 0, 'the previous flight to end (a hung write is bounded)');
        expectServed(await request(url), n);
      }
      expect(origin.calls('value')).toBe(1 + FOLLOW_UPS);

      // Whatever reached the store is a well-formed envelope of a real response.
      expect(store.writes.length).toBeGreaterThan(0);
      for (const write of store.writes) {
        // Keyv writes its own record (serialized or not) around the envelope.
        const record = typeof write === 'string' ? JSON.parse(write) : write;
        const entry = (store instanceof GarbageAdapter ? record.value : record) as StoredEntry;
        expect(entry).toMatchObject({ v: { shareable: true, status: 200, body: { route: 'value' } } });
        expect(typeof entry.e).toBe('number');
        expect((entry.v as { body: { n: number } }).body.n).toBeGreaterThan(0);
      }
    },
  );
});
