/**
 * Authentication throughput: `npm run bench:auth`.
 *
 * Times the server's side of signing in — smartcard (AAL3) and WebAuthn — in the services and end to end over HTTP on
 * the real app, the server's part of issuing a card (and, when SoftHSM2 is installed, a full issue through the real
 * card agent), next to the physical limits measured in the same run: raw node:crypto ECDSA P-256 verify and sign,
 * RS256 sign, and a bare `SELECT 1` round trip on the same database. Every figure is given per wall-clock second and
 * per CPU-second (process.cpuUsage(), plus the PostgreSQL backends' CPU when on PostgreSQL): the server and the load
 * share this one Node process on a 2-core machine, so CPU-seconds are the honest per-core figure.
 *
 * Prints a table and writes the figures to bench/results/auth-<date>.json.
 *
 * Settings (environment): BENCH_DATABASE_URL (PostgreSQL on a loopback address; default: in-memory PGlite),
 * BENCH_CARDS, BENCH_AGENT_CARDS, BENCH_CONCURRENCY, BENCH_MAX_SECONDS (cap on each measurement, ≤ 20),
 * BENCH_MAX_OPS (cap on each measurement's operations).
 */
import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
} from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.ts';
import type { RunningCardAgent } from '../src/card-agent/main.ts';
import { type Config, loadConfig } from '../src/config.ts';
import { cardConfigFrom, relyingPartyFrom } from '../src/http/deps.ts';
import { createSealer } from '../src/secrets/sealer.ts';
import {
  type CardConfig,
  certifyCard,
  finishCardSignIn,
  passcodeGrant,
  redeemCardGrant,
  startCardChallenge,
  startCardIssue,
} from '../src/services/cards.ts';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from '../src/services/catalogue.ts';
import { ensureCertificateAuthority, verifyAuthenticationCertificate } from '../src/services/certificates.ts';
import { type ServiceContext, serviceContext, systemClock } from '../src/services/context.ts';
import { registerPerson } from '../src/services/people.ts';
import { type SignInResult, startSession } from '../src/services/sessions.ts';
import {
  finishWebauthnAuthentication,
  finishWebauthnRegistration,
  type RelyingPartyConfig,
  startWebauthnAuthentication,
  startWebauthnRegistration,
} from '../src/services/webauthn.ts';
import type { Database } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openPglite } from '../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../src/storage/postgres.ts';
import { repositoriesOn, unitOfWork } from '../src/storage/repositories/index.ts';
import { SoftwareCardKey } from '../test/support/card.ts';
import { SoftwareAuthenticator } from '../test/support/webauthn-authenticator.ts';

const settings = {
  databaseUrl: process.env.BENCH_DATABASE_URL || null,
  cards: wholeNumber('BENCH_CARDS', 200, 10),
  agentCards: wholeNumber('BENCH_AGENT_CARDS', 20, 0),
  concurrency: wholeNumber('BENCH_CONCURRENCY', 8, 1),
  maxSeconds: Math.min(20, wholeNumber('BENCH_MAX_SECONDS', 10, 1)),
  maxOps: wholeNumber('BENCH_MAX_OPS', 50_000, 100),
  cryptoSeconds: 3,
};

function wholeNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}`);
  return n;
}

const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TRANSPORT_SO_PIN = '13572468';
const PASSCODE = '480215';
const APPLICATION_NAME = 'opencis-bench-auth';

// ---------------------------------------------------------------------------------------------------------------
// Measuring

interface Measurement {
  group: 'baseline' | 'smartcard' | 'webauthn' | 'issue';
  name: string;
  callers: number;
  ops: number;
  errors: number;
  wallSeconds: number;
  /** This process's user + system CPU over the measurement. */
  processCpuSeconds: number;
  /** CPU of the PostgreSQL backends serving this process (0 on PGlite, which runs inside the process). */
  databaseCpuSeconds: number;
  /** Synchronous work done for the load rather than by the server (card and authenticator signatures), measured. */
  clientSeconds: number;
  /** Busy time of every CPU on the machine (includes anything else running). */
  machineCpuSeconds: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  opsPerSecond: number;
  /** ops / (process CPU + database CPU − measured client work). */
  opsPerCpuSecond: number;
  cpuMsPerOp: number;
  /** Wall time of one op in `SELECT 1` round trips with the same number of callers. */
  selectOnes?: number;
  /** CPU time of one op in raw ECDSA P-256 verifications. */
  ecdsaVerifies?: number;
}

/** Synchronous client-side work inside a timed op (signing as the card or authenticator would), summed. */
class ClientWork {
  ms = 0;
  run<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.ms += performance.now() - t0;
    }
  }
}

type Op = (caller: number, i: number, client: ClientWork) => Promise<void>;

interface CpuSnapshot {
  at: number;
  process: NodeJS.CpuUsage;
  machineMs: number;
  databaseSeconds: number;
}

let databaseCpu: () => Promise<number> = async () => 0;

function machineBusyMs(): number {
  return cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
}

async function snapshot(): Promise<CpuSnapshot> {
  const databaseSeconds = await databaseCpu();
  return { at: performance.now(), process: process.cpuUsage(), machineMs: machineBusyMs(), databaseSeconds };
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function summarise(
  group: Measurement['group'],
  name: string,
  callers: number,
  latencies: number[],
  errors: number,
  clientMs: number,
  start: CpuSnapshot,
  end: CpuSnapshot,
): Measurement {
  latencies.sort((a, b) => a - b);
  const wallSeconds = (end.at - start.at) / 1000;
  const cpu = process.cpuUsage(start.process);
  const processCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const databaseCpuSeconds = Math.max(0, end.databaseSeconds - start.databaseSeconds);
  const clientSeconds = clientMs / 1000;
  const ops = latencies.length;
  const serverCpu = Math.max(1e-9, processCpuSeconds + databaseCpuSeconds - clientSeconds);
  return {
    group,
    name,
    callers,
    ops,
    errors,
    wallSeconds,
    processCpuSeconds,
    databaseCpuSeconds,
    clientSeconds,
    machineCpuSeconds: (end.machineMs - start.machineMs) / 1000,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    p99: percentile(latencies, 0.99),
    max: latencies.at(-1) ?? 0,
    opsPerSecond: ops / wallSeconds,
    opsPerCpuSecond: ops / serverCpu,
    cpuMsPerOp: (serverCpu * 1000) / Math.max(1, ops),
  };
}

/** Runs `op` from `callers` concurrent loops until BENCH_MAX_OPS ops or BENCH_MAX_SECONDS, after a short warm-up. */
async function measure(
  group: Measurement['group'],
  name: string,
  op: Op,
  callers: number,
  limits: { maxOps?: number; warmup?: number } = {},
): Promise<Measurement> {
  const maxOps = limits.maxOps ?? settings.maxOps;
  const warmup = new ClientWork();
  for (let i = 0; i < (limits.warmup ?? 20); i++) await op(i % callers, i, warmup);
  const latencies: number[] = [];
  const client = new ClientWork();
  let next = 0;
  let errors = 0;
  const start = await snapshot();
  const deadline = start.at + settings.maxSeconds * 1000;
  const loop = async (caller: number) => {
    while (next < maxOps && performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      try {
        await op(caller, i, client);
      } catch (err) {
        errors++;
        if (errors === 1) out(`    first error: ${err instanceof Error ? err.message : String(err)}`);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, c) => loop(c)));
  const m = summarise(group, name, callers, latencies, errors, client.ms, start, await snapshot());
  report(m);
  return m;
}

/** A synchronous loop (raw crypto): no event loop, no database, one core. */
async function measureSync(name: string, op: (i: number) => void): Promise<Measurement> {
  for (let i = 0; i < 200; i++) op(i);
  const latencies: number[] = [];
  const start = await snapshot();
  const deadline = start.at + settings.cryptoSeconds * 1000;
  for (let i = 0; i < settings.maxOps * 10; i++) {
    const t0 = performance.now();
    op(i);
    const t1 = performance.now();
    latencies.push(t1 - t0);
    if (t1 > deadline) break;
  }
  const m = summarise('baseline', name, 1, latencies, 0, 0, start, await snapshot());
  report(m);
  return m;
}

/** Times each of a fixed list of sequential jobs (card issues): latency per job, CPU over them all. */
async function measureEach(
  group: Measurement['group'],
  name: string,
  count: number,
  job: (i: number, client: ClientWork) => Promise<void>,
  between: (i: number) => void = () => {},
): Promise<Measurement> {
  const latencies: number[] = [];
  const client = new ClientWork();
  let untimed = 0;
  const start = await snapshot();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await job(i, client);
    const t1 = performance.now();
    latencies.push(t1 - t0);
    // Work between jobs (preparing the next token) is left out of the wall time and charged as client work.
    const before = process.cpuUsage();
    between(i);
    const spent = process.cpuUsage(before);
    client.ms += (spent.user + spent.system) / 1000;
    untimed += performance.now() - t1;
  }
  const end = await snapshot();
  end.at -= untimed;
  const m = summarise(group, name, 1, latencies, 0, client.ms, start, end);
  report(m);
  return m;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function report(m: Measurement): void {
  out(
    `  ${m.name}${m.callers > 1 ? ` ×${m.callers}` : ''}: ${m.ops} ops, ${Math.round(m.opsPerSecond)}/s, ` +
      `${Math.round(m.opsPerCpuSecond)}/CPU-s, p50 ${m.p50.toFixed(2)} ms${m.errors ? `, ${m.errors} errors` : ''}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Database

