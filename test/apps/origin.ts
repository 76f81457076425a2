import { Injectable } from '@nestjs/common';

/**
 * The slow work behind the test routes: counts executions per name and holds
 * each one at a gate the test opens, so concurrency is decided by the test,
 * not by timing.
 */
@Injectable()
export class Origin {
  private readonly counts = new Map<string, number>();
  private gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  reset(): void {
    this.counts.clear();
    for (const gate of this.gates.values()) gate.open();
    this.gates.clear();
  }

  calls(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  /** Counts one execution of `name` and waits for its gate (open by default). */
  async run(name: string): Promise<number> {
    const n = this.calls(name) + 1;
    this.counts.set(name, n);
    await this.gates.get(name)?.promise;
    return n;
  }

  /** Closes the gate of `name`: executions wait until `open(name)`. */
  hold(name: string): void {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.gates.set(name, { promise, open });
  }

  open(name: string): void {
    this.gates.get(name)?.open();
    this.gates.delete(name);
  }
}
