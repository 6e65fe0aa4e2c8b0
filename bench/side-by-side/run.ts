/**
 * Side by side: `npm run bench:side-by-side`. The same sign-in — authorization code flow with PKCE, then the relying
 * party's token and userinfo calls — measured in one run, one server after the other, with the same client code and
 * callers, against:
 *
 *   OpenCIS               one node (`node bin/opencis.js serve`, PostgreSQL + Redis), reached directly:
 *                           · a whole CIS2 sign-in with a smartcard (AAL3): authorize → interaction → sign-in page →
 *                             card challenge → card verify → interaction → resume → token → userinfo (9 requests);
 *                           · the same with a web session already there (single sign-on, 5 requests): the protocol
 *                             part alone, what the other servers do;
 *   bare oidc-provider    the library OpenCIS is built on, alone (bench/side-by-side/bare-provider.ts): an interaction
 *                         that finishes at once, no authentication (5 requests) — the floor;
 *   Glewlwyd 2.7          from Debian (bench/side-by-side/glewlwyd.ts): a password sign-in (5 requests), on SQLite
 *                         (one caller: its SQLite store fails writes under concurrency) and on the same PostgreSQL.
 *
 * Each is reported per wall-clock second and per CPU-second of the server (its process, plus its PostgreSQL backends
 * when it uses PostgreSQL), and as a ratio to OpenCIS's smartcard sign-in. Prints tables; writes
 * bench/results/side-by-side-<time>.json.
 *
 * After each measurement, SBS_STEP_FLOWS flows (default 200) run with one caller, and the server CPU of each of their
 * HTTP requests is read from /proc (bench/side-by-side/profile.ts): the per-step tables, and the token + userinfo
 * ratio to the bare provider. Ratios to the bare provider are printed against issue 20's floors.
 *
 * BENCH_PROFILE=1: each server runs with the V8 inspector on loopback and each measurement is CPU-profiled; the kinds
 * of work are printed, and everything goes to bench/results/profile-<time>.json — a profiled run is slower, so its
 * figures never go where the side-by-side figures are read.
 *
 * Settings: SBS_SECONDS (per measurement, default 15, ≤ 60), SBS_CONCURRENCY (callers, 8), SBS_MAX_OPS (5000),
 * SBS_STEP_FLOWS (200), SBS_PORT (3400: OpenCIS on 3401, the bare provider on 3410, Glewlwyd on 3420; inspectors on
 * 3450 and 3451).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { DEFAULT_DATABASE_URL, startCluster } from '../../scripts/cluster/cluster.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { systemClock } from '../../src/services/context.ts';
import { startSession } from '../../src/services/sessions.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { drive, type NodeInfo, type RunResult } from '../load/driver.ts';
import { Flows } from '../load/flows.ts';
import { HttpClient, HttpError, Jar } from '../load/http.ts';
import { fmt, table } from '../load/metrics.ts';
import { provision } from '../load/provision.ts';
import { save } from '../load/run.ts';
import { wholeNumber } from '../load/target.ts';
import { BARE_REDIRECT_URI } from './bare-provider.ts';
import { glewlwydMissing, glewlwydSignIn, startGlewlwyd } from './glewlwyd.ts';
import { Inspector, KINDS, type KindTable, kindsOf, StepMeter } from './profile.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const out = (line = '') => process.stdout.write(`${line}\n`);

const settings = {
  seconds: wholeNumber('SBS_SECONDS', 15, 1, 60),
  concurrency: wholeNumber('SBS_CONCURRENCY', 8, 1, 256),
  maxOps: wholeNumber('SBS_MAX_OPS', 5_000, 10, 100_000),
  port: wholeNumber('SBS_PORT', 3400, 1024, 65_000),
  stepFlows: wholeNumber('SBS_STEP_FLOWS', 200, 0, 10_000),
  profile: process.env.BENCH_PROFILE === '1',
};

/** Issue 20's floors, as flows per server CPU-second relative to the bare provider in the same run. */
const FLOORS = { smartcard: 0.4, sso: 0.6, tokenUserinfo: 0.5 };

