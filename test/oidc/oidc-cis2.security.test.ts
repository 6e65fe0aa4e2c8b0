import assert from 'node:assert/strict';
import {
  constants,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
} from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { AppError } from '../../src/domain/errors.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { backend } from '../support/db.ts';
import {
  CALLBACK,
  CookieJar,
  client,
  exchange,
  field,
  follow,
  LOGGED_OUT,
  postForm,
  query,
  signIn,
  start,
} from '../support/oidc-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Attacks on the CIS2 compatibility profile: client assertions with keys too short, `alg: none` and mixed-up
 * algorithms; registrations of keys OpenCIS must never hold; acr_values and scopes it does not offer; RP-initiated
 * logout with a forged or someone else's id_token_hint. Every refusal is a 4xx, never a 500.
 */
let server: TestServer;
let issuer: string;
let tokenEndpoint: string;
let alice: string;
let bob: string;
let rsa: { clientId: string; key: CryptoKey; publicJwk: JWK; kid: string };
let pinned: { clientId: string; key: CryptoKey; kid: string }; // registered for RS512 assertions only
let remote: { clientId: string; shortKey: KeyObject; kid: string }; // jwks_uri serving a 1024-bit key
let keyServer: Server;
let secretRp: { clientId: string; secret: string };
let otherRp: { clientId: string; secret: string };

before(async () => {
  server = await startTestServer();
  issuer = `${server.url}/oidc`;
  tokenEndpoint = `${issuer}/access_token`;
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  const person = async (familyName: string, n: number) =>
    (
      await registerPerson(ctx, {
        givenName: 'Sam',
        familyName,
        dateOfBirth: `1979-02-0${n}`,
        email: `sam.${n}@example.nhs.uk`,
        identityAssuranceLevel: 3,
      })
    ).userId;
  alice = await person('Attackone', 1);
  bob = await person('Attacktwo', 2);

  const pair = await generateKeyPair('RS512', { extractable: true, modulusLength: 2048 });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'rsa-1', use: 'sig' };
  const reg = await registerClient(ctx, {
    name: 'RS512 EPR',
    redirectUris: [CALLBACK],
    jwks: { keys: [{ ...publicJwk, alg: 'RS512' }] },
  });
  rsa = { clientId: reg.client.clientId, key: pair.privateKey, publicJwk, kid: 'rsa-1' };

  const pinnedPair = await generateKeyPair('RS512', { extractable: true, modulusLength: 2048 });
  const pinnedReg = await registerClient(ctx, {
    name: 'Pinned EPR',
    redirectUris: [CALLBACK],
    // No alg on the key: only the registration's token_endpoint_auth_signing_alg says RS512.
    jwks: { keys: [{ ...(await exportJWK(pinnedPair.publicKey)), kid: 'pinned-1' }] },
    tokenEndpointAuthSigningAlg: 'RS512',
  });
  pinned = { clientId: pinnedReg.client.clientId, key: pinnedPair.privateKey, kid: 'pinned-1' };

  // A relying party whose published key set (jwks_uri, read at assertion time) holds a 1024-bit RSA key.
  const short = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const shortJwk = { ...short.publicKey.export({ format: 'jwk' }), kid: 'short-1', alg: 'RS512', use: 'sig' };
  keyServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [shortJwk] }));
  });
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  const remoteReg = await registerClient(ctx, {
    name: 'Remote keys EPR',
    redirectUris: [CALLBACK],
    jwksUri: `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks`,
  });
  remote = {
    clientId: remoteReg.client.clientId,
    shortKey: short.privateKey,
    kid: 'short-1',
  };

  const register = async (name: string, postLogout: string[]) => {
    const r = await registerClient(ctx, {
      name,
      redirectUris: [CALLBACK],
      postLogoutRedirectUris: postLogout,
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['openid', 'profile'],
    });
    return { clientId: r.client.clientId, secret: r.clientSecret! };
  };
  secretRp = await register('Logout EPR', [LOGGED_OUT]);
  otherRp = await register('Other EPR', [`${LOGGED_OUT}/other`]);
});

after(async () => {
  await new Promise<void>((resolve) => keyServer?.close(() => resolve()));
  await server?.close();
});

// ---------------------------------------------------------------------------------------------------------------------
// Client assertions.

/** A fresh code for `clientId` (no PKCE, as CIS2 clients send), ready to be redeemed. */
async function freshCode(clientId: string): Promise<string> {
  const config = new client.Configuration({ issuer, authorization_endpoint: `${issuer}/authorize` }, clientId);
  client.allowInsecureRequests(config);
  const started = await start(config, { scope: 'openid' }, { pkce: false });
  const landed = await follow(started.url, await signIn(server, alice, 3, ['SMARTCARD']));
  const code = query(landed.url).get('code');
  assert.ok(code, landed.url);
  return code;
}

