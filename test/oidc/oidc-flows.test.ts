import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type CryptoKey,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  jwtVerify,
  SignJWT,
} from 'jose';
import { assignRoleProfile, createPosition, endRoleProfile } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { endSession, endSessionsOf, startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock } from '../support/context.ts';
import { backend } from '../support/db.ts';
import { CookieJar, client } from '../support/oidc.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * CIS2 flows end to end against the real app (DOMAIN §7), with openid-client as the relying party and a cookie jar as
 * the browser: client authentication, signing algorithms, every acr value, role selection, refresh, logout (RP-initiated
 * and back-channel), single sign-on, and the checks of the OpenID Foundation's Basic OP conformance plan.
 */

const RP = 'http://localhost:9';
const CALLBACK = `${RP}/callback`;
const CALLBACK2 = `${RP}/callback2`;
const LOGGED_OUT = `${RP}/logged-out`;
const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

let server: TestServer;
let issuer: string;
let tokenEndpoint: string;
let jwks: JSONWebKeySet;

type Amr = 'SMARTCARD' | 'N3_SMARTCARD' | 'FIDO2' | 'VIRTUAL_SMARTCARD' | 'TOTP' | 'PASSKEY' | 'ENROLMENT';
interface Person {
  userId: string;
  roleIds: string[];
}
interface Rp {
  clientId: string;
  secret: string | null;
}

// People, one per journey that changes their sessions or roles, so journeys do not disturb each other.
let one: Person;
let three: Person;
let seven: Person;
let none: Person;
let ender: Person;
let leaver: Person;
let retried: Person;

// Relying parties.
let basic: Rp; // client_secret_basic, minimum AAL 3 (registered so: OpenCIS's floor above CIS2's)
let post: Rp; // client_secret_post
let aal2: Rp; // client_secret_basic, minimum AAL 2
let other: Rp; // a second relying party (SSO, token ownership)
let offline: Rp; // offline_access, back-channel logout, post-logout redirect
let flaky: Rp; // back-channel logout to a receiver that fails first
let pkjwt: Rp;
let es256: Rp;
let ps256: Rp;
let strictPkce: Rp; // registered with requirePkce (OpenCIS stricter than CIS2)
let rpKey: { privateKey: CryptoKey; kid: string };

