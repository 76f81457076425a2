/** How one response was answered, from its `Cache-Status` header (RFC 9211). */
export type Outcome = 'miss' | 'collapsed' | 'hit' | 'bypass' | 'no header' | 'failed';

/** What one burst of concurrent requests measured. */
export interface BurstResult {
  sent: number;
  /** Every request got a 2xx response. */
  allOk: boolean;
  p50Ms: number;
  p99Ms: number;
  outcomes: Map<Outcome, number>;
}

interface Timed {
  ok: boolean;
  ms: number;
  outcome: Outcome;
}

function outcomeOf(cacheStatus: string | null): Outcome {
  if (cacheStatus === null) return 'no header';
  const params = cacheStatus.split(';').map((part) => part.trim());
  if (params.includes('hit')) return 'hit';
  if (params.includes('fwd=bypass')) return 'bypass';
  return params.includes('collapsed') ? 'collapsed' : 'miss';
}

async function timedGet(url: string): Promise<Timed> {
  const start = performance.now();
  try {
    const response = await fetch(url);
    // Latency until the whole body is in, as a client sees it.
    await response.arrayBuffer();
    return { ok: response.ok, ms: performance.now() - start, outcome: outcomeOf(response.headers.get('cache-status')) };
  } catch {
    // A failed request is reported in the table, not thrown.
    return { ok: false, ms: performance.now() - start, outcome: 'failed' };
  }
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Sends `n` GETs to `url` all at once (none waits for another) and measures each one. */
export async function burst(url: string, n: number): Promise<BurstResult> {
  const replies = await Promise.all(Array.from({ length: n }, () => timedGet(url)));
  const sorted = replies.map((reply) => reply.ms).sort((a, b) => a - b);
  const outcomes = new Map<Outcome, number>();
  for (const { outcome } of replies) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  return {
    sent: n,
    allOk: replies.every((reply) => reply.ok),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    outcomes,
  };
}
