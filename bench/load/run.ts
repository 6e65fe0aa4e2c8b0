/**
 * Load generator: `npm run bench:load`. Replays a national mix of CIS2 traffic over loopback HTTP against a cluster
 * (HAProxy + N nodes) or one node, bounded in time and operations, and reports throughput, latency percentiles, errors,
 * and each node's memory (VmRSS) and CPU; writes bench/results/load-<scenario>-<time>.json and a PNG chart of latency
 * over time.
 *
 * Scenarios (LOAD_SCENARIO):
 *   national (default)  open loop following a morning: 07:00 at the daily average rate, the 09:00 peak at 10×, easing
 *                       off to 11:00, compressed into LOAD_SECONDS. Per sign-in: smartcard 80 % (AAL3), security key
 *                       10 %, authenticator app 10 %, each a whole CIS2 flow (authorize → sign-in page → method →
 *                       interaction → code → token → userinfo); plus, per sign-in, 1 token refresh, 1 userinfo and 0.2 RA
 *                       person searches.
 *   signin              closed loop, LOAD_CONCURRENCY callers doing whole AAL3 smartcard sign-ins back to back: the
 *                       most the target does.
 *   token               closed loop: code → token, then userinfo, with codes made beforehand (single sign-on).
 *   scale               `signin` on a cluster of 1 node, then of LOAD_NODES nodes (own clusters only).
 *   sessions            LOAD_SESSIONS (10 000) live web + OpenID Connect sessions made through node 1; its RSS before
 *                       and after, Redis and PostgreSQL growth.
 *
 * Settings: LOAD_TARGET (own | cluster | http://127.0.0.1:PORT), LOAD_NODES (3), LOAD_PORT (3200), LOAD_SCHEMA
 * (opencis_load), LOAD_SECONDS (30; ≤ 600), LOAD_MAX_OPS (20000), LOAD_RATE (average sign-ins/s, 1; peak 10×),
 * LOAD_CONCURRENCY (8 callers closed loop; 64 in flight open loop), LOAD_CARDS (200), LOAD_TOTP (120), LOAD_KEYS (24),
 * LOAD_RA (4), LOAD_SESSIONS (10000).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createSealer } from '../../src/secrets/sealer.ts';
import { systemClock } from '../../src/services/context.ts';
import { startSession } from '../../src/services/sessions.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { COLORS, PALETTE, type Panel, renderChart, type Series } from './chart.ts';
import { drive, type NodeInfo, type OpSpec, type RunResult } from './driver.ts';
import { Flows, type Method } from './flows.ts';
import { HttpClient } from './http.ts';
import { fmt, opTable, table } from './metrics.ts';
import { rssMiB } from './procstat.ts';
import { type Population, provision } from './provision.ts';
import { ownCluster, positiveNumber, resolveTarget, type Target, wholeNumber } from './target.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const RESULTS = join(HERE, '..', 'results');
const out = (line = '') => process.stdout.write(`${line}\n`);

export const settings = {
  scenario: process.env.LOAD_SCENARIO || 'national',
  seconds: wholeNumber('LOAD_SECONDS', 30, 1, 600),
  maxOps: wholeNumber('LOAD_MAX_OPS', 20_000, 1, 1_000_000),
  rate: positiveNumber('LOAD_RATE', 1, 1_000),
  concurrency: wholeNumber('LOAD_CONCURRENCY', 0, 0, 2_000),
  cards: wholeNumber('LOAD_CARDS', 200, 1, 100_000),
  totp: wholeNumber('LOAD_TOTP', 120, 1, 100_000),
  keys: wholeNumber('LOAD_KEYS', 24, 1, 10_000),
  ra: wholeNumber('LOAD_RA', 4, 1, 1_000),
  sessions: wholeNumber('LOAD_SESSIONS', 10_000, 1, 200_000),
  nodes: wholeNumber('LOAD_NODES', 3, 1, 8),
};

/**
 * The morning, as multiples of the daily average: [fraction of the run, multiple]. The run's span stands for 07:00 to
 * 11:00; the peak (10×) is held from 08:45 to 09:15.
 */
export const MORNING: readonly (readonly [number, number])[] = [
  [0, 1],
  [0.25, 4],
  [7 / 16, 10],
  [9 / 16, 10],
  [0.75, 5],
  [1, 3],
];

