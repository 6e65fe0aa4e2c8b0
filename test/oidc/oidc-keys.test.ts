import assert from 'node:assert/strict';
import { constants, createPublicKey, type JsonWebKey, randomBytes, verify } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { oidcCommand } from '../../src/cli/commands/oidc.ts';
import { UsageError } from '../../src/cli/io.ts';
import type { Command } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { DEFAULT_PUBLISH_SECONDS, KEY_RELOAD_SECONDS, rotateSigningKeys } from '../../src/oidc/keys.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { registerClient } from '../../src/services/clients.ts';
import { systemClock } from '../../src/services/context.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { testSealer } from '../support/context.ts';
import { backend, createTestDatabase, POSTGRES_URL } from '../support/db.ts';
import { browse, CookieJar, client } from '../support/oidc.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';

/**
 * Signing key rotation (`opencis oidc rotate-keys`): tokens signed before a rotation keep verifying while the old keys
 * are published as retiring, new tokens carry the new kids, the old keys leave the JWKS after the overlap, and every
 * node on the database follows the rotation once it reloads its keys.
 */
let server: TestServer;
let second: { app: FastifyInstance; url: string } | undefined;
let userId: string;
const clients: Record<'rs' | 'es', { id: string; secret: string }> = {
  rs: { id: '', secret: '' },
  es: { id: '', secret: '' },
};
const redirectUri = 'http://localhost:9/callback';

before(async () => {
  server = await startTestServer();
  const ctx = server.operator();
  userId = (
    await registerPerson(ctx, {
      givenName: 'Kari',
      familyName: 'Nordmann',
      dateOfBirth: '1981-03-03',
      email: 'kari@example.nhs.uk',
      identityAssuranceLevel: 3,
    })
  ).userId;
  for (const [which, alg] of [
    ['rs', 'RS256'],
    ['es', 'ES256'],
  ] as const) {
    const reg = await registerClient(ctx, {
      name: `EPR ${alg}`,
      redirectUris: [redirectUri],
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['openid', 'profile'],
      idTokenSignedResponseAlg: alg,
    });
    clients[which] = { id: reg.client.clientId, secret: reg.clientSecret! };
  }
  // A second node on the same database: the same public URL (issuer) behind a load balancer, its own port.
  const port = await freePort();
  const app = await buildApp({
    config: { ...server.config, PORT: port },
    db: server.t.db,
    sealer: testSealer,
    clock: server.clock,
    logger: false,
    transport: { send: async () => {} },
  });
  await app.listen({ port, host: '127.0.0.1' });
  second = { app, url: `http://localhost:${port}` };
});
after(async () => {
  await second?.app.close();
  await server?.close();
});

type Jwks = { keys: (JsonWebKey & { kid: string; alg: string })[] };

async function jwksOf(nodeUrl: string): Promise<Jwks> {
  return (await (await fetch(`${nodeUrl}/oidc/connect/jwk_uri`)).json()) as Jwks;
}
const kids = (jwks: Jwks) => jwks.keys.map((k) => k.kid).sort();

/** Verifies a JWS against a published JWKS with node:crypto alone: the kid of the key that verified it, or null. */
function verifiedKid(jwt: string, jwks: Jwks): string | null {
  const [h, p, s] = jwt.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string; alg: string };
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || jwk.alg !== header.alg) return null;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  const ok =
    header.alg === 'ES256'
      ? verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
      : header.alg === 'PS256'
        ? verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
        : verify('sha256', data, key, sig);
  return ok ? header.kid : null;
}

