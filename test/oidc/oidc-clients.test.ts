import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { registerClientApi } from '../../src/api/clients.ts';
import { buildApp } from '../../src/app.ts';
import { clientCommand } from '../../src/cli/commands/client.ts';
import { UsageError } from '../../src/cli/io.ts';
import type { Command } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { cardConfigFrom, relyingPartyFrom } from '../../src/http/deps.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, POSTGRES_URL, type TestDatabase } from '../support/db.ts';
import { browse, CookieJar, client, discover } from '../support/oidc.ts';
import { freePort } from '../support/server.ts';

/**
 * The relying-party registry through the API (RA Managers at AAL3, CSRF, policy `client:register`) and the CLI
 * (`opencis client …`), and what disabling a relying party does to its sign-ins and tokens.
 */
let t: TestDatabase;
let app: FastifyInstance;
let url: string;
const clock = TestClock.running();
const op = () => testContext(t.db, { clock });
const people: Record<'manager' | 'agent', string> = { manager: '', agent: '' };
const redirectUri = 'http://localhost:9/callback';

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(op());
  await saveOrganisation(op(), { odsCode: 'RR8', name: 'Test Trust', type: 'trust' });
  const manager = await createPosition(op(), 'RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  const agent = await createPosition(op(), 'RR8', { name: 'RA Agent', jobRoles: ['R5090'] });
  let n = 0;
  for (const [who, positionId] of [
    ['manager', manager.positionId],
    ['agent', agent.positionId],
  ] as const) {
    n++;
    const p = await registerPerson(op(), {
      givenName: `Reg${who}`,
      familyName: 'Istrar',
      dateOfBirth: `1980-01-0${n}`,
      email: `${who}@example.nhs.uk`,
      identityAssuranceLevel: 3,
    });
    await assignRoleProfile(op(), { userId: p.userId, positionId, startDate: '2020-01-01' });
    people[who] = p.userId;
  }
  const port = await freePort();
  url = `http://localhost:${port}`;
  const config = loadConfig({
    PORT: String(port),
    PUBLIC_URL: url,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-clients-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
  });
  const transport = { send: async () => {} };
  app = await buildApp({ config, db: t.db, sealer: testSealer, clock, logger: false, transport });
  // until app.ts registers the relying-party API itself
  if (!app.hasRoute({ method: 'GET', url: '/api/v1/clients' })) {
    registerClientApi(app, {
      config,
      db: t.db,
      repos: t.repos,
      clock,
      sealer: testSealer,
      rp: relyingPartyFrom(config),
      card: cardConfigFrom(config),
      outbox: app.outbox,
    });
  }
  await app.listen({ port, host: '127.0.0.1' });
});
after(async () => {
  await app?.close();
  await t?.close();
});

interface Browser {
  cookie: string;
  csrf: string;
}

