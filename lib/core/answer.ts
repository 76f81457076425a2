import { StoredEntry } from './store';

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
