import autocannon from 'autocannon';
import { wireRequest } from '../../test/helpers/wire-request';
import { PLATFORMS, Platform } from '../servers/http-systems';
import { BenchOptions, Check, ScenarioReport, Target, atLeast } from '../shared/report';
import { median, num, pairedRatio, ratio } from '../shared/stats';
import { ServerSetup, portOf, rotated, serverOf, settle, startServers, stopServers } from '../shared/systems';

/**
 * validators: a cached ~200 kB JSON list, hammered by clients that already
 * hold it and say so (`If-None-Match` with its current ETag), against the
 * same route hammered without (every hit sends the whole body) and against
 * Nest's CacheInterceptor on that route, with and without the header (on
 * Express, Express's own ETag machinery may answer it; Fastify has none).
 */

const CONNECTIONS = 50;
const PATH = '/big';

/** One server per system: both kinds of clients hammer the same route of the same process, one after the other. */
const SERVERS: ServerSetup[] = [
  { id: 'stampede', system: 'stampede' },
  { id: 'cache-manager', system: 'cache-manager' },
];

interface ValidatorSetup {
  id: string;
  /** The server it hammers. */
  server: string;
  label: string;
  /** The clients send `If-None-Match` with the ETag the server gave first. */
  conditional: boolean;
}

const SETUPS: ValidatorSetup[] = [
  { id: 'stampede-304', server: 'stampede', conditional: true, label: 'nestjs-stampede hit, If-None-Match (304)' },
  { id: 'stampede-200', server: 'stampede', conditional: false, label: 'nestjs-stampede hit, full body' },
  { id: 'cache-manager-inm', server: 'cache-manager', conditional: true, label: 'CacheInterceptor hit, If-None-Match' },
  { id: 'cache-manager', server: 'cache-manager', conditional: false, label: 'CacheInterceptor hit, full body' },
];

interface ValidatorRun {
  rps: number;
  /** Bytes the server sent per response, head included. */
  bytesPerResponse: number;
  /** Bytes the server sent per second. */
  bytesPerSecond: number;
  statuses: Record<string, number>;
  errors: number;
}

async function load(port: number, seconds: number, etag: string | undefined): Promise<ValidatorRun> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}${PATH}`,
    connections: CONNECTIONS,
    duration: seconds,
    headers: etag === undefined ? {} : { 'if-none-match': etag },
  });
  const responses = result.requests.total ?? 0;
  const statuses = Object.fromEntries(
    Object.entries(result.statusCodeStats ?? {}).map(([status, { count }]) => [status, count]),
  );
  return {
    rps: result.requests.average,
    bytesPerResponse: responses > 0 ? (result.throughput.total ?? 0) / responses : NaN,
    bytesPerSecond: result.throughput.average,
    statuses,
    errors: result.errors + result.timeouts,
  };
}

/** What a client gets first: the ETag to send back (when the server gives one), and what came after the 304's head. */
async function probe(port: number): Promise<{ etag?: string; notModifiedBody?: number; notModifiedStatus?: number }> {
  const url = `http://127.0.0.1:${port}`;
  const first = await wireRequest(url, PATH);
  const etag = first.headers['etag'];
  if (etag === undefined) return {};
  const again = await wireRequest(url, PATH, { headers: { 'If-None-Match': etag } });
  return { etag, notModifiedBody: again.body.length, notModifiedStatus: again.status };
}

async function runPlatform(platform: Platform, rounds: number, seconds: number, warmup: number) {
  const servers = await startServers(platform, SERVERS);
  try {
    const portFor = (setup: ValidatorSetup) => portOf(serverOf(servers, setup.server));
    const probes = Object.fromEntries(
      await Promise.all(SERVERS.map(async ({ id }) => [id, await probe(portOf(serverOf(servers, id)))] as const)),
    );
    const etagOf = (setup: ValidatorSetup) => (setup.conditional ? probes[setup.server].etag : undefined);
    if (warmup > 0) for (const setup of SETUPS) await load(portFor(setup), warmup, etagOf(setup));
    const runs: Record<string, ValidatorRun[]> = Object.fromEntries(SETUPS.map(({ id }) => [id, []]));
    for (let round = 0; round < rounds; round++) {
      for (const setup of rotated(SETUPS, round)) {
        await settle(200);
        runs[setup.id].push(await load(portFor(setup), seconds, etagOf(setup)));
      }
    }
    const counts = await Promise.all(
      SERVERS.map(({ id }) => serverOf(servers, id).call<{ big: number; etags: number }>('counts')),
    );
    return { runs, probes, counts: Object.fromEntries(SERVERS.map(({ id }, i) => [id, counts[i]])) };
  } finally {
    await stopServers(servers);
  }
}

