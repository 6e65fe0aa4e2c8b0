import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerClient } from '../../src/services/clients.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import type { Database, Queryable } from '../../src/storage/database.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { browse, CookieJar, client } from '../support/oidc.ts';
import { freePort } from '../support/server.ts';

/**
 * A store failing under a running node: PostgreSQL unreachable, the database read-only, Redis unreachable. The OpenID
 * Connect endpoints answer 503 with Retry-After in the protocol's words (`temporarily_unavailable`: a page to a
 * browser, JSON to a relying party), OpenCIS's own endpoints 503 with a catalogued code — never oidc-provider's
 * `server_error` 500 — and everything works again, with no restart, once the store is back.
 *
 * The failures are real driver errors: "PostgreSQL unreachable" sends the node's queries to a pg pool on a closed port
 * (ECONNREFUSED); "read-only" runs them in READ ONLY transactions of the real database (SQLSTATE 25006 on writes);
 * Redis (the real one at 127.0.0.1:6379) is reached through a loopback TCP relay this test cuts and restores. The fault
 * suite (`npm run test:faults`) shows the same with real restarts.
 */
const REDIS = { host: '127.0.0.1', port: 6379 };
const redisPrefix = `opencis-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
const redirectUri = 'http://localhost:9/callback';

let t: TestDatabase;
let dead: Database;
let mode: 'up' | 'down' | 'read_only' = 'up';
const clock = TestClock.running();
const op = () => testContext(t.db, { clock });
let userId: string;
let clientId: string;
let secret: string;

/** The node's database: the test database, or its failure of the moment. */
function failing(db: Database): Database {
  const readOnly = <T>(fn: (tx: Queryable) => Promise<T>) =>
    db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION READ ONLY');
      return fn(tx);
    });
  return {
    kind: db.kind,
    query<R>(sql: string, params?: readonly unknown[]) {
      if (mode === 'down') return dead.query<R>(sql, params);
      if (mode === 'read_only') return readOnly((tx) => tx.query<R>(sql, params));
      return db.query<R>(sql, params);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      if (mode === 'down') return dead.transaction(fn);
      if (mode === 'read_only') return readOnly(fn);
      return db.transaction(fn);
    },
    exec: (sql) => db.exec(sql),
    close: async () => {},
  };
}

/** A loopback TCP relay to Redis that can be cut (every connection closed, new ones refused) and restored. */
class Relay {
  private server: Server | null = null;
  private sockets = new Set<Socket>();
  constructor(readonly port: number) {}
  async open(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = tcpConnect(REDIS.port, REDIS.host);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

interface Node {
  app: FastifyInstance;
  url: string;
}

async function startNode(env: Record<string, string> = {}): Promise<Node> {
  const port = await freePort();
  const url = `http://localhost:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-outage-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    ...env,
  });
  const app = await buildApp({
    config,
    db: failing(t.db),
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  await app.listen({ port, host: '127.0.0.1' });
  return { app, url };
}

before(async () => {
  t = await createTestDatabase();
  // Nothing listens on port 1: every connection is refused, as by a PostgreSQL that is down.
  dead = await openPostgres({ url: 'postgres://postgres@127.0.0.1:1/opencis', poolSize: 2 });
  await ensureCertificateAuthority(op());
  userId = (
    await registerPerson(op(), {
      givenName: 'Olga',
      familyName: 'Outage',
      dateOfBirth: '1977-07-07',
      email: 'olga@example.nhs.uk',
      identityAssuranceLevel: 3,
    })
  ).userId;
  const reg = await registerClient(op(), {
    name: 'Resilient EPR',
    redirectUris: [redirectUri],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: ['openid', 'profile'],
  });
  clientId = reg.client.clientId;
  secret = reg.clientSecret!;
});
after(async () => {
  mode = 'up';
  await dead?.close();
  await t?.close();
});

async function configFor(node: Node, rp = { clientId, secret }): Promise<client.Configuration> {
  const config = await client.discovery(
    new URL(`${node.url}/oidc`),
    rp.clientId,
    undefined,
    client.ClientSecretBasic(rp.secret),
    { execute: [client.allowInsecureRequests] },
  );
  return config;
}

/** A whole sign-in by a person with an AAL3 OpenCIS session: authorize, interaction, code, token. */
async function signIn(
  node: Node,
  rp = { clientId, secret },
): Promise<{ accessToken: string; refreshToken?: string; config: client.Configuration }> {
  const config = await configFor(node, rp);
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  const jar = await signedInBrowser();
  const { url: callback, response } = await browse(url.toString(), jar, redirectUri);
  assert.ok(callback.startsWith(redirectUri), `reached the relying party: ${response.status} ${callback}`);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, config };
}

