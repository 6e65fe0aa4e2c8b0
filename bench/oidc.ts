/**
 * OpenID Connect throughput: `npm run bench:oidc`.
 *
 * Times what a relying party costs the server: full CIS2 sign-ins (authorize → OpenCIS interaction with an existing
 * AAL3 web session → resume → code → token → userinfo) and the relying party's back-channel calls (code → token, and
 * userinfo), on the real app over loopback HTTP — and, in the same run, the same flow on a bare oidc-provider (its own
 * minimal Provider, an in-process Map adapter, an interaction that finishes login and consent at once): the baseline
 * the ratio is taken against. The web session is made beforehand: signing in itself is measured by bench:auth.
 *
 * Each server runs in a child process of its own (this file, forked), so its CPU (process.cpuUsage() in the child,
 * plus the PostgreSQL backends serving it when on PostgreSQL) is apart from the load generator's: "per CPU-second" is
 * the server's cost. Wall-clock rates are for this 2-core machine with the load generator on it too.
 *
 * Prints a table and writes the figures to bench/results/oidc-<date>[-postgres].json.
 *
 * Settings (environment): BENCH_DATABASE_URL (PostgreSQL on a loopback address; default: in-memory PGlite),
 * BENCH_CONCURRENCY (callers, default 8), BENCH_MAX_SECONDS (cap on each measurement, default 10, ≤ 30),
 * BENCH_MAX_OPS (cap on each measurement's operations, default 20000), BENCH_CODES (codes made beforehand for the
 * token + userinfo measurement, default 4000; they expire after 60 s), BENCH_PEOPLE (people with a web session,
 * default 50), BENCH_REDIS_URL (redis://127.0.0.1:6379: keep the provider's state in Redis, as several nodes would;
 * only this run's keys are deleted at the end), BENCH_PROFILE=1 (profile the OpenCIS server during each measurement
 * with node:inspector and print where its CPU time went; profiles in bench/results/profiles/).
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Configuration } from 'oidc-provider';
import { serviceContext } from '../src/services/context.ts';
import type { Database } from '../src/storage/database.ts';
import { unitOfWork } from '../src/storage/repositories/index.ts';
import { MapAdapter } from './support/map-adapter.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results');
const APPLICATION_NAME = 'opencis-bench-oidc';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const OPENCIS_SCOPE = 'openid profile nationalrbacaccess selectedrole';
const BARE_SCOPE = 'openid profile';

function wholeNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}`);
  return n;
}

const settings = {
  databaseUrl: process.env.BENCH_DATABASE_URL || null,
  redisUrl: process.env.BENCH_REDIS_URL || null,
  concurrency: wholeNumber('BENCH_CONCURRENCY', 8, 1),
  maxSeconds: Math.min(30, wholeNumber('BENCH_MAX_SECONDS', 10, 1)),
  maxOps: wholeNumber('BENCH_MAX_OPS', 20_000, 50),
  codes: wholeNumber('BENCH_CODES', 4_000, 20),
  people: wholeNumber('BENCH_PEOPLE', 50, 1),
  profile: process.env.BENCH_PROFILE === '1',
};

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Parent ⇄ server child messages

interface Ready {
  type: 'ready';
  /** Base URL of the server (loopback) and the issuer's path under it. */
  base: string;
  issuerPath: string;
  clientId: string;
  clientSecret: string;
  /** Web session tokens (OpenCIS: one per person, each AAL3 by smartcard); empty for the bare provider. */
  sessions: string[];
  scope: string;
  detail: string;
}
interface CpuReply {
  type: 'cpu';
  id: number;
  /** Server process CPU (user + system), seconds. */
  process: number;
  /** CPU of the PostgreSQL backends serving the child, seconds (0 on PGlite: it runs inside the process). */
  database: number;
  /** Database statements the server has sent so far, in all and by statement (OpenCIS only). */
  queries: number;
  statements: Record<string, number>;
}
type FromChild = Ready | CpuReply | { type: 'profile'; id: number; file: string } | { type: 'error'; message: string };
type ToChild =
  | { type: 'cpu'; id: number }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; id: number; file: string }
  | { type: 'stop' };

// ---------------------------------------------------------------------------------------------------------------
// Server children

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

function assertLoopback(url: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`BENCH_DATABASE_URL must point at a loopback address, not ${host}`);
  }
}

/**
 * CPU used so far by the PostgreSQL backends whose application_name is ours (on this machine: the URL is loopback),
 * from /proc/<pid>/stat. Backends that come and go between readings are missed.
 */
