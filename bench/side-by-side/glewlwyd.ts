/**
 * Glewlwyd 2.7 from Debian (`apt-get install -y glewlwyd`) as a peer: a throwaway instance on 127.0.0.1 with its own
 * SQLite database (created from the package's own schema script), its OpenID Connect plugin set up through its admin
 * API (RS256, PKCE, refresh tokens), one user with a password and one confidential client (client_secret_basic).
 *
 * Its sign-in: /api/oidc/auth (302 to the login page) → POST /api/auth/ (username + password: a session cookie) →
 * /api/oidc/auth…&g_continue (302 with the code) → /api/oidc/token → /api/oidc/userinfo. (The login page itself is a
 * static single-page app; a browser would also fetch it and its assets — not counted, as for the other servers.)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type HttpAnswer, type HttpClient, HttpError, Jar } from '../load/http.ts';

const SCHEMA_SQL = '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3';
const SCHEMA_PG = '/usr/share/dbconfig-common/data/glewlwyd/install/pgsql';
const DEFAULTS_PG = '/usr/share/dbconfig-common/data/glewlwyd/install/postgre.default.sql';
const PACKAGE_CONFIG = '/etc/glewlwyd/glewlwyd.conf';
export const GLEWLWYD_REDIRECT_URI = 'http://127.0.0.1:9/callback';

export interface Glewlwyd {
  base: string;
  pid: number;
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
  version: string;
  /** Its log so far. */
  log(): string;
  stop(): Promise<void>;
}

/** Why glewlwyd cannot run here, or null. */
export function glewlwydMissing(): string | null {
  for (const f of ['/usr/bin/glewlwyd', SCHEMA_SQL, PACKAGE_CONFIG, '/usr/bin/sqlite3']) {
    if (!existsSync(f)) return `${f} is missing (apt-get install -y glewlwyd sqlite3)`;
  }
  return null;
}

