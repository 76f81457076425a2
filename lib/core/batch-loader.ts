import { FetchMissing } from './batch';

/**
 * A DataLoader on the engine: keys asked by any caller in the same tick go
 * out as one `runMany`, so concurrent requests share one batched call (and
 * keys already cached or in flight are not fetched at all).
 *
 * @example
 * ```ts
 * const authors = stampede.loader((ids: string[]) => db.authorsByIds(ids), { ttl: 60_000 });
 * // in a field resolver, once per book, across concurrent requests:
 * return authors.load(`author:${book.authorId}`);
 * ```
 */
export interface BatchLoader<T> {
  /** The value of `key`; fails alone when its key fails. */
  load(key: string): Promise<T>;
  /** The values of `keys`, in order. */
  loadMany(keys: readonly string[]): Promise<T[]>;
}

type Pending<T> = { key: string; resolve(value: T): void; reject(error: unknown): void };

/** Makes a loader whose batches run through `each` (the engine's `runMany`, one Promise per key). */
export function createBatchLoader<T>(
  each: (keys: string[], fetchMissing: FetchMissing<T>) => Promise<Promise<T>[]>,
  fetchMissing: FetchMissing<T>,
): BatchLoader<T> {
  let queue: Pending<T>[] = [];
  const dispatch = () => {
    const batch = queue;
    queue = [];
    each(
      batch.map((item) => item.key),
      fetchMissing,
    ).then(
      (values) => values.forEach((value, i) => value.then(batch[i].resolve, batch[i].reject)),
      (error: unknown) => batch.forEach((item) => item.reject(error)),
    );
  };
  // As DataLoader: after the promise jobs of this tick, so callers resolved in it join the batch.
  const schedule = () => void Promise.resolve().then(() => process.nextTick(dispatch));
  const load = (key: string) =>
    new Promise<T>((resolve, reject) => {
      if (queue.length === 0) schedule();
      queue.push({ key, resolve, reject });
    });
  return { load, loadMany: (keys) => Promise.all(keys.map(load)) };
}