interface Row {
  server: string;
  callers: number;
  flow: string;
  requests: number;
  result: RunResult;
  flowsPerSecond: number;
  perCpuSecond: number;
  cpuMsPerFlow: number;
  rssMiB: number | null;
  detail: string;
  /** Server CPU ms per HTTP request of the flow, one caller. */
  steps: { step: string; count: number; cpuMs: number }[];
  /** Where the CPU went (BENCH_PROFILE=1). */
  kinds: KindTable | null;
}

async function measure(
  server: string,
  flow: string,
  requests: number,
  node: NodeInfo,
  run: () => Promise<void>,
  options: {
    databaseUrl?: string;
    detail: string;
    callers?: number;
    inspector?: Inspector | null;
    /** Meters each step of `run` (the flow's HTTP requests go through it while set). */
    meterSteps?: (meter: StepMeter | null) => void;
    backendPids?: () => Promise<number[]>;
  },
): Promise<Row> {
  const callers = options.callers ?? settings.concurrency;
  for (let i = 0; i < 10; i++) await run(); // warm-up
  const driven = () =>
    drive({
      mode: 'closed',
      seconds: settings.seconds,
      maxOps: settings.maxOps,
      concurrency: callers,
      ops: [
        {
          kind: flow,
          rate: () => 1,
          run: async () => {
            await run();
            return flow;
          },
        },
      ],
      nodes: [node],
      databaseUrl: options.databaseUrl,
    });
  let kinds: KindTable | null = null;
  let result: RunResult;
  if (options.inspector) {
    const profiled = await options.inspector.profile(driven);
    result = profiled.out;
    kinds = kindsOf(profiled.profile);
  } else {
    result = await driven();
  }
  let steps: Row['steps'] = [];
  if (options.meterSteps && settings.stepFlows > 0) {
    const meter = new StepMeter(node.pid, (await options.backendPids?.()) ?? []);
    options.meterSteps(meter);
    try {
      for (let i = 0; i < settings.stepFlows; i++) await run();
    } finally {
      options.meterSteps(null);
    }
    steps = meter.table();
  }
  const ok = result.recorder.totalOk;
  const cpu = (result.cpu.nodes[node.name] ?? 0) + (result.cpu.postgres ?? 0);
  const s = result.recorder.summary(result.seconds).find((x) => x.op === flow);
  const row: Row = {
    server,
    callers,
    flow,
    requests,
    result,
    flowsPerSecond: ok / result.seconds,
    perCpuSecond: ok / Math.max(cpu, 1e-9),
    cpuMsPerFlow: (cpu * 1000) / Math.max(ok, 1),
    rssMiB: result.rss[node.name]?.end ?? null,
    detail: options.detail,
    steps,
    kinds,
  };
  out(
    `  ${server} — ${flow}: ${ok} flows in ${result.seconds.toFixed(1)} s, ${fmt(row.flowsPerSecond)}/s, ` +
      `${fmt(row.perCpuSecond)}/server CPU-s, p50 ${fmt(s?.p50 ?? Number.NaN)} ms, p95 ${fmt(s?.p95 ?? Number.NaN)} ms` +
      `${result.recorder.totalErrors ? `, ${result.recorder.totalErrors} errors (${result.recorder.errorReasons()[0]?.[0]})` : ''}`,
  );
  return row;
}

/** A relying party's code flow on a provider whose interaction finishes by itself (follows redirects to the code). */
type Around = <T>(step: string, run: () => Promise<T>) => Promise<T>;
const direct: Around = (_step, run) => run();

