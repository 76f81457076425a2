import { once } from 'node:events';
import { Server, Socket, connect, createServer } from 'node:net';

/**
 * A TCP proxy on a loopback port in front of a real server: the network
 * between the app and Redis, which a test can cut (connections dropped,
 * new ones refused) or stall (bytes held, connections kept) and then restore.
 */
export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Drops every connection and refuses new ones until `restore`. */
  cut(): void;
  /**
   * Holds every byte on open connections until `restore` (nothing is lost):
   * both ways, or only what the server sends (`'replies'`: Redis runs the
   * commands at once, their answers arrive late).
   */
  stall(direction?: 'both' | 'replies'): void;
  /** Passes traffic again. */
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Starts a proxy to `targetPort` on 127.0.0.1. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: 'pass' | 'cut' | 'stall' = 'pass';
  let held: 'both' | 'replies' = 'both';
  const server: Server = createServer((client) => {
    if (mode === 'cut') return void client.destroy();
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
    if (mode === 'stall') hold(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };

  // Unpiping stops the flow; what arrives meanwhile stays in the sockets' buffers.
  const hold = (pair: Pair) => {
    pair.upstream.unpipe(pair.client);
    pair.upstream.pause();
    if (held === 'replies') return;
    pair.client.unpipe(pair.upstream);
    pair.client.pause();
  };
  const release = (pair: Pair) => {
    pair.upstream.pipe(pair.client);
    if (held === 'both') pair.client.pipe(pair.upstream);
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cut() {
      mode = 'cut';
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
    },
    stall(direction = 'both') {
      if (mode !== 'pass') return;
      mode = 'stall';
      held = direction;
      for (const pair of pairs) hold(pair);
    },
    restore() {
      if (mode === 'stall') for (const pair of pairs) release(pair);
      mode = 'pass';
    },
    async close() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      server.close();
      await once(server, 'close');
    },
  };
}
