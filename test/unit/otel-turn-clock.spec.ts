import { turnNow } from '../../lib/nest/observability/stampede.otel-followers';

describe('turnNow: one clock read per turn of the event loop', () => {
  it('gives one reading to a synchronous burst, and a new one once the queued microtasks ran', async () => {
    const first = turnNow();
    const spin = performance.now() + 2;
    while (performance.now() < spin); // time passes, the turn does not end
    expect(turnNow()).toBe(first);
    await Promise.resolve();
    await new Promise((resolve) => setTimeout(resolve, 2));
    const next = turnNow();
    expect(next).toBeGreaterThan(first + 1);
    expect(next).toBeLessThanOrEqual(performance.now());
  });
});
