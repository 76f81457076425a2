import { Observable, Subscription } from 'rxjs';

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