function postgresBackendCpu(query: (sql: string, params: unknown[]) => Promise<{ pid: number }[]>) {
  let ticksPerSecond = 100;
  try {
    ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    // Linux's usual value
  }
  return async () => {
    const rows = await query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [APPLICATION_NAME]);
    let ticks = 0;
    for (const { pid } of rows) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // gone, or not on this machine
      }
    }
    return ticks / ticksPerSecond;
  };
}

/** What the OpenCIS child counts: every statement it sends to the database. */
const counted = { queries: 0, statements: new Map<string, number>() };

/** Statement text → the key it is counted under (normalising the text on every call cost ~3 % of the server's CPU). */
const statementKeys = new Map<string, string>();

function count(sql: string): void {
  counted.queries++;
  let key = statementKeys.get(sql);
  if (key === undefined) {
    key = sql.replace(/\s+/g, ' ').trim().slice(0, 110);
    statementKeys.set(sql, key);
  }
  counted.statements.set(key, (counted.statements.get(key) ?? 0) + 1);
}

/**
 * Answers the parent: CPU (and statements) so far, CPU profiles of a measurement (node:inspector, so set-up is left
 * out), and stop; `close` runs before exit.
 */
function serveIpc(ready: Ready, databaseCpu: () => Promise<number>, close: () => Promise<void>): void {
  let inspector: import('node:inspector/promises').Session | undefined;
  process.on('message', (raw: ToChild) => {
    if (raw.type === 'cpu') {
      void databaseCpu().then((database) => {
        const u = process.cpuUsage();
        process.send!({
          type: 'cpu',
          id: raw.id,
          process: (u.user + u.system) / 1e6,
          database,
          queries: counted.queries,
          statements: Object.fromEntries(counted.statements),
        } satisfies CpuReply);
      });
    } else if (raw.type === 'profile-start') {
      void (async () => {
        const { Session } = await import('node:inspector/promises');
        inspector = new Session();
        inspector.connect();
        await inspector.post('Profiler.enable');
        await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
        await inspector.post('Profiler.start');
      })();
    } else if (raw.type === 'profile-stop') {
      void (async () => {
        const { profile } = await inspector!.post('Profiler.stop');
        inspector!.disconnect();
        mkdirSync(dirname(raw.file), { recursive: true });
        await writeFile(raw.file, JSON.stringify(profile));
        process.send!({ type: 'profile', id: raw.id, file: raw.file } satisfies FromChild);
      })();
    } else if (raw.type === 'stop') {
      void close().finally(() => process.exit(0));
    }
  });
  process.send!(ready);
}