export function morningMultiple(fraction: number): number {
  const f = Math.min(1, Math.max(0, fraction));
  for (let i = 1; i < MORNING.length; i++) {
    const [x1, y1] = MORNING[i]!;
    const [x0, y0] = MORNING[i - 1]!;
    if (f <= x1) return y0 + ((f - x0) / (x1 - x0)) * (y1 - y0);
  }
  return MORNING.at(-1)![1];
}

export function clockLabel(fraction: number): string {
  const minutes = 7 * 60 + Math.round(fraction * 240);
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

const METHOD_NAMES: Record<Method, string> = {
  card: 'sign-in: smartcard AAL3 + OIDC',
  key: 'sign-in: security key + OIDC',
  totp: 'sign-in: app (TOTP) + OIDC',
};

export interface Session {
  target: Target;
  population: Population;
  http: HttpClient;
  flows: Flows;
  byNode: Map<string, number>;
}

export async function prepare(target: Target, sizes = settings): Promise<Session> {
  const population = await provision({
    databaseUrl: target.databaseUrl,
    schema: target.schema,
    secretsKey: target.secretsKey,
    publicUrl: target.publicUrl,
    cards: sizes.cards,
    totp: sizes.totp,
    keys: sizes.keys,
    raStaff: sizes.ra,
    log: out,
  });
  out(`Provisioned in ${population.seconds.toFixed(1)} s.`);
  return connect(target, population);
}

export async function connect(target: Target, population: Population): Promise<Session> {
  const http = new HttpClient(512);
  const byNode = new Map<string, number>();
  const endpoints = await Flows.discover(http, target.base, population);
  const flows = new Flows(http, endpoints, population, (res) => {
    if (res.node) byNode.set(res.node, (byNode.get(res.node) ?? 0) + 1);
  });
  return { target, population, http, flows, byNode };
}

/** The national mix: rates per second at run time t, for a run of `seconds`. */
export function nationalOps(flows: Flows, averageRate: number, seconds: number, flat = false): OpSpec[] {
  const m = (t: number) => (flat ? 1 : morningMultiple(t / seconds));
  const signIn = (method: Method, share: number): OpSpec => ({
    kind: `sign-in (${method})`,
    rate: (t) => averageRate * m(t) * share,
    run: async () => METHOD_NAMES[(await flows.signIn(method)).method],
  });
  return [
    signIn('card', 0.8),
    signIn('key', 0.1),
    signIn('totp', 0.1),
    {
      kind: 'token refresh',
      rate: (t) => averageRate * m(t),
      run: async () => ((await flows.refresh()) ? 'token refresh' : null),
    },
    {
      kind: 'userinfo',
      rate: (t) => averageRate * m(t),
      run: async () => ((await flows.userinfo()) ? 'userinfo' : null),
    },
    {
      kind: 'RA search',
      rate: (t) => averageRate * m(t) * 0.2,
      run: async () => {
        await flows.raSearch();
        return 'RA person search';
      },
    },
  ];
}

function progress(prefix: string) {
  return (
    s: { t: number; rss: Record<string, number | null>; inFlight: number; offered: number },
    r: { totalOk: number; totalErrors: number },
  ) => {
    if (Math.round(s.t) % 5 !== 0) return;
    const rss = Object.entries(s.rss)
      .map(([k, v]) => `${k} ${v === null ? '-' : Math.round(v)}`)
      .join(', ');
    out(
      `  ${prefix}${Math.round(s.t)} s: ${r.totalOk} ok, ${r.totalErrors} errors, ${s.inFlight} in flight` +
        `${s.offered ? `, offered ${s.offered.toFixed(1)}/s` : ''}; RSS MiB ${rss}`,
    );
  };
}

export interface Report {
  title: string;
  scenario: string;
  target: string;
  result: RunResult;
  byNode: Record<string, number>;
  extra?: Record<string, unknown>;
}

export function nodeTable(
  result: RunResult,
  byNode: Map<string, number> | Record<string, number>,
  nodes: readonly NodeInfo[],
): string {
  const served = byNode instanceof Map ? Object.fromEntries(byNode) : byNode;
  return table(
    ['node', 'pid', 'requests', 'CPU s', 'RSS start MiB', 'RSS end MiB', 'RSS max MiB'],
    nodes.map((n) => {
      const r = result.rss[n.name];
      const c = result.cpu.nodes[n.name];
      return [
        n.name,
        String(n.pid ?? '-'),
        String(served[n.name] ?? '-'),
        c === null || c === undefined ? '-' : c.toFixed(1),
        r?.start === null || r?.start === undefined ? '-' : r.start.toFixed(0),
        r?.end === null || r?.end === undefined ? '-' : r.end.toFixed(0),
        r?.max === null || r?.max === undefined ? '-' : r.max.toFixed(0),
      ];
    }),
  );
}

export function serverCpu(result: RunResult): number {
  const nodes = Object.values(result.cpu.nodes).reduce<number>((a, b) => a + (b ?? 0), 0);
  return nodes + (result.cpu.postgres ?? 0);
}

export function printReport(
  title: string,
  result: RunResult,
  byNode: Map<string, number>,
  nodes: readonly NodeInfo[],
): void {
  const r = result.recorder;
  out('');
  out(
    `${title} — ${result.seconds.toFixed(1)} s, ${r.totalOk} operations ok, ${r.totalErrors} errors` +
      `${result.dropped ? `, ${result.dropped} arrivals dropped (in-flight cap)` : ''}`,
  );
  out('');
  out(opTable(r.summary(result.seconds)));
  out('');
  out(nodeTable(result, byNode, nodes));
  const c = result.cpu;
  out('');
  out(
    `CPU seconds: nodes ${fmt(Object.values(c.nodes).reduce<number>((a, b) => a + (b ?? 0), 0))}, PostgreSQL backends ` +
      `${c.postgres === null ? '-' : fmt(c.postgres)}, HAProxy ${c.haproxy === null ? '-' : fmt(c.haproxy)}, load generator ` +
      `${fmt(c.loadGenerator)}; whole machine ${fmt(c.machine)} of ${fmt(result.seconds * cpus().length)} available ` +
      `(load average ${loadavg()[0]!.toFixed(1)}).`,
  );
  const reasons = r.errorReasons();
  if (reasons.length > 0) {
    out('Errors:');
    for (const [reason, n] of reasons.slice(0, 12)) out(`  ${n} × ${reason}`);
    for (const s of r.samples.slice(0, 4)) out(`  e.g. ${s}`);
  }
}

export function chartFor(
  title: string,
  result: RunResult,
  options: { xFormat?: (x: number) => string; xLabel?: string; notes?: string[] } = {},
): Buffer {
  const timeline = result.recorder.timeline();
  const x = (s: number) => s + 0.5;
  const ops = [...new Set(timeline.flatMap((s) => Object.keys(s.p95ByOp)))];
  const latency: Series[] = [
    { name: 'p50 all', color: COLORS.green, points: timeline.map((s) => [x(s.second), s.p50] as const) },
    { name: 'p95 all', color: COLORS.orange, points: timeline.map((s) => [x(s.second), s.p95] as const) },
    { name: 'p99 all', color: COLORS.red, points: timeline.map((s) => [x(s.second), s.p99] as const) },
  ];
  const signInOps = ops.filter((o) => o.startsWith('sign-in'));
  const perOp: Series[] = ops.map((op, i) => ({
    name: `p95 ${op.replace(' + OIDC', '')}`,
    color: PALETTE[(i + 2) % PALETTE.length]!,
    points: timeline.map((s) => [x(s.second), s.p95ByOp[op] ?? Number.NaN] as const),
  }));
  const throughput: Series[] = [
    { name: 'completed ops/s', color: COLORS.blue, points: timeline.map((s) => [x(s.second), s.completed] as const) },
    { name: 'errors/s', color: COLORS.red, points: timeline.map((s) => [x(s.second), s.errors] as const) },
    ...(result.samples.some((s) => s.offered > 0)
      ? [{ name: 'offered ops/s', color: COLORS.grey, points: result.samples.map((s) => [s.t, s.offered] as const) }]
      : []),
  ];
  const nodes = Object.keys(result.rss);
  const rss: Series[] = nodes.map((n, i) => ({
    name: `${n} RSS`,
    color: PALETTE[i % PALETTE.length]!,
    points: result.samples.map((s) => [s.t, s.rss[n] ?? Number.NaN] as const),
  }));
  const panels: Panel[] = [
    { yLabel: 'latency ms (all operations, per second)', series: latency },
    ...(perOp.length > 1
      ? [{ yLabel: `p95 latency ms by operation (${signInOps.length} sign-in kinds)`, series: perOp }]
      : []),
    { yLabel: 'operations per second', series: throughput },
    ...(rss.length > 0 ? [{ yLabel: 'node memory, VmRSS MiB', series: rss }] : []),
  ];
  return renderChart({
    title,
    xLabel: options.xLabel ?? 'seconds since start',
    xFormat: options.xFormat,
    panels,
    notes: options.notes,
  });
}

export function save(name: string, report: Record<string, unknown>, png?: Buffer): { json: string; png?: string } {
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/[:]/g, '-')
    .replace(/\.\d+Z$/, 'Z');
  const json = join(RESULTS, `${name}-${stamp}.json`);
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverage: loadavg(),
  };
  writeFileSync(json, `${JSON.stringify({ at: new Date().toISOString(), machine, ...report }, null, 2)}\n`);
  let pngFile: string | undefined;
  if (png) {
    pngFile = join(RESULTS, `${name}-${stamp}.png`);
    writeFileSync(pngFile, png);
  }
  return { json, png: pngFile };
}