async function signedIn(userId: string, aal: 2 | 3 = 3): Promise<Browser> {
  const page = await app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(
      tx,
      op(),
      { userId, aal, amr: aal === 3 ? ['SMARTCARD'] : ['PASSKEY'], authenticatorId: 'test' },
      null,
      { ip: null, userAgent: null },
    ),
  );
  return { cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`, csrf };
}

async function call(b: Browser | null, method: 'GET' | 'POST', path: string, body?: unknown, extra = {}) {
  return app.inject({
    method,
    url: path,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(b ? { cookie: b.cookie, 'csrf-token': b.csrf } : {}),
      ...extra,
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
}

const errorCode = (res: { json(): unknown }) => (res.json() as { error: { code: string } }).error.code;

interface ClientJson {
  clientId: string;
  name: string;
  status: string;
  minimumAal: number;
  metadata: Record<string, unknown>;
}

const epr = {
  name: 'Ward EPR',
  redirectUris: [redirectUri],
  tokenEndpointAuthMethod: 'client_secret_basic',
  scopes: ['openid', 'profile', 'offline_access'],
};

/** A sign-in through the client, as the manager (any person with a session would do). */
async function signInWith(clientId: string, secret: string, b: Browser) {
  const config = await discover(`${url}/oidc`, clientId, secret);
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const authUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile offline_access',
    prompt: 'consent',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  const jar = new CookieJar();
  jar.set('opencis_session', /opencis_session=([^;]+)/.exec(b.cookie)![1]!);
  const landed = await browse(authUrl.toString(), jar, redirectUri);
  return { config, landed, verifier, nonce, state };
}

test(`[${backend}] API: the registry needs an AAL3 session, CSRF for changes, and an RA Manager`, async () => {
  const none = await call(null, 'GET', '/api/v1/clients');
  assert.equal(none.statusCode, 401);
  assert.equal(errorCode(none), 'auth.required');

  const weak = await call(await signedIn(people.manager, 2), 'GET', '/api/v1/clients');
  assert.equal(weak.statusCode, 403);
  assert.equal(errorCode(weak), 'auth.step_up_required');

  const agent = await signedIn(people.agent);
  const refused = await call(agent, 'GET', '/api/v1/clients');
  assert.equal(refused.statusCode, 403);
  assert.equal(errorCode(refused), 'auth.forbidden');
  const refusedPost = await call(agent, 'POST', '/api/v1/clients', epr);
  assert.equal(refusedPost.statusCode, 403);
  assert.equal(errorCode(refusedPost), 'auth.forbidden');

  const manager = await signedIn(people.manager);
  const noCsrf = await call(manager, 'POST', '/api/v1/clients', epr, { 'csrf-token': '' });
  assert.equal(noCsrf.statusCode, 403);
  assert.equal(errorCode(noCsrf), 'auth.csrf_invalid');
  const noCsrfDisable = await call(manager, 'POST', '/api/v1/clients/123456789012.apps.national/disable', undefined, {
    'csrf-token': 'forged',
  });
  assert.equal(errorCode(noCsrfDisable), 'auth.csrf_invalid');
});

test(`[${backend}] API: register returns the secret once; list shows the client without it; bad input is refused`, async () => {
  const manager = await signedIn(people.manager);
  const created = await call(manager, 'POST', '/api/v1/clients', epr);
  assert.equal(created.statusCode, 201, created.body);
  const body = created.json() as { client: ClientJson; clientSecret: string };
  assert.match(body.client.clientId, /^[1-9]\d{11}\.apps\.national$/);
  assert.equal(body.client.status, 'active');
  // CIS2's rules by default: no floor above what the client asks (AAL2), AAL3_ANY when it asks nothing, no PKCE demand.
  assert.equal(body.client.minimumAal, 2);
  assert.deepEqual(body.client.metadata.default_acr_values, ['AAL3_ANY']);
  assert.equal(body.client.metadata['urn:opencis:require_pkce'], false);
  assert.equal(body.client.metadata.token_endpoint_auth_method, 'client_secret_basic');
  assert.deepEqual(body.client.metadata.grant_types, ['authorization_code', 'refresh_token']);
  assert.equal(body.client.metadata['urn:opencis:access_token_ttl'], 3600, 'extra metadata survives serialisation');
  assert.ok(body.clientSecret.length >= 40);

  const listed = await call(manager, 'GET', '/api/v1/clients');
  assert.equal(listed.statusCode, 200);
  assert.ok(!listed.body.includes(body.clientSecret), 'the listing never carries the secret');
  const clients = (listed.json() as { clients: ClientJson[] }).clients;
  const mine = clients.find((c) => c.clientId === body.client.clientId);
  assert.ok(mine);
  assert.deepEqual(mine.metadata.redirect_uris, [redirectUri]);

  const pkjwtWithoutKeys = await call(manager, 'POST', '/api/v1/clients', {
    ...epr,
    tokenEndpointAuthMethod: undefined,
  });
  assert.equal(pkjwtWithoutKeys.statusCode, 400);
  assert.equal(errorCode(pkjwtWithoutKeys), 'request.invalid');
  const plainHttp = await call(manager, 'POST', '/api/v1/clients', { ...epr, redirectUris: ['http://epr.example/cb'] });
  assert.equal(plainHttp.statusCode, 400);
  const unknownScope = await call(manager, 'POST', '/api/v1/clients', { ...epr, scopes: ['openid', 'admin'] });
  assert.equal(unknownScope.statusCode, 400);
  const taken = await call(manager, 'POST', '/api/v1/clients', { ...epr, clientId: body.client.clientId });
  assert.equal(taken.statusCode, 400);
  const notJson = await call(manager, 'POST', '/api/v1/clients', undefined, {
    'content-type': 'application/json',
    payload: '{',
  });
  assert.equal(notJson.statusCode, 400);

  const unknown = await call(manager, 'POST', '/api/v1/clients/999999999999.apps.national/disable');
  assert.equal(unknown.statusCode, 404);
  assert.equal(errorCode(unknown), 'oidc.client_not_found');
  const junk = await call(
    manager,
    'POST',
    `/api/v1/clients/${encodeURIComponent("x'; DROP TABLE oidc_clients")}/disable`,
  );
  assert.equal(junk.statusCode, 404);

  const doc = (await call(null, 'GET', '/api/openapi.json')).json() as { paths: Record<string, unknown> };
  for (const p of ['/api/v1/clients', '/api/v1/clients/{clientId}/disable', '/api/v1/clients/{clientId}/enable']) {
    assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
  }
});

test(`[${backend}] API: a disabled relying party can no longer sign anyone in, refresh or call userinfo; enabled, it can`, async () => {
  const manager = await signedIn(people.manager);
  const reg = (await call(manager, 'POST', '/api/v1/clients', epr)).json() as {
    client: ClientJson;
    clientSecret: string;
  };
  const clientId = reg.client.clientId;
  const first = await signInWith(clientId, reg.clientSecret, manager);
  const tokens = await client.authorizationCodeGrant(first.config, new URL(first.landed.url), {
    pkceCodeVerifier: first.verifier,
    expectedNonce: first.nonce,
    expectedState: first.state,
  });
  assert.equal(tokens.claims()!.sub, people.manager);
  assert.ok(tokens.refresh_token);

  const disabled = await call(manager, 'POST', `/api/v1/clients/${clientId}/disable`);
  assert.equal(disabled.statusCode, 200, disabled.body);
  assert.deepEqual(disabled.json(), { clientId, status: 'disabled' });
  const listed = (await call(manager, 'GET', '/api/v1/clients')).json() as { clients: ClientJson[] };
  assert.equal(listed.clients.find((c) => c.clientId === clientId)?.status, 'disabled');

  const userinfo = await fetch(`${url}/oidc/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(userinfo.status, 401, 'userinfo refuses the disabled client’s token');
  await assert.rejects(
    client.refreshTokenGrant(first.config, tokens.refresh_token!),
    (e: Error & { status?: number }) => {
      assert.equal(e.status, 401);
      assert.match(JSON.stringify((e as { cause?: unknown }).cause), /invalid_client/);
      return true;
    },
  );
  const again = await signInWith(clientId, reg.clientSecret, manager);
  assert.ok(!again.landed.url.startsWith(redirectUri), 'no code for a disabled client');
  assert.equal(again.landed.response.status, 400);

  const enabled = await call(manager, 'POST', `/api/v1/clients/${clientId}/enable`);
  assert.deepEqual(enabled.json(), { clientId, status: 'active' });
  const third = await signInWith(clientId, reg.clientSecret, manager);
  assert.ok(third.landed.url.startsWith(redirectUri));
  const info = await client.fetchUserInfo(first.config, tokens.access_token, people.manager);
  assert.equal(info.sub, people.manager);
});