/** The OpenCIS server: the real app (buildApp) on its own database, with people, sessions and a relying party. */
async function serveOpencis(): Promise<void> {
  const [
    { buildApp },
    { loadConfig },
    { ensureCertificateAuthority },
    { createSealer },
    { assignRoleProfile, createPosition },
    { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile },
    { systemClock },
    { saveOrganisation },
    { registerPerson },
    { startSession },
    { registerClient },
    { migrate },
    { openPglite },
    { dropPostgresSchema, openPostgres },
  ] = await Promise.all([
    import('../src/app.ts'),
    import('../src/config.ts'),
    import('../src/services/certificates.ts'),
    import('../src/secrets/sealer.ts'),
    import('../src/services/access.ts'),
    import('../src/services/catalogue.ts'),
    import('../src/services/context.ts'),
    import('../src/services/organisations.ts'),
    import('../src/services/people.ts'),
    import('../src/services/sessions.ts'),
    import('../src/services/clients.ts'),
    import('../src/storage/migrate.ts'),
    import('../src/storage/pglite.ts'),
    import('../src/storage/postgres.ts'),
  ]);
  const url = settings.databaseUrl;
  let schema: string | null = null;
  let databaseCpu = async () => 0;
  let db: Awaited<ReturnType<typeof openPglite>> | Awaited<ReturnType<typeof openPostgres>>;
  if (url) {
    assertLoopback(url);
    schema = `bench_oidc_${process.pid}_${randomBytes(3).toString('hex')}`;
    const named = new URL(url);
    named.searchParams.set('application_name', APPLICATION_NAME);
    db = await openPostgres({ url: named.href, schema, poolSize: 10 });
    const pg = db;
    databaseCpu = postgresBackendCpu(async (sql, params) => (await pg.query<{ pid: number }>(sql, params)).rows);
  } else {
    db = await openPglite();
  }
  const version = (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v;
  const raw = db;
  // The app's database, counting statements (a few nanoseconds each) to show what an operation costs in queries.
  const counting: Database = {
    kind: raw.kind,
    query: <R>(sql: string, params?: readonly unknown[]) => {
      count(sql);
      return raw.query<R>(sql, params);
    },
    transaction: (fn) =>
      raw.transaction((tx) =>
        fn({
          query: <R>(sql: string, params?: readonly unknown[]) => {
            count(sql);
            return tx.query<R>(sql, params);
          },
        }),
      ),
    exec: (sql) => raw.exec(sql),
    close: () => raw.close(),
  };
  const sealer = createSealer(randomBytes(32));
  const ctx = serviceContext({
    db,
    clock: systemClock,
    actor: { kind: 'operator' as const, id: 'cli:bench@localhost' },
    requestId: null,
    allowExampleNiPrefix: true,
    sealer,
  });
  await migrate(db);
  await loadCatalogue(ctx, await readCatalogueFile(BUNDLED_CATALOGUE));
  await ensureCertificateAuthority(ctx);
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Bench Trust', type: 'trust' });
  const position = await createPosition(ctx, 'RR8', {
    name: 'Ward nurse',
    jobRoles: ['R8001'],
    activities: ['B0825'],
  });
  const sessions: string[] = [];
  for (let i = 0; i < settings.people; i++) {
    const dob = new Date(Date.UTC(1960, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
    const p = await registerPerson(ctx, {
      givenName: `Bench${i}`,
      familyName: 'Signin',
      dateOfBirth: dob,
      email: `bench${i}@example.nhs.uk`,
      identityAssuranceLevel: 3,
    });
    await assignRoleProfile(ctx, { userId: p.userId, positionId: position.positionId, startDate: '2020-01-01' });
    const { token } = await unitOfWork(db)((tx) =>
      startSession(tx, ctx, { userId: p.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'card:bench' }, null, {
        ip: '127.0.0.1',
        userAgent: 'bench',
      }),
    );
    sessions.push(token);
  }
  const reg = await registerClient(ctx, {
    name: 'Bench EPR',
    redirectUris: [REDIRECT_URI],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: OPENCIS_SCOPE.split(' '),
  });
  let redisPrefix: string | null = null;
  if (settings.redisUrl) {
    if (!/^redis:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\/?$/.test(settings.redisUrl)) {
      throw new Error('BENCH_REDIS_URL must be redis://127.0.0.1:PORT (loopback, no path or options)');
    }
    redisPrefix = `opencis-bench:${process.pid}:`;
  }
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-bench-oidc-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    // The provider's state in Redis (as with several nodes), under a key prefix of this run's own.
    ...(redisPrefix ? { REDIS_URL: `${settings.redisUrl}?keyPrefix=${encodeURIComponent(redisPrefix)}` } : {}),
  });
  counted.queries = 0;
  counted.statements.clear();
  const app = await buildApp({
    config,
    db: counting,
    sealer,
    clock: systemClock,
    logger: false,
    transport: { send: async () => {} },
  });
  await app.listen({ port, host: '127.0.0.1' });
  serveIpc(
    {
      type: 'ready',
      base: `http://127.0.0.1:${port}`,
      issuerPath: config.OIDC_PATH,
      clientId: reg.client.clientId,
      clientSecret: reg.clientSecret!,
      sessions,
      scope: OPENCIS_SCOPE,
      detail: `${db.kind} ${version ?? ''}${schema ? ` (schema ${schema})` : ''}${redisPrefix ? ', provider state in Redis' : ''}`,
    },
    databaseCpu,
    async () => {
      await app.close();
      await db.close();
      if (settings.redisUrl && redisPrefix) await deleteRedisKeys(settings.redisUrl, redisPrefix);
      if (url && schema) await dropPostgresSchema(url, schema);
    },
  );
}

/** Removes this run's keys (and only them) from Redis. */
async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * The baseline: oidc-provider alone, configured like OpenCIS where the protocol is concerned (code flow, PKCE
 * required, client_secret_basic, RS256, the same endpoint names) with a findAccount that answers from memory and an
 * interaction that finishes login and consent at once.
 */
async function serveBare(): Promise<void> {
  const { default: Provider } = await import('oidc-provider');
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const clientSecret = randomBytes(32).toString('base64url');
  const clientId = '100000000001.apps.national';
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'bare-rs256', alg: 'RS256', use: 'sig' };
  const configuration: Configuration = {
    adapter: MapAdapter,
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: BARE_SCOPE,
      },
    ],
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, name: 'Bench Signin', given_name: 'Bench', family_name: 'Signin', uid: sub }),
    }),
    claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name', 'uid'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic'],
    jwks: { keys: [jwk as never] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: false }, userinfo: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    routes: { authorization: '/authorize', token: '/access_token', userinfo: '/userinfo', jwks: '/connect/jwk_uri' },
    ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 3600, Session: 43_200, Grant: 43_200 },
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  let n = 0;
  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    const accountId = String(100_000_000_000 + (n++ % settings.people));
    const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId, acr: 'AAL3_ANY', amr: ['SMARTCARD'] }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  };
  const server = createHttpServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      });
    } else {
      void callback(req, res);
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const sweeper = setInterval(() => MapAdapter.sweep(), 5_000);
  sweeper.unref();
  serveIpc(
    {
      type: 'ready',
      base: issuer,
      issuerPath: '',
      clientId,
      clientSecret,
      sessions: [],
      scope: BARE_SCOPE,
      detail: 'oidc-provider + in-process Map adapter',
    },
    async () => 0,
    async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The parent: load generator and report

class Child {
  private replies = new Map<number, (r: FromChild) => void>();
  private next = 0;
  ready!: Ready;
  constructor(private readonly proc: ChildProcess) {
    proc.on('message', (m: FromChild) => {
      if (m.type === 'cpu' || m.type === 'profile') this.replies.get(m.id)?.(m);
    });
  }
  static async start(role: 'serve-opencis' | 'serve-bare'): Promise<Child> {
    const proc = fork(fileURLToPath(import.meta.url), [role], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const child = new Child(proc);
    child.ready = await new Promise<Ready>((resolve, reject) => {
      proc.on('message', (m: FromChild) => {
        if (m.type === 'ready') resolve(m);
        if (m.type === 'error') reject(new Error(m.message));
      });
      proc.on('exit', (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
    });
    return child;
  }
  private ask<T extends FromChild>(message: (id: number) => ToChild): Promise<T> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.replies.set(id, (r) => resolve(r as T));
      this.proc.send(message(id));
    });
  }
  cpu(): Promise<CpuReply> {
    return this.ask<CpuReply>((id) => ({ type: 'cpu', id }));
  }
  startProfile(): void {
    this.proc.send({ type: 'profile-start' } satisfies ToChild);
  }
  async stopProfile(file: string): Promise<string> {
    return (await this.ask<{ type: 'profile'; id: number; file: string }>((id) => ({ type: 'profile-stop', id, file })))
      .file;
  }
  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.proc.on('exit', () => resolve());
      this.proc.send({ type: 'stop' } satisfies ToChild);
    });
  }
}