function assertLoopback(url: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`BENCH_DATABASE_URL must point at a loopback address, not ${host}`);
  }
}

interface BenchDatabase {
  db: Database;
  kind: 'pglite' | 'postgres';
  version: string | null;
  schema: string | null;
  close(): Promise<void>;
}

async function openDatabase(): Promise<BenchDatabase> {
  const url = settings.databaseUrl;
  let bench: BenchDatabase;
  if (url) {
    assertLoopback(url);
    const schema = `bench_auth_${process.pid}_${randomBytes(3).toString('hex')}`;
    const named = new URL(url);
    named.searchParams.set('application_name', APPLICATION_NAME);
    const db = await openPostgres({ url: named.href, schema, poolSize: settings.concurrency * 2 + 4 });
    bench = {
      db,
      kind: 'postgres',
      version: null,
      schema,
      async close() {
        await db.close();
        await dropPostgresSchema(url, schema);
      },
    };
    databaseCpu = postgresBackendCpu(db);
  } else {
    const db = await openPglite();
    bench = { db, kind: 'pglite', version: null, schema: null, close: () => db.close() };
  }
  bench.version =
    (await bench.db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? null;
  await migrate(bench.db);
  await loadCatalogue(operatorContext(bench.db), await readCatalogueFile(BUNDLED_CATALOGUE));
  return bench;
}

/**
 * CPU used so far by the PostgreSQL backends of this process's pool (found by application_name; they run on this
 * machine, since the URL is loopback), from /proc/<pid>/stat. Backends that come and go between readings are missed.
 */
function postgresBackendCpu(db: Database): () => Promise<number> {
  let ticksPerSecond = 100;
  try {
    ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    // Linux's usual value
  }
  return async () => {
    const { rows } = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [
      APPLICATION_NAME,
    ]);
    let ticks = 0;
    for (const { pid } of rows) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the whole line)
      } catch {
        // gone, or not on this machine
      }
    }
    return ticks / ticksPerSecond;
  };
}

const sealer = createSealer(randomBytes(32));

function operatorContext(db: Database): ServiceContext {
  return serviceContext({
    db,
    clock: systemClock,
    actor: { kind: 'operator', id: 'cli:bench@localhost' },
    requestId: null,
    allowExampleNiPrefix: true,
    sealer,
  });
}

function letters(n: number): string {
  let s = '';
  let k = n;
  do {
    s = String.fromCharCode(97 + (k % 26)) + s;
    k = Math.floor(k / 26);
  } while (k > 0);
  return s;
}

