import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
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
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { CookieJar, client } from '../support/oidc.ts';
import { freePort } from '../support/server.ts';

/**
 * Several OpenCIS nodes behind one public address: a sign-in that starts on node A (authorize → interaction) finishes
 * on node B (interaction completion, code, token, userinfo) and is refreshed on A. With REDIS_URL the nodes share the
 * provider's state through Redis (a real Redis at 127.0.0.1:6379: missing, the test FAILS); without it, through the
 * database (PostgreSQL adapter). Redis keys of this test get a prefix of their own (ioredis `keyPrefix` in the URL) and
 * only those are deleted at the end.
 */
const REDIS = 'redis://127.0.0.1:6379';
const redisPrefix = `opencis-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
const redirectUri = 'http://localhost:9/callback';

let t: TestDatabase;
const clock = TestClock.running();
const op = () => testContext(t.db, { clock });
let userId: string;
let clientId: string;
let secret: string;

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(op());
  userId = (
    await registerPerson(op(), {
      givenName: 'Nils',
      familyName: 'Nodesen',
      dateOfBirth: '1979-04-04',
      email: 'nils@example.nhs.uk',
      identityAssuranceLevel: 3,
    })
  ).userId;
  const reg = await registerClient(op(), {
    name: 'Clustered EPR',
    redirectUris: [redirectUri],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: ['openid', 'profile', 'offline_access'],
  });
  clientId = reg.client.clientId;
  secret = reg.clientSecret!;
});
after(async () => {
  await t?.close();
});

interface Node {
  name: 'A' | 'B';
  url: string;
  app: FastifyInstance;
  /** "METHOD /path" of every request this node served. */
  served: string[];
}

interface Cluster {
  publicUrl: string;
  a: Node;
  b: Node;
  close(): Promise<void>;
}

/** Two apps on the one test database, each on its own port, both answering as `publicUrl` (the load balancer). */
async function cluster(redisUrl: string | undefined): Promise<Cluster> {
  const publicUrl = `http://localhost:${await freePort()}`;
  const start = async (name: 'A' | 'B'): Promise<Node> => {
    const port = await freePort();
    const config = loadConfig({
      PORT: String(port),
      PUBLIC_URL: publicUrl,
      DATA_DIR: mkdtempSync(join(tmpdir(), `opencis-node${name}-`)),
      LOG_LEVEL: 'silent',
      DEMO_DATA: 'false',
      ALLOW_EXAMPLE_NI_PREFIX: 'true',
      // The test plays the load balancer, from loopback: its X-Forwarded-Host/-Proto are believed from there only.
      TRUST_PROXY: '127.0.0.1',
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    });
    const app = await buildApp({
      config,
      db: t.db,
      sealer: testSealer,
      clock,
      logger: false,
      transport: { send: async () => {} },
    });
    const served: string[] = [];
    app.addHook('onRequest', async (req) => {
      served.push(`${req.method} ${req.url.split('?')[0]}`);
    });
    await app.listen({ port, host: '127.0.0.1' });
    return { name, url: `http://localhost:${port}`, app, served };
  };
  const a = await start('A');
  const b = await start('B');
  return {
    publicUrl,
    a,
    b,
    async close() {
      await a.app.close();
      await b.app.close();
    },
  };
}

/** The load balancer's choice: send a request for the public URL to one node, as the balancer would forward it. */
async function via(c: Cluster, node: Node, publicHref: string, jar: CookieJar): Promise<Response> {
  const u = new URL(publicHref, c.publicUrl);
  assert.equal(u.origin, c.publicUrl, `stays on the public address: ${publicHref}`);
  const res = await fetch(`${node.url}${u.pathname}${u.search}`, {
    redirect: 'manual',
    headers: {
      cookie: jar.header(),
      'x-forwarded-host': new URL(c.publicUrl).host,
      'x-forwarded-proto': 'http',
    },
  });
  jar.absorb(res);
  return res;
}

/** A relying party's openid-client configuration whose requests go to one node (the issuer stays the public one). */
async function configAt(c: Cluster, node: Node): Promise<client.Configuration> {
  const meta = (await (await fetch(`${node.url}/oidc/.well-known/openid-configuration`)).json()) as Record<
    string,
    unknown
  >;
  assert.equal(meta.issuer, `${c.publicUrl}/oidc`);
  const routed = Object.fromEntries(
    Object.entries(meta).map(([k, v]) => [
      k,
      k !== 'issuer' && typeof v === 'string' ? v.replace(c.publicUrl, node.url) : v,
    ]),
  ) as client.ServerMetadata;
  const config = new client.Configuration(routed, clientId, undefined, client.ClientSecretBasic(secret));
  client.allowInsecureRequests(config);
  return config;
}

