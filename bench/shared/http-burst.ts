import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

/** One request of a burst. */
export interface Timed {
  ms: number;
  /** It ran the handler itself (read back its own id) rather than being served a shared result. */
  origin: boolean;
  ok: boolean;
}

/**
 * A keep-alive agent with no socket limit: all N requests of a burst leave at
 * once (the default agent would queue them), and reuse connections opened by
 * a warm-up burst, so latency is the server's, not TCP handshakes'.
 */
export function burstAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity, scheduling: 'lifo' });
}

function timedGet(agent: Agent, port: number, path: string, caller: string): Promise<Timed> {
  return new Promise((resolve) => {
    const start = performance.now();
    const done = (ok: boolean, origin: boolean) => resolve({ ms: performance.now() - start, ok, origin });
    const req = request({ agent, host: '127.0.0.1', port, path, headers: { 'x-req': caller } }, (res) => {
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

/** Sends `n` GETs of `path` without waiting between them and times each until its body is in. */
export function burst(agent: Agent, port: number, path: string, n: number): Promise<Timed[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => timedGet(agent, port, path, String(i))));
}
