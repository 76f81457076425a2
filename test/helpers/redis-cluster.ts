import { ChildProcess, execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until } from './deferred';
import { freePort, spawnRedis } from './redis-server';

const run = promisify(execFile);

/** Milliseconds the cluster gets to agree on its slots after `--cluster create`, or after a failover. */
const STATE_TIMEOUT = 20_000;

/** One `redis-server --cluster-enabled yes` of a test's cluster. */
export interface ClusterNode {
  readonly port: number;
  readonly url: string;
  readonly running: boolean;
  /** Kills it at once (SIGKILL): its replica takes over after `cluster-node-timeout`. */
  kill(): Promise<void>;
}

/** A real Redis Cluster on loopback ports, private to one test file: 3 primaries, each with a replica. */
export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `rootNodes` for node-redis `createCluster`. */
  readonly rootNodes: { url: string }[];
  /** `redis-cli -p <port of a running node> <args>`: its output, trimmed. */
  cli(...args: string[]): Promise<string>;
  /** The running node that serves `slot` as a primary. */
  primaryOf(slot: number): Promise<ClusterNode>;
  /** Resolves when every running node says `cluster_state:ok` and every slot has a running primary. */
  healthy(): Promise<void>;
  stop(): Promise<void>;
}

/** `redis-cli` against `port`. */
async function cli(port: number, args: readonly string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

/** The ports of the primaries serving slots, per the `CLUSTER SLOTS` of `port`. */
async function slotOwners(port: number): Promise<{ from: number; to: number; port: number }[]> {
  const nodes = await cli(port, ['CLUSTER', 'NODES']);
  const owners: { from: number; to: number; port: number }[] = [];
  for (const line of nodes.split('\n')) {
    const [, address, flags, , , , , , ...slots] = line.split(' ');
    if (!flags?.includes('master') || flags.includes('fail')) continue;
    const owner = Number(address.split(':')[1].split('@')[0]);
    for (const range of slots) {
      if (range.startsWith('[')) continue;
      const [from, to = from] = range.split('-').map(Number);
      owners.push({ from, to, port: owner });
    }
  }
  return owners;
}

/** True when nothing listens on `port` now. */
async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  const [outcome] = await Promise.race([once(server, 'listening').then(() => ['free']), once(server, 'error')]);
  if (outcome !== 'free') return false;
  server.close();
  await once(server, 'close');
  return true;
}

/** A port for a cluster node: free, and so is its cluster bus port (10,000 higher, within 65,535). */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await isFree(port + 10_000))) return port;
  }
}

/**
 * Starts 6 `redis-server --cluster-enabled yes` on free loopback ports,
 * joins them with `redis-cli --cluster create ... --cluster-replicas 1`,
 * and waits (bounded) until every node reports `cluster_state:ok`. A short
 * `cluster-node-timeout` makes a failover take about a second.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const root = mkdtempSync(join(tmpdir(), 'stampede-cluster-'));
  const children = new Map<number, ChildProcess | undefined>();
  const extra = (port: number) => [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    `nodes-${port}.conf`,
    '--cluster-node-timeout',
    '1000',
    // A replica may take over however long ago it last heard from its primary.
    '--cluster-replica-validity-factor',
    '0',
  ];
  const ports: number[] = [];
  const started = await Promise.allSettled(
    Array.from({ length: 6 }, async (_, i) => {
      // Another process may take a port (or its bus port) between the pick and the bind: try a few.
      for (let attempt = 1; ; attempt++) {
        const port = await freeClusterPort();
        const dir = join(root, String(port));
        mkdirSync(dir);
        try {
          const child = await spawnRedis(port, dir, extra(port));
          ports[i] = port;
          children.set(port, child);
          return;
        } catch (error) {
          if (attempt >= 3 || !String(error).includes('Address already in use')) throw error;
        }
      }
    }),
  );
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) {
    for (const child of children.values()) child?.kill('SIGKILL');
    throw failed.reason;
  }
  const nodes: ClusterNode[] = ports.map((port) => ({
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return children.get(port) !== undefined;
    },
    async kill() {
      const child = children.get(port);
      children.set(port, undefined);
      if (!child || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  }));
  const anyRunning = () => {
    const node = nodes.find((n) => n.running);
    if (!node) throw new Error('no cluster node is running');
    return node.port;
  };
  const cluster: RedisCluster = {
    nodes,
    rootNodes: nodes.map((node) => ({ url: node.url })),
    cli: (...args) => cli(anyRunning(), args),
    async primaryOf(slot) {
      const owner = (await slotOwners(anyRunning())).find((range) => range.from <= slot && slot <= range.to);
      const node = nodes.find((n) => n.port === owner?.port);
      if (!node) throw new Error(`no primary serves slot ${slot}`);
      return node;
    },
    async healthy() {
      await until(
        async () => {
          for (const node of nodes.filter((n) => n.running)) {
            if (!(await cli(node.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false;
          }
          const owners = await slotOwners(anyRunning());
          const covered = owners.reduce((total, range) => total + range.to - range.from + 1, 0);
          return covered === 16_384 && owners.every((range) => nodes.find((n) => n.port === range.port)?.running);
        },
        'the Redis Cluster to report cluster_state:ok',
        STATE_TIMEOUT,
      );
    },
    async stop() {
      await Promise.all(nodes.map((node) => node.kill()));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes']);
    await cluster.healthy();
    // Each replica has its primary's data before a test may kill that primary.
    await until(
      async () => {
        for (const node of nodes) {
          const info = await cli(node.port, ['INFO', 'replication']);
          if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false;
        }
        return true;
      },
      'every replica to be in sync',
      STATE_TIMEOUT,
    );
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