/** A back-channel logout receiver on loopback: records logout tokens; answers 500 `failures` times first. */
interface Receiver {
  url: string;
  tokens: string[];
  calls: number;
  failures: number;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      receiver.calls++;
      if (receiver.failures > 0) {
        receiver.failures--;
        res.writeHead(500).end();
        return;
      }
      const token = new URLSearchParams(body).get('logout_token');
      if (token) receiver.tokens.push(token);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const receiver: Receiver = {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/backchannel-logout`,
    tokens: [],
    calls: 0,
    failures: 0,
    close: () => new Promise<void>((resolve) => srv.close(() => resolve())),
  };
  return receiver;
}

let receiver: Receiver;
let flakyReceiver: Receiver;

before(async () => {
  server = await startTestServer();
  issuer = `${server.url}/oidc`;
  tokenEndpoint = `${issuer}/access_token`;
  receiver = await startReceiver();
  flakyReceiver = await startReceiver();
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  await saveOrganisation(ctx, { odsCode: 'RX1', name: 'Nottingham University Hospitals', type: 'trust' });
  const titles = [
    'Ward nurse',
    'Matron',
    'Discharge coordinator',
    'Clinic nurse',
    'Night sister',
    'Practice educator',
    'Bank nurse',
  ];
  const positions: string[] = [];
  for (const [i, name] of titles.entries()) {
    const pos = await createPosition(ctx, i % 2 === 0 ? 'RR8' : 'RX1', {
      name,
      jobRoles: ['R8001'],
      activities: ['B0825'],
    });
    positions.push(pos.positionId);
  }
  let n = 0;
  const person = async (roles: number): Promise<Person> => {
    n++;
    const p = await registerPerson(ctx, {
      givenName: 'Ada',
      familyName: `Flowtest${'abcdefghij'[n]}`,
      dateOfBirth: `1980-01-${String(n).padStart(2, '0')}`,
      email: `ada.${n}@example.nhs.uk`,
      identityAssuranceLevel: 3,
    });
    const roleIds: string[] = [];
    for (const positionId of positions.slice(0, roles)) {
      roleIds.push(
        (await assignRoleProfile(ctx, { userId: p.userId, positionId, startDate: '2020-01-01' })).personRoleId,
      );
    }
    return { userId: p.userId, roleIds };
  };
  one = await person(1);
  three = await person(3);
  seven = await person(7);
  none = await person(0);
  ender = await person(3);
  leaver = await person(1);
  retried = await person(1);

  const pair = await generateKeyPair('ES256', { extractable: true });
  rpKey = { privateKey: pair.privateKey, kid: 'rp-key-1' };
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: rpKey.kid, alg: 'ES256', use: 'sig' };

  const register = async (input: Record<string, unknown>): Promise<Rp> => {
    const reg = await registerClient(ctx, {
      redirectUris: [CALLBACK, CALLBACK2],
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'],
      minimumAal: 3,
      ...input,
    });
    return { clientId: reg.client.clientId, secret: reg.clientSecret };
  };
  basic = await register({ name: 'EPR basic' });
  post = await register({ name: 'EPR post', tokenEndpointAuthMethod: 'client_secret_post' });
  aal2 = await register({
    name: 'Rota app',
    minimumAal: 2,
    scopes: ['openid'],
    defaultAcrValues: ['AAL2_OR_AAL3_ANY'],
  });
  other = await register({ name: 'Pathology' });
  offline = await register({
    name: 'Offline EPR',
    scopes: ['openid', 'profile', 'nationalrbacaccess', 'selectedrole', 'offline_access'],
    postLogoutRedirectUris: [LOGGED_OUT],
    backchannelLogoutUri: receiver.url,
  });
  flaky = await register({ name: 'Flaky EPR', backchannelLogoutUri: flakyReceiver.url });
  pkjwt = await register({
    name: 'Key EPR',
    tokenEndpointAuthMethod: 'private_key_jwt',
    jwks: { keys: [publicJwk] },
  });
  es256 = await register({ name: 'EC EPR', idTokenSignedResponseAlg: 'ES256' });
  ps256 = await register({ name: 'PSS EPR', idTokenSignedResponseAlg: 'PS256' });
  strictPkce = await register({ name: 'PKCE EPR', requirePkce: true });
  jwks = (await (await fetch(`${issuer}/connect/jwk_uri`)).json()) as JSONWebKeySet;
});

after(async () => {
  await receiver?.close();
  await flakyReceiver?.close();
  await server?.close();
});

// ---------------------------------------------------------------------------------------------------------------------
// Helpers: the relying party (openid-client), the browser (a cookie jar following redirects), sign-in.

function authFor(rp: Rp): client.ClientAuth {
  if (rp === pkjwt) return client.PrivateKeyJwt({ key: rpKey.privateKey, kid: rpKey.kid });
  if (rp === post) return client.ClientSecretPost(rp.secret!);
  return client.ClientSecretBasic(rp.secret!);
}

async function configFor(rp: Rp, metadata: Partial<client.ClientMetadata> = {}): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), rp.clientId, metadata, authFor(rp), {
    execute: [client.allowInsecureRequests],
  });
}

interface Started {
  url: string;
  verifier: string;
  nonce: string;
  state: string;
}

async function start(config: client.Configuration, params: Record<string, string> = {}): Promise<Started> {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...params,
  });
  return { url: url.toString(), verifier, nonce, state };
}

interface Landed {
  /** Where the browser stopped: the relying party's URL, or the page shown. */
  url: string;
  status: number;
  html: string;
  /** Every URL requested at the OP on the way. */
  hops: string[];
}

/** Sends a request like a browser and follows redirects until a page is shown or the relying party is reached. */
async function follow(
  url: string,
  jar: CookieJar,
  init: { method?: string; form?: Record<string, string> } = {},
): Promise<Landed> {
  let current = url;
  const hops: string[] = [];
  let method = init.method ?? 'GET';
  let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined;
  for (let i = 0; i < 20; i++) {
    if (current.startsWith(RP)) return { url: current, status: 0, html: '', hops };
    hops.push(current);
    const headers: Record<string, string> = { cookie: jar.header() };
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(current, { method, redirect: 'manual', headers, body });
    jar.absorb(res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).toString();
      method = 'GET';
      body = undefined;
      continue;
    }
    return { url: current, status: res.status, html: await res.text(), hops };
  }
  throw new Error(`too many redirects from ${url}`);
}

/** A browser whose person is signed in to OpenCIS (a web session, as the sign-in pages would start). */
async function signIn(
  person: Person,
  aal: 1 | 2 | 3,
  amr: Amr[],
  jar = new CookieJar(),
  at?: Date,
): Promise<CookieJar> {
  const ctx = at ? { ...server.operator(), clock: new TestClock(at) } : server.operator();
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, ctx, { userId: person.userId, aal, amr, authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set('opencis_session', token);
  return jar;
}

async function exchange(config: client.Configuration, started: Started, callback: string) {
  return client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: started.verifier,
    expectedNonce: started.nonce,
    expectedState: started.state,
  });
}

/** A whole sign-in: authorize, follow to the callback (failing on any page), exchange the code. */
async function signInAt(
  config: client.Configuration,
  jar: CookieJar,
  params: Record<string, string> = {},
): Promise<{ tokens: Awaited<ReturnType<typeof exchange>>; landed: Landed; started: Started }> {
  const started = await start(config, params);
  const landed = await follow(started.url, jar);
  assert.ok(landed.url.startsWith(CALLBACK), `expected the callback, got ${landed.url} (${landed.status})`);
  return { tokens: await exchange(config, started, landed.url), landed, started };
}

function query(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

function field(html: string, name: string): string {
  const m = new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html);
  assert.ok(m, `the page has a ${name} field`);
  return m[1]!;
}

function radios(html: string): string[] {
  return [...html.matchAll(/<input[^>]*name="personRoleId"[^>]*value="(\d+)"/g)].map((m) => m[1]!);
}

async function postToken(
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function basicAuth(rp: Rp, secret = rp.secret!): Record<string, string> {
  const enc = (s: string) => encodeURIComponent(s);
  return { authorization: `Basic ${Buffer.from(`${enc(rp.clientId)}:${enc(secret)}`).toString('base64')}` };
}

async function clientAssertion(
  claims: { aud?: string; exp?: number; jti?: string; iat?: number } = {},
  clientId = pkjwt.clientId,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: rpKey.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(claims.aud ?? tokenEndpoint)
    .setIssuedAt(claims.iat ?? now)
    .setExpirationTime(claims.exp ?? now + 60)
    .setJti(claims.jti ?? randomUUID())
    .sign(rpKey.privateKey);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 3_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function userinfoStatus(accessToken: string): Promise<number> {
  const res = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

function isSignIn(url: string): boolean {
  return url.startsWith(server.url) && new URL(url).pathname === '/signin';
}

// ---------------------------------------------------------------------------------------------------------------------
// Client authentication and ID token signing.

test(`[${backend}] client authentication: client_secret_basic, client_secret_post and private_key_jwt`, async () => {
  for (const rp of [basic, post, pkjwt]) {
    const config = await configFor(rp);
    const jar = await signIn(one, 3, ['SMARTCARD']);
    const { tokens } = await signInAt(config, jar);
    assert.equal(tokens.claims()!.sub, one.userId, rp.clientId);
    assert.equal(tokens.claims()!.aud, rp.clientId);
  }
  // private_key_jwt with the assertion's audience = the token endpoint (CIS2's rule) works too.
  const config = await configFor(pkjwt);
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const started = await start(config);
  const landed = await follow(started.url, jar);
  const res = await postToken({
    grant_type: 'authorization_code',
    code: query(landed.url).get('code')!,
    redirect_uri: CALLBACK,
    code_verifier: started.verifier,
    client_id: pkjwt.clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion({ aud: tokenEndpoint }),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.ok(res.body.id_token);
});

test(`[${backend}] ID tokens are RS256 by default, ES256 or PS256 when the client registered it; kid in the JWKS`, async () => {
  const keySet = createLocalJWKSet(jwks);
  for (const [rp, alg] of [
    [basic, 'RS256'],
    [es256, 'ES256'],
    [ps256, 'PS256'],
  ] as const) {
    const config = await configFor(rp, { id_token_signed_response_alg: alg });
    const jar = await signIn(one, 3, ['SMARTCARD']);
    const { tokens } = await signInAt(config, jar);
    const header = decodeProtectedHeader(tokens.id_token!);
    assert.equal(header.alg, alg);
    assert.ok(
      jwks.keys.some((k) => k.kid === header.kid && k.alg === alg),
      `kid ${header.kid} is published for ${alg}`,
    );
    const { payload } = await jwtVerify(tokens.id_token!, keySet, { issuer, audience: rp.clientId });
    assert.equal(payload.sub, one.userId);
  }
});

// ---------------------------------------------------------------------------------------------------------------------
// acr_values.

const matching: [string, 2 | 3, Amr[]][] = [
  ['AAL3_ANY', 3, ['FIDO2']],
  ['AAL2_OR_AAL3_ANY', 2, ['PASSKEY']],
  ['AAL2_ANY', 2, ['PASSKEY']],
  ['AAL3_SMARTCARD', 3, ['SMARTCARD']],
  ['AAL3_CIS2_SMARTCARD', 3, ['SMARTCARD']],
  ['AAL3_FIDO2', 3, ['FIDO2']],
  ['AAL3_IOS', 3, ['VIRTUAL_SMARTCARD']],
  ['AAL2_TOTP', 2, ['TOTP']],
];

const notMatching: [string, 1 | 2 | 3, Amr[], boolean][] = [
  // value, session level, methods, whether the step-up asks for AAL3
  ['AAL3_ANY', 2, ['PASSKEY'], true],
  ['AAL2_OR_AAL3_ANY', 1, ['ENROLMENT'], false],
  ['AAL2_ANY', 1, ['ENROLMENT'], false],
  ['AAL3_SMARTCARD', 3, ['FIDO2'], true],
  ['AAL3_CIS2_SMARTCARD', 3, ['VIRTUAL_SMARTCARD'], true],
  ['AAL3_N3_SMARTCARD', 3, ['SMARTCARD'], true],
  ['AAL3_FIDO2', 3, ['SMARTCARD'], true],
  ['AAL3_IOS', 3, ['FIDO2'], true],
  ['AAL2_TOTP', 2, ['PASSKEY'], false],
];

test(`[${backend}] every supported acr value: a session that meets it gets a code, acr = the value, amr = the session's`, async () => {
  const config = await configFor(aal2);
  for (const [acr, aal, amr] of matching) {
    const jar = await signIn(one, aal, amr);
    const { tokens } = await signInAt(config, jar, { acr_values: acr });
    const claims = tokens.claims()!;
    assert.equal(claims.acr, acr, `acr for ${acr}`);
    assert.deepEqual(claims.amr, amr, `amr for ${acr}`);
    assert.equal(claims.authentication_assurance_level, aal, `level for ${acr}`);
  }
});

