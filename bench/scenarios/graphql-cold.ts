import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GRAPHQL_LABELS, GRAPHQL_SYSTEMS, GraphqlSystem, RESOLVER_MS } from '../servers/graphql-systems';
import { Child, startChild } from '../shared/child';
import { BenchOptions, Check, ScenarioReport, Target, atMost } from '../shared/report';
import { median, num, percentile } from '../shared/stats';
import { rotated, settle } from '../shared/systems';
import { keepAliveAgent } from '../shared/timed-http';

/**
 * graphql-cold: N identical queries at once for an article nothing has cached
 * yet, against a 100 ms resolver (Apollo on Express). How many times does the
 * resolver run, and how long do the queries take?
 */

const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'graphql-app.js');
const CONCURRENCY = [10, 100, 1000];

interface Timed {
  ms: number;
  ok: boolean;
}

/** POSTs one query and times it until its body is in; ok when the article came back. */
function timedQuery(agent: Agent, port: number, id: string): Promise<Timed> {
  const body = JSON.stringify({ query: `{ article(id: "${id}") { id title } }` });
  return new Promise((resolve) => {
    const start = performance.now();
    const done = (ok: boolean) => resolve({ ms: performance.now() - start, ok });
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => done(res.statusCode === 200 && text.includes(`"id":"${id}"`)));
        res.on('error', () => done(false));
      },
    );
    req.on('error', () => done(false));
    req.end(body);
  });
}

interface BurstStats {
  runs: number;
  p50: number;
  p99: number;
  failed: number;
}

async function measure(server: Child, agent: Agent, id: string, n: number): Promise<BurstStats> {
  const before = (await server.call<{ runs: number }>('counts')).runs;
  const port = server.ready.port as number;
  const replies = await Promise.all(Array.from({ length: n }, () => timedQuery(agent, port, id)));
  const after = (await server.call<{ runs: number }>('counts')).runs;
  const ok = replies.filter((r) => r.ok).map((r) => r.ms);
  return { runs: after - before, p50: percentile(ok, 50), p99: percentile(ok, 99), failed: n - ok.length };
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const rounds = options.quick ? 1 : 5;
  // The CI smoke run skips the 1000-query bursts.
  const levels = options.quick ? CONCURRENCY.filter((n) => n <= 100) : CONCURRENCY;
  const servers = Object.fromEntries(
    await Promise.all(GRAPHQL_SYSTEMS.map(async (s) => [s, await startChild(SERVER_SCRIPT, [s])] as const)),
  ) as Record<GraphqlSystem, Child>;
  const agent = keepAliveAgent();
  const results = Object.fromEntries(
    GRAPHQL_SYSTEMS.map((s) => [s, Object.fromEntries(levels.map((n) => [n, [] as BurstStats[]]))]),
  ) as Record<GraphqlSystem, Record<number, BurstStats[]>>;
  try {
    const max = Math.max(...levels);
    // Untimed: opens the sockets and warms each server's code paths.
    for (const system of GRAPHQL_SYSTEMS) await measure(servers[system], agent, 'warm', max);
    for (let round = 0; round < rounds; round++) {
      for (const n of levels) {
        for (const system of rotated(GRAPHQL_SYSTEMS, round)) {
          await settle();
          // An article of its own per burst: cold for every system.
          results[system][n].push(await measure(servers[system], agent, `r${round}n${n}`, n));
        }
      }
    }
  } finally {
    agent.destroy();
    await Promise.all(Object.values(servers).map((server) => server.stop()));
  }

  const rows: string[][] = [];
  const checks: Check[] = [];
  const targets: Target[] = [];
  for (const n of levels) {
    for (const system of GRAPHQL_SYSTEMS) {
      const stats = results[system][n];
      rows.push([
        GRAPHQL_LABELS[system],
        String(n),
        num(median(stats.map((s) => s.runs))),
        num(median(stats.map((s) => s.p50)), 1),
        num(median(stats.map((s) => s.p99)), 1),
        String(stats.reduce((sum, s) => sum + s.failed, 0)),
      ]);
    }
    const stampede = results.stampede[n];
    checks.push({
      name: `graphql-cold: one resolver run per cold burst of ${n} (nestjs-stampede)`,
      pass: stampede.every((s) => s.runs === 1 && s.failed === 0),
      detail: `runs per burst: ${stampede.map((s) => s.runs).join(', ')}`,
    });
  }
  const p99 = median(results.stampede[100].map((s) => s.p99));
  targets.push(
    atMost('graphql-cold: p99 of 100 identical cold queries (nestjs-stampede)', p99, RESOLVER_MS * 2, ' ms'),
  );
  return {
    tables: [
      {
        title: `graphql-cold: N identical queries to a cold ${RESOLVER_MS} ms resolver (Apollo, Express); medians of ${rounds} rounds`,
        columns: ['system', 'N', 'resolver runs', 'p50 ms', 'p99 ms', 'failed'],
        rows,
      },
    ],
    targets,
    checks,
    raw: results,
  };
}
