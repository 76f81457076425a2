import { OutageTracker } from '../../lib/core/outage';

describe('OutageTracker', () => {
  const lines: string[] = [];
  const logger = { warn: (m: string) => lines.push(`warn: ${m}`), log: (m: string) => lines.push(`log: ${m}`) };
  const messages = { down: (reason: string) => `thing down (${reason})`, back: 'thing back' };

  beforeEach(() => (lines.length = 0));

  it('logs one warning per outage, with the first reason, and one line when it ends', () => {
    const outage = new OutageTracker(logger, messages);
    expect(outage.fail(new Error('ECONNREFUSED'))).toBe(true);
    expect(outage.fail(new Error('timeout'))).toBe(false);
    expect(outage.isDown).toBe(true);
    expect(outage.succeed()).toBe(true);
    expect(outage.succeed()).toBe(false);
    outage.fail('plain');
    expect(lines).toEqual(['warn: thing down (ECONNREFUSED)', 'log: thing back', 'warn: thing down (plain)']);
  });

  it('tells listeners both edges, and a throwing listener changes nothing', () => {
    const outage = new OutageTracker(logger, messages);
    const heard: boolean[] = [];
    outage.onChange(() => {
      throw new Error('listener bug');
    });
    const stop = outage.onChange((down) => heard.push(down));
    outage.succeed();
    outage.fail('x');
    outage.succeed();
    stop();
    outage.fail('y');
    expect(heard).toEqual([true, false]);
    expect(outage.isDown).toBe(true);
  });
});
