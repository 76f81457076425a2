import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Timed GETs for the multi-instance and freshness scenarios: each reply says
 * whether its caller ran the handler (it reads back its own `x-req` id) and
 * carries the `Cache-Status` header, and a paced (open-loop) load generator.
 */

export interface Reply {
  /** `performance.now()` when the request was issued. */
  start: number;
  ms: number;
  ok: boolean;
  /** It ran the handler itself rather than being served a shared or stored result. */
  origin: boolean;
  /** The `Cache-Status` header, '' when absent. */
  cacheStatus: string;
  /** HTTP status; 0 when no response came. */
  status: number;
}

/** Keep-alive agent; `maxSockets` bounds the connections per server (Infinity: a burst leaves at once). */
export function keepAliveAgent(maxSockets = Infinity): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: Infinity, scheduling: 'lifo' });
}

export function timedGet(agent: Agent, port: number, path: string, caller: string): Promise<Reply> {
  return new Promise((resolve) => {
    const start = performance.now();
    let cacheStatus = '';
    let status = 0;
    const done = (ok: boolean, origin: boolean) =>
      resolve({ start, ms: performance.now() - start, ok, origin, cacheStatus, status });
    const req = request({ agent, host: '127.0.0.1', port, path, headers: { 'x-req': caller } }, (res) => {
      status = res.statusCode ?? 0;
      const header = res.headers['cache-status'];
      cacheStatus = Array.isArray(header) ? header.join(', ') : (header ?? '');
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        let by: unknown;
        try {
          by = (JSON.parse(body) as { by?: unknown }).by;
        } catch {
          // not JSON: counted as failed below
        }
        done(res.statusCode === 200 && by !== undefined, by === caller);
      });
      res.on('error', () => done(false, false));
    });
    req.on('error', () => done(false, false));
    req.end();
  });
}

/** `perPort` GETs of `path` to each port, all sent at once; caller ids are unique across ports. */
export function burstAcross(agent: Agent, ports: readonly number[], path: string, perPort: number): Promise<Reply[]> {
  return Promise.all(
    ports.flatMap((port, p) => Array.from({ length: perPort }, (_, i) => timedGet(agent, port, path, `i${p}-${i}`))),
  );
}

/**
 * Open-loop load: `rate` GETs per second for `durationMs`, each issued on
 * schedule whether or not earlier ones were answered (a stall shows as the
 * latency of every request that arrives during it, not as fewer requests).
 */
export async function pacedLoad(
  agent: Agent,
  port: number,
  path: string,
  rate: number,
  durationMs: number,
): Promise<Reply[]> {
  const total = Math.round((rate * durationMs) / 1000);
  const replies: Promise<Reply>[] = [];
  const t0 = performance.now();
  while (replies.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (replies.length < due) replies.push(timedGet(agent, port, path, `p${replies.length}`));
    await sleep(1);
  }
  return Promise.all(replies);
}