async function signedInBrowser(): Promise<CookieJar> {
  const jar = new CookieJar();
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, op(), { userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set('opencis_session', token);
  return jar;
}

function authorizeUrl(node: Node): string {
  const q = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: redirectUri,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    state: 'abc',
    nonce: 'def',
  });
  return `${node.url}/oidc/authorize?${q}`;
}

const browser = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

/** A person's browser at the authorization endpoint: a page saying to try again shortly, 503, Retry-After. */
async function assertUnavailablePage(res: Response, retryAfter: string): Promise<void> {
  const body = await res.text();
  assert.equal(res.status, 503, body.slice(0, 300));
  assert.equal(res.headers.get('retry-after'), retryAfter);
  assert.match(String(res.headers.get('content-type')), /text\/html/);
  assert.match(body, /temporarily_unavailable|service\.(unavailable|read_only)/);
  assert.doesNotMatch(body, /server_error|internal\.error/);
}

/** A relying party calling the token or userinfo endpoint: the protocol's JSON error, 503, Retry-After. */
async function assertUnavailableJson(res: Response, retryAfter: string): Promise<void> {
  const body = await res.text();
  assert.equal(res.status, 503, body.slice(0, 300));
  assert.equal(res.headers.get('retry-after'), retryAfter);
  assert.match(String(res.headers.get('content-type')), /application\/json/);
  assert.equal((JSON.parse(body) as { error: string }).error, 'temporarily_unavailable');
}

function tokenRequest(node: Node): Promise<Response> {
  return fetch(`${node.url}/oidc/access_token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: randomBytes(32).toString('base64url'),
      redirect_uri: redirectUri,
      code_verifier: randomBytes(32).toString('base64url'),
    }),
  });
}

function userinfo(node: Node, accessToken: string): Promise<Response> {
  return fetch(`${node.url}/oidc/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
}

test(`[${backend}] PostgreSQL unreachable: OpenID Connect endpoints answer 503 temporarily_unavailable, OpenCIS ones 503 service.unavailable; all works again when it is back`, async () => {
  const node = await startNode();
  try {
    const before = await signIn(node);
    mode = 'down';

    // A browser starting a sign-in (the client registry is in PostgreSQL).
    await assertUnavailablePage(await fetch(authorizeUrl(node), { headers: browser, redirect: 'manual' }), '5');
    // A relying party exchanging a code (client authentication reads the registry) and calling userinfo.
    await assertUnavailableJson(await tokenRequest(node), '5');
    await assertUnavailableJson(await userinfo(node, before.accessToken), '5');
    // OpenCIS's own API and the readiness check.
    const api = await fetch(`${node.url}/api/v1/rbac/catalogue`);
    assert.equal(api.status, 503);
    assert.equal(api.headers.get('retry-after'), '5');
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'service.unavailable');
    assert.equal((await fetch(`${node.url}/health/ready`)).status, 503);
    // What needs no database still answers: discovery and the JWKS (keys are in memory).
    assert.equal((await fetch(`${node.url}/oidc/.well-known/openid-configuration`)).status, 200);
    assert.equal((await fetch(`${node.url}/oidc/connect/jwk_uri`)).status, 200);

    mode = 'up';
    const again = await signIn(node);
    assert.equal((await userinfo(node, again.accessToken)).status, 200, 'a new sign-in works, no restart');
    assert.equal((await userinfo(node, before.accessToken)).status, 200, 'tokens from before still work');
  } finally {
    mode = 'up';
    await node.app.close();
  }
});

test(`[${backend}] read-only database: a new sign-in is refused with 503 and Retry-After (a page), existing tokens still read; then writable again`, async () => {
  const node = await startNode();
  try {
    const before = await signIn(node);
    mode = 'read_only';

    // The person's OpenCIS session was made before (on the writable database).
    const jar = await signedInBrowser();
    const res = await fetch(authorizeUrl(node), { headers: { ...browser, cookie: jar.header() }, redirect: 'manual' });
    await assertUnavailablePage(res, '60');
    // Reads go on: a relying party's userinfo call with a token it holds.
    assert.equal((await userinfo(node, before.accessToken)).status, 200);
    // OpenCIS's own reads too.
    assert.equal((await fetch(`${node.url}/api/v1/rbac/catalogue`)).status, 200);

    mode = 'up';
    const again = await signIn(node);
    assert.equal((await userinfo(node, again.accessToken)).status, 200);
  } finally {
    mode = 'up';
    await node.app.close();
  }
});