test(`[${backend}] a session that does not meet the acr value is sent to sign in again (step-up), never given a code`, async () => {
  const config = await configFor(aal2);
  for (const [acr, aal, amr, stepsUpToAal3] of notMatching) {
    const jar = await signIn(one, aal, amr);
    const started = await start(config, { acr_values: acr });
    const landed = await follow(started.url, jar);
    assert.ok(isSignIn(landed.url), `${acr} with ${amr.join(',')}@AAL${aal}: landed on ${landed.url}`);
    assert.equal(query(landed.url).get('aal'), stepsUpToAal3 ? '3' : null, `${acr}: step-up level`);
    assert.match(query(landed.url).get('return') ?? '', /^\/oidc\/interaction\/[\w-]+$/);
    assert.ok(!landed.hops.some((h) => h.startsWith(RP)));
    // Going back to the interaction with the same weak session still gives no code.
    const again = await follow(new URL(query(landed.url).get('return')!, server.url).toString(), jar);
    assert.ok(isSignIn(again.url), `${acr}: still asked to sign in`);
  }
});

test(`[${backend}] acr_values naming only values OpenCIS does not offer: the relying party gets unmet_authentication_requirements`, async () => {
  const config = await configFor(aal2);
  for (const acr of ['AAL1_USERPASS', 'FOO', 'AAL1_USERPASS FOO']) {
    const jar = await signIn(one, 3, ['SMARTCARD']);
    const started = await start(config, { acr_values: acr });
    const landed = await follow(started.url, jar);
    assert.ok(landed.url.startsWith(CALLBACK), `${acr}: ${landed.url}`);
    assert.equal(query(landed.url).get('error'), 'unmet_authentication_requirements', acr);
    assert.equal(query(landed.url).get('state'), started.state);
    assert.equal(query(landed.url).get('code'), null);
  }
  // An unsupported value next to a supported one: the supported one is used.
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { acr_values: 'FOO AAL3_SMARTCARD' });
  assert.equal(tokens.claims()!.acr, 'AAL3_SMARTCARD');
});

test(`[${backend}] acr_values below the client's minimum level: the session is raised to the minimum, acr stays what was asked and met`, async () => {
  const config = await configFor(basic); // minimum AAL 3
  const weak = await signIn(one, 2, ['TOTP']);
  const started = await start(config, { acr_values: 'AAL2_TOTP' });
  const landed = await follow(started.url, weak);
  assert.ok(isSignIn(landed.url), landed.url);
  assert.equal(query(landed.url).get('aal'), '3');
  const strong = await signIn(one, 3, ['FIDO2']);
  const { tokens } = await signInAt(config, strong, { acr_values: 'AAL2_TOTP' });
  // AAL2_TOTP cannot be met at AAL3: the client's floor value is used instead.
  assert.equal(tokens.claims()!.acr, 'AAL3_ANY');
  // AAL2_OR_AAL3_ANY can: an AAL2 session is sent to step up to AAL3; an AAL3 session meets it, and acr says so.
  const asked = await follow(
    (await start(config, { acr_values: 'AAL2_OR_AAL3_ANY' })).url,
    await signIn(one, 2, ['PASSKEY']),
  );
  assert.ok(isSignIn(asked.url), asked.url);
  assert.equal(query(asked.url).get('aal'), '3');
  const met = await signInAt(config, await signIn(one, 3, ['SMARTCARD']), { acr_values: 'AAL2_OR_AAL3_ANY' });
  assert.equal(met.tokens.claims()!.acr, 'AAL2_OR_AAL3_ANY');
  assert.equal(met.tokens.claims()!.authentication_assurance_level, 3);
  // No acr_values: the registered default (default_acr_values: AAL3_ANY unless registered otherwise, as CIS2).
  assert.equal((await signInAt(config, await signIn(one, 3, ['SMARTCARD']))).tokens.claims()!.acr, 'AAL3_ANY');
  const low = await configFor(aal2);
  assert.equal((await signInAt(low, await signIn(one, 2, ['PASSKEY']))).tokens.claims()!.acr, 'AAL2_OR_AAL3_ANY');
});

