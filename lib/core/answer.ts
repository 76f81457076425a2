import { MaybePromise, StoredEntry } from './store';

/** Why an old value answered a caller. */
export type StaleReason = 'revalidate' | 'error' | 'timeout';

/** How a caller was answered. */
export type Outcome = 'hit' | 'stale' | 'miss' | 'collapsed' | 'bypass';

/**
 * One caller's answer: the value and how it was obtained. The only shape
 * adapters see: never a stored entry's fields.
 */
export interface Answer<T> {
  value: T;
  /**
   * `hit`: from the store; `miss`: this caller ran the work for everyone;
   * `collapsed`: it joined a flight (here or, through a coordinator, on
   * another instance); `bypass`: it ran its own uncoalesced call (a bound was
   * reached, it waited `waitTimeout`, or the key's result is not shareable);
   * `stale`: an old value, served while a refresh runs or in place of a failed call.
   */
  outcome: Outcome;
  /** For a `hit` or `stale`: epoch ms when the stored value stops (stopped) being fresh. */
  expiresAt?: number;
  /** For a `hit` or `stale`: epoch ms its work started (for an `Age`). */
  storedAt?: number;
  /** For `stale`: `revalidate` (a refresh runs), `error` (in place of a failed call) or `timeout` (the work passed `softTimeout`). */
  staleReason?: StaleReason;
  /** For a `miss`: whether a store accepted the value (false until it has, for an asynchronous store). */
  stored?: boolean;
}

/** The former name of `Answer`. */
export type Lookup<T> = Answer<T>;

/** The one conversion of a stored entry into an answer. */
export function answerFromEntry<T>(
  entry: StoredEntry<T>,
  outcome: 'hit' | 'stale',
  staleReason?: StaleReason,
): Answer<T> {
  const answer: Answer<T> = { value: entry.v, outcome, expiresAt: entry.e, storedAt: entry.t };
  if (staleReason) answer.staleReason = staleReason;
  return answer;
}

/** The value of an answer (a shared function: no closure per call). */
export const valueOf = <T>(answer: Answer<T>): T => answer.value;

/** Receives one caller's answers: an rxjs `Subscriber` is one. */
export interface AnswerSink<T> {
  next(answer: Answer<T>): void;
  error(error: unknown): void;
  complete(): void;
}

/** How a caller stops waiting; `undefined` when it was answered at once. */
export type Teardown = (() => void) | undefined;

/** The value of an answer, if any: an Observable work that completed without a value answers `undefined`. */
export const valueOrNothing = <T>(answer: Answer<T> | undefined): T => answer?.value as T;

/**
 * The last answer `start` gives the sink it is handed: at once when it
 * settled synchronously (a synchronous work, a synchronous store), else as a
 * Promise. Throws (or rejects) the error it ends with.
 */
export function collected<T>(start: (sink: AnswerSink<T>) => unknown): MaybePromise<Answer<T>> {
  const early: { done?: boolean; failed?: boolean; error?: unknown; last?: Answer<T> } = {};
  let settle: { resolve(answer: Answer<T>): void; reject(error: unknown): void } | undefined;
  start({
    next: (answer) => (early.last = answer),
    error: (error) => (settle ? settle.reject(error) : ((early.failed = true), (early.error = error))),
    complete: () => (settle ? settle.resolve(early.last!) : (early.done = true)),
  });
  if (early.done) return early.last!;
  if (early.failed) throw early.error;
  return new Promise<Answer<T>>((resolve, reject) => (settle = { resolve, reject }));
}