async function api(
  http: HttpClient,
  base: string,
  jar: Jar,
  method: string,
  path: string,
  body?: unknown,
): Promise<HttpAnswer> {
  const res = await http.request(
    `${base}${path}`,
    method,
    { cookie: jar.header(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body === undefined ? undefined : JSON.stringify(body),
  );
  jar.absorb(res);
  if (res.status >= 400) throw new HttpError(`glewlwyd ${method} ${path}`, res.status, res.body);
  return res;
}

/**
 * Starts Glewlwyd on SQLite (a file of its own) or on PostgreSQL (`postgres`: a database it creates on that loopback
 * server, named glewlwyd_bench_<pid>, dropped at stop).
 */
export async function startGlewlwyd(
  http: HttpClient,
  port: number,
  options: { postgres?: string } = {},
): Promise<Glewlwyd> {
  const missing = glewlwydMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'opencis-glewlwyd-'));
  // Signing in to the openid scope needs the password (the package's script leaves it off).
  const passwordRequired =
    "UPDATE g_scope SET gs_password_required = 1, gs_password_max_age = 3600 WHERE gs_name = 'openid'";
  let databaseConfig: string;
  let dropDatabase = async () => {};
  if (options.postgres) {
    const server = new URL(options.postgres);
    if (!['127.0.0.1', 'localhost', '::1'].includes(server.hostname)) throw new Error('PostgreSQL must be on loopback');
    const name = `glewlwyd_bench_${process.pid}`;
    const admin = new pg.Client({ connectionString: options.postgres });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const target = new URL(options.postgres);
    target.pathname = `/${name}`;
    const c = new pg.Client({ connectionString: target.href });
    await c.connect();
    // The package's PostgreSQL scripts: the schema, then the defaults (its administrator's password is hashed with
    // pgcrypto's crypt()).
    await c.query(readFileSync(SCHEMA_PG, 'utf8'));
    await c.query('CREATE EXTENSION IF NOT EXISTS pgcrypto');
    await c.query(readFileSync(DEFAULTS_PG, 'utf8'));
    await c.query(passwordRequired);
    await c.end();
    const user = decodeURIComponent(server.username) || 'postgres';
    databaseConfig = `database =\n{\n  type = "postgre"\n  conninfo = "host=${server.hostname} port=${server.port || 5432} dbname=${name} user=${user} application_name=glewlwyd-bench"\n};`;
    dropDatabase = async () => {
      const a = new pg.Client({ connectionString: options.postgres });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    };
  } else {
    const db = join(dir, 'glewlwyd.db');
    execFileSync('sqlite3', [db], { input: readFileSync(SCHEMA_SQL) });
    execFileSync('sqlite3', [db, passwordRequired]);
    databaseConfig = `database =\n{\n  type = "sqlite3"\n  path = "${db}"\n};`;
  }
  const base = `http://127.0.0.1:${port}`;
  const config = readFileSync(PACKAGE_CONFIG, 'utf8')
    .replace(/^port=.*$/m, `port=${port}`)
    .replace(/^#?bind_address=.*$/m, 'bind_address="127.0.0.1"')
    .replace(/^external_url=.*$/m, `external_url="${base}"`)
    .replace(/^log_mode=.*$/m, 'log_mode="file"')
    .replace(/^log_file=.*$/m, `log_file="${join(dir, 'glewlwyd.log')}"`)
    .replace(/^log_level=.*$/m, `log_level="${process.env.GLEWLWYD_LOG_LEVEL ?? 'WARNING'}"`)
    .replace(/^@include "\/etc\/glewlwyd\/glewlwyd-db.conf"$/m, databaseConfig);
  writeFileSync(join(dir, 'glewlwyd.conf'), config);
  const version = /Version ([0-9.]+)/.exec(execFileSync('glewlwyd', ['--help'], { encoding: 'utf8' }))?.[1] ?? '?';
  const proc: ChildProcess = spawn('glewlwyd', [`--config-file=${join(dir, 'glewlwyd.conf')}`], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    await dropDatabase();
  };
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await http.request(`${base}/config`, 'GET');
        if (res.status === 200) break;
      } catch {
        // starting
      }
      if (Date.now() > deadline) throw new Error(`glewlwyd did not start (log: ${join(dir, 'glewlwyd.log')})`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The package's default administrator (admin / password) sets it up.
    const admin = new Jar();
    await api(http, base, admin, 'POST', '/api/auth/', { username: 'admin', password: 'password' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await api(http, base, admin, 'POST', '/api/mod/plugin/', {
      module: 'oidc',
      name: 'oidc',
      display_name: 'OpenID Connect',
      enabled: true,
      parameters: {
        iss: `${base}/api/oidc`,
        'jwt-type': 'rsa',
        'jwt-key-size': '256',
        key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }),
        cert: rsa.publicKey.export({ type: 'spki', format: 'pem' }),
        'access-token-duration': 3600,
        'refresh-token-duration': 43_200,
        'code-duration': 60,
        'refresh-token-rolling': true,
        'allow-non-oidc': false,
        'auth-type-code-enabled': true,
        'auth-type-token-enabled': false,
        'auth-type-id-token-enabled': false,
        'auth-type-none-enabled': false,
        'auth-type-password-enabled': false,
        'auth-type-client-enabled': false,
        'auth-type-refresh-enabled': true,
        scope: [],
        'additional-parameters': [],
        claims: [],
        'jwks-show': true,
        'request-parameter-allow': false,
        'secret-type': 'pairwise',
        'address-claim': { type: 'no', mandatory: false },
        'name-claim': 'on-demand',
        'name-claim-scope': [],
        'email-claim': 'no',
        'email-claim-scope': [],
        'scope-claim': 'no',
        'scope-claim-scope': [],
        'allowed-scope': ['openid'],
        'pkce-allowed': true,
        'pkce-method-plain-allowed': false,
        'pkce-required': true,
        'introspection-revocation-allowed': false,
        'register-client-allowed': false,
        'session-management-allowed': false,
        'client-cert-header-name': 'SSL_CLIENT_CERT',
        'oauth-dpop-allowed': false,
      },
    });
    const username = 'bench';
    const password = `Pw-${randomBytes(12).toString('base64url')}`;
    await api(http, base, admin, 'POST', '/api/user/?source=database', {
      username,
      name: 'Bench Signin',
      email: 'bench@example.nhs.uk',
      password,
      scope: ['openid'],
      enabled: true,
    });
    const clientId = 'bench-client';
    const clientSecret = randomBytes(24).toString('base64url');
    await api(http, base, admin, 'POST', '/api/client/?source=database', {
      client_id: clientId,
      name: 'Bench EPR',
      confidential: true,
      password: clientSecret,
      redirect_uri: [GLEWLWYD_REDIRECT_URI],
      authorization_type: ['code', 'refresh_token'],
      token_endpoint_auth_method: ['client_secret_basic'],
      scope: ['openid'],
      enabled: true,
    });
    // The user consents to the client once (as a person would the first time).
    const user = new Jar();
    await api(http, base, user, 'POST', '/api/auth/', { username, password });
    await api(http, base, user, 'PUT', `/api/auth/grant/${encodeURIComponent(clientId)}/`, { scope: 'openid' });
    return {
      base,
      pid: proc.pid!,
      clientId,
      clientSecret,
      username,
      password,
      version,
      log: () => {
        try {
          return readFileSync(join(dir, 'glewlwyd.log'), 'utf8');
        } catch {
          return '';
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One whole sign-in on glewlwyd, as a browser and a relying party do it. */
export async function glewlwydSignIn(http: HttpClient, g: Glewlwyd): Promise<void> {
  const jar = new Jar();
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: g.clientId,
    redirect_uri: GLEWLWYD_REDIRECT_URI,
    scope: 'openid',
    state: randomBytes(12).toString('base64url'),
    nonce: randomBytes(12).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const authorize = `${g.base}/api/oidc/auth?${query}`;
  const first = await http.request(authorize, 'GET', { cookie: jar.header() });
  if (first.status !== 302) throw new HttpError('glewlwyd authorize', first.status, first.body);
  const login = await http.request(
    `${g.base}/api/auth/`,
    'POST',
    { 'content-type': 'application/json', cookie: jar.header() },
    JSON.stringify({ username: g.username, password: g.password }),
  );
  jar.absorb(login);
  if (login.status !== 200) throw new HttpError('glewlwyd login', login.status, login.body);
  // Back from the login page: `g_continue` tells glewlwyd the person has been shown it (without, it shows it again).
  const again = await http.request(`${authorize}&g_continue`, 'GET', { cookie: jar.header() });
  const location = again.headers.location ?? '';
  const code = location.startsWith(GLEWLWYD_REDIRECT_URI) ? new URL(location).searchParams.get('code') : null;
  if (again.status !== 302 || !code) {
    const error = location.includes('error=') ? new URL(location).searchParams.get('error') : location.slice(0, 80);
    throw new HttpError(`glewlwyd authorize (signed in) → ${error}`, again.status, again.body);
  }
  const token = await http.request(
    `${g.base}/api/oidc/token`,
    'POST',
    {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(g.clientId)}:${encodeURIComponent(g.clientSecret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: GLEWLWYD_REDIRECT_URI,
      code_verifier: verifier,
    }).toString(),
  );
  if (token.status !== 200) throw new HttpError('glewlwyd token', token.status, token.body);
  const { access_token: accessToken, id_token: idToken } = JSON.parse(token.body) as {
    access_token?: string;
    id_token?: string;
  };
  if (!accessToken || !idToken) throw new Error('glewlwyd token: no access or ID token');
  const info = await http.request(`${g.base}/api/oidc/userinfo`, 'GET', { authorization: `Bearer ${accessToken}` });
  if (info.status !== 200) throw new HttpError('glewlwyd userinfo', info.status, info.body);
  if (!(JSON.parse(info.body) as { sub?: string }).sub) throw new Error('glewlwyd userinfo: no sub');
}
