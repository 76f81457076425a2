/**
 * @jest-environment ./test/property/real-process.environment.cjs
 */
import fc from 'fast-check';
import Keyv from 'keyv';
import { Subscription } from 'rxjs';
import { Coalescer, Lookup, RunPolicy } from '../../lib/core/coalescer';
import { MemoryStore } from '../../lib/core/memory-store';
import { MaybePromise, StampedeStore, StoredEntry } from '../../lib/core/store';
import { toStampedeStore } from '../../lib/core/store-adapter';
import { RecordingLogger } from '../helpers/logger';

declare global {
  /** Set by real-process.environment.cjs: listens on the real process; returns a function that stops. */
  function watchUnhandledRejections(listener: (reason: unknown) => void): () => void;
}

const T0 = 1_700_000_000_000;
const TTL = 1_000;
const KEYS = ['a', 'b', 'c'];
/** Milliseconds a store call may take before the guard counts it as failed (scheduled store only). */
const STORE_TIMEOUT = 30;
const NUM_RUNS = 1_000;

type WorkKind = 'resolve' | 'reject' | 'throw' | 'never';

/** One step of a generated schedule. */
type Op =
  | {
      op: 'call';
      key: number;
      work: WorkKind;
      cacheable: boolean;
      timeout: number;
      cancelWhenAbandoned: boolean;
      /** On an error, call again at once, from the error callback (as RxJS `retry` does). */
      retry: boolean;
      /** Stale-while-revalidate and stale-if-error windows of what this caller's work stores. */
      staleTtl: number;
      staleIfError: number;
    }
  | { op: 'unsubscribe'; caller: number }
  | { op: 'release'; tasks: number }
  | { op: 'clock'; ms: number }
  /** Moves the clock to an edge of the last value stored for `key` (fresh, stale, fallback), or just before it. */
  | { op: 'expiry'; key: number; edge: 'e' | 's' | 'f'; offset: -1 | 0 }
  | { op: 'timers'; ms: number }
  | { op: 'invalidate'; key: number }
  | { op: 'flush' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('call' as const),
      key: fc.nat(KEYS.length - 1),
      work: fc.constantFrom<WorkKind>('resolve', 'resolve', 'reject', 'throw', 'never'),
      cacheable: fc.constantFrom(true, true, true, false),
      timeout: fc.constantFrom(20, 50),
      cancelWhenAbandoned: fc.boolean(),
      retry: fc.constantFrom(false, false, false, true),
      staleTtl: fc.constantFrom(0, 300, 3_000),
      staleIfError: fc.constantFrom(0, 500, 5_000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unsubscribe' as const), caller: fc.nat(40) }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('release' as const), tasks: fc.integer({ min: 1, max: 3 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('clock' as const),
      ms: fc.oneof(fc.integer({ min: 1, max: TTL / 4 }), fc.integer({ min: TTL, max: TTL * 2 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('expiry' as const),
      key: fc.nat(KEYS.length - 1),
      edge: fc.constantFrom<'e' | 's' | 'f'>('e', 's', 'f'),
      offset: fc.constantFrom<-1 | 0>(-1, 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('timers' as const), ms: fc.integer({ min: 1, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('invalidate' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
);

/** Real macrotask turn (setImmediate is not faked): every queued Promise callback runs. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The error a timed-out flight fails with, naming the caller whose policy (the leader's) made it. */
class FlightTimeout extends Error {
  constructor(readonly leader: number) {
    super(`flight led by caller ${leader} timed out`);
  }
}

/** One execution of a work: what it was told to do and what became of it. */
interface Execution {
  id: number;
  key: string;
  kind: WorkKind;
  leader: number;
  cancelWhenAbandoned: boolean;
  staleTtl: number;
  staleIfError: number;
  value: string;
  error: Error;
  /** Running and not cancelled: another execution of its key must not start. */
  live: boolean;
  /** Its flight was forgotten by `invalidate`: it may overlap a new one and must store nothing. */
  forgotten: boolean;
  settled?: 'value' | 'error';
  timedOut: boolean;
  aborted: boolean;
}

interface Notification {
  type: 'next' | 'error' | 'complete';
  lookup?: Lookup<string>;
  error?: unknown;
  /** The injected clock when it arrived. */
  at: number;
}

interface Caller {
  id: number;
  key: string;
  /** The caller whose error made this one call again. */
  retryOf?: Caller;
  execution?: Execution;
  unsubscribed: boolean;
  notifications: Notification[];
  subscription?: Subscription;
}

interface SetCall {
  seq: number;
  key: string;
  entry: StoredEntry;
  at: number;
}

type Variant = 'memory' | 'keyv' | 'scheduled';

/** A store that records what the coalescer writes and passes every call through. */
class RecordingStore implements StampedeStore {
  constructor(
    private readonly inner: StampedeStore,
    private readonly onSet: (key: string, entry: StoredEntry) => void,
  ) {}
  get(key: string): MaybePromise<StoredEntry | undefined> {
    return this.inner.get(key);
  }
  set(key: string, entry: StoredEntry, ttl: number): MaybePromise<unknown> {
    this.onSet(key, entry);
    return this.inner.set(key, entry, ttl);
  }
  delete(key: string): MaybePromise<unknown> {
    return this.inner.delete(key);
  }
}

/**
 * An asynchronous store whose replies come when the fast-check scheduler
 * releases them (so in any order, or only after the guard's timeout fired),
 * and which fails a call when the generated fault stream says so. Like a
 * store behind one connection, it carries out the calls on one key in the
 * order they were made: a reply released early applies the earlier calls
 * first. (Out of order, an `invalidate` can lose to a write in progress.)
 */
class ScheduledStore implements StampedeStore {
  private readonly pending = new Map<string, (() => void)[]>();
  /** Keys a delete failed for: an invalidation the store could not carry out. */
  readonly failedDeletes = new Set<string>();

  constructor(
    readonly inner: MemoryStore,
    private readonly s: fc.Scheduler,
    private readonly faults: Iterator<boolean>,
  ) {}

  private call<R>(key: string, label: string, apply: () => R): Promise<R> {
    const fails = this.faults.next().value === true;
    let result: { value: R } | { error: Error } | undefined;
    const run = () => {
      result ??= fails ? { error: new Error(`${label}: store down`) } : { value: apply() };
    };
    const queue = this.pending.get(key) ?? [];
    queue.push(run);
    this.pending.set(key, queue);
    return this.s.schedule(Promise.resolve(), label).then(() => {
      for (const earlier of queue.splice(0, queue.indexOf(run) + 1)) earlier();
      if (!result || 'error' in result) throw result?.error;
      return result.value;
    });
  }

  get(key: string) {
    return this.call(key, `get ${key}`, () => this.inner.get(key));
  }
  set(key: string, entry: StoredEntry, ttl: number) {
    return this.call(key, `set ${key}=${String(entry.v)}`, () => this.inner.set(key, entry, ttl));
  }
  delete(key: string) {
    return this.call(key, `delete ${key}`, () => this.inner.delete(key)).catch((error: unknown) => {
      this.failedDeletes.add(key);
      throw error;
    });
  }
}

/** Runs one generated schedule against a Coalescer and checks every invariant at the end. */
class Harness {
  clock = T0;
  private seq = 0;
  readonly executions: Execution[] = [];
  readonly callers: Caller[] = [];
  readonly sets: SetCall[] = [];
  private readonly invalidatedAt = new Map<string, number>();
  private readonly executionOfError = new Map<unknown, Execution>();
  readonly violations: string[] = [];
  readonly coalescer: Coalescer;
  private readonly peek: (key: string) => Promise<StoredEntry | undefined>;
  private readonly failedDeletes: ReadonlySet<string> = new Set();

  constructor(
    private readonly s: fc.Scheduler,
    variant: Variant,
    faults: Iterator<boolean>,
    storeTimeout: number,
  ) {
    const now = () => this.clock;
    let inner: StampedeStore;
    if (variant === 'keyv') {
      const keyv = new Keyv();
      inner = toStampedeStore(keyv);
      this.peek = async (key) => (await keyv.get<StoredEntry>(key)) ?? undefined;
    } else {
      const memory = new MemoryStore(100, now);
      if (variant === 'memory') inner = memory;
      else {
        const scheduled = new ScheduledStore(memory, s, faults);
        this.failedDeletes = scheduled.failedDeletes;
        inner = scheduled;
      }
      this.peek = async (key) => memory.get(key);
    }
    const store = new RecordingStore(inner, (key, entry) => this.onSet(key, entry));
    this.coalescer = new Coalescer({ store, logger: new RecordingLogger(), now, storeTimeout });
  }

  private violation(message: string): void {
    this.violations.push(message);
  }

  private onSet(key: string, entry: StoredEntry): void {
    const seq = ++this.seq;
    this.sets.push({ seq, key, entry, at: this.clock });
    const execution = this.executionOfValue(entry.v);
    if (!execution || execution.key !== key) return this.violation(`stored ${String(entry.v)} under ${key}`);
    if (execution.settled !== 'value' || execution.timedOut || execution.aborted) {
      this.violation(`stored ${String(entry.v)} from an execution that did not succeed`);
    }
    if (execution.value.endsWith('!')) this.violation(`stored ${String(entry.v)}, which cacheable refused`);
    if (execution.forgotten) this.violation(`stored ${String(entry.v)} after its flight was invalidated`);
    if (entry.e !== this.clock + TTL) this.violation(`stored ${String(entry.v)} until ${entry.e - T0}`);
    const s = execution.staleTtl > 0 ? entry.e + execution.staleTtl : undefined;
    const f = execution.staleIfError > 0 ? entry.e + execution.staleIfError : undefined;
    if (entry.s !== s || entry.f !== f) {
      this.violation(`stored ${String(entry.v)} stale until ${entry.s}, as fallback until ${entry.f}`);
    }
  }

  private executionOfValue(value: unknown): Execution | undefined {
    if (typeof value !== 'string') return undefined;
    const match = /^v:\w+:(\d+)!?$/.exec(value);
    const execution = match ? this.executions[Number(match[1])] : undefined;
    return execution?.value === value ? execution : undefined;
  }

  async apply(op: Op): Promise<void> {
    switch (op.op) {
      case 'call':
        return this.call(op);
      case 'unsubscribe': {
        const caller = this.callers[op.caller % Math.max(1, this.callers.length)];
        if (!caller || caller.unsubscribed || this.terminated(caller)) return;
        caller.unsubscribed = true;
        caller.subscription?.unsubscribe();
        return;
      }
      case 'release':
        for (let i = 0; i < op.tasks && this.s.count() > 0; i++) await this.s.waitOne();
        return;
      case 'clock':
        this.clock += op.ms;
        return;
      case 'expiry': {
        const last = [...this.sets].reverse().find((set) => set.key === KEYS[op.key]);
        const edge = last?.entry[op.edge];
        if (edge !== undefined) this.clock = Math.max(this.clock, edge + op.offset);
        return;
      }
      case 'timers':
        jest.advanceTimersByTime(op.ms);
        return;
      case 'invalidate': {
        const key = KEYS[op.key];
        this.invalidatedAt.set(key, ++this.seq);
        for (const execution of this.executions) if (execution.key === key) execution.forgotten = true;
        void this.coalescer.invalidate(key);
        return;
      }
      case 'flush': {
        await flush();
        // Timers: a deadline per running work, a store timeout per store call not answered yet.
        const bound = this.executions.filter((e) => e.live).length + this.s.count();
        if (jest.getTimerCount() > bound) this.violation(`${jest.getTimerCount()} timers for ${bound} pending things`);
        return;
      }
    }
  }

  private terminated(caller: Caller): boolean {
    return caller.notifications.some((n) => n.type !== 'next');
  }

  private call(op: Extract<Op, { op: 'call' }>, retryOf?: Caller): void {
    const key = KEYS[op.key];
    const caller: Caller = { id: this.callers.length, key, retryOf, unsubscribed: false, notifications: [] };
    this.callers.push(caller);
    const work = (signal: AbortSignal): string | Promise<string> => {
      if (!(signal instanceof AbortSignal)) this.violation(`caller ${caller.id}'s work got no AbortSignal`);
      if (caller.execution) this.violation(`caller ${caller.id}'s work ran twice`);
      if (caller.unsubscribed) this.violation(`caller ${caller.id}'s work ran after it unsubscribed`);
      const overlapping = this.executions.filter((e) => e.key === key && e.live && !e.forgotten);
      if (overlapping.length > 0) {
        this.violation(`execution of ${key} started while ${overlapping.map((e) => e.id).join(',')} still ran`);
      }
      const id = this.executions.length;
      const execution: Execution = {
        id,
        key,
        kind: op.work,
        leader: caller.id,
        cancelWhenAbandoned: op.cancelWhenAbandoned,
        staleTtl: op.staleTtl,
        staleIfError: op.staleIfError,
        value: `v:${key}:${id}${op.cacheable ? '' : '!'}`,
        error: new Error(`e:${key}:${id}`),
        live: true,
        forgotten: false,
        timedOut: false,
        aborted: false,
      };
      this.executions.push(execution);
      this.executionOfError.set(execution.error, execution);
      caller.execution = execution;
      signal.addEventListener('abort', () => {
        execution.aborted = execution.settled === undefined;
        execution.live = false;
      });
      const settle = (how: 'value' | 'error') => {
        if (execution.aborted) return;
        execution.live = false;
        execution.settled = how;
      };
      switch (op.work) {
        case 'throw':
          settle('error');
          throw execution.error;
        case 'never':
          return new Promise<string>(() => undefined);
        case 'resolve':
          return this.s.schedule(Promise.resolve(), `work ${id}`).then(() => {
            settle('value');
            return execution.value;
          });
        case 'reject':
          return this.s.schedule(Promise.resolve(), `work ${id}`).then(() => {
            settle('error');
            throw execution.error;
          });
      }
    };
    const policy: RunPolicy<string> = {
      ttl: TTL,
      cacheable: (value) => !value.endsWith('!'),
      timeout: op.timeout,
      timeoutError: () => {
        if (!caller.execution) this.violation(`caller ${caller.id} timed out a flight it did not lead`);
        else {
          // Over for the coalescer: its waiters are told, its signal aborts just after.
          caller.execution.timedOut = true;
          caller.execution.live = false;
        }
        return new FlightTimeout(caller.id);
      },
      cancelWhenAbandoned: op.cancelWhenAbandoned,
      staleTtl: op.staleTtl,
      staleIfError: op.staleIfError,
    };
    const record = (notification: Omit<Notification, 'at'>) => {
      if (caller.unsubscribed)
        this.violation(`caller ${caller.id} notified (${notification.type}) after unsubscribing`);
      caller.notifications.push({ ...notification, at: this.clock });
    };
    caller.subscription = this.coalescer.run$(key, work, policy).subscribe({
      next: (lookup) => record({ type: 'next', lookup }),
      error: (error: unknown) => {
        record({ type: 'error', error });
        if (op.retry) this.call({ ...op, work: 'resolve', retry: false }, caller);
      },
      complete: () => record({ type: 'complete' }),
    });
  }

  /**
   * Lets everything pending finish: scheduled tasks and store calls first,
   * then the deadlines of works that never settle. Timers are advanced only
   * while some work runs, so a timer left behind shows at the end.
   */
  async drain(): Promise<void> {
    for (let round = 0; round < 20; round++) {
      await this.s.waitAll();
      await flush();
      const running = this.executions.some((e) => e.live); // e.g. in a flight `invalidate` forgot
      if (this.s.count() === 0 && this.coalescer.inFlight() === 0 && !running) return;
      jest.advanceTimersByTime(100);
      await flush();
    }
  }

  /** Every invariant, checked once the run is drained. */
  async check(): Promise<void> {
    if (this.coalescer.inFlight() !== 0) this.violation(`${this.coalescer.inFlight()} keys still in flight`);
    const stats = this.coalescer.stats();
    if (stats.waiting !== 0) this.violation(`${stats.waiting} callers still waiting`);
    if (stats.misses + stats.refreshes !== this.executions.length) {
      this.violation(
        `${stats.misses} misses and ${stats.refreshes} refreshes for ${this.executions.length} executions`,
      );
    }
    if (stats.bypasses !== 0) this.violation(`${stats.bypasses} bypasses`);
    if (jest.getTimerCount() !== 0) this.violation(`${jest.getTimerCount()} timers left behind`);
    if (this.s.count() !== 0) this.violation(`${this.s.count()} scheduled tasks left behind`);
    for (const caller of this.callers) this.checkCaller(caller);
    for (const execution of this.executions) this.checkExecution(execution);
    for (const key of KEYS) await this.checkStored(key);
  }

  private checkCaller(caller: Caller): void {
    const { notifications: ns, id } = caller;
    // It may have been answered before it left; a notification after leaving was caught as it came.
    if (caller.unsubscribed) return;
    const shape = ns.map((n) => n.type).join(',');
    if (shape !== 'next,complete' && shape !== 'error') {
      return this.violation(`caller ${id} saw [${shape}] instead of one answer`);
    }
    const own = caller.execution;
    if (ns[0].type === 'error') {
      const error = ns[0].error;
      if (caller.retryOf && caller.retryOf.notifications[0]?.error === error) {
        this.violation(`caller ${id} called again on an error and got the same error from the failed flight`);
      }
      if (error instanceof FlightTimeout) {
        const execution = this.callers[error.leader].execution;
        if (!execution || execution.key !== caller.key || !execution.timedOut) {
          this.violation(`caller ${id} got a timeout of flight led by ${error.leader}, which did not time out`);
        }
        if (own && own !== execution) this.violation(`caller ${id} led a flight but got another's timeout`);
        return;
      }
      const execution = this.executionOfError.get(error);
      if (!execution) return this.violation(`caller ${id} got an unexpected error: ${String(error)}`);
      if (execution.key !== caller.key) this.violation(`caller ${id} of ${caller.key} got ${execution.key}'s error`);
      if (execution.settled !== 'error' || execution.timedOut) {
        this.violation(`caller ${id} got the error of execution ${execution.id}, which did not fail`);
      }
      if (own && own !== execution) this.violation(`caller ${id} led a flight but got another's error`);
      return;
    }
    const lookup = ns[0].lookup!;
    const execution = this.executionOfValue(lookup.value);
    if (!execution || execution.key !== caller.key) {
      return this.violation(`caller ${id} of ${caller.key} got ${lookup.value}`);
    }
    if (execution.settled !== 'value' || execution.timedOut || execution.aborted) {
      this.violation(`caller ${id} got ${lookup.value} from an execution that did not succeed`);
    }
    switch (lookup.outcome) {
      case 'miss':
        if (own !== execution) this.violation(`caller ${id} got a miss with another's value ${lookup.value}`);
        break;
      case 'collapsed':
        if (own) this.violation(`caller ${id} ran the work but was answered as collapsed`);
        break;
      case 'stale': {
        // From the store, past its freshness: while a refresh runs (the caller's work may be it),
        // or in place of the caller's failed flight.
        const set = this.sets.find((s) => s.entry.v === lookup.value && s.entry.e === lookup.expiresAt);
        if (!set) return this.violation(`caller ${id} got stale ${lookup.value}, which was never stored`);
        const at = ns[0].at;
        const until = lookup.staleReason === 'revalidate' ? set.entry.s : set.entry.f;
        if (at < set.entry.e || until === undefined || at >= until) {
          this.violation(`caller ${id} got ${lookup.value} as stale (${lookup.staleReason}) outside its window`);
        }
        if (lookup.staleReason === 'error' && own && own.settled !== 'error' && !own.timedOut) {
          this.violation(`caller ${id} got a fallback though its own work did not fail`);
        }
        break;
      }
      case 'hit': {
        if (own) this.violation(`caller ${id} ran the work but was answered from the store`);
        const stored = this.sets.some((s) => s.entry.v === lookup.value && s.entry.e === lookup.expiresAt);
        if (!stored) this.violation(`caller ${id} got a hit on ${lookup.value}, which was never stored`);
        if (lookup.expiresAt === undefined || ns[0].at >= lookup.expiresAt) {
          this.violation(`caller ${id} got ${lookup.value} from the store after it expired`);
        }
        break;
      }
      default:
        this.violation(`caller ${id} was answered ${lookup.outcome}`);
    }
  }

  private checkExecution(execution: Execution): void {
    if (execution.aborted && !execution.timedOut && !execution.cancelWhenAbandoned) {
      this.violation(`execution ${execution.id} was cancelled though its Promise work was to run on`);
    }
  }

  private async checkStored(key: string): Promise<void> {
    const entry = await this.peek(key);
    if (entry === undefined) return;
    const set = this.sets.find((s) => s.key === key && s.entry.v === entry.v && s.entry.e === entry.e);
    if (!set) return this.violation(`store holds ${JSON.stringify(entry)} under ${key}, never written there`);
    // A delete the store failed leaves the value: invalidate cannot do better then.
    if (set.seq < (this.invalidatedAt.get(key) ?? 0) && !this.failedDeletes.has(key)) {
      this.violation(`store holds ${String(entry.v)} under ${key}, written before ${key} was invalidated`);
    }
  }
}

describe('Coalescer under random schedules (fast-check)', () => {
  const unhandled: unknown[] = [];
  let stopWatching: () => void;

  beforeAll(() => {
    stopWatching = watchUnhandledRejections((reason) => unhandled.push(reason));
  });
  afterAll(() => stopWatching());
  beforeEach(() => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate', 'clearImmediate', 'nextTick', 'queueMicrotask'] });
  });
  afterEach(() => jest.useRealTimers());

  async function runSchedule(
    s: fc.Scheduler,
    ops: Op[],
    variant: Variant,
    faults: Iterator<boolean>,
    storeTimeout: number,
  ): Promise<void> {
    jest.clearAllTimers();
    const before = unhandled.length;
    const harness = new Harness(s, variant, faults, storeTimeout);
    for (const op of ops) {
      await harness.apply(op);
      await Promise.resolve();
    }
    await harness.drain();
    await harness.check();
    await flush();
    expect(unhandled.slice(before)).toEqual([]);
    expect(harness.violations).toEqual([]);
  }

  const schedule = fc.array(opArb, { minLength: 1, maxLength: 40, size: 'medium' });
  const noFaults: Iterator<boolean> = { next: () => ({ done: false, value: false }) };

  it('with the in-process store: one execution per key at a time, one answer per caller, only successes stored and served within their windows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), schedule, async (s, ops) => {
        await runSchedule(s, ops, 'memory', noFaults, 0);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('with a Keyv store: one execution per key at a time, one answer per caller, only successes stored and served within their windows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), schedule, async (s, ops) => {
        await runSchedule(s, ops, 'keyv', noFaults, 0);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('with an async store that answers in any order, fails or hangs: the same guarantees', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        schedule,
        fc.infiniteStream(fc.integer({ min: 0, max: 4 }).map((n) => n === 0)),
        fc.constantFrom(0, STORE_TIMEOUT),
        async (s, ops, faults, storeTimeout) => {
          await runSchedule(s, ops, 'scheduled', faults[Symbol.iterator](), storeTimeout);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