// HTTP with keep-alive, cookies by hand (the few a flow needs)

const agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });

interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function http(url: string, method: string, headers: Record<string, string>, body?: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

class Jar {
  private cookies = new Map<string, string>();
  set(name: string, value: string): void {
    this.cookies.set(name, value);
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  absorb(res: HttpResponse): void {
    for (const line of res.headers['set-cookie'] ?? []) {
      const pair = line.slice(0, line.indexOf(';') === -1 ? undefined : line.indexOf(';'));
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

interface Target {
  name: string;
  child: Child;
  authorize: string;
  token: string;
  userinfo: string;
  basic: string;
}

async function targetOf(name: string, child: Child): Promise<Target> {
  const r = child.ready;
  const meta = JSON.parse(
    (await http(`${r.base}${r.issuerPath}/.well-known/openid-configuration`, 'GET', {})).body,
  ) as Record<string, string>;
  // The issuer names the public URL; the endpoints are reached on the same loopback address.
  const local = (u: string) => `${r.base}${new URL(u).pathname}`;
  return {
    name,
    child,
    authorize: local(meta.authorization_endpoint!),
    token: local(meta.token_endpoint!),
    userinfo: local(meta.userinfo_endpoint!),
    basic: `Basic ${Buffer.from(`${encodeURIComponent(r.clientId)}:${encodeURIComponent(r.clientSecret)}`).toString('base64')}`,
  };
}

const STEPS = ['authorize', 'interaction', 'resume', 'token', 'userinfo'] as const;
type Step = (typeof STEPS)[number];
type StepTimes = Record<Step, number[]>;
let byStep: Record<Step, Record<string, number>> | undefined;

/** authorize → interaction → resume (→ code at the redirect URI). Returns the code and its PKCE verifier. */
async function getCode(
  target: Target,
  i: number,
  steps?: StepTimes,
  afterStep?: (step: Step) => Promise<void>,
): Promise<{ code: string; verifier: string }> {
  const r = target.child.ready;
  const jar = new Jar();
  if (r.sessions.length > 0) jar.set('opencis_session', r.sessions[i % r.sessions.length]!);
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    client_id: r.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: r.scope,
    state: randomBytes(12).toString('base64url'),
    nonce: randomBytes(12).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    acr_values: 'AAL3_ANY',
  });
  let url = `${target.authorize}?${query}`;
  for (const step of ['authorize', 'interaction', 'resume'] as const) {
    const t0 = performance.now();
    const res = await http(url, 'GET', { cookie: jar.header() });
    steps?.[step].push(performance.now() - t0);
    jar.absorb(res);
    const location = res.headers.location;
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`${step}: ${res.status} ${res.body.slice(0, 200)}`);
    }
    url = new URL(location, url).toString();
    await afterStep?.(step);
  }
  if (!url.startsWith(REDIRECT_URI)) throw new Error(`no code: ended at ${url}`);
  const code = new URL(url).searchParams.get('code');
  if (!code) throw new Error(`no code: ${url}`);
  return { code, verifier };
}

async function redeem(target: Target, code: string, verifier: string, steps?: StepTimes): Promise<string> {
  const t0 = performance.now();
  const res = await http(
    target.token,
    'POST',
    { authorization: target.basic, 'content-type': 'application/x-www-form-urlencoded' },
    new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    }).toString(),
  );
  steps?.token.push(performance.now() - t0);
  if (res.status !== 200) throw new Error(`token: ${res.status} ${res.body.slice(0, 200)}`);
  const tokens = JSON.parse(res.body) as { access_token?: string; id_token?: string };
  if (!tokens.access_token || !tokens.id_token) throw new Error('token: no access or ID token');
  return tokens.access_token;
}