async function bareSignIn(
  http: HttpClient,
  base: string,
  clientId: string,
  basic: string,
  around: Around = direct,
): Promise<void> {
  const jar = new Jar();
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: BARE_REDIRECT_URI,
    scope: 'openid profile',
    state: randomBytes(12).toString('base64url'),
    nonce: randomBytes(12).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  let url = `${base}/auth?${query}`;
  for (let hops = 0; hops < 6 && !url.startsWith(BARE_REDIRECT_URI); hops++) {
    const path = new URL(url).pathname;
    const step = path === '/auth' ? 'authorize' : path.startsWith('/interaction/') ? 'interaction' : 'resume';
    const res = await around(step, () => http.request(url, 'GET', { cookie: jar.header() }));
    jar.absorb(res);
    if (res.status < 300 || res.status >= 400 || !res.headers.location)
      throw new HttpError('bare', res.status, res.body);
    const next = new URL(res.headers.location, url);
    url = next.href.startsWith(BARE_REDIRECT_URI) ? next.href : `${base}${next.pathname}${next.search}`;
  }
  const code = new URL(url).searchParams.get('code');
  if (!code) throw new Error(`bare: no code (${url})`);
  const token = await around('token (code)', () =>
    http.request(
      `${base}/token`,
      'POST',
      { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: BARE_REDIRECT_URI,
        code_verifier: verifier,
      }).toString(),
    ),
  );
  if (token.status !== 200) throw new HttpError('bare token', token.status, token.body);
  const { access_token: access } = JSON.parse(token.body) as { access_token: string };
  const info = await around('userinfo', () => http.request(`${base}/me`, 'GET', { authorization: `Bearer ${access}` }));
  if (info.status !== 200) throw new HttpError('bare userinfo', info.status, info.body);
}

async function startBare(port: number): Promise<{ proc: ChildProcess; base: string; clientId: string; basic: string }> {
  const inspect = settings.profile ? [`--inspect=127.0.0.1:${settings.port + 51}`] : [];
  const proc = spawn(process.execPath, [...inspect, '--import', 'tsx', join(HERE, 'bare-provider.ts'), String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ issuer: string; clientId: string; clientSecret: string }>((resolve, reject) => {
    let buffer = '';
    proc.stdout?.on('data', (c: Buffer) => {
      buffer += c.toString();
      const line = buffer.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as { issuer: string; clientId: string; clientSecret: string });
    });
    proc.once('exit', (code) => reject(new Error(`bare provider exited with ${code}`)));
  });
  return {
    proc,
    base: ready.issuer,
    clientId: ready.clientId,
    basic: `Basic ${Buffer.from(`${encodeURIComponent(ready.clientId)}:${encodeURIComponent(ready.clientSecret)}`).toString('base64')}`,
  };
}

