import { CoreLogger } from '../../lib/core/guarded-store';

/** A CoreLogger that keeps what it was told: by level, and as lines to count. */
export class RecordingLogger implements CoreLogger {
  readonly warnings: string[] = [];
  readonly logs: string[] = [];
  readonly lines: string[] = [];
  warn(message: string): void {
    this.warnings.push(message);
    this.lines.push(`warn: ${message}`);
  }
  log(message: string): void {
    this.logs.push(message);
    this.lines.push(`log: ${message}`);
  }
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }
}
