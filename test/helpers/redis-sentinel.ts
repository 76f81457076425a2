import { ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until } from './deferred';
import { freePort, spawnRedis } from './redis-server';

const run = promisify(execFile);

/** Milliseconds a Sentinel gets to start, to see the replica, or to finish a failover. */
const TIMEOUT = 20_000;

/** The name the Sentinel monitors the primary by. */
export const SENTINEL_MASTER = 'mymaster';

/** A primary, its replica and a `redis-sentinel` watching them, on loopback ports, private to one test file. */
export interface RedisSentinelSetup {
  /** `redis.sentinel` options for them. */
  readonly options: { name: string; sentinelRootNodes: { host: string; port: number }[] };
  /** The port of the primary now, as the Sentinel says. */
  primaryPort(): Promise<number>;
  /** `redis-cli -p <port> <args>`: its output, trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** `SENTINEL FAILOVER`, resolved once the replica is the primary and says so itself. */
  failover(): Promise<number>;
  stop(): Promise<void>;
}

async function cli(port: number, args: readonly string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

function spawnSentinel(port: number, config: string): Promise<ChildProcess> {
  const child = spawn('redis-sentinel', [config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-sentinel not monitoring within ${TIMEOUT} ms on port ${port}:\n${log}`));
    }, TIMEOUT);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (!log.includes(`+monitor master ${SENTINEL_MASTER}`)) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          error.code === 'ENOENT'
            ? 'the Sentinel tests need redis-sentinel on the PATH (e.g. `apt-get install redis-sentinel`); none was found'
            : `redis-sentinel could not be spawned: ${error.message}`,
        ),
      );
    });
  });
}

/**
 * Starts a primary and a replica (`--replicaof`), then one `redis-sentinel`
 * monitoring the primary (quorum 1), and waits (bounded) until the replica
 * is in sync and the Sentinel knows it. `sentinelPort`: the Sentinel's port
 * (a test may point an app at it before it runs).
 */
export async function startRedisSentinel(options: { sentinelPort?: number } = {}): Promise<RedisSentinelSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-sentinel-'));
  const [primary, replica, sentinel] = await Promise.all([freePort(), freePort(), options.sentinelPort ?? freePort()]);
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    children.push(await spawnRedis(primary, dir));
    children.push(await spawnRedis(replica, dir, ['--replicaof', '127.0.0.1', String(primary)]));
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${sentinel}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        'logfile ""',
        'daemonize no',
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary} 1`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
      ].join('\n') + '\n',
    );
    children.push(await spawnSentinel(sentinel, config));
    await until(
      async () => (await cli(replica, ['INFO', 'replication'])).includes('master_link_status:up'),
      'the replica to be in sync',
      TIMEOUT,
    );
    await until(
      async () => (await cli(sentinel, ['SENTINEL', 'REPLICAS', SENTINEL_MASTER])).includes(String(replica)),
      'the Sentinel to know the replica',
      TIMEOUT,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const primaryPort = async () =>
    Number((await cli(sentinel, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER])).split('\n')[1]);
  return {
    options: { name: SENTINEL_MASTER, sentinelRootNodes: [{ host: '127.0.0.1', port: sentinel }] },
    primaryPort,
    cli: (port, ...args) => cli(port, args),
    async failover() {
      const before = await primaryPort();
      await cli(sentinel, ['SENTINEL', 'FAILOVER', SENTINEL_MASTER]);
      let after = before;
      await until(
        async () => {
          after = await primaryPort();
          return after !== before && (await cli(after, ['INFO', 'replication'])).includes('role:master');
        },
        'the failover to a new primary',
        TIMEOUT,
      );
      return after;
    },
    stop,
  };
}
