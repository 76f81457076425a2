import { Agent } from 'node:http';
import { keepAliveAgent, timedGet } from './timed-http';

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
  return keepAliveAgent();
}

/** Sends `n` GETs of `path` without waiting between them and times each until its body is in. */
export function burst(agent: Agent, port: number, path: string, n: number): Promise<Timed[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => timedGet(agent, port, path, String(i))));
}