// ---------------------------------------------------------------------------------------------------------------------
// Role selection (scope selectedrole).

async function userinfo(config: client.Configuration, accessToken: string, sub: string) {
  return client.fetchUserInfo(config, accessToken, sub);
}

type NrbacRole = { person_roleid: string; org_code: string; role_code: string };

test(`[${backend}] role selection: one role profile is chosen automatically`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const { tokens, landed } = await signInAt(config, jar, { scope: 'openid nationalrbacaccess selectedrole' });
  assert.ok(!landed.hops.some(isSignIn));
  assert.equal(tokens.claims()!.selected_roleid, one.roleIds[0]);
  const info = await userinfo(config, tokens.access_token, one.userId);
  assert.equal(info.selected_roleid, one.roleIds[0]);
});

test(`[${backend}] role selection: three role profiles are listed; the one chosen is selected_roleid`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(three, 3, ['SMARTCARD']);
  const started = await start(config, { scope: 'openid nationalrbacaccess selectedrole' });
  const page = await follow(started.url, jar);
  assert.equal(page.status, 200);
  assert.match(page.url, /\/oidc\/interaction\/[\w-]+$/);
  assert.deepEqual(radios(page.html).sort(), [...three.roleIds].sort());
  assert.doesNotMatch(page.html, /name="q"/, 'no search for 3 roles');
  const chosen = three.roleIds[1]!;
  const done = await follow(`${page.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(page.html, '_csrf'), personRoleId: chosen },
  });
  assert.ok(done.url.startsWith(CALLBACK), done.url);
  const tokens = await exchange(config, started, done.url);
  assert.equal(tokens.claims()!.selected_roleid, chosen);
  const info = await userinfo(config, tokens.access_token, three.userId);
  assert.equal(info.selected_roleid, chosen);
  const roles = info.nhsid_nrbac_roles as NrbacRole[];
  assert.deepEqual(roles.map((r) => r.person_roleid).sort(), [...three.roleIds].sort());
});

test(`[${backend}] role selection: seven role profiles come with a search; a role that is not the person's is refused`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(seven, 3, ['SMARTCARD']);
  const started = await start(config, { scope: 'openid selectedrole' });
  const page = await follow(started.url, jar);
  assert.equal(page.status, 200);
  assert.equal(radios(page.html).length, 7);
  assert.match(page.html, /<input[^>]*id="q"[^>]*name="q"[^>]*type="search"/);
  const found = await follow(`${page.url}?q=${encodeURIComponent('matron')}`, jar);
  assert.equal(found.status, 200);
  assert.deepEqual(radios(found.html), [seven.roleIds[1]]);
  const byOrg = await follow(`${page.url}?q=RX1`, jar);
  assert.equal(radios(byOrg.html).length, 3);
  const nothing = await follow(`${page.url}?q=zzzz`, jar);
  assert.deepEqual(radios(nothing.html), []);
  assert.match(nothing.html, /No role matches/);

  // Someone else's role profile (or junk) is refused with the list shown again.
  for (const bogus of [three.roleIds[0]!, '999999999999', '']) {
    const refused = await follow(`${page.url}/role`, jar, {
      method: 'POST',
      form: { _csrf: field(page.html, '_csrf'), personRoleId: bogus },
    });
    assert.equal(refused.status, 400, `refused ${bogus}`);
    assert.match(refused.html, /Choose one of your roles/);
    assert.equal(radios(refused.html).length, 7);
  }
  // Without the CSRF token: refused.
  const forged = await follow(`${page.url}/role`, jar, { method: 'POST', form: { personRoleId: seven.roleIds[6]! } });
  assert.equal(forged.status, 403);
  // The flow can still finish with a real choice.
  const done = await follow(`${page.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(found.html, '_csrf'), personRoleId: seven.roleIds[6]! },
  });
  assert.ok(done.url.startsWith(CALLBACK), done.url);
  assert.equal((await exchange(config, started, done.url)).claims()!.selected_roleid, seven.roleIds[6]);
});

test(`[${backend}] role selection: no role profile in effect → an explanatory page (403); returning gives access_denied`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(none, 3, ['SMARTCARD']);
  const started = await start(config, { scope: 'openid selectedrole' });
  const page = await follow(started.url, jar);
  assert.equal(page.status, 403);
  assert.match(page.html, /no role profile in effect today/);
  assert.match(page.html, /EPR basic needs you to act in a role/);
  const action = /<form method="post" action="([^"]+\/abort)"/.exec(page.html)?.[1];
  assert.ok(action);
  const back = await follow(new URL(action, server.url).toString(), jar, {
    method: 'POST',
    form: { _csrf: field(page.html, '_csrf') },
  });
  assert.ok(back.url.startsWith(CALLBACK), back.url);
  assert.equal(query(back.url).get('error'), 'access_denied');
  assert.equal(query(back.url).get('state'), started.state);
  assert.equal(query(back.url).get('code'), null);
  // Without selectedrole the person can still sign in (no role is needed to prove who they are).
  const { tokens } = await signInAt(config, await signIn(none, 3, ['SMARTCARD']), { scope: 'openid' });
  assert.equal(tokens.claims()!.selected_roleid, undefined);
});

test(`[${backend}] switching role: prompt=login needs a fresh sign-in, then the role list is shown again`, async () => {
  const config = await configFor(basic);
  // Signed in a minute ago; chose a role.
  const jar = await signIn(three, 3, ['SMARTCARD'], new CookieJar(), new Date(Date.now() - 60_000));
  const first = await start(config, { scope: 'openid selectedrole' });
  const page = await follow(first.url, jar);
  const done = await follow(`${page.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(page.html, '_csrf'), personRoleId: three.roleIds[0]! },
  });
  assert.equal((await exchange(config, first, done.url)).claims()!.selected_roleid, three.roleIds[0]);

  // Without prompt=login the OP asks again (role selection is per sign-in) but needs no new sign-in.
  const again = await follow((await start(config, { scope: 'openid selectedrole' })).url, jar);
  assert.equal(again.status, 200);
  assert.equal(radios(again.html).length, 3);

  // prompt=login: the existing session is not fresh enough → sign in.
  const switching = await start(config, { scope: 'openid selectedrole', prompt: 'login' });
  const toSignIn = await follow(switching.url, jar);
  assert.ok(isSignIn(toSignIn.url), toSignIn.url);
  // The person signs in again (a new session in the same browser): the role list shows again.
  await signIn(three, 3, ['SMARTCARD'], jar);
  const list = await follow(new URL(query(toSignIn.url).get('return')!, server.url).toString(), jar);
  assert.equal(list.status, 200, list.url);
  assert.equal(radios(list.html).length, 3);
  const switched = await follow(`${list.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(list.html, '_csrf'), personRoleId: three.roleIds[2]! },
  });
  assert.ok(switched.url.startsWith(CALLBACK), switched.url);
  const tokens = await exchange(config, switching, switched.url);
  assert.equal(tokens.claims()!.selected_roleid, three.roleIds[2]);
});

test(`[${backend}] an ended role profile never appears in claims; ending it ends the relying parties' sessions`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(ender, 3, ['SMARTCARD']);
  const scope = 'openid nationalrbacaccess selectedrole';
  const started = await start(config, { scope });
  const page = await follow(started.url, jar);
  const done = await follow(`${page.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(page.html, '_csrf'), personRoleId: ender.roleIds[0]! },
  });
  const tokens = await exchange(config, started, done.url);
  const before = (await userinfo(config, tokens.access_token, ender.userId)).nhsid_nrbac_roles as NrbacRole[];
  assert.equal(before.length, 3);

  await endRoleProfile(server.operator(), ender.roleIds[0]!, 'moved on');
  // CIS2: removing a role ends the sessions that may carry it — the access token stops working.
  await waitFor('the access token to be revoked', async () => (await userinfoStatus(tokens.access_token)) === 401);
  // …and the SSO session with it (revoked first, destroyed last): the next authorization must not start on it.
  await waitFor('the SSO session to end', async () => {
    const { rows } = await server.t.db.query(
      "SELECT 1 FROM oidc_payloads WHERE model = 'Session' AND account_id = $1 AND (expires_at IS NULL OR expires_at > now())",
      [ender.userId],
    );
    return rows.length === 0;
  });

  // The next sign-in (the OpenCIS session is still good) lists and releases only the two roles in effect.
  const next = await start(config, { scope });
  const list = await follow(next.url, jar);
  assert.equal(list.status, 200, list.url);
  assert.deepEqual(radios(list.html).sort(), ender.roleIds.slice(1).sort());
  const ended = await follow(`${list.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(list.html, '_csrf'), personRoleId: ender.roleIds[0]! },
  });
  assert.equal(ended.status, 400, 'the ended role cannot be chosen');
  const chosen = await follow(`${list.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(list.html, '_csrf'), personRoleId: ender.roleIds[1]! },
  });
  const fresh = await exchange(config, next, chosen.url);
  const roles = (await userinfo(config, fresh.access_token, ender.userId)).nhsid_nrbac_roles as NrbacRole[];
  assert.deepEqual(roles.map((r) => r.person_roleid).sort(), ender.roleIds.slice(1).sort());
});

// ---------------------------------------------------------------------------------------------------------------------
// Refresh tokens.

test(`[${backend}] offline_access: a client registered for it gets a refresh token (no prompt=consent needed)`, async () => {
  const config = await configFor(offline);
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { scope: 'openid nationalrbacaccess offline_access' });
  assert.ok(tokens.refresh_token, 'a refresh token');
  // oidc-provider drops offline_access from a request without prompt=consent (OpenID Connect Core §11), so the scope
  // granted does not name it; the refresh token is then bound to the SSO session.
  assert.deepEqual(String(tokens.scope).split(' ').sort(), ['nationalrbacaccess', 'openid']);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  assert.equal(refreshed.claims()!.sub, one.userId);
  const info = await userinfo(config, refreshed.access_token, one.userId);
  assert.equal((info.nhsid_nrbac_roles as NrbacRole[]).length, 1);
  // Refreshed ID tokens keep the sign-in's acr and amr.
  assert.equal(refreshed.claims()!.acr, 'AAL3_ANY');
  assert.deepEqual(refreshed.claims()!.amr, ['SMARTCARD']);

  // With prompt=consent the scope keeps offline_access (an offline grant).
  const consent = await signInAt(config, await signIn(one, 3, ['SMARTCARD']), {
    scope: 'openid offline_access',
    prompt: 'consent',
  });
  assert.ok(consent.tokens.refresh_token);
  assert.ok(String(consent.tokens.scope).split(' ').includes('offline_access'), `scope ${consent.tokens.scope}`);
  assert.ok((await client.refreshTokenGrant(config, consent.tokens.refresh_token!)).access_token);

  // A client not registered for refresh tokens never gets one, even when it asks for offline_access.
  const plain = await configFor(basic);
  const asked = await signInAt(plain, await signIn(one, 3, ['SMARTCARD']), { scope: 'openid offline_access' });
  assert.equal(asked.tokens.refresh_token, undefined);
  assert.equal(asked.tokens.scope, 'openid');
});

// ---------------------------------------------------------------------------------------------------------------------
// Logout.

test(`[${backend}] RP-initiated logout at /connect/endSession ends the OIDC session (and the OpenCIS one)`, async () => {
  const config = await configFor(offline);
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { scope: 'openid offline_access' });
  const before = receiver.tokens.length;
  const state = client.randomState();
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token!,
    post_logout_redirect_uri: LOGGED_OUT,
    state,
  });
  // A valid id_token_hint of this browser's session: no "Do you want to sign out?" (as CIS2): the page submits the
  // logout form by itself (Chromium runs it in oidc.e2e.test.ts); here the browser stand-in posts it as the script does.
  const auto = await follow(url.toString(), jar);
  assert.equal(auto.status, 200);
  assert.doesNotMatch(auto.html, /Do you want to sign out\?/);
  assert.match(auto.html, /<input type="hidden" name="logout" value="yes"\/>/);
  const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(auto.html)?.[1];
  assert.ok(action);
  const out = await follow(new URL(action, issuer).toString(), jar, {
    method: 'POST',
    form: { xsrf: field(auto.html, 'xsrf'), logout: 'yes' },
  });
  assert.equal(out.url, `${LOGGED_OUT}?state=${state}`);
  // Tokens of the session are revoked; the relying party got a logout token.
  assert.equal((await client.tokenIntrospection(config, tokens.access_token)).active, false);
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token!));
  const logoutToken = await waitFor('a logout token', () => receiver.tokens[before]);
  assert.equal(decodeJwt(logoutToken).sid, tokens.claims()!.sid);
  assert.doesNotMatch(jar.header(), /(^|; )_session=/, 'the OP session cookie is gone');
  // "You will be signed out of OpenCIS": the next sign-in at any relying party asks the person to sign in.
  const next = await follow((await start(config)).url, jar);
  assert.ok(isSignIn(next.url), next.url);
});

test(`[${backend}] RP-initiated logout without an id_token_hint asks "Do you want to sign out?"; "No" keeps the session`, async () => {
  const config = await configFor(offline);
  const jar = await signIn(one, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { scope: 'openid' });
  const url = client.buildEndSessionUrl(config, { post_logout_redirect_uri: LOGGED_OUT, client_id: offline.clientId });
  const confirm = await follow(url.toString(), jar);
  assert.equal(confirm.status, 200);
  assert.match(confirm.html, /Do you want to sign out\?/);
  assert.doesNotMatch(confirm.html, /name="logout" value="yes"\/>/);
  assert.doesNotMatch(confirm.html, /<script/);
  const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(confirm.html)?.[1];
  // "No, stay signed in": only this relying party's authorisation ends; the person stays signed in to OpenCIS.
  await follow(new URL(action!, issuer).toString(), jar, {
    method: 'POST',
    form: { xsrf: field(confirm.html, 'xsrf') },
  });
  assert.equal((await client.tokenIntrospection(config, tokens.access_token)).active, false);
  const next = await follow((await start(config)).url, jar);
  assert.ok(next.url.startsWith(CALLBACK), next.url);
});

async function verifyLogoutToken(token: string, rp: Rp) {
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer,
    audience: rp.clientId,
  });
  assert.equal(protectedHeader.typ, 'logout+jwt');
  assert.ok(payload.iat && payload.jti);
  assert.equal(payload.nonce, undefined);
  assert.deepEqual(Object.keys(payload.events as Record<string, unknown>), [BCL_EVENT]);
  return payload;
}

test(`[${backend}] back-channel logout: a leaver's sessions end → logout token, refresh token dead, sign-in needed`, async () => {
  const config = await configFor(offline);
  const jar = await signIn(leaver, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { scope: 'openid offline_access' });
  const sid = tokens.claims()!.sid as string;
  assert.ok(sid);
  const before = receiver.tokens.length;
  const started = Date.now();
  await unitOfWork(server.t.db)((tx) => endSessionsOf(tx, leaver.userId, server.clock.now(), 'leaver'));
  const token = await waitFor('a logout token', () => receiver.tokens[before]);
  assert.ok(Date.now() - started < 3_000);
  const payload = await verifyLogoutToken(token, offline);
  assert.equal(payload.sub, leaver.userId);
  assert.equal(payload.sid, sid);
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token!), (err: Error & { error?: string }) => {
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
  assert.equal(await userinfoStatus(tokens.access_token), 401);
  const next = await follow((await start(config)).url, jar);
  assert.ok(isSignIn(next.url), next.url);
});