/** The sign-in across nodes; `storage` looks at where the provider's state went while every artefact still exists. */
async function crossNodeSignIn(c: Cluster, storage: () => Promise<void>): Promise<void> {
  const configA = await configAt(c, c.a);
  const configB = await configAt(c, c.b);
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const authorize = client.buildAuthorizationUrl(configA, {
    redirect_uri: redirectUri,
    scope: 'openid profile offline_access',
    prompt: 'consent',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  const jar = new CookieJar();
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, op(), { userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set('opencis_session', token);

  // authorize on A: the library stores the interaction and hands over to OpenCIS's interaction page.
  const started = await via(c, c.a, authorize.pathname + authorize.search, jar);
  assert.equal(started.status, 303, await started.text());
  const interaction = started.headers.get('location')!;
  assert.match(interaction, /\/oidc\/interaction\/[\w-]+$/);
  // the interaction page on B: it reads the interaction A stored, finds the AAL3 session and completes it.
  const completed = await via(c, c.b, interaction, jar);
  assert.equal(completed.status, 303, await completed.text());
  const resume = completed.headers.get('location')!;
  assert.match(new URL(resume, c.publicUrl).pathname, /^\/oidc\/authorize\/[\w-]+$/);
  // the library's resume on B issues the code.
  const issued = await via(c, c.b, resume, jar);
  assert.equal(issued.status, 303, await issued.text());
  const callback = issued.headers.get('location')!;
  assert.ok(callback.startsWith(`${redirectUri}?code=`), callback);

  // code → tokens on B, userinfo on B
  const tokens = await client.authorizationCodeGrant(configB, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  const claims = tokens.claims()!;
  assert.equal(claims.sub, userId);
  assert.equal(claims.iss, `${c.publicUrl}/oidc`);
  assert.equal(claims.acr, 'AAL3_ANY');
  assert.ok(tokens.refresh_token, 'offline_access gave a refresh token');
  const infoB = await client.fetchUserInfo(configB, tokens.access_token, userId);
  assert.equal(infoB.sub, userId);
  assert.equal(infoB.family_name, 'Nodesen');
  // an access token issued on B is good on A
  assert.equal((await client.fetchUserInfo(configA, tokens.access_token, userId)).sub, userId);

  // refresh on A; the new access token works on both nodes
  const refreshed = await client.refreshTokenGrant(configA, tokens.refresh_token!);
  assert.equal(refreshed.claims()?.sub, userId);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  assert.equal((await client.fetchUserInfo(configA, refreshed.access_token, userId)).sub, userId);
  assert.equal((await client.fetchUserInfo(configB, refreshed.access_token, userId)).sub, userId);
  await storage();

  // The code is single-use across nodes: replayed on A after B redeemed it, it is refused, and (RFC 6749 §4.1.2) every
  // token of that grant is revoked — on both nodes.
  await assert.rejects(
    client.authorizationCodeGrant(configA, new URL(callback), {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
    }),
    (e: Error & { error?: string }) => e.error === 'invalid_grant',
  );
  for (const [config, name] of [
    [configA, 'A'],
    [configB, 'B'],
  ] as const) {
    for (const access of [tokens.access_token, refreshed.access_token]) {
      const res = await fetch(config.serverMetadata().userinfo_endpoint!, {
        headers: { authorization: `Bearer ${access}` },
      });
      assert.equal(res.status, 401, `revoked on ${name}`);
    }
  }

  // each step was served by the node it was sent to
  const on = (n: Node, re: RegExp) => n.served.filter((s) => re.test(s)).length;
  assert.equal(on(c.a, /^GET \/oidc\/authorize$/), 1);
  assert.equal(on(c.b, /^GET \/oidc\/authorize$/), 0);
  assert.equal(on(c.b, /^GET \/oidc\/interaction\//), 1);
  assert.equal(on(c.a, /^GET \/oidc\/interaction\//), 0);
  assert.equal(on(c.b, /^GET \/oidc\/authorize\/[\w-]+$/), 1);
  assert.equal(on(c.a, /^GET \/oidc\/authorize\/[\w-]+$/), 0);
  assert.equal(on(c.b, /^POST \/oidc\/access_token$/), 1, 'code redeemed on B');
  assert.equal(on(c.a, /^POST \/oidc\/access_token$/), 2, 'the refresh and the replayed code on A');
  assert.equal(on(c.b, /^GET \/oidc\/userinfo$/), 4);
  assert.equal(on(c.a, /^GET \/oidc\/userinfo$/), 4);
}

const ARTEFACTS = ['Session', 'Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode'];

async function payloadRows(): Promise<Record<string, number>> {
  const { rows } = await t.db.query<{ model: string; n: string }>(
    'SELECT model, count(*)::text AS n FROM oidc_payloads GROUP BY model',
  );
  return Object.fromEntries(rows.map((r) => [r.model, Number(r.n)]));
}

test(`[${backend}] two nodes sharing Redis: a sign-in starts on A, finishes on B, and is refreshed on A`, async () => {
  // Redis is a requirement of this test, not an option: no Redis, no pass.
  const probe = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    assert.equal(await probe.ping(), 'PONG');
  } catch (err) {
    probe.disconnect();
    assert.fail(`this test needs Redis at ${REDIS} (start redis-server): ${(err as Error).message}`);
  }
  const before = await payloadRows();
  const c = await cluster(`${REDIS}/0?keyPrefix=${encodeURIComponent(redisPrefix)}`);
  try {
    await crossNodeSignIn(c, async () => {
      // The provider's state lives in Redis (under this test's prefix), not in the database.
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await probe.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      const models = new Set(keys.map((k) => k.slice(redisPrefix.length).split(':')[2]));
      for (const m of ARTEFACTS) assert.ok(models.has(m), `${m} kept in Redis (${[...models].join(', ')})`);
      assert.deepEqual(await payloadRows(), before, 'nothing of the provider’s state went to oidc_payloads');
    });
  } finally {
    await c.close();
    // Only this test's keys are removed.
    let cursor = '0';
    do {
      const [next, batch] = await probe.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
      cursor = next;
      if (batch.length > 0) await probe.del(...batch);
    } while (cursor !== '0');
    probe.disconnect();
  }
});

test(`[${backend}] two nodes sharing only the database (PostgreSQL adapter): the same cross-node sign-in`, async () => {
  const c = await cluster(undefined);
  try {
    await crossNodeSignIn(c, async () => {
      const rows = await payloadRows();
      for (const m of ARTEFACTS) assert.ok((rows[m] ?? 0) > 0, `${m} kept in oidc_payloads`);
    });
  } finally {
    await c.close();
  }
});
