import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FleetConfig, KeyCalls } from '../servers/fleet-app';
import { Child, startChild } from '../shared/child';
import { BenchOptions, Check, ScenarioReport, Target, atMost } from '../shared/report';
import { Table, num, percentile } from '../shared/stats';
import { portOf, settle } from '../shared/systems';
import { Reply, keepAliveAgent, pacedLoad } from '../shared/timed-http';

/**
 * freshness (GitHub issue #7): one key with a 1 s TTL and a 200 ms origin
 * under steady load. Coalescing alone makes every caller that arrives while
 * the key is being recomputed wait for it, once per TTL; stale-while-revalidate
 * (`staleTtl`) and XFetch (`earlyRefresh`) should take that wait off the tail.
 */

const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'fleet-app.js');
const TTL_MS = 1_000;
const ORIGIN_MS = 200;
const STALE_TTL_MS = 5_000;
/** Requests per second, issued on schedule (open loop) over up to MAX_SOCKETS keep-alive connections. */
const RATE = 400;
const MAX_SOCKETS = 256;
/** The first second (the cold miss, new connections) is left out of the latency figures. */
const WARMUP_MS = 1_000;
const P999_GOAL_MS = 15;

const MODES = ['coalesce', 'stale', 'xfetch'] as const;
type Mode = (typeof MODES)[number];
const MODE_OPTIONS: Record<Mode, FleetConfig['stampede']> = {
  coalesce: { ttl: TTL_MS },
  stale: { ttl: TTL_MS, staleTtl: STALE_TTL_MS },
  xfetch: { ttl: TTL_MS, earlyRefresh: true },
};
const MODE_LABELS: Record<Mode, string> = {
  coalesce: '(a) coalesce only',
  stale: '(b) stale-while-revalidate',
  xfetch: '(c) XFetch early refresh',
};
const OPTION_TEXT: Record<Mode, string> = {
  coalesce: `ttl: ${TTL_MS}`,
  stale: `ttl: ${TTL_MS}, staleTtl: ${STALE_TTL_MS}`,
  xfetch: `ttl: ${TTL_MS}, earlyRefresh: true`,
};

interface ModeRun {
  calls: number;
  maxConcurrent: number;
  /** Requests after the first second. */
  measured: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** Requests after the first second that waited on an origin call (ran it or joined it). */
  waited: number;
  /** Requests after the first second answered with a stale value while a refresh ran. */
  stale: number;
  failed: number;
}

function summarize(replies: Reply[], calls: KeyCalls, t0: number): ModeRun {
  const after = replies.filter((r) => r.start - t0 >= WARMUP_MS);
  const ms = after.filter((r) => r.ok).map((r) => r.ms);
  return {
    calls: calls.calls,
    maxConcurrent: calls.maxConcurrent,
    measured: after.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    p999: percentile(ms, 99.9),
    max: percentile(ms, 100),
    waited: after.filter((r) => r.cacheStatus.includes('fwd=miss')).length,
    stale: after.filter((r) => r.cacheStatus.includes('stale-while-revalidate')).length,
    failed: replies.filter((r) => !r.ok).length,
  };
}