function claimsFor(clientId: string) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: clientId, sub: clientId, aud: tokenEndpoint, iat: now, exp: now + 300, jti: randomUUID() };
}

/** A JWS signature made without a JOSE library (which would refuse the key or the algorithm on purpose). */
function rawSign(input: string, key: KeyObject, hash: 'sha256' | 'sha512', pss = false): string {
  return sign(
    hash,
    Buffer.from(input),
    pss ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : key,
  ).toString('base64url');
}

function b64(json: unknown): string {
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

async function redeemWith(clientId: string, assertion: string) {
  return postForm(tokenEndpoint, {
    grant_type: 'authorization_code',
    code: await freshCode(clientId),
    redirect_uri: CALLBACK,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
}

function assertRefused(res: { status: number; body: Record<string, unknown> }, what: string): void {
  assert.equal(res.status, 401, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error, 'invalid_client', what);
  assert.equal(res.body.access_token, undefined, what);
}

test(`[${backend}] an RS512 assertion from the registered key is accepted (the baseline of the attacks below)`, async () => {
  const assertion = await new SignJWT(claimsFor(rsa.clientId))
    .setProtectedHeader({ alg: 'RS512', kid: rsa.kid })
    .sign(rsa.key);
  const res = await redeemWith(rsa.clientId, assertion);
  assert.equal(res.status, 200, JSON.stringify(res.body));
});

test(`[${backend}] alg none, HS256 keyed with the public key, and a relabelled signature are refused (invalid_client)`, async () => {
  const c = claimsFor(rsa.clientId);
  assertRefused(await redeemWith(rsa.clientId, `${b64({ alg: 'none' })}.${b64(c)}.`), 'alg none');
  assertRefused(
    await redeemWith(rsa.clientId, `${b64({ alg: 'none', kid: rsa.kid })}.${b64(claimsFor(rsa.clientId))}.`),
    'alg none with kid',
  );
  // The classic confusion: HMAC with the RSA public key (as the verifier knows it) as the secret.
  for (const secret of [JSON.stringify(rsa.publicJwk), String(rsa.publicJwk.n)]) {
    const input = `${b64({ alg: 'HS256', kid: rsa.kid })}.${b64(claimsFor(rsa.clientId))}`;
    const sig = createHmac('sha256', secret).update(input).digest('base64url');
    assertRefused(await redeemWith(rsa.clientId, `${input}.${sig}`), 'HS256 keyed with the public key');
  }
  // An RS256 (and a PS512) signature by the registered key under a header that says RS512.
  const key = createPrivateKey({ key: (await exportJWK(rsa.key)) as never, format: 'jwk' });
  const input = `${b64({ alg: 'RS512', kid: rsa.kid })}.${b64(claimsFor(rsa.clientId))}`;
  assertRefused(await redeemWith(rsa.clientId, `${input}.${rawSign(input, key, 'sha256')}`), 'RS256 relabelled');
  assertRefused(await redeemWith(rsa.clientId, `${input}.${rawSign(input, key, 'sha512', true)}`), 'PS512 relabelled');
});

test(`[${backend}] mixed-up algorithms: a key registered for RS512 signing RS256/PS256, a pinned client's RS256, an EC header on an RSA kid`, async () => {
  // The registered JWK says alg RS512: the same key used for RS256 or PS256 is refused.
  for (const alg of ['RS256', 'PS256'] as const) {
    const key = (await importJWK({ ...(await exportJWK(rsa.key)), alg }, alg)) as CryptoKey;
    const a = await new SignJWT(claimsFor(rsa.clientId)).setProtectedHeader({ alg, kid: rsa.kid }).sign(key);
    assertRefused(await redeemWith(rsa.clientId, a), `${alg} with an RS512 key`);
  }
  // A client registered with token_endpoint_auth_signing_alg RS512 and a key with no alg: RS256 refused, RS512 taken.
  const pinnedRs256 = (await importJWK({ ...(await exportJWK(pinned.key)), alg: 'RS256' }, 'RS256')) as CryptoKey;
  assertRefused(
    await redeemWith(
      pinned.clientId,
      await new SignJWT(claimsFor(pinned.clientId))
        .setProtectedHeader({ alg: 'RS256', kid: pinned.kid })
        .sign(pinnedRs256),
    ),
    'RS256 from a client pinned to RS512',
  );
  const ok = await redeemWith(
    pinned.clientId,
    await new SignJWT(claimsFor(pinned.clientId))
      .setProtectedHeader({ alg: 'RS512', kid: pinned.kid })
      .sign(pinned.key),
  );
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  // An ES256 assertion naming the RSA key's kid, signed by a key the client never registered.
  const ec = await generateKeyPair('ES256');
  assertRefused(
    await redeemWith(
      rsa.clientId,
      await new SignJWT(claimsFor(rsa.clientId)).setProtectedHeader({ alg: 'ES256', kid: rsa.kid }).sign(ec.privateKey),
    ),
    'ES256 with an RSA kid',
  );
});

test(`[${backend}] an RS512 assertion made with a 1024-bit key (from the client's jwks_uri) is refused`, async () => {
  const input = `${b64({ alg: 'RS512', kid: remote.kid })}.${b64(claimsFor(remote.clientId))}`;
  assertRefused(
    await redeemWith(remote.clientId, `${input}.${rawSign(input, remote.shortKey, 'sha512')}`),
    '1024-bit RSA',
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// Registrations.

test(`[${backend}] registration refuses keys OpenCIS must never hold or accept: short RSA, private, symmetric, other curves, mismatched alg`, async () => {
  const ctx = server.operator();
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const pub2048 = rsa2048.publicKey.export({ format: 'jwk' });
  const cases: [string, Record<string, unknown>][] = [
    ['a 1024-bit RSA key', { jwks: { keys: [{ ...rsa1024.publicKey.export({ format: 'jwk' }), alg: 'RS512' }] } }],
    ['a private RSA key', { jwks: { keys: [rsa2048.privateKey.export({ format: 'jwk' })] } }],
    ['a symmetric key', { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0' }] } }],
    ['an EC P-384 key', { jwks: { keys: [p384.publicKey.export({ format: 'jwk' })] } }],
    ['alg none on a key', { jwks: { keys: [{ ...pub2048, alg: 'none' }] } }],
    ['alg HS256 on a key', { jwks: { keys: [{ ...pub2048, alg: 'HS256' }] } }],
    ['ES256 on an RSA key', { jwks: { keys: [{ ...pub2048, alg: 'ES256' }] } }],
    [
      'an assertion algorithm for a client secret client',
      { tokenEndpointAuthMethod: 'client_secret_basic', tokenEndpointAuthSigningAlg: 'RS512' },
    ],
    ['ES256 assertions with only an RSA key', { jwks: { keys: [pub2048] }, tokenEndpointAuthSigningAlg: 'ES256' }],
    ['an assertion algorithm outside the four', { jwks: { keys: [pub2048] }, tokenEndpointAuthSigningAlg: 'HS256' }],
  ];
  const count = async () =>
    (await server.t.db.query('SELECT count(*)::int AS n FROM oidc_clients')).rows[0] as { n: number };
  const before = await count();
  for (const [what, input] of cases) {
    await assert.rejects(
      registerClient(ctx, { name: `Bad ${what}`, redirectUris: [CALLBACK], ...input }),
      (err: unknown) => {
        assert.ok(err instanceof AppError, what);
        assert.equal(err.code, 'request.invalid', what);
        assert.doesNotMatch(JSON.stringify(err.details), /"d"\s*:\s*"/, `${what}: no key material echoed`);
        return true;
      },
      what,
    );
  }
  assert.deepEqual(await count(), before, 'no row written by a refused registration');
});

// ---------------------------------------------------------------------------------------------------------------------
// acr_values and scopes.

test(`[${backend}] unknown acr_values (junk, long, only unsupported) → unmet_authentication_requirements; unregistered scopes → invalid_scope; never a 500`, async () => {
  const config = new client.Configuration({ issuer, authorization_endpoint: `${issuer}/authorize` }, secretRp.clientId);
  client.allowInsecureRequests(config);
  const jar = await signIn(server, alice, 3, ['SMARTCARD']);
  for (const acr of ['AAL9_ANY', 'aal3_any', `${'X'.repeat(2_000)}`, '<script>', 'AAL1_USERPASS AAL9']) {
    const started = await start(config, { acr_values: acr }, { pkce: false });
    const landed = await follow(started.url, jar);
    assert.ok(landed.url.startsWith(CALLBACK), `${acr.slice(0, 20)}: ${landed.url.slice(0, 200)} ${landed.status}`);
    assert.equal(query(landed.url).get('error'), 'unmet_authentication_requirements');
    assert.equal(query(landed.url).get('code'), null);
  }
  for (const scope of ['openid email', 'openid nationalrbacaccess', 'openid offline_access opencis.ra_api']) {
    const landed = await follow((await start(config, { scope }, { pkce: false })).url, jar);
    assert.ok(landed.url.startsWith(CALLBACK), `${scope}: ${landed.url}`);
    assert.equal(query(landed.url).get('error'), 'invalid_scope', scope);
  }
});

// ---------------------------------------------------------------------------------------------------------------------
// RP-initiated logout.

async function signedInAt(rp: { clientId: string; secret: string }, userId: string, jar = new CookieJar(), at?: Date) {
  const config = await client.discovery(new URL(issuer), rp.clientId, {}, client.ClientSecretBasic(rp.secret), {
    execute: [client.allowInsecureRequests],
  });
  await signIn(server, userId, 3, ['SMARTCARD'], jar, at);
  const started = await start(config, { scope: 'openid' }, { pkce: false });
  const landed = await follow(started.url, jar);
  return { config, jar, tokens: await exchange(config, started, landed.url) };
}

/** Whether the browser is still signed in at the relying party (single sign-on gives a code without a sign-in). */
async function stillSignedIn(config: client.Configuration, jar: CookieJar): Promise<boolean> {
  const landed = await follow((await start(config, { scope: 'openid' }, { pkce: false })).url, jar);
  return landed.url.startsWith(CALLBACK) && query(landed.url).has('code');
}

function endSessionUrl(config: client.Configuration, hint: string, redirect = LOGGED_OUT): string {
  return client
    .buildEndSessionUrl(config, { id_token_hint: hint, post_logout_redirect_uri: redirect, state: 's1' })
    .toString();
}

test(`[${backend}] logout with a forged id_token_hint (signature changed, or unsigned): refused with an error page, the session kept`, async () => {
  const { config, jar, tokens } = await signedInAt(secretRp, alice);
  const [h, p, s] = tokens.id_token!.split('.');
  const flipped = `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`;
  const unsigned = `${b64({ alg: 'none' })}.${p}.`;
  const resigned = `${h}.${b64({ ...decodeJwt(tokens.id_token!), sub: bob })}.${s}`;
  for (const [what, hint] of [
    ['signature changed', flipped],
    ['alg none', unsigned],
    ['payload changed', resigned],
  ] as const) {
    const res = await fetch(endSessionUrl(config, hint), { redirect: 'manual', headers: { cookie: jar.header() } });
    const html = await res.text();
    assert.equal(res.status, 400, `${what}: ${res.status}`);
    assert.equal(res.headers.get('location'), null, what);
    assert.doesNotMatch(html, /<input type="hidden" name="logout"/, what);
  }
  assert.ok(await stillSignedIn(config, jar), 'still signed in');
});

test(`[${backend}] logout with someone else's valid id_token_hint, or one of another session: asked to confirm, never signed out unawares`, async () => {
  const victim = await signedInAt(secretRp, alice);
  // Bob's real ID token (same client): a link carrying it must not sign Alice out without asking.
  const bobs = await signedInAt(secretRp, bob);
  // Alice's own ID token from another browser's session (another sid).
  const elsewhere = await signedInAt(secretRp, alice, new CookieJar(), new Date(Date.now() - 120_000));
  for (const [what, hint] of [
    ["someone else's", bobs.tokens.id_token!],
    ['another session of the same person', elsewhere.tokens.id_token!],
  ] as const) {
    const page = await follow(endSessionUrl(victim.config, hint), victim.jar);
    assert.equal(page.status, 200, what);
    assert.match(page.html, /Do you want to sign out\?/, what);
    assert.doesNotMatch(page.html, /<input type="hidden" name="logout"/, what);
    assert.doesNotMatch(page.html, /<script/, what);
  }
  assert.ok(await stillSignedIn(victim.config, victim.jar));
  // The victim's own hint goes straight through (the baseline).
  const own = await follow(endSessionUrl(victim.config, victim.tokens.id_token!), victim.jar);
  assert.match(own.html, /<input type="hidden" name="logout" value="yes"\/>/);
  const out = await follow(new URL(/action="([^"]+)"/.exec(own.html)![1]!, issuer).toString(), victim.jar, {
    method: 'POST',
    form: { xsrf: field(own.html, 'xsrf'), logout: 'yes' },
  });
  assert.equal(out.url, `${LOGGED_OUT}?state=s1`);
});

test(`[${backend}] logout with a hint of one client and another client's post_logout_redirect_uri: refused`, async () => {
  const { config, jar, tokens } = await signedInAt(secretRp, alice);
  const res = await fetch(endSessionUrl(config, tokens.id_token!, `${LOGGED_OUT}/other`), {
    redirect: 'manual',
    headers: { cookie: jar.header() },
  });
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('location'), null);
  assert.match(await res.text(), /post_logout_redirect_uri/);
  assert.ok(await stillSignedIn(config, jar));
  assert.ok(otherRp.clientId);
});