test(`[${backend}] back-channel logout to a relying party that fails first is retried`, async () => {
  const config = await configFor(flaky);
  const jar = await signIn(retried, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar);
  flakyReceiver.failures = 1;
  const calls = flakyReceiver.calls;
  await unitOfWork(server.t.db)((tx) => endSessionsOf(tx, retried.userId, server.clock.now(), 'card_cancelled'));
  await waitFor('the failed delivery', () => flakyReceiver.calls > calls);
  await waitFor('the delivery to be queued', async () => {
    const { rows } = await server.t.db.query('SELECT 1 FROM oidc_logout_deliveries WHERE client_id = $1', [
      flaky.clientId,
    ]);
    return rows.length > 0;
  });
  assert.equal(flakyReceiver.tokens.length, 0);
  // The first retry is due 5 s later: bring it forward rather than wait.
  await server.t.db.query(
    "UPDATE oidc_logout_deliveries SET next_attempt = now() - interval '1 second' WHERE client_id = $1",
    [flaky.clientId],
  );
  await server.app.oidc.processLogouts();
  const token = await waitFor('the retried logout token', () => flakyReceiver.tokens[0]);
  const payload = await verifyLogoutToken(token, flaky);
  assert.equal(payload.sub, retried.userId);
  assert.equal(payload.sid, tokens.claims()!.sid);
  await waitFor('the delivery to be recorded', async () => {
    const { rows } = await server.t.db.query<{ delivered: boolean; attempts: number }>(
      'SELECT delivered_at IS NOT NULL AS delivered, attempts FROM oidc_logout_deliveries WHERE client_id = $1',
      [flaky.clientId],
    );
    return rows[0]?.delivered ? rows : undefined;
  }).then((rows) => assert.deepEqual(rows, [{ delivered: true, attempts: 2 }]));
  assert.equal(flakyReceiver.tokens.length, 1, 'delivered once');
});

