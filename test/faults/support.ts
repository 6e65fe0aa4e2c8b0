/**
 * The fault suite's machinery (`npm run test:faults`). Faults are real: a node killed with SIGKILL, PostgreSQL
 * restarted with pg_ctlcluster, Redis killed and started again, the database made read-only.
 *
 * So that restarting a database never disturbs anyone else's tests on this machine, the suite has its OWN PostgreSQL
 * cluster and Redis: a Debian cluster "15/opencisfaults" on 127.0.0.1:5499 (created on first use with pg_createcluster,
 * trust authentication on loopback, started if stopped) and a redis-server on 127.0.0.1:6399 it starts and stops
 * itself. Each test file gets a database of its own in that cluster, dropped at the end. Override with
 * FAULTS_PG_VERSION / FAULTS_PG_CLUSTER / FAULTS_PG_PORT (e.g. FAULTS_PG_CLUSTER=main FAULTS_PG_PORT=5432 on a CI
 * machine where nothing else uses the server) and FAULTS_REDIS_PORT.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { drive, type OpSpec, type RunResult } from '../../bench/load/driver.ts';
import { Flows } from '../../bench/load/flows.ts';
import { HttpClient, HttpError } from '../../bench/load/http.ts';
import { type Population, provision } from '../../bench/load/provision.ts';
import { type Cluster, REPO_ROOT, startCluster } from '../../scripts/cluster/cluster.ts';

const run = promisify(execFile);

export const PG_VERSION = process.env.FAULTS_PG_VERSION || '15';
export const PG_CLUSTER = process.env.FAULTS_PG_CLUSTER || 'opencisfaults';
export const PG_PORT = Number(process.env.FAULTS_PG_PORT || 5499);
export const REDIS_PORT = Number(process.env.FAULTS_REDIS_PORT || 6399);
export const ADMIN_URL = `postgres://postgres@127.0.0.1:${PG_PORT}/postgres`;
export const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;

export const log = (line: string) => process.stderr.write(`# ${line}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL: a cluster of the suite's own

function clusterStatus(): 'online' | 'down' | 'missing' {
  const out = execFileSync('pg_lsclusters', ['-h'], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.split(/\s+/)[0] === PG_VERSION && l.split(/\s+/)[1] === PG_CLUSTER);
  if (!line) return 'missing';
  return line.split(/\s+/)[3] === 'online' ? 'online' : 'down';
}

export async function waitPostgres(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2_000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (err) {
      await c.end().catch(() => {});
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

/** Makes sure the suite's PostgreSQL cluster exists and runs. */
export async function ensurePostgres(): Promise<void> {
  const status = clusterStatus();
  if (status === 'missing') {
    log(`creating PostgreSQL cluster ${PG_VERSION}/${PG_CLUSTER} on 127.0.0.1:${PG_PORT} (first run only)`);
    execFileSync(
      'pg_createcluster',
      [PG_VERSION, PG_CLUSTER, '--port', String(PG_PORT), '--start-conf', 'manual', '--', '--auth=trust'],
      { stdio: 'ignore' },
    );
    // Room for several nodes' pools. (listen_addresses stays at its default, localhost: loopback only.)
    execFileSync('pg_conftool', [PG_VERSION, PG_CLUSTER, 'set', 'max_connections', '200'], { stdio: 'ignore' });
  }
  if (clusterStatus() !== 'online') {
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, PG_CLUSTER, 'start'], { stdio: 'ignore' });
  }
  await waitPostgres();
}

/** Restarts the suite's PostgreSQL (fast shutdown: open connections are cut, in-flight transactions roll back). */
export async function restartPostgres(): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, PG_CLUSTER, 'restart']);
}