test(`[${backend}] Redis unreachable: the provider's endpoints and the interaction page answer 503, not 500; when Redis is back, sessions and tokens from before work`, async () => {
  const probe = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await probe.connect();
  } catch (err) {
    assert.fail(`this test needs Redis at ${REDIS.host}:${REDIS.port} (start redis-server): ${(err as Error).message}`);
  }
  const relay = new Relay(await freePort());
  await relay.open();
  const node = await startNode({
    REDIS_URL: `redis://127.0.0.1:${relay.port}/0?keyPrefix=${encodeURIComponent(redisPrefix)}`,
  });
  try {
    const before = await signIn(node);
    // A sign-in that has reached OpenCIS's interaction page when Redis goes.
    const jar = await signedInBrowser();
    const started = await fetch(authorizeUrl(node), { headers: { cookie: jar.header() }, redirect: 'manual' });
    assert.equal(started.status, 303);
    jar.absorb(started);
    const interaction = new URL(started.headers.get('location')!, node.url).toString();

    await relay.cut();
    const t0 = performance.now();
    await assertUnavailablePage(await fetch(authorizeUrl(node), { headers: browser, redirect: 'manual' }), '5');
    await assertUnavailableJson(await tokenRequest(node), '5');
    await assertUnavailableJson(await userinfo(node, before.accessToken), '5');
    const page = await fetch(interaction, { headers: { ...browser, cookie: jar.header() }, redirect: 'manual' });
    await assertUnavailablePage(page, '5');
    process.stderr.write(`# four requests refused in ${Math.round(performance.now() - t0)} ms with Redis down\n`);

    await relay.open();
    // ioredis reconnects on its own (every ≤ 0.5 s); the first request may still meet the closed connection.
    let back = 0;
    for (let i = 0; i < 40 && back !== 200; i++) {
      back = (await userinfo(node, before.accessToken)).status;
      if (back !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(back, 200, 'a token from before works once Redis is back');
    const resumed = await fetch(interaction, { headers: { cookie: jar.header() }, redirect: 'manual' });
    assert.equal(resumed.status, 303, 'the interrupted sign-in goes on');
    const again = await signIn(node);
    assert.equal((await userinfo(node, again.accessToken)).status, 200);
  } finally {
    await node.app.close();
    await relay.cut();
    await dropTestKeys(probe);
  }
});

test(`[${backend}] PostgreSQL lost in the middle of a refresh (OpenID Connect state in Redis): 503, and the relying party's retry with the same refresh token works; nothing of the grant is revoked`, async () => {
  const reg = await registerClient(op(), {
    name: 'Refreshing EPR',
    redirectUris: [redirectUri],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: ['openid', 'profile', 'offline_access'],
  });
  const rp = { clientId: reg.client.clientId, secret: reg.clientSecret! };
  const probe = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await probe.connect();
  const node = await startNode({ REDIS_URL: `redis://127.0.0.1:6379/0?keyPrefix=${encodeURIComponent(redisPrefix)}` });
  try {
    const before = await signIn(node, rp);
    assert.ok(before.refreshToken, 'the relying party holds a refresh token');
    // The client is known to the node (its registry cache) and the refresh token, grant and session are in Redis: the
    // refresh gets as far as the ID token's claims, which are read from PostgreSQL — down.
    mode = 'down';
    const refresh = (refreshToken = before.refreshToken!) =>
      fetch(`${node.url}/oidc/access_token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(rp.clientId)}:${encodeURIComponent(rp.secret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
      });
    await assertUnavailableJson(await refresh(), '5');
    mode = 'up';

    // Nothing was given to the relying party, so nothing was used up: its retry is a refresh, not a replay.
    const retried = await refresh();
    const body = (await retried.json()) as { access_token?: string; refresh_token?: string; error?: string };
    assert.equal(retried.status, 200, JSON.stringify(body));
    assert.ok(body.access_token && body.refresh_token && body.refresh_token !== before.refreshToken);
    assert.equal((await userinfo(node, before.accessToken)).status, 200, 'the grant was not revoked');
    assert.equal((await userinfo(node, body.access_token)).status, 200);
    // Rotation still holds: the refresh token the retry spent is refused, and the grant revoked with every token it gave.
    const replay = await refresh();
    assert.equal(replay.status, 400);
    assert.equal(((await replay.json()) as { error: string }).error, 'invalid_grant');
    assert.equal((await userinfo(node, body.access_token)).status, 401, 'a replay revokes the grant');

    // Requests racing with one refresh token: exactly one is answered with tokens; the others are refused as replays.
    const fresh = await signIn(node, rp);
    const raced = await Promise.all([1, 2, 3].map(() => refresh(fresh.refreshToken!)));
    const statuses = raced.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 400, 400], JSON.stringify(statuses));
    for (const r of raced.filter((x) => x.status === 400)) {
      assert.equal(((await r.json()) as { error: string }).error, 'invalid_grant');
    }
    const won = (await raced.find((r) => r.status === 200)!.json()) as { access_token: string };
    assert.equal((await userinfo(node, won.access_token)).status, 401, 'the replays revoked the grant');
  } finally {
    mode = 'up';
    await node.app.close();
    await dropTestKeys(probe);
  }
});

/** This file's keys out of the shared Redis. */
async function dropTestKeys(probe: Redis): Promise<void> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await probe.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length > 0) await probe.del(...keys);
  probe.disconnect();
}
