import assert from 'node:assert/strict';
import { after, before, mock, test } from 'node:test';
import { decodeJwt } from 'jose';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { backend } from '../support/db.ts';
import {
  basicAuth,
  CALLBACK,
  CookieJar,
  client,
  exchange,
  follow,
  postForm,
  query,
  signIn,
  start,
} from '../support/oidc-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * The OpenID Foundation Basic OP checks not already reproduced elsewhere (docs/cis2.md lists where each one is tested):
 * grant types a client may not use, prompt=none, max_age, the claims parameter (not supported, as discovery says) and
 * userinfo with an expired access token. The rest — nonce, state, code reuse, redirect_uri, iat/exp/aud, at_hash,
 * invalid client, prompt=login — are in oidc-flows.test.ts; azp and s_hash in oidc-cis2.test.ts.
 */
let server: TestServer;
let issuer: string;
let person: string;
let twoRoles: string;
let rp: { clientId: string; secret: string };
let api: { clientId: string; secret: string };

before(async () => {
  server = await startTestServer();
  issuer = `${server.url}/oidc`;
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  const positions: { positionId: string }[] = [];
  for (const name of ['Ward nurse', 'Matron']) {
    positions.push(await createPosition(ctx, 'RR8', { name, jobRoles: ['R8001'], activities: ['B0825'] }));
  }
  const p = async (n: number, roles: number) => {
    const r = await registerPerson(ctx, {
      givenName: 'Oidf',
      familyName: `Basic${'abc'[n]}`,
      dateOfBirth: `1975-05-0${n + 1}`,
      identityAssuranceLevel: 3,
    });
    for (const pos of positions.slice(0, roles)) {
      await assignRoleProfile(ctx, { userId: r.userId, positionId: pos.positionId, startDate: '2020-01-01' });
    }
    return r.userId;
  };
  person = await p(0, 1);
  twoRoles = await p(1, 2);
  const reg = await registerClient(ctx, {
    name: 'Conformance RP',
    redirectUris: [CALLBACK],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: ['openid', 'profile', 'email', 'selectedrole'],
    accessTokenTtlSeconds: 60,
  });
  rp = { clientId: reg.client.clientId, secret: reg.clientSecret! };
  const apiReg = await registerClient(ctx, {
    name: 'RA scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274'] },
  });
  api = { clientId: apiReg.client.clientId, secret: apiReg.clientSecret! };
});

after(() => server?.close());

async function config(): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), rp.clientId, {}, client.ClientSecretBasic(rp.secret), {
    execute: [client.allowInsecureRequests],
  });
}

const tokenEndpoint = () => `${issuer}/access_token`;