export async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
  database = 'postgres',
): Promise<T[]> {
  const c = new pg.Client({ connectionString: databaseUrl(database) });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

export function databaseUrl(database: string): string {
  return `postgres://postgres@127.0.0.1:${PG_PORT}/${database}`;
}

/** A database of this test file's own in the suite's cluster. */
export async function createDatabase(prefix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  return {
    name,
    url: databaseUrl(name),
    async drop() {
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Redis: a server of the suite's own

export interface RedisServer {
  url: string;
  proc: ChildProcess;
  dir: string;
  /** SIGKILL (nothing saved) or SIGTERM (a clean shutdown, which saves when persistence is on). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function waitPort(port: number, open: boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const isOpen = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (isOpen === open) return;
    if (Date.now() > deadline) throw new Error(`port ${port} still ${isOpen ? 'open' : 'closed'}`);
    await sleep(100);
  }
}

/** A redis-server on 127.0.0.1:REDIS_PORT; `persistent` keeps an append-only file so a restart keeps the data. */
export async function startRedis(options: { persistent: boolean }): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'opencis-faults-redis-'));
  const args = [
    '--port',
    String(REDIS_PORT),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.persistent ? 'yes' : 'no',
    '--appendfsync',
    'always',
    '--protected-mode',
    'yes',
  ];
  const server: RedisServer = {
    url: REDIS_URL,
    proc: null as unknown as ChildProcess,
    dir,
    async start() {
      await waitPort(REDIS_PORT, false);
      server.proc = spawn('redis-server', args, { stdio: 'ignore' });
      await waitPort(REDIS_PORT, true);
    },
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      const p = server.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill(signal);
      await exited;
    },
    async close() {
      await server.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

// ---------------------------------------------------------------------------------------------------------------
// A cluster on the suite's database and Redis, and people to sign in

export interface FaultCluster {
  cluster: Cluster;
  population: Population;
  http: HttpClient;
  flows: Flows;
  db: { name: string; url: string; drop(): Promise<void> };
  close(): Promise<void>;
}

export async function faultCluster(options: {
  name: string;
  nodes: number;
  basePort: number;
  redisUrl: string | null;
  cards?: number;
}): Promise<FaultCluster> {
  await ensurePostgres();
  const db = await createDatabase(`f_${options.name}`);
  const stateDir = join(REPO_ROOT, 'scripts', 'cluster', '.state', `faults-${options.name}`);
  mkdirSync(stateDir, { recursive: true });
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster({
      nodes: options.nodes,
      basePort: options.basePort,
      databaseUrl: db.url,
      schema: 'opencis',
      redisUrl: options.redisUrl,
      stateDir,
      logLevel: 'warn',
      log,
    });
    const population = await provision({
      databaseUrl: db.url,
      schema: 'opencis',
      secretsKey: cluster.secretsKey,
      publicUrl: cluster.publicUrl,
      cards: options.cards ?? 24,
      totp: 4,
      keys: 4,
      raStaff: 3,
      log,
    });
    const http = new HttpClient(256);
    const flows = new Flows(http, await Flows.discover(http, cluster.lbUrl, population), population);
    const c = cluster;
    return {
      cluster: c,
      population,
      http,
      flows,
      db,
      async close() {
        http.close();
        await c.stop();
        await db.drop();
      },
    };
  } catch (err) {
    await cluster?.stop();
    await db.drop();
    throw err;
  }
}

/** `opencis audit verify` on a database, as an operator would run it; returns its exit code and output. */
export async function auditVerify(
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/opencis.js', 'audit', 'verify'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'silent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export async function assertAuditVerifies(fc: FaultCluster): Promise<void> {
  // The cluster's secrets key: the audit trail is keyed with a key derived from it.
  const res = await auditVerify({
    DATABASE_URL: fc.db.url,
    DATABASE_SCHEMA: 'opencis',
    SECRETS_KEY: fc.cluster.secretsKey,
  });
  assert.equal(res.code, 0, `opencis audit verify failed:\n${res.stdout}${res.stderr}`);
  log(res.stdout.trim());
}

// ---------------------------------------------------------------------------------------------------------------
// Load with writes, keeping every acknowledged write

export interface Acknowledged {
  /** People whose registration was answered 2xx. */
  registered: string[];
  /** Registrations that failed, by reason. */
  refused: Map<string, number>;
}

/** The national mix at a flat rate, plus RA registrations (writes), whose acknowledged user IDs are kept. */
export function loadWithWrites(flows: Flows, rate: number, writesPerSecond: number, acks: Acknowledged): OpSpec[] {
  let n = 0;
  const ops: OpSpec[] = [
    { kind: 'sign-in (card)', rate: () => rate * 0.8, run: async () => (await flows.signIn('card')) && 'sign-in' },
    { kind: 'sign-in (totp)', rate: () => rate * 0.1, run: async () => (await flows.signIn('totp')) && 'sign-in' },
    { kind: 'token refresh', rate: () => rate, run: async () => ((await flows.refresh()) ? 'refresh' : null) },
    { kind: 'userinfo', rate: () => rate, run: async () => ((await flows.userinfo()) ? 'userinfo' : null) },
    {
      kind: 'RA search',
      rate: () => rate * 0.2,
      run: async () => {
        await flows.raSearch();
        return 'RA search';
      },
    },
    {
      kind: 'RA register',
      rate: () => writesPerSecond,
      run: async () => {
        try {
          acks.registered.push(await flows.raRegister(n++ + 1_000 * Math.floor(Math.random() * 1_000)));
        } catch (err) {
          const reason = err instanceof HttpError ? `${err.status} ${err.code ?? ''}` : String(err).slice(0, 60);
          acks.refused.set(reason, (acks.refused.get(reason) ?? 0) + 1);
          throw err;
        }
        return 'RA register';
      },
    },
  ];
  return ops;
}

export function runLoad(fc: FaultCluster, ops: OpSpec[], seconds: number, signal?: AbortSignal): Promise<RunResult> {
  return drive({
    mode: 'open',
    seconds,
    maxOps: 50_000,
    concurrency: 48,
    ops,
    nodes: fc.cluster.nodes.map((n) => ({ name: n.name, pid: n.pid, applicationName: n.applicationName })),
    signal,
  });
}

/** Every acknowledged registration is in the database, whole: the person, their identity check and audit event. */
export async function assertAcknowledgedWritesKept(fc: FaultCluster, acks: Acknowledged): Promise<void> {
  const ids = acks.registered;
  const c = new pg.Client({ connectionString: fc.db.url });
  await c.connect();
  try {
    await c.query('SET search_path = opencis');
    const people = await c.query<{ user_id: string }>('SELECT user_id FROM people WHERE user_id = ANY($1)', [ids]);
    const found = new Set(people.rows.map((r) => r.user_id));
    const missing = ids.filter((id) => !found.has(id));
    assert.deepEqual(missing, [], `${missing.length} acknowledged registrations are missing`);
    const events = await c.query<{ target_id: string; n: string }>(
      "SELECT target_id, count(*)::text AS n FROM audit_events WHERE action = 'person.registered' AND target_id = ANY($1) GROUP BY target_id",
      [ids],
    );
    const audited = new Map(events.rows.map((r) => [r.target_id, Number(r.n)]));
    const unaudited = ids.filter((id) => audited.get(id) !== 1);
    assert.deepEqual(unaudited, [], 'every acknowledged registration has exactly one person.registered audit event');
    const checks = await c.query<{ n: string }>(
      'SELECT count(DISTINCT user_id)::text AS n FROM identity_checks WHERE user_id = ANY($1)',
      [ids],
    );
    assert.equal(Number(checks.rows[0]!.n), ids.length, 'every acknowledged registration has its identity check');
  } finally {
    await c.end();
  }
}

/**
 * A store's outage under load, from `start` to `end` (performance.now()): logged; from 5 s after it ended no request
 * failed and flows completed (back by itself, no restart); every refusal was a clear 503 — OpenCIS's
 * `service.unavailable` or the OpenID Connect endpoints' `temporarily_unavailable`, both with Retry-After — never a 500.
 */
export function assertOutageHandled(result: RunResult, what: string, start: number, end: number): void {
  const from = Math.floor((start - result.started) / 1000);
  const to = Math.ceil((end - result.started) / 1000);
  log(`${what} from second ${from} to ${to}`);
  log(`load: ${result.recorder.totalOk} ok, ${result.recorder.totalErrors} errors (${errorSummary(result)})`);
  const timeline = result.recorder.timeline();
  log(`errors per second: ${JSON.stringify(timeline.map((s) => s.errors))}`);
  // Recovered by itself within the run: flows completed after the last failure. (How soon is not asserted: on a slow
  // or busy machine reconnection takes longer; the callers then check that a fresh run has no failure at all.)
  const lastError = Math.max(-1, ...timeline.filter((s) => s.errors > 0).map((s) => s.second));
  const recovered = timeline.filter((s) => s.second > lastError).reduce((n, s) => n + s.completed, 0);
  assert.ok(recovered > 0, `flows completed after the last failure (${what}): ${errorSummary(result)}`);
  for (const [reason] of result.recorder.errorReasons()) {
    assert.match(reason, /HTTP 503/, `unexpected failure: ${reason}`);
  }
}

export function errorSummary(result: RunResult): string {
  return result.recorder
    .errorReasons()
    .map(([r, n]) => `${n} × ${r}`)
    .join('; ');
}

/** Errors of the run by the second they happened in (relative to its start). */
export function errorSeconds(result: RunResult): number[] {
  return result.recorder
    .timeline()
    .filter((s) => s.errors > 0)
    .map((s) => s.second);
}