// ---------------------------------------------------------------------------------------------------------------------
// Single sign-on.

test(`[${backend}] single sign-on: a second relying party gets a code without a sign-in; signing out ends it`, async () => {
  const first = await configFor(basic);
  const second = await configFor(other);
  const signInJar = await signIn(one, 3, ['FIDO2']);
  const a = await signInAt(first, signInJar);
  const b = await signInAt(second, signInJar);
  assert.ok(!b.landed.hops.some(isSignIn), 'no sign-in for the second relying party');
  assert.equal(b.tokens.claims()!.sub, one.userId);
  assert.deepEqual(b.tokens.claims()!.amr, ['FIDO2']);
  assert.equal(b.tokens.claims()!.auth_time, a.tokens.claims()!.auth_time);

  // Signing out of OpenCIS (the sign-out button) ends single sign-on.
  const signinPage = await follow(`${server.url}/signin`, signInJar);
  const csrf = /data-csrf="([^"]+)"/.exec(signinPage.html)?.[1];
  assert.ok(csrf);
  const out = await follow(`${server.url}/signout`, signInJar, { method: 'POST', form: { _csrf: csrf } });
  assert.ok(isSignIn(out.url));
  for (const config of [first, second]) {
    const next = await follow((await start(config)).url, signInJar);
    assert.ok(isSignIn(next.url), next.url);
  }

  // The same when the session ends elsewhere (idle, cancelled): the next authorize needs a sign-in.
  const jar = await signIn(one, 3, ['FIDO2']);
  await signInAt(first, jar);
  const token = jar.header().match(/opencis_session=([^;]+)/)![1]!;
  await endSession(server.t.repos, token, server.clock.now(), 'idle_timeout');
  assert.ok(isSignIn((await follow((await start(second)).url, jar)).url));
});