test(`[${backend}] grant types a client may not use: unsupported_grant_type, or "not allowed for this client"; never a token`, async () => {
  const auth = basicAuth(rp.clientId, rp.secret);
  for (const grant of ['password', 'implicit', 'urn:ietf:params:oauth:grant-type:device_code', 'x']) {
    const res = await postForm(tokenEndpoint(), { grant_type: grant, username: 'a', password: 'b' }, auth);
    assert.equal(res.status, 400, grant);
    assert.equal(res.body.error, 'unsupported_grant_type', `${grant}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.access_token, undefined);
  }
  // Grants the server has, that this client was not registered for: oidc-provider answers invalid_request "requested
  // grant type is not allowed for this client" (RFC 6749 §5.2 would say unauthorized_client); never a token.
  const notAllowed = (r: { status: number; body: Record<string, unknown> }, what: string) => {
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.ok(['invalid_request', 'unauthorized_client'].includes(String(r.body.error)), JSON.stringify(r.body));
    assert.match(String(r.body.error_description ?? ''), /grant type is not allowed for this client/);
    assert.equal(r.body.access_token, undefined);
  };
  notAllowed(await postForm(tokenEndpoint(), { grant_type: 'refresh_token', refresh_token: 'x' }, auth), 'refresh');
  notAllowed(await postForm(tokenEndpoint(), { grant_type: 'client_credentials' }, auth), 'client_credentials');
  // An API client (client credentials only) cannot redeem a code, even a real one issued to someone else.
  const c = await config();
  const started = await start(c, {}, { pkce: false });
  const landed = await follow(started.url, await signIn(server, person, 3, ['SMARTCARD']));
  const code = query(landed.url).get('code')!;
  const stolen = await postForm(
    tokenEndpoint(),
    { grant_type: 'authorization_code', code, redirect_uri: CALLBACK },
    basicAuth(api.clientId, api.secret),
  );
  notAllowed(stolen, 'a code redeemed by an API client');
  // The code still works for its own client (nothing was consumed by the refusal).
  assert.ok((await exchange(c, started, landed.url)).access_token);
});

test(`[${backend}] prompt=none: no session → login_required; a session → a code with no page; a choice needed → interaction_required`, async () => {
  const c = await config();
  const none = await start(c, { prompt: 'none' }, { pkce: false });
  const out = await follow(none.url, new CookieJar());
  assert.ok(out.url.startsWith(CALLBACK), out.url);
  assert.equal(query(out.url).get('error'), 'login_required');
  assert.equal(query(out.url).get('state'), none.state);

  // Once this browser has signed in at a relying party through OpenCIS (its SSO session), prompt=none needs no page.
  const jar = await signIn(server, person, 3, ['SMARTCARD']);
  const first = await start(c, {}, { pkce: false });
  await exchange(c, first, (await follow(first.url, jar)).url);
  const silent = await start(c, { prompt: 'none' }, { pkce: false });
  const ok = await follow(silent.url, jar);
  assert.ok(ok.url.startsWith(CALLBACK) && query(ok.url).get('code'), ok.url);
  assert.ok(!ok.hops.some((h) => new URL(h).pathname.includes('/interaction/')), 'no page on the way');
  assert.equal((await exchange(c, silent, ok.url)).claims()!.sub, person);

  const chooser = await signIn(server, twoRoles, 3, ['SMARTCARD']);
  const seen = await start(c, {}, { pkce: false });
  await exchange(c, seen, (await follow(seen.url, chooser)).url);
  const role = await start(c, { prompt: 'none', scope: 'openid selectedrole' }, { pkce: false });
  const needs = await follow(role.url, chooser);
  assert.ok(needs.url.startsWith(CALLBACK), needs.url);
  assert.equal(query(needs.url).get('error'), 'interaction_required');
  // AAL3 asked, the session AAL2: prompt=none cannot step up.
  const weak = await signIn(server, person, 2, ['PASSKEY']);
  const weakFirst = await start(c, { acr_values: 'AAL2_OR_AAL3_ANY' }, { pkce: false });
  await exchange(c, weakFirst, (await follow(weakFirst.url, weak)).url);
  const up = await follow((await start(c, { prompt: 'none', acr_values: 'AAL3_ANY' }, { pkce: false })).url, weak);
  assert.equal(query(up.url).get('error'), 'login_required');
});

test(`[${backend}] prompt=login with a session from before the request → sign in again; max_age: an older sign-in → sign in again, auth_time given`, async () => {
  const c = await config();
  const fiveMinutesAgo = new Date(Date.now() - 5 * 60_000);
  const jar = await signIn(server, person, 3, ['SMARTCARD'], new CookieJar(), fiveMinutesAgo);
  const login = await follow((await start(c, { prompt: 'login' }, { pkce: false })).url, jar);
  assert.equal(new URL(login.url).pathname, '/signin', login.url);

  const aged = await follow((await start(c, { max_age: '60' }, { pkce: false })).url, jar);
  assert.equal(new URL(aged.url).pathname, '/signin', aged.url);
  // Within max_age: a code, and auth_time in the ID token (the sign-in's time).
  const young = await start(c, { max_age: '3600' }, { pkce: false });
  const landed = await follow(young.url, jar);
  assert.ok(landed.url.startsWith(CALLBACK), landed.url);
  const claims = (await exchange(c, young, landed.url)).claims()!;
  assert.equal(claims.auth_time, Math.floor(fiveMinutesAgo.getTime() / 1000));
  // max_age=0: a sign-in now (OpenID Connect Core §3.1.2.1: the same as prompt=login).
  const zero = await follow((await start(c, { max_age: '0' }, { pkce: false })).url, jar);
  assert.equal(new URL(zero.url).pathname, '/signin');
});

test(`[${backend}] the claims parameter: not supported (claims_parameter_supported false) — ignored, nothing extra released`, async () => {
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<
    string,
    unknown
  >;
  assert.equal(discovery.claims_parameter_supported, false);
  const c = await config();
  const started = await start(
    c,
    {
      scope: 'openid',
      claims: JSON.stringify({
        id_token: { email: { essential: true }, name: null, nhsid_nrbac_roles: null },
        userinfo: { email: { essential: true }, nhsid_user_orgs: null },
      }),
    },
    { pkce: false },
  );
  const landed = await follow(started.url, await signIn(server, person, 3, ['SMARTCARD']));
  assert.ok(landed.url.startsWith(CALLBACK), landed.url);
  const tokens = await exchange(c, started, landed.url);
  const id = decodeJwt(tokens.id_token!);
  assert.equal(id.email, undefined);
  assert.equal(id.name, undefined);
  const info = await client.fetchUserInfo(c, tokens.access_token, person);
  assert.equal(info.email, undefined);
  assert.equal(info.nhsid_user_orgs, undefined);
});

test(`[${backend}] userinfo with an expired access token → 401 invalid_token (the token's own lifetime, 60 s here)`, async () => {
  const c = await config();
  const started = await start(c, {}, { pkce: false });
  const landed = await follow(started.url, await signIn(server, person, 3, ['SMARTCARD']));
  const tokens = await exchange(c, started, landed.url);
  assert.equal(tokens.expires_in, 60);
  const call = async () => {
    const res = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    return { status: res.status, www: res.headers.get('www-authenticate') ?? '', body: await res.text() };
  };
  assert.equal((await call()).status, 200);
  // The clock moved past the token's expiry (Date only; the server runs in this process).
  mock.timers.enable({ apis: ['Date'], now: Date.now() + 120_000 });
  try {
    const expired = await call();
    assert.equal(expired.status, 401, expired.body);
    assert.match(expired.www, /error="invalid_token"/);
  } finally {
    mock.timers.reset();
  }
  // A token that never was: the same answer.
  const res = await fetch(`${issuer}/userinfo`, { headers: { authorization: 'Bearer not-a-token' } });
  assert.equal(res.status, 401);
});
