import { Observable, Subscription } from 'rxjs';
import { CoreLogger } from '../../lib/core/guarded-store';

/** A Promise settled by hand: the barrier the tests use instead of sleeps. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued Promise callback run (one macrotask turn); not a timer. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A CoreLogger that keeps what it was told. */
export class RecordingLogger implements CoreLogger {
  readonly warnings: string[] = [];
  readonly logs: string[] = [];
  warn(message: string): void {
    this.warnings.push(message);
  }
  log(message: string): void {
    this.logs.push(message);
  }
}

/** Everything one subscriber of an Observable saw, and its subscription. */
export interface Recording<T> {
  values: T[];
  error: unknown;
  errored: boolean;
  completed: boolean;
  subscription: Subscription;
}

/** Subscribes to `source` and records its notifications. */
export function record<T>(source: Observable<T>): Recording<T> {
  const recording = {
    values: [] as T[],
    error: undefined as unknown,
    errored: false,
    completed: false,
  } as Recording<T>;
  recording.subscription = source.subscribe({
    next: (value) => recording.values.push(value),
    error: (error: unknown) => {
      recording.errored = true;
      recording.error = error;
    },
    complete: () => {
      recording.completed = true;
    },
  });
  return recording;
}

/** A Keyv storage adapter over a Map that rejects every call while `failing` is set. */
export class FlakyAdapter {
  failing = false;
  private readonly map = new Map<string, unknown>();
  private async run<R>(operation: string, call: () => R): Promise<R> {
    if (this.failing) throw new Error(`adapter ${operation} down`);
    return call();
  }
  get(key: string) {
    return this.run('get', () => this.map.get(key));
  }
  set(key: string, value: unknown) {
    return this.run('set', () => void this.map.set(key, value));
  }
  delete(key: string) {
    return this.run('delete', () => this.map.delete(key));
  }
  clear() {
    return this.run('clear', () => this.map.clear());
  }
}
