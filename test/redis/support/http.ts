import { Agent, request } from 'node:http';

/** A response read whole. */
export interface Reply {
  status: number;
  text: string;
  cacheStatus: string | null;
}

// Kept-alive sockets, as many as the bursts need: node:http costs the test process far less
// CPU per request than fetch, and the bursts' 300 requests are CPU-bound on a small machine.
const agent = new Agent({ keepAlive: true });

/** GET (or POST) `url`; a connection failure rejects. */
export function send(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sent = request(url, { method, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const cacheStatus = response.headers['cache-status'];
        resolve({
          status: response.statusCode ?? 0,
          text: Buffer.concat(chunks).toString(),
          cacheStatus: typeof cacheStatus === 'string' ? cacheStatus : null,
        });
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

/** GET `url` as JSON. */
export async function json<T>(url: string, method = 'GET'): Promise<T> {
  const reply = await send(url, method);
  if (reply.status >= 300) throw new Error(`${method} ${url}: ${reply.status} ${reply.text}`);
  return JSON.parse(reply.text) as T;
}