const kidOf = (jwt: string) =>
  (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

/**
 * A sign-in through one node: discovery, authorize, interaction, token — all at `nodeUrl`, whose issuer is the shared
 * public URL. Returns the raw ID token.
 */
async function signIn(nodeUrl: string, which: 'rs' | 'es' = 'rs'): Promise<string> {
  const meta = (await (await fetch(`${nodeUrl}/oidc/.well-known/openid-configuration`)).json()) as Record<
    string,
    unknown
  >;
  const atNode = Object.fromEntries(
    Object.entries(meta).map(([k, v]) => [
      k,
      k !== 'issuer' && typeof v === 'string' ? v.replace(server.url, nodeUrl) : v,
    ]),
  ) as client.ServerMetadata;
  const config = new client.Configuration(
    atNode,
    clients[which].id,
    undefined,
    client.ClientSecretBasic(clients[which].secret),
  );
  client.allowInsecureRequests(config);
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
  const jar = new CookieJar();
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set('opencis_session', token);
  const { url: callback } = await browse(url.toString(), jar, redirectUri);
  assert.ok(callback.startsWith(redirectUri), `signed in through ${nodeUrl}: ${callback}`);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  assert.equal(tokens.claims()!.iss, `${server.url}/oidc`);
  return tokens.id_token!;
}

async function keyRows() {
  const { rows } = await server.t.db.query<{ kid: string; alg: string; status: string }>(
    'SELECT kid, alg, status FROM oidc_signing_keys ORDER BY created_at, alg',
  );
  return rows;
}

test(`[${backend}] rotation: old tokens keep verifying while the old keys retire, new tokens use the new keys, then the old keys leave the JWKS; a second node follows after reloadKeys()`, async () => {
  const a = server.url;
  const b = second!.url;
  const before = await jwksOf(a);
  assert.equal(before.keys.length, 3);
  assert.deepEqual(before.keys.map((k) => k.alg).sort(), ['ES256', 'PS256', 'RS256']);
  assert.ok(
    before.keys.every((k) => !('d' in k) && !('p' in k)),
    'only public halves are published',
  );
  assert.deepEqual(kids(await jwksOf(b)), kids(before), 'both nodes publish the one key set in the database');

  const oldRs = await signIn(a);
  const oldEs = await signIn(b, 'es');
  const oldRsKid = verifiedKid(oldRs, before);
  assert.ok(oldRsKid, 'the ID token verifies against the JWKS');
  assert.ok(verifiedKid(oldEs, before));

  // Rotate through node A (as `opencis oidc rotate-keys` does), with the ID token lifetime as the overlap and the
  // default publication time.
  const rotatedAt = server.clock.now().getTime();
  const rotated = await rotateSigningKeys(server.operator(), 3600);
  assert.equal(rotated.active.length, 3);
  assert.deepEqual([...rotated.retiring].sort(), kids(before));
  // (The test clock runs: the rotation happened a few milliseconds after rotatedAt.)
  const publishedFor = rotated.signsFrom.getTime() - rotatedAt;
  assert.ok(publishedFor >= DEFAULT_PUBLISH_SECONDS * 1000 && publishedFor < DEFAULT_PUBLISH_SECONDS * 1000 + 5_000);
  assert.equal(
    rotated.retiringUntil.getTime() - rotated.signsFrom.getTime(),
    (KEY_RELOAD_SECONDS + 3600) * 1000,
    'the old keys stay published for the overlap after the last node may have signed with them',
  );
  assert.equal(await server.app.oidc.reloadKeys(), true);
  assert.equal(await server.app.oidc.reloadKeys(), false, 'nothing changed since');

  // Phase 1, publish: node A publishes the new keys beside the old ones, and still signs with the old ones.
  const during = await jwksOf(a);
  assert.equal(during.keys.length, 6, 'the new keys and the retiring ones');
  assert.deepEqual(kids(during), [...rotated.active, ...rotated.retiring].sort());
  assert.equal(verifiedKid(oldRs, during), oldRsKid, 'a token signed before the rotation still verifies');
  assert.ok(verifiedKid(oldEs, during));
  const publishedOnly = await signIn(a);
  assert.equal(kidOf(publishedOnly), oldRsKid, 'a published key does not sign before its time');
  // Node B has not looked yet: it publishes and signs with the old set, whose tokens verify everywhere.
  assert.deepEqual(kids(await jwksOf(b)), kids(before));
  const staleB = await signIn(b);
  assert.equal(kidOf(staleB), oldRsKid);
  assert.ok(verifiedKid(staleB, during), 'its tokens verify against the rotated JWKS of node A');
  // …until it reloads (every minute on its own; here by hand): now both publish the new keys.
  assert.equal(await second!.app.oidc.reloadKeys(), true);
  assert.deepEqual(kids(await jwksOf(b)), kids(during));

  // Phase 2, sign: from signsFrom, a node signs with the new keys at its next reload.
  server.clock.set(new Date(rotated.signsFrom.getTime() + 1_000));
  assert.equal(await server.app.oidc.reloadKeys(), true);
  const newRs = await signIn(a);
  assert.ok(rotated.active.includes(kidOf(newRs)), 'new ID tokens carry the new RS256 kid');
  assert.equal(verifiedKid(newRs, await jwksOf(a)), kidOf(newRs));
  assert.equal(
    verifiedKid(newRs, await jwksOf(b)),
    kidOf(newRs),
    'and verify against the JWKS of node B, which has not reloaded since: no unknown kid',
  );
  const newEs = await signIn(a, 'es');
  assert.ok(rotated.active.includes(kidOf(newEs)), 'and the new ES256 kid');
  assert.notEqual(kidOf(newEs), kidOf(newRs));
  assert.equal(kidOf(await signIn(b)), oldRsKid, 'node B signs with the old key until its reload');
  assert.equal(await second!.app.oidc.reloadKeys(), true);
  const freshB = await signIn(b);
  assert.equal(kidOf(freshB), kidOf(newRs), 'node B signs with the new key');
  assert.equal(verifiedKid(freshB, await jwksOf(a)), kidOf(newRs));

  // Past the overlap the old keys are retired and leave the JWKS on both nodes.
  server.clock.set(new Date(rotated.retiringUntil.getTime() + 1_000));
  assert.equal(await server.app.oidc.reloadKeys(), true);
  assert.equal(await second!.app.oidc.reloadKeys(), true);
  for (const node of [a, b]) {
    const after = await jwksOf(node);
    assert.deepEqual(kids(after), [...rotated.active].sort());
    assert.equal(verifiedKid(oldRs, after), null, 'the old key is gone: old tokens no longer verify');
    assert.equal(verifiedKid(newRs, after), kidOf(newRs));
  }
  const rows = await keyRows();
  assert.deepEqual(
    rows
      .filter((r) => r.status === 'retired')
      .map((r) => r.kid)
      .sort(),
    [...rotated.retiring].sort(),
  );
  assert.equal(rows.filter((r) => r.status === 'active').length, 3);
  const last = await signIn(b);
  assert.equal(kidOf(last), kidOf(newRs));
});

test(`[${backend}] only operators and the system rotate keys: an RA Manager is refused; a bad overlap or publication time is refused`, async () => {
  const manager = {
    kind: 'person' as const,
    id: userId,
    userId,
    powers: [{ jobRoles: ['R5080'], activities: [], odsCodes: ['RR8'] }],
  };
  await assert.rejects(
    rotateSigningKeys({ ...server.operator(), actor: manager }, 3600),
    (e) => e instanceof AppError && e.code === 'auth.forbidden',
  );
  for (const bad of [-1, 1.5, 31 * 86_400]) {
    await assert.rejects(
      rotateSigningKeys(server.operator(), bad),
      (e) => e instanceof AppError && e.code === 'request.invalid',
    );
    await assert.rejects(
      rotateSigningKeys(server.operator(), 3600, bad),
      (e) => e instanceof AppError && e.code === 'request.invalid',
      `publication time ${bad}`,
    );
  }
});

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

test(`[${backend}] CLI: oidc keys lists kid/alg/status; rotate-keys retires the old keys for the overlap; a server on that database publishes them`, async () => {
  // The CLI gets a database of its own (PGlite in memory cannot be shared with it; a server and the CLI must also share
  // SECRETS_KEY, which the test server's sealer does not expose).
  const cliDb = backend === 'postgres' ? await createTestDatabase() : null;
  const secretsKey = randomBytes(32);
  const env: Record<string, string> = {
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-oidc-cli-')),
    SECRETS_KEY: secretsKey.toString('base64'),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ...(cliDb ? { DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: cliDb.schema! } : {}),
  };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    assert.match(
      (await cli(oidcCommand, ['--help'])).stdout,
      /opencis oidc rotate-keys \[--publish SECONDS\] \[--overlap SECONDS\]/,
    );
    for (const args of [
      ['rotate-keys', '--overlap', 'soon'],
      ['rotate-keys', '--overlap', '-5'],
      ['rotate-keys', '--overlap', String(31 * 86_400)],
      ['rotate-keys', '--all'],
      ['rotate-keys', '--publish', 'later'],
      ['rotate-keys', '--publish', String(2 * 86_400)],
      ['keys', '--overlap', '10'],
      ['keys', '--publish', '10'],
      ['keys', 'extra'],
      ['spin'],
      [],
    ]) {
      assert.equal((await cli(oidcCommand, args)).code, 2, args.join(' '));
    }
    const empty = await cli(oidcCommand, ['keys']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /no signing keys/);

    const first = await cli(oidcCommand, ['rotate-keys']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^retiring {2}none$/m);
    const second = await cli(oidcCommand, ['rotate-keys', '--overlap', '7200']);
    assert.equal(second.code, 0, second.stderr);
    const newKids = (out: string) => /^new {7}(.+?) \(published now, signing from /m.exec(out)![1]!.split(' ');
    const firstActive = newKids(first.stdout);
    const secondActive = newKids(second.stdout);
    assert.equal(firstActive.length, 3);
    assert.match(second.stdout, /^retiring {2}(\S+ ){2}\S+ \(published until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/m);
    for (const kid of firstActive) assert.ok(second.stdout.includes(kid), 'the first rotation’s keys now retire');
    const short = await cli(oidcCommand, ['rotate-keys', '--overlap', '60', '--publish', '30']);
    assert.equal(short.code, 0);
    assert.match(short.stderr, /Warning: an overlap under 3600 s/);
    assert.match(short.stderr, /Warning: with --publish at most 60 s a node may sign with a key another node/);
    const thirdActive = newKids(short.stdout);

    const listed = await cli(oidcCommand, ['keys']);
    const lines = listed.stdout.split('\n');
    const withStatus = (re: RegExp) =>
      lines
        .filter((l) => re.test(l))
        .map((l) => l.split(' ')[0]!)
        .sort();
    assert.deepEqual(
      withStatus(/^\S+ {2}(RS256|ES256|PS256) {2}published, signs from \d{4}-/),
      [...thirdActive].sort(),
    );
    assert.deepEqual(withStatus(/ {2}retiring until \d{4}-/), [...firstActive, ...secondActive].sort());

    // A server on that database publishes the active and the retiring keys, and signs with the newest.
    const db = cliDb ? cliDb.db : await openPglite({ dataDir: env.DATA_DIR! });
    try {
      const config = loadConfig({ ...env, PUBLIC_URL: 'http://localhost:3999' });
      const app = await buildApp({
        config,
        db,
        sealer: createSealer(secretsKey),
        clock: systemClock,
        logger: false,
        transport: { send: async () => {} },
      });
      try {
        const jwks = (await app.inject({ method: 'GET', url: '/oidc/connect/jwk_uri' })).json() as Jwks;
        assert.deepEqual(kids(jwks), [...firstActive, ...secondActive, ...thirdActive].sort());
      } finally {
        await app.close();
      }
    } finally {
      if (!cliDb) await db.close();
    }
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await cliDb?.close();
  }
});