// ---------------------------------------------------------------------------------------------------------------------
// Conformance checks (OpenID Foundation Basic OP plan, reproduced).

test(`[${backend}] conformance: nonce and state echoed; iat/exp sane; at_hash correct`, async () => {
  const config = await configFor(basic);
  const { tokens, landed, started } = await signInAt(config, await signIn(one, 3, ['SMARTCARD']));
  assert.equal(query(landed.url).get('state'), started.state);
  assert.equal(query(landed.url).get('iss'), issuer);
  const claims = decodeJwt(tokens.id_token!);
  assert.equal(claims.nonce, started.nonce);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(claims.iat! - now) <= 5, `iat ${claims.iat} vs ${now}`);
  assert.equal(claims.exp! - claims.iat!, 3_600);
  assert.ok(Number(claims.auth_time) <= claims.iat!);
  const digest = createHash('sha256').update(tokens.access_token).digest();
  assert.equal(claims.at_hash, digest.subarray(0, 16).toString('base64url'));
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
});

test(`[${backend}] conformance: a code used twice → invalid_grant, and the tokens from its first use are revoked`, async () => {
  const config = await configFor(basic);
  const started = await start(config);
  const landed = await follow(started.url, await signIn(one, 3, ['SMARTCARD']));
  const tokens = await exchange(config, started, landed.url);
  assert.equal(await userinfoStatus(tokens.access_token), 200);
  const again = await postToken(
    {
      grant_type: 'authorization_code',
      code: query(landed.url).get('code')!,
      redirect_uri: CALLBACK,
      code_verifier: started.verifier,
    },
    basicAuth(basic),
  );
  assert.equal(again.status, 400);
  assert.equal(again.body.error, 'invalid_grant');
  assert.equal((await client.tokenIntrospection(config, tokens.access_token)).active, false);
  assert.equal(await userinfoStatus(tokens.access_token), 401);
});

test(`[${backend}] a code sent twice at once: exactly one request gets tokens, and they are revoked`, async () => {
  // The library reads the code, checks it is unused, then marks it used: two requests racing in between would both
  // see it unused. The adapter marks it used atomically, so the second is refused as a replay.
  const config = await configFor(basic);
  for (let round = 0; round < 3; round++) {
    const started = await start(config);
    const landed = await follow(started.url, await signIn(one, 3, ['SMARTCARD']));
    const form = {
      grant_type: 'authorization_code',
      code: query(landed.url).get('code')!,
      redirect_uri: CALLBACK,
      code_verifier: started.verifier,
    };
    const results = await Promise.all([1, 2, 3, 4].map(() => postToken(form, basicAuth(basic))));
    const won = results.filter((r) => r.status === 200);
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => [r.status, r.body.error])));
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error, 'invalid_grant');
    }
  }
});

test(`[${backend}] conformance: redirect_uri, PKCE and response_type errors`, async () => {
  const config = await configFor(basic);
  const jar = await signIn(one, 3, ['SMARTCARD']);

  // An unregistered redirect_uri: an error page at the OP, never a redirect.
  const evil = await start(config, { redirect_uri: 'https://evil.example/callback' });
  const res = await fetch(evil.url, { redirect: 'manual', headers: { cookie: jar.header() } });
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('location'), null);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await res.text(), /redirect_uri/);

  // An unknown client: an error page too.
  const unknown = new URL(evil.url);
  unknown.searchParams.set('client_id', '999999999999.apps.national');
  unknown.searchParams.set('redirect_uri', CALLBACK);
  const res2 = await fetch(unknown, { redirect: 'manual' });
  assert.equal(res2.status, 400);
  assert.equal(res2.headers.get('location'), null);
  assert.match(await res2.text(), /invalid_client/);

  // redirect_uri at the token endpoint differing from the one authorized → invalid_grant.
  const mismatch = await start(config);
  const code = query((await follow(mismatch.url, jar)).url).get('code')!;
  const r1 = await postToken(
    { grant_type: 'authorization_code', code, redirect_uri: CALLBACK2, code_verifier: mismatch.verifier },
    basicAuth(basic),
  );
  assert.equal(r1.body.error, 'invalid_grant');

  // A wrong PKCE verifier → invalid_grant.
  const pkce = await start(config);
  const code2 = query((await follow(pkce.url, jar)).url).get('code')!;
  const r2 = await postToken(
    {
      grant_type: 'authorization_code',
      code: code2,
      redirect_uri: CALLBACK,
      code_verifier: client.randomPKCECodeVerifier(),
    },
    basicAuth(basic),
  );
  assert.equal(r2.body.error, 'invalid_grant');

  // A client registered to require PKCE: no PKCE at all → an error to the relying party, no code; plain PKCE
  // likewise (plain is refused for every client).
  const strict = await start(await configFor(strictPkce));
  const noPkce = new URL(strict.url);
  noPkce.searchParams.delete('code_challenge');
  noPkce.searchParams.delete('code_challenge_method');
  const l1 = await follow(noPkce.toString(), jar);
  assert.equal(query(l1.url).get('error'), 'invalid_request', l1.url);
  assert.equal(query(l1.url).get('code'), null);
  const plain = new URL(pkce.url);
  plain.searchParams.set('code_challenge', pkce.verifier);
  plain.searchParams.set('code_challenge_method', 'plain');
  const l2 = await follow(plain.toString(), jar);
  assert.equal(query(l2.url).get('error'), 'invalid_request', l2.url);

  // Implicit and hybrid response types are not supported.
  for (const type of ['token', 'id_token', 'code id_token', 'id_token token']) {
    const u = new URL(pkce.url);
    u.searchParams.set('response_type', type);
    const l = await follow(u.toString(), jar);
    assert.ok(l.url.startsWith(CALLBACK), `${type}: ${l.url}`);
    const out = new URLSearchParams(new URL(l.url).hash.slice(1) || new URL(l.url).search);
    assert.equal(out.get('error'), 'unsupported_response_type', `${type}: ${l.url}`);
    assert.equal(out.get('code'), null);
    assert.equal(out.get('access_token'), null);
  }

  // A scope the client may not ask for → invalid_scope.
  const l3 = await follow((await start(config, { scope: 'openid email' })).url, jar);
  assert.equal(query(l3.url).get('error'), 'invalid_scope', l3.url);
});

