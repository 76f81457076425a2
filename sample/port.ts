import { createServer } from 'node:net';

const DEFAULT_PORT = 3000;

/** The port asked for in `PORT`, or 3000. */
export function portFromEnv(value = process.env.PORT): number {
  if (value === undefined || value.trim() === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`PORT must be an integer from 0 to 65535, got "${value}"`);
  }
  return port;
}

/**
 * `preferred` if it is free on `host`, else 0 (any free port). Probed up front
 * because a failed `app.listen()` is logged by Nest as an error.
 */
export function portToListenOn(preferred: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(0) : reject(error)));
    probe.listen(preferred, host, () => probe.close(() => resolve(preferred)));
  });
}
