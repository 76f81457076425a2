import { Observable, from } from 'rxjs';

/** Work that counts its runs and waits for `open()` (open at once with `opened`). */
export class GatedWork<T> {
  runs = 0;
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));

  constructor(
    private readonly result: () => T | Promise<T>,
    opened = false,
  ) {
    if (opened) this.release();
  }

  readonly run = (): Observable<T> =>
    from(
      (async () => {
        this.runs++;
        await this.gate;
        return this.result();
      })(),
    );

  open(): void {
    this.release();
  }
}