async function userinfo(target: Target, accessToken: string, steps?: StepTimes): Promise<void> {
  const t0 = performance.now();
  const res = await http(target.userinfo, 'GET', { authorization: `Bearer ${accessToken}` });
  steps?.userinfo.push(performance.now() - t0);
  if (res.status !== 200) throw new Error(`userinfo: ${res.status} ${res.body.slice(0, 200)}`);
  const claims = JSON.parse(res.body) as { sub?: string };
  if (!claims.sub) throw new Error('userinfo: no sub');
}

// Measuring

interface Measurement {
  server: string;
  name: string;
  callers: number;
  ops: number;
  /** HTTP requests per op (a full sign-in: 5). */
  requestsPerOp: number;
  errors: number;
  wallSeconds: number;
  serverCpuSeconds: number;
  databaseCpuSeconds: number;
  loadGeneratorCpuSeconds: number;
  machineCpuSeconds: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  opsPerSecond: number;
  /** ops / (server process CPU + its PostgreSQL backends' CPU). */
  opsPerCpuSecond: number;
  cpuMsPerOp: number;
  /** Median of each step of the flow, ms (full sign-ins only). */
  stepsP50?: Partial<Record<Step, number>>;
  /** Database statements per op (OpenCIS), and the most frequent ones. */
  queriesPerOp?: number;
  statementsPerOp?: [string, number][];
  /** Where the server's CPU went (BENCH_PROFILE=1, OpenCIS). */
  profile?: ProfileSummary;
}