/** The PostgreSQL backends of a node's pool (by application_name), whose CPU counts as the server's. */
async function backendsOf(databaseUrl: string, applicationName: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return rows.map((r) => r.pid);
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  out(
    `Side by side: ${settings.concurrency} callers, ≤ ${settings.seconds} s and ≤ ${settings.maxOps} flows per measurement; ` +
      `Node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}.`,
  );
  const rows: Row[] = [];
  const notes: string[] = [];
  const http = new HttpClient(256);

  // ---- OpenCIS: one node on PostgreSQL + Redis
  out('\nOpenCIS (one node, PostgreSQL + Redis)…');
  if (settings.profile) {
    out('BENCH_PROFILE=1: servers run with the V8 inspector and are profiled; these figures are not the benchmark.');
    process.env.CLUSTER_NODE_ARGS = `${process.env.CLUSTER_NODE_ARGS ?? ''} --inspect=127.0.0.1:${settings.port + 50}`;
  }
  const cluster = await startCluster({
    nodes: 1,
    basePort: settings.port,
    schema: 'opencis_sbs',
    fresh: true,
    log: (l) => out(`  ${l}`),
  });
  try {
    const node = cluster.nodes[0]!;
    const info: NodeInfo = { name: node.name, pid: node.pid, applicationName: node.applicationName };
    const population = await provision({
      databaseUrl: cluster.databaseUrl,
      schema: cluster.schema,
      secretsKey: cluster.secretsKey,
      publicUrl: cluster.publicUrl,
      cards: 100,
      totp: 1,
      keys: 1,
      raStaff: 1,
    });
    const flows = new Flows(http, await Flows.discover(http, node.url, population), population);
    const inspector = settings.profile ? await Inspector.connect(settings.port + 50) : null;
    const metering = {
      inspector,
      meterSteps: (meter: StepMeter | null) => {
        flows.around = meter ? (step, run) => meter.around(step, run) : (_step, run) => run();
      },
      backendPids: () => backendsOf(cluster.databaseUrl, node.applicationName),
    };
    rows.push(
      await measure(
        'OpenCIS',
        'smartcard sign-in (AAL3) + code + token + userinfo',
        9,
        info,
        async () => {
          await flows.signIn('card');
        },
        { databaseUrl: cluster.databaseUrl, detail: 'one node, PostgreSQL 15 + Redis 7', ...metering },
      ),
    );
    // Web sessions made beforehand (as a smartcard sign-in ends), for the protocol-only flow.
    const db = await openPostgres({ url: cluster.databaseUrl, schema: cluster.schema, poolSize: 4 });
    const sessions: string[] = [];
    try {
      for (const c of population.cards) {
        const { token } = await unitOfWork(db)((tx) =>
          startSession(
            tx,
            {
              clock: systemClock,
              actor: { kind: 'system', id: 'web:anonymous' },
              requestId: null,
              sealer: createSealer(Buffer.from(cluster.secretsKey, 'base64')),
            },
            { userId: c.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: `card:${c.cardId}` },
            null,
            { ip: '127.0.0.1', userAgent: 'side-by-side' },
          ),
        );
        sessions.push(token);
      }
    } finally {
      await db.close();
    }
    let n = 0;
    rows.push(
      await measure(
        'OpenCIS',
        'web session already there (SSO) + code + token + userinfo',
        5,
        info,
        async () => {
          const t = await flows.withWebSession(sessions[n++ % sessions.length]!);
          await flows.userinfo(t.accessToken);
        },
        { databaseUrl: cluster.databaseUrl, detail: 'one node, PostgreSQL 15 + Redis 7', ...metering },
      ),
    );
    inspector?.close();
  } finally {
    await cluster.stop();
  }

  // ---- bare oidc-provider
  out('\nBare oidc-provider…');
  const bare = await startBare(settings.port + 10);
  try {
    const inspector = settings.profile ? await Inspector.connect(settings.port + 51) : null;
    let around: Around = direct;
    rows.push(
      await measure(
        'bare oidc-provider',
        'no authentication (interaction finishes at once) + code + token + userinfo',
        5,
        { name: 'bare', pid: bare.proc.pid ?? null, applicationName: 'none' },
        () => bareSignIn(http, bare.base, bare.clientId, bare.basic, around),
        {
          detail: 'oidc-provider 9, in-process Map store',
          inspector,
          meterSteps: (meter) => {
            around = meter ? (step, run) => meter.around(step, run) : direct;
          },
        },
      ),
    );
    inspector?.close();
  } finally {
    const exited = new Promise<void>((r) => bare.proc.once('exit', () => r()));
    bare.proc.kill('SIGTERM');
    await exited;
  }

  // ---- Glewlwyd (Debian)
  const missing = glewlwydMissing();
  if (missing) {
    notes.push(`Glewlwyd not measured: ${missing}`);
    out(`\nGlewlwyd not measured: ${missing}`);
  } else {
    // On SQLite, one caller at a time: its SQLite store fails writes under concurrent callers (HTTP 500 at the token
    // endpoint, "Error executing sql query" in its log — measured once, see bench/README.md).
    out('\nGlewlwyd (Debian package) on SQLite…');
    const lite = await startGlewlwyd(http, settings.port + 20);
    try {
      rows.push(
        await measure(
          `Glewlwyd ${lite.version}, SQLite`,
          'password sign-in + code + token + userinfo',
          5,
          { name: 'glewlwyd', pid: lite.pid, applicationName: 'none' },
          () => glewlwydSignIn(http, lite),
          { detail: `Glewlwyd ${lite.version} (Debian 12 package), SQLite`, callers: 1 },
        ),
      );
    } finally {
      await lite.stop();
    }
    // On the same PostgreSQL as OpenCIS: one caller, then as many callers as the others had (it fails some flows
    // under concurrency there too: "invalid_code", "Error executing sql query").
    out('\nGlewlwyd (Debian package) on PostgreSQL…');
    const onPg = await startGlewlwyd(http, settings.port + 21, { postgres: DEFAULT_DATABASE_URL });
    try {
      for (const callers of [1, settings.concurrency]) {
        rows.push(
          await measure(
            `Glewlwyd ${onPg.version}, PostgreSQL`,
            'password sign-in + code + token + userinfo',
            5,
            { name: 'glewlwyd', pid: onPg.pid, applicationName: 'glewlwyd-bench' },
            () => glewlwydSignIn(http, onPg),
            {
              detail: `Glewlwyd ${onPg.version} (Debian 12 package), PostgreSQL 15`,
              databaseUrl: DEFAULT_DATABASE_URL,
              callers,
            },
          ),
        );
      }
      const errors = onPg
        .log()
        .split('\n')
        .filter((l) => /ERROR/.test(l));
      if (errors.length > 0)
        notes.push(`Glewlwyd on PostgreSQL logged ${errors.length} errors, e.g. "${errors[0]!.slice(0, 160)}".`);
    } finally {
      await onPg.stop();
    }
  }
  notes.push(
    'lemonldap-ng (Debian) not measured: it needs a web server (nginx or Apache with its FastCGI handler), a portal, ' +
      'and an OpenID Connect provider and relying party configured through its manager; see bench/README.md.',
  );
  http.close();

  const reference = rows[0]!;
  const bareRow = rows.find((r) => r.server === 'bare oidc-provider') ?? null;
  const xBare = (r: Row) => (bareRow ? r.perCpuSecond / bareRow.perCpuSecond : Number.NaN);
  out('\n');
  out(
    table(
      [
        'server',
        'flow',
        'callers',
        'req/flow',
        'flows',
        'errors',
        'flows/s',
        'flows/server CPU-s',
        'CPU ms/flow',
        'p50 ms',
        'p95 ms',
        'RSS MiB',
        '× OpenCIS (CPU-s)',
        '× bare (CPU-s)',
      ],
      rows.map((r) => {
        const s = r.result.recorder.summary(r.result.seconds).find((x) => x.op === r.flow);
        return [
          r.server,
          r.flow,
          String(r.callers),
          String(r.requests),
          String(r.result.recorder.totalOk),
          String(r.result.recorder.totalErrors),
          fmt(r.flowsPerSecond),
          fmt(r.perCpuSecond),
          fmt(r.cpuMsPerFlow, 2),
          fmt(s?.p50 ?? Number.NaN),
          fmt(s?.p95 ?? Number.NaN),
          r.rssMiB === null ? '-' : fmt(r.rssMiB, 0),
          fmt(r.perCpuSecond / reference.perCpuSecond, 2),
          fmt(xBare(r), 2),
        ];
      }),
      3,
    ),
  );
  out('');
  out(
    `Server CPU: the server process, plus its PostgreSQL backends when it uses PostgreSQL (Redis's CPU is not counted). ` +
      `× OpenCIS: flows per server CPU-second as a multiple of OpenCIS's smartcard sign-in. All servers ran on this ` +
      `machine one after the other, the load generator beside them.`,
  );
  for (const n of notes) out(n);

  // ---- ratios to the bare provider (issue 20's floors), per step, and (profiled) per kind of work
  const stepMs = (r: Row | null | undefined, names: string[]) =>
    r ? names.reduce((sum, n) => sum + (r.steps.find((s) => s.step === n)?.cpuMs ?? Number.NaN), 0) : Number.NaN;
  const sso = rows.find((r) => r.flow.startsWith('web session'));
  const tokenUserinfo = ['token (code)', 'userinfo'];
  const ratios = [
    { what: 'smartcard sign-in (AAL3) + code + token + userinfo', ratio: xBare(reference), floor: FLOORS.smartcard },
    {
      what: 'web session already there (SSO) + code + token + userinfo',
      ratio: sso ? xBare(sso) : Number.NaN,
      floor: FLOORS.sso,
    },
    {
      what: 'token + userinfo (server CPU per step, one caller)',
      ratio: stepMs(bareRow, tokenUserinfo) / stepMs(sso, tokenUserinfo),
      floor: FLOORS.tokenUserinfo,
    },
  ];
  out('\nRatios to the bare oidc-provider in this run (flows per server CPU-second; issue 20):');
  out(
    table(
      ['flow', '× bare', 'floor', 'errors'],
      ratios.map((x, i) => [
        x.what,
        fmt(x.ratio, 3),
        `≥ ${x.floor}`,
        i === 2 ? '-' : String((i === 0 ? reference : sso)?.result.recorder.totalErrors ?? '-'),
      ]),
      1,
    ),
  );
  const stepped = rows.filter((r) => r.steps.length > 0);
  if (stepped.length > 0) {
    out(
      `\nServer CPU per step, ms (mean of ${settings.stepFlows} flows, one caller; process threads + PostgreSQL backends):`,
    );
    for (const r of stepped) {
      const total = r.steps.reduce((s, x) => s + x.cpuMs, 0);
      out(`\n${r.server} — ${r.flow}: ${fmt(total, 2)} ms per flow`);
      out(
        table(
          ['step', 'CPU ms', 'share'],
          r.steps.map((s) => [s.step, fmt(s.cpuMs, 2), `${fmt((100 * s.cpuMs) / total, 0)}%`]),
          1,
        ),
      );
    }
  }
  const profiled = rows.filter((r) => r.kinds);
  if (profiled.length > 0) {
    out(
      '\nWhere the CPU goes, by kind of work (V8 samples of the server process; its PostgreSQL backends not included):',
    );
    out(
      table(
        ['kind', ...profiled.map((r) => `${r.server}: ${r.flow.split(' + ')[0]}`)],
        [
          ...KINDS.map((k) => [
            k,
            ...profiled.map((r) => {
              const all = Object.values(r.kinds!.ms).reduce((a, b) => a + b, 0);
              return `${fmt((100 * r.kinds!.ms[k]) / all, 1)}%`;
            }),
          ]),
          [
            'audit writer on the stack (in the kinds above)',
            ...profiled.map((r) => {
              const all = Object.values(r.kinds!.ms).reduce((a, b) => a + b, 0);
              return `${fmt((100 * r.kinds!.auditMs) / all, 1)}%`;
            }),
          ],
        ],
        1,
      ),
    );
    for (const r of profiled) {
      out(`\nMost self time — ${r.server}, ${r.flow}:`);
      for (const t of r.kinds!.top.slice(0, 10)) out(`  ${fmt(t.ms, 0).padStart(7)} ms  ${t.frame}`);
    }
  }

  const file = save(settings.profile ? 'profile' : 'side-by-side', {
    profiled: settings.profile,
    ratiosToBare: ratios,
    settings,
    notes,
    rows: rows.map((r) => ({
      server: r.server,
      callers: r.callers,
      flow: r.flow,
      requestsPerFlow: r.requests,
      detail: r.detail,
      flowsPerSecond: r.flowsPerSecond,
      flowsPerServerCpuSecond: r.perCpuSecond,
      cpuMsPerFlow: r.cpuMsPerFlow,
      ratioToOpencis: r.perCpuSecond / reference.perCpuSecond,
      ratioToBare: xBare(r),
      steps: r.steps,
      kinds: r.kinds,
      rssMiB: r.rssMiB,
      operations: r.result.recorder.summary(r.result.seconds),
      errors: r.result.recorder.errorReasons(),
      cpu: r.result.cpu,
      seconds: r.result.seconds,
    })),
  });
  out(`\nWritten ${file.json}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