test(`[${backend}] conformance: client authentication failures → invalid_client (401)`, async () => {
  const body = { grant_type: 'authorization_code', code: 'x', redirect_uri: CALLBACK, code_verifier: 'y'.repeat(43) };
  const wrong = await postToken(body, basicAuth(basic, 'not-the-secret'));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error, 'invalid_client');
  const wrongPost = await postToken({ ...body, client_id: post.clientId, client_secret: 'nope' });
  assert.equal(wrongPost.status, 401);
  assert.equal(wrongPost.body.error, 'invalid_client');

  const assertion = async (claims: Parameters<typeof clientAssertion>[0]) =>
    postToken({
      ...body,
      client_id: pkjwt.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(claims),
    });
  const now = Math.floor(Date.now() / 1000);
  for (const [what, claims] of [
    ['wrong aud', { aud: 'https://elsewhere.example/token' }],
    ['expired', { iat: now - 600, exp: now - 300 }],
  ] as const) {
    const r = await assertion(claims);
    assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, 'invalid_client', what);
  }
  // A replayed assertion (same jti): accepted once, refused after.
  const config = await configFor(pkjwt);
  const started = await start(config);
  const landed = await follow(started.url, await signIn(one, 3, ['SMARTCARD']));
  const once = await clientAssertion({ jti: randomUUID() });
  const form = {
    grant_type: 'authorization_code',
    code: query(landed.url).get('code')!,
    redirect_uri: CALLBACK,
    code_verifier: started.verifier,
    client_id: pkjwt.clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: once,
  };
  assert.equal((await postToken(form)).status, 200);
  const replay = await postToken(form);
  assert.equal(replay.status, 401, JSON.stringify(replay.body));
  assert.equal(replay.body.error, 'invalid_client');
  // Signed by a key the client never registered.
  const stranger = await generateKeyPair('ES256');
  const forged = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: rpKey.kid })
    .setIssuer(pkjwt.clientId)
    .setSubject(pkjwt.clientId)
    .setAudience(tokenEndpoint)
    .setIssuedAt()
    .setExpirationTime('1m')
    .setJti(randomUUID())
    .sign(stranger.privateKey);
  const r = await postToken({ ...form, client_assertion: forged });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'invalid_client');
});

test(`[${backend}] conformance: hostile input — a 20 KB query string, a malformed id_token_hint — never a 500`, async () => {
  const config = await configFor(basic);
  const started = await start(config);
  const huge = `${started.url}&junk=${'a'.repeat(20_000)}`;
  const res = await fetch(huge, { redirect: 'manual' });
  await res.arrayBuffer();
  assert.ok([400, 414, 431].includes(res.status), `status ${res.status}`);

  for (const hint of ['not-a-jwt', 'eyJhbGciOiJub25lIn0.e30.', 'a.b.c', `${'x'.repeat(50)}.${'y'.repeat(50)}.z`]) {
    const end = await fetch(`${issuer}/connect/endSession?id_token_hint=${encodeURIComponent(hint)}`, {
      redirect: 'manual',
    });
    await end.arrayBuffer();
    assert.ok(end.status >= 400 && end.status < 500, `endSession with ${hint}: ${end.status}`);
    const u = new URL(started.url);
    u.searchParams.set('id_token_hint', hint);
    const auth = await fetch(u, { redirect: 'manual' });
    await auth.arrayBuffer();
    assert.ok(auth.status < 500, `authorize with ${hint}: ${auth.status}`);
    if (auth.status === 303 || auth.status === 302) {
      assert.ok(query(auth.headers.get('location')!).get('error'), 'an error to the relying party');
    }
  }
  // Junk to the token endpoint.
  for (const raw of ['', 'grant_type=', '%%%', `grant_type=authorization_code&code=${'c'.repeat(5_000)}`]) {
    const t = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basicAuth(basic) },
      body: raw,
    });
    await t.arrayBuffer();
    assert.ok(t.status >= 400 && t.status < 500, `token with ${raw.slice(0, 20)}: ${t.status}`);
  }
});

test(`[${backend}] conformance: introspection and revocation only for the client that owns the token`, async () => {
  const owner = await configFor(basic);
  const stranger = await configFor(other);
  const { tokens } = await signInAt(owner, await signIn(one, 3, ['SMARTCARD']));
  assert.equal((await client.tokenIntrospection(owner, tokens.access_token)).active, true);
  const seen = await client.tokenIntrospection(stranger, tokens.access_token);
  assert.equal(seen.active, false);
  assert.equal(seen.sub, undefined);
  // Another client's revocation request does not revoke it.
  await client.tokenRevocation(stranger, tokens.access_token).catch(() => undefined);
  assert.equal((await client.tokenIntrospection(owner, tokens.access_token)).active, true);
  assert.equal(await userinfoStatus(tokens.access_token), 200);
  // The owner can.
  await client.tokenRevocation(owner, tokens.access_token);
  assert.equal((await client.tokenIntrospection(owner, tokens.access_token)).active, false);
  assert.equal(await userinfoStatus(tokens.access_token), 401);
});