// ---------------------------------------------------------------------------------------------------------------
// CLI: `opencis client …`, run in this process against a database of its own (as `runCli` would run it).

/** Runs a command as `runCli` does: --help, usage errors → 2, refusals (AppError) → 1. */
async function cli(command: Command, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
  let code: number;
  if (args.includes('--help')) {
    io.out(command.help);
    code = 0;
  } else {
    try {
      code = await command.run(args, io);
    } catch (e) {
      const parse = String((e as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
      if (e instanceof UsageError || parse) code = 2;
      else if (e instanceof AppError) code = 1;
      else throw e;
      io.err(`${(e as Error).message}${e instanceof AppError ? ` [${e.code}]` : ''}`);
    }
  }
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

test(`[${backend}] CLI: client register, list, disable; validation and exit codes`, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opencis-client-cli-'));
  let cliDb: TestDatabase | null = null;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    SECRETS_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
  };
  if (backend === 'postgres') {
    cliDb = await createTestDatabase();
    Object.assign(env, { DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: cliDb.schema! });
  }
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const help = await cli(clientCommand, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /opencis client register --name NAME --redirect-uri URI/);

    // usage errors: no database opened, exit 2
    for (const args of [
      ['register', '--redirect-uri', 'https://epr.example/cb'],
      ['register', '--name', 'EPR'],
      ['register', '--name', 'EPR', '--redirect-uri', 'https://epr.example/cb'], // private_key_jwt without keys
      ['register', '--name', 'EPR', '--redirect-uri', 'https://epr.example/cb', '--auth', 'none'],
      [
        'register',
        '--name',
        'EPR',
        '--redirect-uri',
        'https://e/cb',
        '--auth',
        'client_secret_basic',
        '--alg',
        'HS256',
      ],
      [
        'register',
        '--name',
        'EPR',
        '--redirect-uri',
        'https://e/cb',
        '--auth',
        'client_secret_post',
        '--minimum-aal',
        '4',
      ],
      [
        'register',
        '--name',
        'EPR',
        '--redirect-uri',
        'https://e/cb',
        '--auth',
        'client_secret_post',
        '--access-token-ttl',
        '1h',
      ],
      ['register', '--name', 'EPR', '--redirect-uri', 'https://e/cb', '--jwks', join(dataDir, 'missing.json')],
      ['register', '--bogus'],
      ['disable'],
      ['frobnicate'],
      ['list', 'extra'],
    ]) {
      const res = await cli(clientCommand, args);
      assert.equal(res.code, 2, `${args.join(' ')} → ${res.stderr}`);
    }
    const privateJwk = join(dataDir, 'private.json');
    writeFileSync(privateJwk, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] }));
    const leaked = await cli(clientCommand, [
      'register',
      '--name',
      'EPR',
      '--redirect-uri',
      'https://e/cb',
      '--jwks',
      privateJwk,
    ]);
    assert.equal(leaked.code, 2);
    assert.match(leaked.stderr, /private key/);

    const secretClient = await cli(clientCommand, [
      'register',
      '--name',
      'Ward EPR',
      '--redirect-uri',
      'https://epr.example.nhs.uk/callback',
      '--redirect-uri',
      'http://localhost:8080/callback',
      '--post-logout-uri',
      'https://epr.example.nhs.uk/signed-out',
      '--backchannel-logout-uri',
      'https://epr.example.nhs.uk/backchannel',
      '--auth',
      'client_secret_basic',
      '--scopes',
      'openid profile nationalrbacaccess offline_access',
      '--minimum-aal',
      '2',
      '--access-token-ttl',
      '900',
      '--refresh-token-ttl',
      '7200',
      '--client-id',
      '200000000001.apps.national',
    ]);
    assert.equal(secretClient.code, 0, secretClient.stderr);
    assert.match(secretClient.stdout, /^client_id {6}200000000001\.apps\.national$/m);
    assert.match(secretClient.stdout, /^client_secret {2}[A-Za-z0-9_-]{43}$/m);
    assert.match(secretClient.stderr, /shown this once/);

    const publicJwks = join(dataDir, 'jwks.json');
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    writeFileSync(publicJwks, JSON.stringify({ keys: [{ ...jwk, kid: 'rp-1', use: 'sig', alg: 'ES256' }] }));
    const keyClient = await cli(clientCommand, [
      'register',
      '--name',
      'GP system',
      '--redirect-uri',
      'https://gp.example.nhs.uk/cb',
      '--jwks',
      publicJwks,
      '--alg',
      'ES256',
    ]);
    assert.equal(keyClient.code, 0, keyClient.stderr);
    assert.doesNotMatch(keyClient.stdout, /client_secret/);
    const keyClientId = /^client_id {6}(\S+)$/m.exec(keyClient.stdout)![1]!;
    assert.match(keyClient.stdout, /^require_pkce {3}no$/m, 'CIS2: PKCE not demanded of a confidential client');

    // The settings where OpenCIS may be stricter than CIS2: an RS512 client held to PKCE, then given CIS2's rules.
    const rsaJwks = join(dataDir, 'rsa.jwks.json');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    writeFileSync(rsaJwks, JSON.stringify({ keys: [{ ...rsa, kid: 'rsa-1', alg: 'RS512' }] }));
    const shortJwks = join(dataDir, 'short.jwks.json');
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    writeFileSync(shortJwks, JSON.stringify({ keys: [{ ...short, kid: 'short-1', alg: 'RS512' }] }));
    const base = ['register', '--name', 'Screening', '--redirect-uri', 'https://bs.example.nhs.uk/cb'];
    assert.equal((await cli(clientCommand, [...base, '--jwks', rsaJwks, '--auth-signing-alg', 'HS256'])).code, 2);
    const tooShort = await cli(clientCommand, [...base, '--jwks', shortJwks]);
    assert.equal(tooShort.code, 1);
    assert.match(tooShort.stderr, /request\.invalid/);
    const strict = await cli(clientCommand, [
      ...base,
      '--jwks',
      rsaJwks,
      '--auth-signing-alg',
      'RS512',
      '--require-pkce',
      '--default-acr',
      'AAL2_OR_AAL3_ANY',
      '--client-id',
      '200000000002.apps.national',
    ]);
    assert.equal(strict.code, 0, strict.stderr);
    assert.match(strict.stdout, /^require_pkce {3}yes$/m);
    assert.equal((await cli(clientCommand, ['set', '200000000002.apps.national'])).code, 2);
    assert.equal((await cli(clientCommand, ['set', '200000000002.apps.national', '--pkce', 'maybe'])).code, 2);
    const set = await cli(clientCommand, [
      'set',
      '200000000002.apps.national',
      '--pkce',
      'optional',
      '--minimum-aal',
      '3',
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await cli(clientCommand, ['set', '999999999999.apps.national', '--pkce', 'required'])).code, 1);

    const duplicate = await cli(clientCommand, [
      'register',
      '--name',
      'Again',
      '--redirect-uri',
      'https://e.example/cb',
      '--auth',
      'client_secret_post',
      '--client-id',
      '200000000001.apps.national',
    ]);
    assert.equal(duplicate.code, 1);
    assert.match(duplicate.stderr, /request\.invalid/);
    const insecure = await cli(clientCommand, [
      'register',
      '--name',
      'Insecure',
      '--redirect-uri',
      'http://epr.example/cb',
      '--auth',
      'client_secret_post',
    ]);
    assert.equal(insecure.code, 1);

    assert.equal((await cli(clientCommand, ['disable', keyClientId])).code, 0);
    const unknown = await cli(clientCommand, ['disable', '999999999999.apps.national']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /oidc\.client_not_found/);

    const list = await cli(clientCommand, ['list']);
    assert.equal(list.code, 0);
    const lines = list.stdout.split('\n');
    assert.equal(lines.length, 3);
    assert.match(
      lines[0]!,
      /^200000000001\.apps\.national {2}active {4}client_secret_basic {2}AAL2 {2}Ward EPR {2}https:\/\/epr\.example\.nhs\.uk\/callback http:\/\/localhost:8080\/callback$/,
    );
    assert.match(lines[1]!, new RegExp(`^${keyClientId.replace(/\./g, '\\.')} {2}disabled {2}private_key_jwt`));

    // What was stored is what the provider will be given.
    const db =
      backend === 'postgres'
        ? await openPostgres({ url: POSTGRES_URL, schema: cliDb!.schema })
        : await openPglite({ dataDir });
    try {
      const { rows } = await db.query<{ metadata: Record<string, unknown>; minimum_aal: number }>(
        "SELECT metadata, minimum_aal FROM oidc_clients WHERE client_id = '200000000001.apps.national'",
      );
      const m = rows[0]!.metadata;
      assert.equal(rows[0]!.minimum_aal, 2);
      assert.deepEqual(m.post_logout_redirect_uris, ['https://epr.example.nhs.uk/signed-out']);
      assert.equal(m.backchannel_logout_uri, 'https://epr.example.nhs.uk/backchannel');
      assert.equal(m['urn:opencis:access_token_ttl'], 900);
      assert.equal(m['urn:opencis:refresh_token_ttl'], 7200);
      assert.deepEqual(m.grant_types, ['authorization_code', 'refresh_token']);
      const screening = await db.query<{ metadata: Record<string, unknown>; minimum_aal: number }>(
        "SELECT metadata, minimum_aal FROM oidc_clients WHERE client_id = '200000000002.apps.national'",
      );
      assert.equal(screening.rows[0]!.metadata.token_endpoint_auth_signing_alg, 'RS512');
      assert.equal(screening.rows[0]!.metadata['urn:opencis:require_pkce'], false, 'set --pkce optional');
      assert.deepEqual(screening.rows[0]!.metadata.default_acr_values, ['AAL2_OR_AAL3_ANY']);
      assert.equal(screening.rows[0]!.minimum_aal, 3);
      const audit = await db.query<{ action: string }>(
        "SELECT action FROM audit_events WHERE action LIKE 'oidc.client%' ORDER BY seq",
      );
      assert.deepEqual(
        audit.rows.map((r) => r.action),
        [
          'oidc.client_registered',
          'oidc.client_registered',
          'oidc.client_registered',
          'oidc.client_settings_changed',
          'oidc.client_disabled',
        ],
      );
    } finally {
      await db.close();
    }
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await cliDb?.close();
  }
});