function machineBusyMs(): number {
  return cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Runs `op` from `callers` loops until `maxOps` or BENCH_MAX_SECONDS, after a short warm-up. */
async function measure(
  target: Target,
  name: string,
  requestsPerOp: number,
  op: (i: number, steps: StepTimes) => Promise<void>,
  options: { maxOps?: number; warmup?: number; steps?: boolean; profileDir?: string } = {},
): Promise<Measurement> {
  const callers = settings.concurrency;
  const maxOps = options.maxOps ?? settings.maxOps;
  const scratch = emptySteps();
  for (let i = 0; i < (options.warmup ?? 0); i++) await op(i, scratch);
  const steps = emptySteps();
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  const profiling = settings.profile && target.name === 'OpenCIS';
  if (profiling) target.child.startProfile();
  const cpu0 = await target.child.cpu();
  const self0 = process.cpuUsage();
  const machine0 = machineBusyMs();
  const t0 = performance.now();
  const deadline = t0 + settings.maxSeconds * 1000;
  const loop = async () => {
    while (next < maxOps && performance.now() < deadline) {
      const i = next++;
      const s = performance.now();
      try {
        await op(i, steps);
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        if (errors <= 3) out(`    error: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, () => loop()));
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpu1 = await target.child.cpu();
  const self = process.cpuUsage(self0);
  const profileFile = profiling
    ? await target.child.stopProfile(join(options.profileDir ?? RESULTS, `${name.split(' ')[0]}.cpuprofile`))
    : undefined;
  latencies.sort((a, b) => a - b);
  const serverCpuSeconds = cpu1.process - cpu0.process;
  const databaseCpuSeconds = Math.max(0, cpu1.database - cpu0.database);
  const serverCpu = Math.max(1e-9, serverCpuSeconds + databaseCpuSeconds);
  const ops = latencies.length;
  const m: Measurement = {
    server: target.name,
    name,
    callers,
    ops,
    requestsPerOp,
    errors,
    wallSeconds: round2(wallSeconds),
    serverCpuSeconds: round2(serverCpuSeconds),
    databaseCpuSeconds: round2(databaseCpuSeconds),
    loadGeneratorCpuSeconds: round2((self.user + self.system) / 1e6),
    machineCpuSeconds: round2((machineBusyMs() - machine0) / 1000),
    p50: round2(percentile(latencies, 0.5)),
    p95: round2(percentile(latencies, 0.95)),
    p99: round2(percentile(latencies, 0.99)),
    max: round2(latencies.at(-1) ?? 0),
    opsPerSecond: Math.round(ops / wallSeconds),
    opsPerCpuSecond: Math.round(ops / serverCpu),
    cpuMsPerOp: round2((serverCpu * 1000) / Math.max(1, ops)),
  };
  if (cpu1.queries > cpu0.queries && ops > 0) {
    m.queriesPerOp = round2((cpu1.queries - cpu0.queries) / ops);
    m.statementsPerOp = Object.entries(cpu1.statements)
      .map(([sql, n]) => [sql, round2((n - (cpu0.statements[sql] ?? 0)) / ops)] as [string, number])
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15);
  }
  if (profileFile) m.profile = summariseProfile(profileFile);
  if (options.steps) {
    m.stepsP50 = {};
    for (const s of STEPS) {
      const sorted = steps[s].sort((a, b) => a - b);
      if (sorted.length > 0) m.stepsP50[s] = round2(percentile(sorted, 0.5));
    }
  }
  out(
    `  ${target.name} — ${name}: ${ops} ops, ${m.opsPerSecond}/s, ${m.opsPerCpuSecond}/server CPU-s, ` +
      `p50 ${m.p50} ms, p99 ${m.p99} ms${m.queriesPerOp ? `, ${m.queriesPerOp} SQL statements/op` : ''}` +
      `${errors ? `, ${errors} errors` : ''}`,
  );
  if (m.statementsPerOp) {
    out('    statements per op:');
    for (const [sql, n] of m.statementsPerOp) out(`      ${String(n).padStart(5)}  ${sql}`);
  }
  if (m.profile) printProfile(m.profile, profileFile!);
  return m;
}

function emptySteps(): StepTimes {
  return { authorize: [], interaction: [], resume: [], token: [], userinfo: [] };
}

/**
 * Database statements of each step of one sign-in (OpenCIS), alone on the server: the counts between steps. The
 * least of five sign-ins is kept (the server's once-a-second background jobs add a statement or two now and then).
 */
async function statementsByStep(target: Target): Promise<Record<Step, Record<string, number>>> {
  let best: Record<Step, Record<string, number>> | undefined;
  let bestTotal = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const by = {} as Record<Step, Record<string, number>>;
    let last = await target.child.cpu();
    const mark = async (step: Step) => {
      const now = await target.child.cpu();
      by[step] = Object.fromEntries(
        Object.entries(now.statements)
          .map(([sql, n]) => [sql, n - (last.statements[sql] ?? 0)] as [string, number])
          .filter(([, n]) => n > 0)
          .sort((a, b) => b[1] - a[1]),
      );
      last = now;
    };
    const { code, verifier } = await getCode(target, round, undefined, mark);
    const access = await redeem(target, code, verifier);
    await mark('token');
    await userinfo(target, access);
    await mark('userinfo');
    const total = STEPS.reduce((sum, st) => sum + Object.values(by[st] ?? {}).reduce((a, b) => a + b, 0), 0);
    if (total < bestTotal) {
      best = by;
      bestTotal = total;
    }
  }
  out(`  statements by step of one sign-in (${bestTotal} in all):`);
  for (const st of STEPS) {
    const entries = Object.entries(best![st] ?? {});
    out(`    ${st}: ${entries.reduce((a, [, n]) => a + n, 0)}`);
    for (const [sql, n] of entries) out(`      ${n}  ${sql}`);
  }
  return best!;
}

/** The three measurements, on one server. */
async function run(target: Target, profileDir: string): Promise<Measurement[]> {
  const results: Measurement[] = [];
  if (target.name === 'OpenCIS') {
    for (let i = 0; i < 10; i++) {
      const { code, verifier } = await getCode(target, i);
      await userinfo(target, await redeem(target, code, verifier));
    }
    byStep = await statementsByStep(target);
  }
  // 1. Full sign-ins: authorize → interaction → resume → token → userinfo, each in a fresh browser (no SSO cookie).
  results.push(
    await measure(
      target,
      'full sign-in (authorize → interaction → code → token → userinfo)',
      5,
      async (i, steps) => {
        const { code, verifier } = await getCode(target, i, steps);
        await userinfo(target, await redeem(target, code, verifier, steps), steps);
      },
      { warmup: 30, steps: true, profileDir },
    ),
  );
  // 2. The relying party's back-channel: code → token, then userinfo. Codes are made beforehand (unmeasured) and
  // used within their 60 s.
  const codes: { code: string; verifier: string }[] = [];
  const count = Math.min(settings.codes, settings.maxOps);
  let made = 0;
  // A code lives 60 s: stop making them after 25 s so the last is used well within that.
  const makeUntil = performance.now() + 25_000;
  await Promise.all(
    Array.from({ length: settings.concurrency }, async () => {
      while (made < count && performance.now() < makeUntil) {
        const i = made++;
        codes.push(await getCode(target, i));
      }
    }),
  );
  const accessTokens: string[] = [];
  results.push(
    await measure(
      target,
      'token + userinfo (code → tokens, then userinfo)',
      2,
      async (i) => {
        const c = codes[i];
        if (!c) throw new Error('out of codes');
        const access = await redeem(target, c.code, c.verifier);
        accessTokens.push(access);
        await userinfo(target, access);
      },
      { maxOps: codes.length, profileDir },
    ),
  );
  // 3. userinfo alone (a relying party calls it once per sign-in; here again and again with the tokens above).
  results.push(
    await measure(target, 'userinfo', 1, async (i) => userinfo(target, accessTokens[i % accessTokens.length]!), {
      warmup: 20,
      profileDir,
    }),
  );
  return results;
}

// ---------------------------------------------------------------------------------------------------------------
// CPU profile summary (BENCH_PROFILE=1)

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface ProfileSummary {
  totalMs: number;
  byArea: [string, number][];
  byFunction: [string, number][];
}

function printProfile(p: ProfileSummary, file: string): void {
  out(`    CPU profile (${p.totalMs} ms sampled, idle left out; ${file}), self time by area:`);
  for (const [k, v] of p.byArea.slice(0, 12)) out(`      ${String(v).padStart(6)} ms ${pct(v, p.totalMs)}  ${k}`);
  out('    by function:');
  for (const [k, v] of p.byFunction.slice(0, 15)) out(`      ${String(v).padStart(6)} ms ${pct(v, p.totalMs)}  ${k}`);
}

const pct = (v: number, total: number) => `${((100 * v) / Math.max(1, total)).toFixed(1).padStart(5)} %`;

function summariseProfile(file: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    total += us;
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => [k, Math.round(v / 1000)] as [string, number]);
  return { byArea: top(byArea, 18), byFunction: top(byFunction, 25), totalMs: Math.round(total / 1000) };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 14);
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    if (pkg === 'oidc-provider') return `oidc-provider/${rest.slice(1, -1).join('/') || rest.at(-1)}`;
    return pkg;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

// ---------------------------------------------------------------------------------------------------------------

function printTable(results: readonly Measurement[]): void {
  out('');
  out(
    '| server | measurement | callers | ops | req/op | wall s | ops/s | server CPU s | ops/server CPU-s | p50 ms | p95 ms | p99 ms |',
  );
  out('| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
  for (const m of results) {
    out(
      `| ${m.server} | ${m.name} | ${m.callers} | ${m.ops}${m.errors ? ` (${m.errors} err)` : ''} | ${m.requestsPerOp} | ` +
        `${m.wallSeconds} | ${m.opsPerSecond} | ${round2(m.serverCpuSeconds + m.databaseCpuSeconds)} | ` +
        `${m.opsPerCpuSecond} | ${m.p50} | ${m.p95} | ${m.p99} |`,
    );
  }
}

async function main(): Promise<void> {
  const started = new Date();
  mkdirSync(RESULTS, { recursive: true });
  const profileDir = join(RESULTS, 'profiles', started.toISOString().replace(/[:.]/g, '-'));
  const loadBefore = loadavg()[0]!;
  out(`OIDC bench: ${settings.concurrency} callers, ≤ ${settings.maxSeconds} s and ≤ ${settings.maxOps} ops each.`);
  out(`Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), servers in child processes.`);

  const results: Measurement[] = [];
  const servers: Record<string, string> = {};
  const opencis = await Child.start('serve-opencis');
  try {
    servers.OpenCIS = opencis.ready.detail;
    out(
      `\nOpenCIS (${opencis.ready.detail}; ${opencis.ready.sessions.length} AAL3 web sessions; scope "${OPENCIS_SCOPE}")`,
    );
    results.push(...(await run(await targetOf('OpenCIS', opencis), profileDir)));
  } finally {
    await opencis.stop();
  }
  const bare = await Child.start('serve-bare');
  try {
    servers['bare oidc-provider'] = bare.ready.detail;
    out(`\nBare oidc-provider (${bare.ready.detail}; scope "${BARE_SCOPE}")`);
    results.push(...(await run(await targetOf('bare oidc-provider', bare), profileDir)));
  } finally {
    await bare.stop();
  }
  agent.destroy();

  printTable(results);
  out('');
  const ratios: Record<string, number> = {};
  for (const m of results.filter((r) => r.server === 'OpenCIS')) {
    const b = results.find((r) => r.server !== 'OpenCIS' && r.name === m.name);
    if (!b) continue;
    ratios[m.name] = round2(m.opsPerCpuSecond / b.opsPerCpuSecond);
    out(
      `  ${m.name}: OpenCIS ${m.opsPerCpuSecond}/CPU-s = ${ratios[m.name]} × the bare provider (${b.opsPerCpuSecond})`,
    );
  }
  const full = results.find((r) => r.server === 'OpenCIS' && r.name.startsWith('full'));
  if (full?.stepsP50) {
    out(`  OpenCIS full sign-in, median of each step (ms): ${JSON.stringify(full.stepsP50)}`);
  }
  const tokenPair = results.find((r) => r.server === 'OpenCIS' && r.name.startsWith('token'));
  out('');
  out(
    `Goal: ≥ 100 full AAL3 sign-ins per server CPU-second — ${full?.opsPerCpuSecond ?? '?'}; ` +
      `token + userinfo ≥ 1,000 requests per server CPU-second — ${tokenPair ? tokenPair.opsPerCpuSecond * 2 : '?'} ` +
      `(${tokenPair?.opsPerCpuSecond ?? '?'} pairs).`,
  );

  const day = started.toISOString().slice(0, 10);
  const kind = `${settings.databaseUrl ? '-postgres' : ''}${settings.redisUrl ? '-redis' : ''}${settings.profile ? '-profile' : ''}`;
  const file = join(RESULTS, `oidc-${day}${kind}.json`);
  await writeFile(
    file,
    `${JSON.stringify(
      {
        started: started.toISOString(),
        machine: {
          node: process.version,
          cpus: cpus().length,
          cpuModel: cpus()[0]?.model,
          memoryGb: Math.round(totalmem() / 1e9),
          loadAverage1m: { before: loadBefore, after: loadavg()[0] },
        },
        settings,
        servers,
        results,
        ratios,
        statementsByStep: byStep,
      },
      null,
      2,
    )}\n`,
  );
  out(`\nWritten to ${file}`);
}

const role = process.argv[2];
const entry =
  role === 'serve-opencis' ? serveOpencis() : role === 'serve-bare' ? serveBare() : main().then(() => process.exit(0));
entry.catch((err: unknown) => {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (process.send) process.send({ type: 'error', message } satisfies FromChild);
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
