import net from 'node:net';

/** A response as it came over the wire: its status, lowercase headers, and the exact bytes after its head. */
export interface WireReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One request on a socket of its own (`Connection: close`), read byte for
 * byte: an HTTP client drops whatever follows the head of a 304 or a HEAD
 * response, this does not, so it shows a body that should not be there.
 */
export function wireRequest(
  url: string,
  target: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<WireReply> {
  const { hostname, port } = new URL(url);
  const headers = { Host: `${hostname}:${port}`, ...init.headers, Connection: 'close' };
  const lines = [`${init.method ?? 'GET'} ${target} HTTP/1.1`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(Number(port), hostname, () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return reject(new Error(`no response head in ${JSON.stringify(raw.toString('latin1'))}`));
      const [statusLine, ...fields] = raw.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const field of fields) {
        const colon = field.indexOf(':');
        headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: raw.subarray(end + 4) });
    });
  });
}
