import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private `redis-server` for the Redis scenarios: started on a free loopback
 * port (nothing saved to disk), stopped by the scenario that started it.
 */

/** Milliseconds redis-server gets to say it accepts connections. */
const START_TIMEOUT = 10_000;

export interface RedisServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** Why no server could be started: redis-server missing, or it failed to start. */
export class RedisUnavailableError extends Error {}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--logfile', '', '--daemonize', 'no');
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new RedisUnavailableError(`redis-server not ready within ${START_TIMEOUT} ms:\n${log}`)),
      START_TIMEOUT,
    );
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (!log.includes('Ready to accept connections')) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stdout?.resume();
      child.off('exit', onExit);
      resolve(child);
    };
    const onExit = (code: number | null) =>
      fail(new RedisUnavailableError(`redis-server exited (code ${code}) on port ${port}:\n${log}`));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.once('exit', onExit);
    child.once('error', (error: NodeJS.ErrnoException) =>
      fail(
        new RedisUnavailableError(
          error.code === 'ENOENT'
            ? 'redis-server is not on the PATH (install it, e.g. `apt-get install redis-server`)'
            : `redis-server could not be spawned: ${error.message}`,
        ),
      ),
    );
  });
}

/** Starts redis-server on a free loopback port; rejects with a `RedisUnavailableError` saying why it cannot. */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-bench-redis-'));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      const child = await spawnRedis(port, dir);
      return {
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = once(child, 'exit');
            child.kill('SIGTERM');
            await exited;
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      // Another process may take the free port between the pick and the bind: try again.
      if (attempt < 3 && String(error).includes('Address already in use')) continue;
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
}
