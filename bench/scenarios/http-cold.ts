import { Agent } from 'node:http';
import { COLD_MS, HTTP_LABELS, HTTP_SYSTEMS, PLATFORMS, Platform } from '../servers/http-systems';
import { Timed, burst, burstAgent } from '../shared/http-burst';
import { BenchOptions, Check, ScenarioReport, Target, atMost } from '../shared/report';
import { median, num, pairedRatio, percentile, ratio } from '../shared/stats';
import { Servers, portOf, rotated, serverOf, settle, startServers, stopServers } from '../shared/systems';

/**
 * http-cold: N requests at once for a key nothing has cached yet, against a
 * 100 ms handler. How many times does the handler run, and how long do the
 * requests that did not run it (followers) wait compared with the one that did?
 */

type System = (typeof HTTP_SYSTEMS)[number];

/** Concurrency levels; 10 is only for the chart. */
const CONCURRENCY = [10, 100, 1000];
/** The level the follower-latency target is judged at. */
const TARGET_N = 100;
/** Followers may wait at most this much longer than the origin request. */
const FOLLOWER_BUDGET_MS = 40;

/** What one burst measured. */
interface BurstStats {
  executions: number;
  /** Median latency of the requests that ran the handler. */
  originMs: number;
  followers: number;
  followerP50: number;
  followerP99: number;
  /** p99 of every request, origins and followers. */
  allP99: number;
  failed: number;
}

function summarize(executions: number, replies: Timed[]): BurstStats {
  const origins = replies.filter((r) => r.ok && r.origin).map((r) => r.ms);
  const followers = replies.filter((r) => r.ok && !r.origin).map((r) => r.ms);
  return {
    executions,
    originMs: median(origins),
    followers: followers.length,
    followerP50: percentile(followers, 50),
    followerP99: percentile(followers, 99),
    allP99: percentile(
      replies.filter((r) => r.ok).map((r) => r.ms),
      99,
    ),
    failed: replies.filter((r) => !r.ok).length,
  };
}

async function measure(servers: Servers, agent: Agent, system: System, path: string, n: number) {
  const server = serverOf(servers, system);
  const before = (await server.call<{ cold: number }>('counts')).cold;
  const replies = await burst(agent, portOf(server), path, n);
  const after = (await server.call<{ cold: number }>('counts')).cold;
  return summarize(after - before, replies);
}

type Rounds = Record<System, Record<number, BurstStats[]>>;

async function runPlatform(platform: Platform, rounds: number): Promise<Rounds> {
  const servers = await startServers(
    platform,
    HTTP_SYSTEMS.map((system) => ({ id: system, system })),
  );
  const agent = burstAgent();
  try {
    const max = Math.max(...CONCURRENCY);
    // Untimed: opens the burst's sockets and warms each server's code paths.
    for (let i = 0; i < 2; i++) {
      for (const system of HTTP_SYSTEMS) await measure(servers, agent, system, `/cold?k=warm${i}`, max);
    }
    const out = Object.fromEntries(
      HTTP_SYSTEMS.map((s) => [s, Object.fromEntries(CONCURRENCY.map((n) => [n, [] as BurstStats[]]))]),
    ) as Rounds;
    for (let round = 0; round < rounds; round++) {
      for (const n of CONCURRENCY) {
        for (const system of rotated(HTTP_SYSTEMS, round)) {
          await settle();
          // A key of its own per burst: it is cold for every system.
          out[system][n].push(await measure(servers, agent, system, `/cold?k=r${round}n${n}`, n));
        }
      }
    }
    return out;
  } finally {
    agent.destroy();
    await stopServers(servers);
  }
}

const pick = (stats: BurstStats[], field: keyof BurstStats) => stats.map((s) => s[field]);

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const rounds = options.quick ? 2 : 7;
  const results = {} as Record<Platform, Rounds>;
  for (const platform of PLATFORMS) results[platform] = await runPlatform(platform, rounds);

  const targets: Target[] = [];
  const checks: Check[] = [];
  const tables = PLATFORMS.map((platform) => {
    const rows: string[][] = [];
    for (const n of CONCURRENCY) {
      for (const system of HTTP_SYSTEMS) {
        const stats = results[platform][system][n];
        const gap = stats.map((s) => s.followerP99 - s.originMs);
        rows.push([
          HTTP_LABELS[system],
          String(n),
          num(median(pick(stats, 'executions'))),
          ratio(pairedRatio(pick(stats, 'executions'), pick(results[platform]['cache-manager'][n], 'executions'))),
          num(median(pick(stats, 'originMs')), 1),
          num(median(pick(stats, 'followerP50')), 1),
          num(median(pick(stats, 'followerP99')), 1),
          num(median(gap), 1),
          num(median(pick(stats, 'allP99')), 1),
        ]);
      }
    }
    const stampede = results[platform].stampede;
    const gapAtTarget = median(stampede[TARGET_N].map((s) => s.followerP99 - s.originMs));
    targets.push(
      atMost(`http-cold ${platform}: follower p99 − origin, N=${TARGET_N}`, gapAtTarget, FOLLOWER_BUDGET_MS, ' ms'),
    );
    const executions = CONCURRENCY.flatMap((n) => pick(stampede[n], 'executions'));
    checks.push({
      name: `http-cold ${platform}: nestjs-stampede runs the handler once per cold burst`,
      pass: executions.every((e) => e === 1),
      detail: `origin calls per burst: ${executions.join(', ')}`,
    });
    const failed = HTTP_SYSTEMS.flatMap((s) => CONCURRENCY.flatMap((n) => pick(results[platform][s][n], 'failed')));
    checks.push({
      name: `http-cold ${platform}: every request answered 200`,
      pass: failed.every((f) => f === 0),
      detail: `failed requests: ${failed.reduce((a, b) => a + b, 0)}`,
    });
    return {
      title: `http-cold, ${platform}: N concurrent GETs of one cold key, ${COLD_MS} ms handler (median of ${rounds} rounds)`,
      columns: [
        'system',
        'N',
        'origin calls',
        'calls vs CacheInterceptor',
        'origin ms',
        'follower p50 ms',
        'follower p99 ms',
        'p99 − origin ms',
        'p99 ms (all)',
      ],
      rows,
      notes: [
        'origin: a request that ran the handler; follower: one answered with another request’s result.',
        'latency is per request, from just before it is written until its body is in (keep-alive sockets, warmed).',
      ],
    };
  });

  const express = results.express;
  return {
    tables,
    targets,
    checks,
    raw: { rounds, concurrency: CONCURRENCY, results },
    chart: {
      title: `Handler executions for N concurrent GETs of one cold key (Express, ${COLD_MS} ms handler)`,
      xLabel: 'concurrent requests (N)',
      yLabel: 'handler executions',
      xs: CONCURRENCY,
      series: HTTP_SYSTEMS.map((system) => ({
        label: HTTP_LABELS[system],
        ys: CONCURRENCY.map((n) => median(pick(express[system][n], 'executions'))),
      })),
    },
  };
}