export async function run(options: BenchOptions): Promise<ScenarioReport> {
  const rounds = options.quick ? 1 : 6;
  const seconds = options.quick ? 0.5 : 2;
  // Quick (CI): a short warm-up; its correctness checks need no steady state.
  const warmup = options.quick ? 0.25 : 2;
  const targets: Target[] = [];
  const checks: Check[] = [];
  const raw: Record<string, unknown> = { rounds, seconds, connections: CONNECTIONS, setups: SETUPS };
  const tables = [];

  for (const platform of PLATFORMS) {
    const { runs, probes, counts } = await runPlatform(platform, rounds, seconds, warmup);
    raw[platform] = { runs, probes, counts };
    const rps = (id: string) => runs[id].map((r) => r.rps);
    const each = (id: string, pick: (r: ValidatorRun) => number) => median(runs[id].map(pick));
    tables.push({
      title: `validators, ${platform}: a cached ${num(each('stampede-200', (r) => r.bytesPerResponse) / 1000)} kB JSON, ${CONNECTIONS} connections, ${seconds} s × ${rounds} rounds (medians)`,
      columns: ['system', 'req/s', 'vs full-body hit', 'sent per response', 'sent per second', 'statuses'],
      rows: SETUPS.map(({ id, label }) => [
        label,
        num(median(rps(id))),
        ratio(pairedRatio(rps(id), rps('stampede-200'))),
        `${num(each(id, (r) => r.bytesPerResponse))} B`,
        `${num(each(id, (r) => r.bytesPerSecond) / 1e6, 1)} MB`,
        Object.entries(runs[id][0]?.statuses ?? {})
          .map(([status]) => status)
          .join(' '),
      ]),
      notes: [
        'If-None-Match: each client sends the ETag the server gave it first (none from CacheInterceptor on Fastify: it has no ETag).',
        'CacheInterceptor on Express: Express computes a weak ETag of the serialized body on every response and answers a match with 304 itself.',
        `ETags computed by nestjs-stampede over the whole run: ${counts['stampede'].etags} (one per stored response).`,
        'Both kinds of clients hammer the same server process, one after the other.',
      ],
    });

    targets.push(
      atLeast(
        `validators ${platform}: 304 hit vs full-body hit`,
        pairedRatio(rps('stampede-304'), rps('stampede-200')),
        3,
      ),
      atLeast(
        `validators ${platform}: 304 hit vs CacheInterceptor with If-None-Match`,
        pairedRatio(rps('stampede-304'), rps('cache-manager-inm')),
        1,
      ),
    );

    const notModified = runs['stampede-304'];
    const all304 = notModified.every((r) => Object.keys(r.statuses).join() === '304');
    const headOnly = notModified.every((r) => r.bytesPerResponse < 1024);
    const probe304 = probes['stampede'];
    checks.push({
      name: `validators ${platform}: the 304s carry no body`,
      pass: all304 && headOnly && probe304.notModifiedStatus === 304 && probe304.notModifiedBody === 0,
      detail:
        `statuses ${notModified.map((r) => JSON.stringify(r.statuses)).join(', ')}; ` +
        `${num(median(notModified.map((r) => r.bytesPerResponse)))} B per response; ` +
        `one read off the socket: ${probe304.notModifiedStatus} with ${probe304.notModifiedBody} bytes after its head`,
    });
    const errors = SETUPS.reduce((sum, { id }) => sum + runs[id].reduce((n, r) => n + r.errors, 0), 0);
    checks.push({
      name: `validators ${platform}: the handler ran once, its ETag was computed once, never on a hit`,
      pass: errors === 0 && SERVERS.every(({ id }) => counts[id].big === 1) && counts['stampede'].etags === 1,
      detail:
        `errors: ${errors}; handler calls: ${SERVERS.map(({ id }) => `${id} ${counts[id].big}`).join(', ')}; ` +
        `ETags computed: ${counts['stampede'].etags}`,
    });
  }
  return { tables, targets, checks, raw };
}