async function measure(durationMs: number): Promise<Record<Mode, ModeRun>> {
  const settled = await Promise.allSettled(
    MODES.map((mode) =>
      startChild(SERVER_SCRIPT, [
        JSON.stringify({ stampede: MODE_OPTIONS[mode], originMs: ORIGIN_MS } satisfies FleetConfig),
      ]),
    ),
  );
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const agent = keepAliveAgent(MAX_SOCKETS);
  try {
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const out = {} as Record<Mode, ModeRun>;
    for (const [i, mode] of MODES.entries()) {
      const server: Child = children[i];
      const port = portOf(server);
      // Untimed: warms the code paths and opens connections, on a key of its own.
      await pacedLoad(agent, port, '/item?k=warm', RATE, 1_000);
      await settle(300);
      const t0 = performance.now();
      const replies = await pacedLoad(agent, port, '/item?k=steady', RATE, durationMs);
      out[mode] = summarize(replies, await server.call<KeyCalls>('keyCalls', 'steady'), t0);
    }
    return out;
  } finally {
    agent.destroy();
    await Promise.all(children.map((child) => child.stop()));
  }
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const durationMs = options.quick ? 6_000 : 30_000;
  const runs = await measure(durationMs);
  const goalCalls = Math.ceil(durationMs / TTL_MS) + 1;
  const boundCalls = Math.ceil(durationMs / TTL_MS) + 2;
  const seconds = durationMs / 1000;

  const table: Table = {
    title: `freshness: one key, ttl ${TTL_MS} ms, ${ORIGIN_MS} ms origin, ${RATE} req/s for ${seconds} s (latency after the first second)`,
    columns: [
      'mode',
      'options',
      'origin calls',
      'max at once',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'waited on origin',
      'served stale',
      'failed',
    ],
    rows: MODES.map((mode) => {
      const r = runs[mode];
      return [
        MODE_LABELS[mode],
        OPTION_TEXT[mode],
        num(r.calls),
        num(r.maxConcurrent),
        num(r.p50, 1),
        num(r.p99, 1),
        num(r.p999, 1),
        num(r.max, 1),
        `${num(r.waited)} / ${num(r.measured)}`,
        num(r.stale),
        num(r.failed),
      ];
    }),
    notes: [
      `open-loop load: a GET every ${1000 / RATE} ms on schedule, whether or not earlier ones were answered (up to ${MAX_SOCKETS} keep-alive connections).`,
      `origin calls: over the whole ${seconds} s, cold start included; goal <= ceil(duration / ttl) + 1 = ${goalCalls}.`,
      'waited on origin: Cache-Status `fwd=miss` (ran the handler or joined its flight); served stale: `detail=stale-while-revalidate`.',
    ],
  };

  const targets: Target[] = (['stale', 'xfetch'] as const).flatMap((mode) => [
    atMost(`freshness (#7) ${MODE_LABELS[mode]}: p99.9 after the first second`, runs[mode].p999, P999_GOAL_MS, ' ms'),
    atMost(
      `freshness (#7) ${MODE_LABELS[mode]}: origin calls in ${seconds} s, ttl ${TTL_MS} ms`,
      runs[mode].calls,
      goalCalls,
      '',
      0,
    ),
  ]);
  // XFetch refreshes with a probability per request, so how often it refreshes grows with the request rate
  // (about every ttl − delta·beta·ln(rate·delta) + delta ms): its bound is refreshes back to back, never overlapping.
  const backToBack = Math.ceil(durationMs / ORIGIN_MS) + 2;
  const checks: Check[] = [
    {
      name: `freshness: at most ceil(duration / ttl) + 2 = ${boundCalls} origin calls per key, (a) and (b)`,
      pass: runs.coalesce.calls <= boundCalls && runs.stale.calls <= boundCalls,
      detail: `coalesce ${runs.coalesce.calls}, stale ${runs.stale.calls}`,
    },
    {
      name: `freshness: at most ceil(duration / origin) + 2 = ${backToBack} origin calls per key, (c) XFetch`,
      pass: runs.xfetch.calls <= backToBack,
      detail: `xfetch ${runs.xfetch.calls}`,
    },
    {
      name: 'freshness: one origin call at a time per key, every request answered 200',
      pass: MODES.every((mode) => runs[mode].maxConcurrent === 1 && runs[mode].failed === 0),
      detail: MODES.map((mode) => `${mode}: ${runs[mode].maxConcurrent} at once, ${runs[mode].failed} failed`).join(
        '; ',
      ),
    },
  ];
  return {
    tables: [table],
    targets,
    checks,
    raw: { ttlMs: TTL_MS, originMs: ORIGIN_MS, staleTtlMs: STALE_TTL_MS, rate: RATE, durationMs, runs },
  };
}
