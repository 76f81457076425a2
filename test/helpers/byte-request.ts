import http from 'node:http';
import zlib from 'node:zlib';

/** A response as its body was encoded for the wire (chunking removed, content coding kept). */
export interface ByteReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One request with exactly the headers given, read as bytes: `fetch` sends
 * an `Accept-Encoding` of its own and decodes the body, which hides what a
 * compression middleware did.
 */
export function byteRequest(
  url: string,
  target: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<ByteReply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      { hostname, port, path: target, method: init.method ?? 'GET', headers: init.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          }
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** The body of `reply` as text, decoded from its `Content-Encoding` (gzip, br, deflate or none). */
export function decodedText(reply: ByteReply): string {
  const coding = reply.headers['content-encoding'];
  if (coding === undefined || coding === 'identity') return reply.body.toString('utf8');
  if (coding === 'gzip') return zlib.gunzipSync(reply.body).toString('utf8');
  if (coding === 'br') return zlib.brotliDecompressSync(reply.body).toString('utf8');
  if (coding === 'deflate') return zlib.inflateSync(reply.body).toString('utf8');
  throw new Error(`unknown Content-Encoding ${coding}`);
}
