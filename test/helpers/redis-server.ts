import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Milliseconds a redis-server gets to say it accepts connections. */
const START_TIMEOUT = 10_000;

/** A real `redis-server` on a loopback port, private to one test file. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** Stops it (SIGTERM, nothing saved) and waits for the process to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was saved). */
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
}

/** A port nobody listens on now (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Starts `redis-server` (with `extra` arguments, e.g. cluster mode) and resolves once it accepts connections. */
export function spawnRedis(port: number, dir: string, extra: readonly string[] = []): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--logfile', '', '--daemonize', 'no', ...extra);
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`redis-server could not start on port ${port}: ${why}\n${log}`));
    };
    // Ready when it says so in its log: no blind sleep.
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.off('exit', onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null) => fail(`it exited (code ${code})`);
    const timer = setTimeout(() => fail(`not ready within ${START_TIMEOUT} ms`), START_TIMEOUT);
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.once('exit', onExit);
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          error.code === 'ENOENT'
            ? 'the Redis tests need a real redis-server on the PATH (e.g. `apt-get install redis-server`); none was found'
            : `redis-server could not be spawned: ${error.message}`,
        ),
      );
    });
  });
}

/**
 * Starts a private `redis-server` (`--save '' --appendonly no`) on a free
 * loopback port and waits until its log says it accepts connections. Fails,
 * with the reason, when it cannot: the Redis suite is never skipped.
 */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  // Another process may take the free port between the pick and the bind: try a few.
  for (let attempt = 1; !child; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port, dir);
    } catch (error) {
      if (attempt >= 3 || !String(error).includes('Address already in use')) throw error;
    }
  }
  let current: ChildProcess | undefined = child;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return current !== undefined;
    },
    async stop() {
      const stopping = current;
      current = undefined;
      if (!stopping || stopping.exitCode !== null) return;
      const exited = once(stopping, 'exit');
      stopping.kill('SIGCONT');
      stopping.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
    pause() {
      current?.kill('SIGSTOP');
    },
    resume() {
      current?.kill('SIGCONT');
    },
    async restart() {
      if (current) throw new Error('redis-server is running');
      mkdirSync(dir, { recursive: true });
      current = await spawnRedis(port, dir);
    },
  };
}

/** A node-redis client of the test's own, to read and write keys behind the package's back. */
export type RawClient = ReturnType<typeof import('redis').createClient>;

/** A `redis-server` for one test file, and a raw client on it. */
export async function startRedisWithClient(): Promise<{ server: RedisServer; raw: RawClient }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createClient } = require('redis') as typeof import('redis');
  const server = await startRedisServer();
  const raw = createClient({ url: server.url });
  raw.on('error', () => undefined);
  await raw.connect();
  return { server, raw };
}

/** Ends what `startRedisWithClient` started (either may be missing when it failed half way). */
export async function stopRedisWithClient(server: RedisServer | undefined, raw: RawClient | undefined): Promise<void> {
  raw?.destroy();
  await server?.stop();
}

/** Sends `commands` (one a line) to the server at `port` in one write with `redis-cli`: nothing runs between them. */
export async function redisPipe(port: number, commands: string): Promise<void> {
  const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port)], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.end(commands);
  await once(child, 'exit');
}