export function resultJson(result: RunResult, byNode: Map<string, number>) {
  return {
    seconds: result.seconds,
    operations: result.recorder.summary(result.seconds),
    errors: result.recorder.errorReasons(),
    errorSamples: result.recorder.samples,
    dropped: result.dropped,
    offered: result.offered,
    byNode: Object.fromEntries(byNode),
    cpu: result.cpu,
    rss: result.rss,
    timeline: result.recorder.timeline(),
    samples: result.samples,
  };
}

async function warmUp(flows: Flows, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await flows.signIn('card').catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------------

async function national(session: Session): Promise<void> {
  const { flows, target } = session;
  const inFlight = settings.concurrency || 64;
  out(
    `\nNational mix, ${settings.seconds} s standing for 07:00–11:00: ${settings.rate} sign-ins/s at the daily average, ` +
      `${settings.rate * 10}/s at the 09:00 peak (+ per sign-in 1 refresh, 1 userinfo, 0.2 RA searches); ≤ ${inFlight} in flight.`,
  );
  await warmUp(flows, 6);
  session.byNode.clear();
  const result = await drive({
    mode: 'open',
    seconds: settings.seconds,
    maxOps: settings.maxOps,
    concurrency: inFlight,
    ops: nationalOps(flows, settings.rate, settings.seconds),
    nodes: target.nodes,
    haproxyPid: target.haproxyPid,
    databaseUrl: target.databaseUrl,
    onSecond: progress(''),
  });
  printReport(`National mix on ${target.description}`, result, session.byNode, target.nodes);
  out(`Sign-in method substitutions (nobody free): security key ${flows.keyShortfall}, app ${flows.totpShortfall}.`);
  const png = chartFor(
    `OpenCIS load: national morning mix, ${target.nodes.length} node(s), peak ${settings.rate * 10} sign-ins/s`,
    result,
    {
      xLabel: 'simulated time of day (the run compresses 07:00-11:00)',
      xFormat: (s) => clockLabel(s / settings.seconds),
      notes: [
        `${result.recorder.totalOk} ok, ${result.recorder.totalErrors} errors in ${result.seconds.toFixed(0)} s on ${cpus().length} CPUs; ${target.description}`,
      ],
    },
  );
  const files = save(
    'load-national',
    { scenario: 'national', target: target.description, settings, ...resultJson(result, session.byNode) },
    png,
  );
  out(`\nWritten ${files.json}\n        ${files.png}`);
}

async function signinOnly(session: Session, label: string): Promise<RunResult> {
  const { flows, target } = session;
  const callers = settings.concurrency || 8;
  await warmUp(flows, 4);
  session.byNode.clear();
  const result = await drive({
    mode: 'closed',
    seconds: settings.seconds,
    maxOps: settings.maxOps,
    concurrency: callers,
    ops: [
      { kind: 'sign-in (card)', rate: () => 1, run: async () => METHOD_NAMES[(await flows.signIn('card')).method] },
    ],
    nodes: target.nodes,
    haproxyPid: target.haproxyPid,
    databaseUrl: target.databaseUrl,
    onSecond: progress(`${label} `),
  });
  printReport(
    `Whole AAL3 sign-ins, ${callers} callers, on ${target.description}`,
    result,
    session.byNode,
    target.nodes,
  );
  const ok = result.recorder.totalOk;
  const cpu = serverCpu(result);
  out(
    `\n→ ${fmt(ok / result.seconds)} whole AAL3 sign-ins/s (9 HTTP requests each); ${fmt(ok / cpu)} per server CPU-second ` +
      `(nodes + PostgreSQL backends, ${fmt(cpu)} s).`,
  );
  return result;
}

async function tokenOnly(session: Session): Promise<void> {
  const { flows, target } = session;
  const callers = settings.concurrency || 8;
  // Codes live 60 s: 4 000 are made in ~10–20 s here and used at once (a longer run than 1 500, so the JIT's warm-up
  // weighs less in the figure).
  const count = Math.min(settings.maxOps, 4_000);
  out(`\nMaking ${count} codes by single sign-on (not measured)…`);
  const codes = await flows.codesBySso(count, callers);
  let next = 0;
  session.byNode.clear();
  const result = await drive({
    mode: 'closed',
    seconds: Math.min(settings.seconds, 50),
    maxOps: codes.length,
    concurrency: callers,
    ops: [
      {
        kind: 'token + userinfo',
        rate: () => 1,
        run: async () => {
          const c = codes[next++];
          if (!c) return null;
          const t = await flows.exchange(c.code, c.verifier);
          await flows.userinfo(t.accessToken);
          return 'code → token, then userinfo';
        },
      },
    ],
    nodes: target.nodes,
    haproxyPid: target.haproxyPid,
    databaseUrl: target.databaseUrl,
    onSecond: progress(''),
  });
  printReport(`Token + userinfo, ${callers} callers, on ${target.description}`, result, session.byNode, target.nodes);
  const ok = result.recorder.totalOk;
  out(`\n→ ${fmt(ok / result.seconds)} token+userinfo pairs/s; ${fmt(ok / serverCpu(result))} per server CPU-second.`);
  save('load-token', {
    scenario: 'token',
    target: target.description,
    settings,
    ...resultJson(result, session.byNode),
  });
}

async function scale(): Promise<void> {
  const rows: string[][] = [];
  const runs: Record<string, unknown>[] = [];
  let population: Population | undefined;
  const counts = [...new Set([1, settings.nodes])];
  for (const [i, n] of counts.entries()) {
    out(`\n=== ${n} node${n === 1 ? '' : 's'} ===`);
    const target = await ownCluster({
      nodes: n,
      basePort: wholeNumber('LOAD_PORT', 3200, 1024, 65_000),
      schema: process.env.LOAD_SCHEMA || 'opencis_load',
      fresh: i === 0,
      log: (l) => out(`  ${l}`),
    });
    try {
      const session = population ? await connect(target, population) : await prepare(target);
      population = session.population;
      const result = await signinOnly(session, `${n}n`);
      const ok = result.recorder.totalOk;
      rows.push([
        String(n),
        String(settings.concurrency || 8),
        fmt(ok / result.seconds),
        fmt(ok / serverCpu(result)),
        fmt(result.recorder.summary(result.seconds)[0]?.p50 ?? Number.NaN, 0),
        fmt(result.recorder.summary(result.seconds)[0]?.p95 ?? Number.NaN, 0),
        String(result.recorder.totalErrors),
        fmt(result.cpu.machine / result.seconds, 2),
      ]);
      runs.push({ nodes: n, ...resultJson(result, session.byNode) });
      session.http.close();
    } finally {
      await target.close();
    }
  }
  out('\nThroughput from 1 to N nodes (whole AAL3 sign-ins, closed loop):\n');
  out(
    table(
      ['nodes', 'callers', 'sign-ins/s', 'per server CPU-s', 'p50 ms', 'p95 ms', 'errors', 'machine CPUs busy'],
      rows,
    ),
  );
  save('load-scale', { scenario: 'scale', settings, runs });
}

async function sessions(target: Target): Promise<void> {
  const node = target.cluster?.nodes[0];
  if (!node) throw new Error('the sessions scenario needs a cluster started by this run (LOAD_TARGET=own)');
  const population = await provision({
    databaseUrl: target.databaseUrl,
    schema: target.schema,
    secretsKey: target.secretsKey,
    publicUrl: target.publicUrl,
    cards: 50,
    totp: 1,
    keys: 1,
    raStaff: 1,
    log: out,
  });
  // Straight to node 1: every OpenID Connect session it holds is one it made.
  const direct: Target = { ...target, base: node.url, nodes: [target.nodes[0]!] };
  const session = await connect(direct, population);
  const redis = target.cluster?.redisUrl ? new Redis(target.cluster.redisUrl, { lazyConnect: false }) : null;
  const db = await openPostgres({ url: target.databaseUrl, schema: target.schema, poolSize: 8 });
  const measure = async () => {
    const info = redis ? await redis.info('memory') : '';
    const redisUsed = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN) / 2 ** 20;
    const { rows } = await db.query<{ n: string; bytes: string }>(
      "SELECT count(*)::text AS n, pg_total_relation_size('web_sessions')::text AS bytes FROM web_sessions WHERE ended_at IS NULL",
    );
    return {
      rss: rssMiB(node.pid),
      redisMiB: redisUsed,
      webSessions: Number(rows[0]!.n),
      webSessionsMiB: Number(rows[0]!.bytes) / 2 ** 20,
    };
  };
  await warmUp(session.flows, 20);
  const before = await measure();
  out(
    `\nBefore: node1 RSS ${fmt(before.rss ?? Number.NaN)} MiB; Redis ${fmt(before.redisMiB)} MiB; ${before.webSessions} live web sessions.`,
  );
  const callers = settings.concurrency || 8;
  const ctx = {
    db,
    clock: systemClock,
    actor: { kind: 'system' as const, id: 'web:anonymous' },
    requestId: null,
    // The nodes' secrets key, so the audit events these sessions write are keyed as the nodes' are.
    sealer: createSealer(Buffer.from(target.secretsKey, 'base64')),
  };
  const t0 = performance.now();
  const deadline = t0 + settings.seconds * 1000;
  let made = 0;
  let errors = 0;
  const samples: { t: number; sessions: number; rss: number | null }[] = [];
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      while (made < settings.sessions && performance.now() < deadline) {
        const i = made++;
        const holder = population.cards[(i + c) % population.cards.length]!;
        try {
          // The smartcard sign-in itself is measured elsewhere; here the web session is started as it would end.
          const { token } = await unitOfWork(db)((tx) =>
            startSession(
              tx,
              ctx,
              { userId: holder.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: `card:${holder.cardId}` },
              null,
              { ip: '127.0.0.1', userAgent: 'opencis-load' },
            ),
          );
          await session.flows.withWebSession(token);
        } catch (err) {
          made--;
          errors++;
          if (errors <= 5) out(`  error: ${err instanceof Error ? err.message : String(err)}`);
          if (errors > 100) throw new Error('too many errors');
        }
        if ((i + 1) % 1000 === 0) {
          const rss = rssMiB(node.pid);
          samples.push({ t: (performance.now() - t0) / 1000, sessions: i + 1, rss });
          out(
            `  ${i + 1} sessions, node1 RSS ${fmt(rss ?? Number.NaN)} MiB, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
          );
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 2_000));
  const after = await measure();
  const seconds = (performance.now() - t0) / 1000;
  out(
    `After ${made} sessions in ${seconds.toFixed(0)} s${made < settings.sessions ? ' (stopped by LOAD_SECONDS)' : ''}: node1 RSS ` +
      `${fmt(after.rss ?? Number.NaN)} MiB; Redis ${fmt(after.redisMiB)} MiB; ${after.webSessions} live web sessions ` +
      `(table + indexes ${fmt(after.webSessionsMiB)} MiB).`,
  );
  save('load-sessions', { scenario: 'sessions', made, errors, before, after, samples, seconds });
  redis?.disconnect();
  await db.close();
  session.http.close();
}

async function main(): Promise<void> {
  out(
    `OpenCIS load generator — scenario ${settings.scenario}; Node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}.`,
  );
  if (settings.scenario === 'scale') return scale();
  const target = await resolveTarget((l) => out(`  ${l}`));
  try {
    out(`Target: ${target.description}; requests to ${target.base}.`);
    if (settings.scenario === 'sessions') return await sessions(target);
    const session = await prepare(target);
    try {
      if (settings.scenario === 'national') await national(session);
      else if (settings.scenario === 'signin') {
        const result = await signinOnly(session, '');
        const png = chartFor(`OpenCIS load: whole AAL3 sign-ins, ${target.nodes.length} node(s)`, result);
        const files = save(
          'load-signin',
          { scenario: 'signin', target: target.description, settings, ...resultJson(result, session.byNode) },
          png,
        );
        out(`\nWritten ${files.json}\n        ${files.png}`);
      } else if (settings.scenario === 'token') await tokenOnly(session);
      else throw new Error(`unknown LOAD_SCENARIO ${settings.scenario}`);
    } finally {
      session.http.close();
    }
  } finally {
    await target.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