/** People verified face to face (IAL3), each with a different date of birth so none is a duplicate of another. */
async function registerPeople(ctx: ServiceContext, count: number, offset: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = offset; i < offset + count; i++) {
    const dob = new Date(Date.UTC(1960, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
    const p = await registerPerson(ctx, {
      givenName: `Bench${letters(i)}`,
      familyName: 'Marker',
      dateOfBirth: dob,
      identityAssuranceLevel: 3,
    });
    ids.push(p.userId);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP client: node:http with keep-alive (much cheaper per request than fetch, and this process pays for the client),
// one "browser" per caller — the CSRF cookie and token from the sign-in page, then JSON posts

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 256 });

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function http(
  url: string,
  method: 'GET' | 'POST',
  headers: Record<string, string> = {},
  body?: string,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const all = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest(url, { method, headers: all, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function postJson<T>(url: string, headers: Record<string, string>, body: unknown): Promise<T> {
  const res = await http(url, 'POST', { 'content-type': 'application/json', ...headers }, JSON.stringify(body));
  if (res.status < 200 || res.status > 299) {
    throw new Error(`POST ${new URL(url).pathname} answered ${res.status}: ${res.text.slice(0, 200)}`);
  }
  return JSON.parse(res.text) as T;
}

interface Browser {
  base: string;
  cookie: string;
  csrf: string;
}

async function openBrowser(base: string): Promise<Browser> {
  const res = await http(`${base}/signin`, 'GET');
  if (res.status !== 200) throw new Error(`GET /signin answered ${res.status}`);
  const csrf = /data-csrf="([^"]+)"/.exec(res.text)?.[1];
  const cookie = (res.headers['set-cookie'] ?? [])
    .map((c) => c.split(';')[0]!)
    .find((c) => c.startsWith('opencis_csrf='));
  if (!csrf || !cookie) throw new Error('the sign-in page gave no CSRF token or cookie');
  return { base, cookie, csrf };
}

function post<T>(browser: Browser, path: string, body: unknown): Promise<T> {
  return postJson<T>(`${browser.base}${path}`, { 'csrf-token': browser.csrf, cookie: browser.cookie }, body);
}

// ---------------------------------------------------------------------------------------------------------------
// The run

interface IssuedCard {
  userId: string;
  cardId: string;
  key: SoftwareCardKey;
  certificate: string;
}

/** The server's part of issuing a card, as the card agent drives it (software key in place of the token). */
async function issueCard(
  ctx: ServiceContext,
  card: CardConfig,
  userId: string,
  key: SoftwareCardKey,
  client: ClientWork,
): Promise<IssuedCard> {
  const tokenSerial = `BENCH-${userId}`;
  const { card: issued, grant } = await startCardIssue(ctx, card, { userId, kind: 'physical' });
  await redeemCardGrant(ctx, card, { grant, tokenSerial });
  const proof = client.run(() => key.sign(card.origin, grant));
  const { certificate } = await certifyCard(ctx, card, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof,
  });
  const g2 = await passcodeGrant(ctx, issued.cardId);
  await redeemCardGrant(ctx, card, { grant: g2, tokenSerial });
  return { userId, cardId: issued.cardId, key, certificate: certificate.toString('base64') };
}

async function main(): Promise<void> {
  const started = new Date();
  const bench = await openDatabase();
  const results: Measurement[] = [];
  const notes: string[] = [];
  let server: Awaited<ReturnType<typeof buildApp>> | undefined;
  let agentRun: { agent: RunningCardAgent; dir: string } | undefined;
  try {
    const db = bench.db;
    const ctx = operatorContext(db);
    const ca = await ensureCertificateAuthority(ctx);
    out(`Database: ${bench.kind} ${bench.version ?? ''}${bench.schema ? ` (schema ${bench.schema})` : ''}`);
    out(`CA: ${ca.algorithm}. Node ${process.version}, ${cpus().length} CPUs.`);

    // The real app on loopback; its configuration also gives the services their origin and relying party.
    const port = await freePort();
    const config: Config = loadConfig({
      PORT: String(port),
      HOST: '127.0.0.1',
      PUBLIC_URL: `http://localhost:${port}`,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-bench-')),
      LOG_LEVEL: 'silent',
      DEMO_DATA: 'false',
      ALLOW_EXAMPLE_NI_PREFIX: 'true',
      CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN,
    });
    const cardConfig = cardConfigFrom(config);
    const rp: RelyingPartyConfig = relyingPartyFrom(config);
    const app = await buildApp({
      config,
      db,
      sealer,
      clock: systemClock,
      logger: false,
      transport: { send: async () => {} },
    });
    // The floor for the HTTP figures: a JSON POST through the same app, hooks and CSRF check, doing nothing.
    app.post('/bench/noop', { preHandler: app.csrfProtection, schema: { hide: true } }, async () => ({ ok: true }));
    await app.listen({ port, host: '127.0.0.1' });
    server = app;
    const base = `http://127.0.0.1:${port}`;
    const loadBefore = loadavg()[0]!;

    // ---- 1. Baselines: the physical limits
    out('\nBaselines');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const message = randomBytes(100);
    const ecSignature = sign('sha256', message, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    const ecdsaVerify = await measureSync('ECDSA P-256 verify (node:crypto)', () => {
      if (!verify('sha256', message, { key: ec.publicKey, dsaEncoding: 'ieee-p1363' }, ecSignature)) {
        throw new Error('ECDSA verify failed');
      }
    });
    results.push(ecdsaVerify);
    results.push(
      await measureSync('ECDSA P-256 sign (node:crypto)', () => {
        sign('sha256', message, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
      }),
    );
    results.push(
      await measureSync('RS256 sign, RSA-2048 (node:crypto)', () => {
        sign('sha256', message, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING });
      }),
    );
    const selectOne: Op = async () => {
      await db.query('SELECT 1');
    };
    const select1 = await measure('baseline', 'SELECT 1 round trip', selectOne, 1, { warmup: 200 });
    const selectN = await measure('baseline', 'SELECT 1 round trip', selectOne, settings.concurrency, { warmup: 200 });
    results.push(select1, selectN);

    // ---- 3. Card issue (server side), which also makes the population of cards for sign-in
    out(`\nIssuing ${settings.cards} cards (server side, software keys)`);
    const cardPeople = await registerPeople(ctx, settings.cards, 0);
    const keys = cardPeople.map(() => new SoftwareCardKey()); // generated on the card: not the server's work
    const cards: IssuedCard[] = [];
    const warm = new ClientWork();
    const WARM_CARDS = 5;
    for (let i = 0; i < WARM_CARDS; i++) cards.push(await issueCard(ctx, cardConfig, cardPeople[i]!, keys[i]!, warm));
    results.push(
      await measureEach(
        'issue',
        'card issue, server side (5 steps)',
        settings.cards - WARM_CARDS,
        async (i, client) => {
          const j = i + WARM_CARDS;
          cards.push(await issueCard(ctx, cardConfig, cardPeople[j]!, keys[j]!, client));
        },
      ),
    );

    // ---- 1. Smartcard sign-in verification
    out('\nSmartcard sign-in');
    const certificates = cards.map((c) => Buffer.from(c.certificate, 'base64'));
    // First sight of each certificate (what a cache of checked certificates cannot help with), then repeats.
    results.push(
      await measureEach('smartcard', 'certificate check, first use of each card', certificates.length, async (i) => {
        await verifyAuthenticationCertificate(repositoriesOn(db), certificates[i]!, new Date());
      }),
    );
    results.push(
      await measure(
        'smartcard',
        'certificate check (verifyAuthenticationCertificate)',
        async (_c, i) => {
          await verifyAuthenticationCertificate(repositoriesOn(db), certificates[i % certificates.length]!, new Date());
        },
        1,
      ),
    );
    const cardSignIn: Op = async (_caller, i, client) => {
      const card = cards[i % cards.length]!;
      const { challengeId, challenge } = await startCardChallenge(ctx, 'signin');
      const signature = client.run(() => card.key.sign(cardConfig.origin, challenge));
      const result = await finishCardSignIn(ctx, cardConfig, {
        challengeId,
        certificate: card.certificate,
        signature,
        algorithm: 'ES256',
      });
      if (result.aal !== 3 || result.userId !== card.userId) throw new Error('wrong sign-in result');
    };
    const cardService1 = await measure('smartcard', 'card sign-in, service (challenge + verify)', cardSignIn, 1);
    const cardServiceN = await measure(
      'smartcard',
      'card sign-in, service (challenge + verify)',
      cardSignIn,
      settings.concurrency,
    );
    results.push(cardService1, cardServiceN);
    const signedIn: SignInResult = { userId: cards[0]!.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'x' };
    const sessionStart: Op = async (_caller, i) => {
      const card = cards[i % cards.length]!;
      const result = { ...signedIn, userId: card.userId, authenticatorId: `card:${card.cardId}` };
      await unitOfWork(db)((tx) =>
        startSession(tx, { ...ctx, actor: { kind: 'system', id: 'web:anonymous' } }, result, null, {
          ip: '127.0.0.1',
          userAgent: 'opencis-bench',
        }),
      );
    };
    results.push(await measure('smartcard', 'session start (startSession + audit, one transaction)', sessionStart, 1));
    results.push(
      await measure(
        'smartcard',
        'session start (startSession + audit, one transaction)',
        sessionStart,
        settings.concurrency,
      ),
    );

    // ---- 2. WebAuthn assertion verification: one authenticator (and credential) per caller, so counters stay ordered
    out('\nWebAuthn');
    const webauthnPeople = await registerPeople(ctx, settings.concurrency, settings.cards);
    const authenticators: SoftwareAuthenticator[] = [];
    for (const userId of webauthnPeople) {
      const authenticator = new SoftwareAuthenticator();
      const { challengeId, options } = await startWebauthnRegistration(ctx, rp, { userId, kind: 'security_key' });
      await finishWebauthnRegistration(ctx, rp, {
        userId,
        challengeId,
        response: authenticator.register(options, rp.origin),
        callerAal: 3,
      });
      authenticators.push(authenticator);
    }
    const webauthnSignIn: Op = async (caller, _i, client) => {
      const authenticator = authenticators[caller]!;
      const { challengeId, options } = await startWebauthnAuthentication(ctx, rp, {});
      const response = client.run(() => authenticator.authenticate(options, rp.origin));
      const result = await finishWebauthnAuthentication(ctx, rp, { challengeId, response });
      if (result.userId !== webauthnPeople[caller]) throw new Error('wrong sign-in result');
    };
    const webauthn1 = await measure('webauthn', 'WebAuthn sign-in, service (options + verify)', webauthnSignIn, 1);
    const webauthnN = await measure(
      'webauthn',
      'WebAuthn sign-in, service (options + verify)',
      webauthnSignIn,
      settings.concurrency,
    );
    results.push(webauthn1, webauthnN);
    notes.push(
      `WebAuthn credentials are registered with attestation 'none', so the server records them at AAL2; ` +
        'verifying an assertion costs the same whatever the level.',
    );

    // ---- HTTP end to end on the real app
    out('\nHTTP (real app on 127.0.0.1, keep-alive, one CSRF cookie + token per caller)');
    const browsers: Browser[] = [];
    for (let c = 0; c < settings.concurrency; c++) browsers.push(await openBrowser(base));
    results.push(await bareHttpFloor());
    const noop: Op = async (caller) => {
      await post(browsers[caller]!, '/bench/noop', {});
    };
    const http1 = await measure('baseline', 'HTTP JSON POST, no-op route with CSRF check', noop, 1, { warmup: 200 });
    const httpN = await measure('baseline', 'HTTP JSON POST, no-op route with CSRF check', noop, settings.concurrency, {
      warmup: 200,
    });
    results.push(http1, httpN);
    results.push(
      await measure(
        'baseline',
        'GET /signin (page, CSRF cookie)',
        async () => {
          const res = await http(`${base}/signin`, 'GET');
          if (res.status !== 200) throw new Error(`GET /signin answered ${res.status}`);
        },
        1,
      ),
    );
    const cardHttp: Op = async (caller, i, client) => {
      const card = cards[i % cards.length]!;
      const browser = browsers[caller]!;
      const { challengeId, challenge } = await post<{ challengeId: string; challenge: string }>(
        browser,
        '/signin/card/challenge',
        {},
      );
      const signature = client.run(() => card.key.sign(cardConfig.origin, challenge));
      const answer = await post<{ aal: number }>(browser, '/signin/card/verify', {
        challengeId,
        certificate: card.certificate,
        signature,
        algorithm: 'ES256',
      });
      if (answer.aal !== 3) throw new Error(`signed in at AAL${answer.aal}`);
    };
    results.push(await measure('smartcard', 'AAL3 card sign-in over HTTP (challenge + verify + session)', cardHttp, 1));
    results.push(
      await measure(
        'smartcard',
        'AAL3 card sign-in over HTTP (challenge + verify + session)',
        cardHttp,
        settings.concurrency,
      ),
    );
    const webauthnHttp: Op = async (caller, _i, client) => {
      const browser = browsers[caller]!;
      const { challengeId, options } = await post<{
        challengeId: string;
        options: Parameters<SoftwareAuthenticator['authenticate']>[0];
      }>(browser, '/signin/webauthn/options', {});
      const response = client.run(() => authenticators[caller]!.authenticate(options, rp.origin));
      const answer = await post<{ aal: number }>(browser, '/signin/webauthn/verify', { challengeId, response });
      if (answer.aal < 2) throw new Error(`signed in at AAL${answer.aal}`);
    };
    results.push(await measure('webauthn', 'WebAuthn sign-in over HTTP (options + verify + session)', webauthnHttp, 1));
    results.push(
      await measure(
        'webauthn',
        'WebAuthn sign-in over HTTP (options + verify + session)',
        webauthnHttp,
        settings.concurrency,
      ),
    );

    // ---- 3. Card issue through the real card agent and SoftHSM2
    if (settings.agentCards === 0) {
      notes.push('Card issue through the card agent skipped (BENCH_AGENT_CARDS=0).');
    } else if (!existsSync(SOFTHSM2_MODULE)) {
      notes.push(`Card issue through the card agent skipped: ${SOFTHSM2_MODULE} is not installed.`);
    } else {
      out(`\nCard agent + SoftHSM2: issuing ${settings.agentCards} cards, one token each`);
      agentRun = await startAgent(`http://localhost:${port}`);
      const agent = agentRun.agent;
      const origin = `http://localhost:${port}`;
      const agentPost = (path: string, body: unknown): Promise<Record<string, unknown>> =>
        postJson(`${agent.url}${path}`, { origin }, body);
      const agentPeople = await registerPeople(ctx, settings.agentCards, settings.cards + settings.concurrency);
      const label = (i: number) => `bench-card-${i}`;
      initToken(agentRun.dir, label(0));
      results.push(
        await measureEach(
          'issue',
          'card issue through card agent + SoftHSM2 (RA desk + agent)',
          settings.agentCards,
          async (i) => {
            const { card, grant } = await startCardIssue(ctx, cardConfig, {
              userId: agentPeople[i]!,
              kind: 'physical',
            });
            await agentPost('/v1/cards/issue', { grant });
            await agentPost('/v1/cards/passcode', { grant: await passcodeGrant(ctx, card.cardId), passcode: PASSCODE });
          },
          // One card in the reader at a time, as at an RA desk: the issued token goes, a blank one comes.
          (i) => {
            if (i + 1 < settings.agentCards) {
              deleteToken(agentRun!.dir, label(i));
              initToken(agentRun!.dir, label(i + 1));
            }
          },
        ),
      );
      notes.push(
        'Card issue through the agent: each card is a fresh SoftHSM2 token (initialised before, removed after; not ' +
          "timed); the time covers startCardIssue, the agent's /v1/cards/issue (key generation on the token, " +
          'redeem, certificate request, certificate stored) and /v1/cards/passcode.',
      );
      // The last card stays in the reader: full sign-ins through the agent (passcode check + signature on the token).
      const agentBrowser = await openBrowser(base);
      const agentSignIn: Op = async () => {
        const { challengeId, challenge } = await post<{ challengeId: string; challenge: string }>(
          agentBrowser,
          '/signin/card/challenge',
          {},
        );
        const signed = await agentPost('/v1/sign', { challenge, passcode: PASSCODE });
        const answer = await post<{ aal: number }>(agentBrowser, '/signin/card/verify', { challengeId, ...signed });
        if (answer.aal !== 3) throw new Error(`signed in at AAL${answer.aal}`);
      };
      results.push(
        await measure('smartcard', 'AAL3 card sign-in through card agent + SoftHSM2, over HTTP', agentSignIn, 1, {
          warmup: 5,
        }),
      );
    }

    // Ratios to the baselines measured above.
    const selectFor = (callers: number) => (callers === 1 ? select1 : selectN);
    for (const m of results) {
      if (m.group === 'baseline') continue;
      const sel = selectFor(m.callers);
      m.selectOnes = sel.opsPerSecond / m.opsPerSecond;
      m.ecdsaVerifies = ecdsaVerify.opsPerCpuSecond / m.opsPerCpuSecond;
    }
    const load = { before: round2(loadBefore), after: round2(loadavg()[0]!) };
    printTable(results);
    printNotes(bench, results, notes, load);
    const counts = await rowCounts(db);
    await saveResults({
      started,
      database: { kind: bench.kind, version: bench.version, schema: bench.schema },
      caAlgorithm: ca.algorithm,
      load,
      counts,
      notes,
      results,
    });
  } finally {
    if (agentRun) {
      await agentRun.agent.close();
      rmSync(agentRun.dir, { recursive: true, force: true });
    }
    await server?.close();
    keepAlive.destroy();
    await bench.close();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** What the HTTP client and the loopback cost by themselves: a bare node:http server answering `{}`. */
async function bareHttpFloor(): Promise<Measurement> {
  const bare = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(bare.address() as { port: number }).port}/`;
  try {
    return await measure(
      'baseline',
      'HTTP JSON POST to a bare node:http server (client floor)',
      async () => {
        await postJson(url, {}, {});
      },
      1,
      { warmup: 200 },
    );
  } finally {
    bare.closeAllConnections();
    await new Promise<void>((resolve) => bare.close(() => resolve()));
  }
}

/** A throwaway SoftHSM2 configuration, set before the PKCS#11 module is first initialised, and the agent on it. */
async function startAgent(serverUrl: string): Promise<{ agent: RunningCardAgent; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'opencis-bench-card-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  writeFileSync(
    join(dir, 'softhsm2.conf'),
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
  const { startCardAgent } = await import('../src/card-agent/main.ts');
  const agent = await startCardAgent({
    modulePath: SOFTHSM2_MODULE,
    port: 0,
    allowedOrigins: [serverUrl],
    serverUrl,
    log: () => {},
  });
  return { agent, dir };
}

function softhsm(dir: string, args: string[]): void {
  execFileSync('softhsm2-util', args, {
    env: { ...process.env, SOFTHSM2_CONF: join(dir, 'softhsm2.conf') },
    stdio: 'ignore',
  });
}

function initToken(dir: string, label: string): void {
  softhsm(dir, ['--init-token', '--free', '--label', label, '--so-pin', TRANSPORT_SO_PIN, '--pin', '00000000']);
}

function deleteToken(dir: string, label: string): void {
  softhsm(dir, ['--delete-token', '--token', label]);
}

async function rowCounts(db: Database): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of [
    'people',
    'cards',
    'pki_certificates',
    'webauthn_credentials',
    'auth_challenges',
    'web_sessions',
    'audit_events',
  ]) {
    const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
    counts[table] = Number(rows[0]!.n);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------------------------
// Output

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function grouped(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

function printTable(results: readonly Measurement[]): void {
  const header = [
    'measurement',
    'callers',
    'ops',
    'p50 ms',
    'p95 ms',
    'ops/s',
    'ops/CPU-s',
    'CPU ms/op',
    '= SELECT 1s',
    '= ECDSA verifies',
  ];
  const lines = results.map((r) => [
    r.name,
    String(r.callers),
    String(r.ops),
    r.p50 < 0.1 ? r.p50.toFixed(4) : r.p50.toFixed(2),
    r.p95 < 0.1 ? r.p95.toFixed(4) : r.p95.toFixed(2),
    grouped(r.opsPerSecond),
    grouped(r.opsPerCpuSecond),
    r.cpuMsPerOp < 0.1 ? r.cpuMsPerOp.toFixed(4) : r.cpuMsPerOp.toFixed(3),
    r.selectOnes === undefined ? '' : r.selectOnes.toFixed(1),
    r.ecdsaVerifies === undefined ? '' : r.ecdsaVerifies.toFixed(1),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const fmt = (cells: string[]) => cells.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!)));
  out('');
  out(fmt(header).join('  '));
  for (const l of lines) out(fmt(l).join('  '));
  const errors = results.reduce((n, r) => n + r.errors, 0);
  if (errors > 0) out(`\n${errors} operations failed (counted in the latencies above).`);
}

function printNotes(
  bench: BenchDatabase,
  results: readonly Measurement[],
  notes: readonly string[],
  load: { before: number; after: number },
): void {
  out('');
  out(
    'ops/CPU-s is the per-core figure: operations per CPU-second of this process' +
      (bench.kind === 'postgres' ? ' plus its PostgreSQL backends' : ' (PGlite runs inside it)') +
      ', less the measured client-side signing (card / authenticator signatures). The server and the load share one ' +
      'Node process, so HTTP figures also pay for the HTTP client (node:http, keep-alive); wall-clock ops/s share 2 cores with it.',
  );
  out(
    '"= SELECT 1s": wall time of one op in SELECT 1 round trips with as many callers. "= ECDSA verifies": CPU ' +
      'time of one op in raw ECDSA P-256 verifications.',
  );
  for (const n of notes) out(n);
  out(`Load average (1 min) ${load.before} before, ${load.after} after measuring.`);
  const http = results.filter((r) => r.name.startsWith('AAL3 card sign-in over HTTP'));
  const worst = Math.min(...http.map((r) => r.opsPerCpuSecond));
  out(
    `Goal (issue): ≥ 100 AAL3 sign-ins/s per core. Measured end to end over HTTP: ` +
      `${http.map((r) => `${Math.round(r.opsPerCpuSecond)}/CPU-s with ${r.callers} caller${r.callers === 1 ? '' : 's'}`).join(', ')}` +
      ` — ${worst >= 100 ? 'met' : 'NOT met'}.`,
  );
}

async function saveResults(body: {
  started: Date;
  database: { kind: string; version: string | null; schema: string | null };
  caAlgorithm: string;
  load: { before: number; after: number };
  counts: Record<string, number>;
  notes: string[];
  results: Measurement[];
}): Promise<void> {
  const now = new Date();
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  await mkdir(dir, { recursive: true });
  const suffix = body.database.kind === 'postgres' ? '-postgres' : '';
  const file = join(dir, `auth-${body.started.toISOString().slice(0, 10)}${suffix}.json`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memoryGb: totalmem() / 2 ** 30 };
  const report = {
    at: now.toISOString(),
    machine,
    node: process.version,
    settings: { ...settings, databaseUrl: settings.databaseUrl ? '(set)' : null },
    ...body,
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  out(`\nFigures written to ${file}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
