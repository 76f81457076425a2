import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

const APPS = join(__dirname, '..', 'apps');

/** Milliseconds an instance gets to start (compile on the fly, connect to Redis, listen). */
const START_TIMEOUT = 30_000;

/** Settings of one app instance (see `apps/instance.ts`). */
/** The cache key of `/item/<id>` as every instance builds it (see `apps/instance.ts`). */
export const itemKey = (id: string) => `GET http://api.example/item/${id}`;

export interface InstanceSettings {
  /** The Redis to use: a URL, or (instead) `cluster` / `sentinel` below. */
  redisUrl?: string;
  /** `redis.cluster.rootNodes`: a Redis Cluster. */
  cluster?: { url: string }[];
  /** `redis.sentinel`: a Sentinel-managed primary. */
  sentinel?: { name: string; sentinelRootNodes: { host: string; port: number }[] };
  leaseTtl?: number;
  lockTimeout?: number;
  ttl?: number;
  keyPrefix?: string;
  l1Ttl?: number;
  invalidateOnWrite?: boolean;
  /** `redis.wake`: how holders wake their waiters. */
  wake?: 'pattern' | 'sharded';
  /** OpenTelemetry on, each finished span written to stdout (see `apps/tracing.ts`). */
  tracing?: boolean;
}

/** One app instance in its own process. */
export interface Instance {
  readonly url: string;
  readonly pid: number;
  /** Everything it printed so far (its Nest logger writes warnings here). */
  output(): string;
  /** Kills it with `signal` (SIGKILL: no cleanup at all) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Forks `apps/instance.ts` and resolves when it listens. */
export async function startInstance(settings: InstanceSettings): Promise<Instance> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (settings.redisUrl !== undefined) env.STAMPEDE_REDIS_URL = settings.redisUrl;
  if (settings.cluster) env.STAMPEDE_REDIS_CLUSTER = JSON.stringify(settings.cluster);
  if (settings.sentinel) env.STAMPEDE_REDIS_SENTINEL = JSON.stringify(settings.sentinel);
  if (settings.leaseTtl !== undefined) env.STAMPEDE_LEASE_TTL = String(settings.leaseTtl);
  if (settings.lockTimeout !== undefined) env.STAMPEDE_LOCK_TIMEOUT = String(settings.lockTimeout);
  if (settings.ttl !== undefined) env.STAMPEDE_TTL = String(settings.ttl);
  if (settings.keyPrefix !== undefined) env.STAMPEDE_KEY_PREFIX = settings.keyPrefix;
  if (settings.l1Ttl !== undefined) env.STAMPEDE_L1_TTL = String(settings.l1Ttl);
  if (settings.invalidateOnWrite) env.STAMPEDE_INVALIDATE_ON_WRITE = '1';
  if (settings.tracing) env.STAMPEDE_TRACING = '1';
  if (settings.wake) env.STAMPEDE_REDIS_WAKE = settings.wake;
  const child = fork(join(APPS, 'instance.ts'), [], {
    execArgv: ['-r', join(APPS, 'register.cjs')],
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`instance not listening within ${START_TIMEOUT} ms:\n${output}`));
    }, START_TIMEOUT);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`instance exited (code ${code}) before listening:\n${output}`));
    });
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message.type !== 'ready' || typeof message.port !== 'number') return;
      clearTimeout(timer);
      resolve(message.port);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    output: () => output,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => stop(child, signal),
  };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}
