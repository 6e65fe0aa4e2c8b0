import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { backend } from '../support/db.ts';
import { browse, CookieJar, client, discover } from '../support/oidc.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

let server: TestServer;
let userId: string;
let clientId: string;
let secret: string;
const redirectUri = 'http://localhost:9/callback';

before(async () => {
  server = await startTestServer();
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Test Trust', type: 'trust' });
  const pos = await createPosition(ctx, 'RR8', { name: 'Ward nurse', jobRoles: ['R8001'], activities: ['B0825'] });
  const p = await registerPerson(ctx, {
    givenName: 'Ola',
    familyName: 'Nordmann',
    dateOfBirth: '1980-02-02',
    email: 'ola@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  userId = p.userId;
  await assignRoleProfile(ctx, { userId, positionId: pos.positionId, startDate: '2020-01-01' });
  const reg = await registerClient(ctx, {
    name: 'Test EPR',
    redirectUris: [redirectUri],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: [
      'openid',
      'profile',
      'email',
      'nhsperson',
      'nationalrbacaccess',
      'selectedrole',
      'associatedorgs',
      'organisationalmemberships',
    ],
  });
  clientId = reg.client.clientId;
  secret = reg.clientSecret!;
});
after(() => server.close());

async function signedInJar(aal: 2 | 3, amr: string[]): Promise<CookieJar> {
  const jar = new CookieJar();
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId, aal, amr, authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set('opencis_session', token);
  return jar;
}

test(`[${backend}] discovery names the CIS2 endpoints`, async () => {
  const res = await fetch(`${server.url}/oidc/.well-known/openid-configuration`);
  const d = (await res.json()) as Record<string, unknown>;
  assert.equal(d.issuer, `${server.url}/oidc`);
  assert.equal(d.authorization_endpoint, `${server.url}/oidc/authorize`);
  assert.equal(d.token_endpoint, `${server.url}/oidc/access_token`);
  assert.equal(d.userinfo_endpoint, `${server.url}/oidc/userinfo`);
  assert.equal(d.jwks_uri, `${server.url}/oidc/connect/jwk_uri`);
  assert.equal(d.end_session_endpoint, `${server.url}/oidc/connect/endSession`);
  assert.deepEqual(d.response_types_supported, ['code']);
  assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
  assert.ok((d.acr_values_supported as string[]).includes('AAL3_ANY'));
});

test(`[${backend}] a full code flow with openid-client: ID token and userinfo carry the CIS2 claims`, async () => {
  const config = await discover(`${server.url}/oidc`, clientId, secret);
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email nhsperson nationalrbacaccess selectedrole',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    acr_values: 'AAL3_ANY',
  });
  const jar = await signedInJar(3, ['SMARTCARD']);
  const { url: callback } = await browse(url.toString(), jar, redirectUri);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  const claims = tokens.claims()!;
  assert.equal(claims.sub, userId);
  assert.equal(claims.acr, 'AAL3_ANY');
  assert.deepEqual(claims.amr, ['SMARTCARD']);
  assert.equal(claims.id_assurance_level, 3);
  assert.equal(claims.authentication_assurance_level, 3);
  assert.match(String(claims.selected_roleid), /^\d{12}$/);
  const info = await client.fetchUserInfo(config, tokens.access_token, userId);
  const roles = info.nhsid_nrbac_roles as { role_code: string; person_roleid: string; activity_codes: string[] }[];
  assert.equal(roles.length, 1);
  assert.equal(roles[0]!.role_code, 'S8000:G8000:R8001');
  assert.deepEqual(roles[0]!.activity_codes, ['B0825']);
  assert.equal(info.selected_roleid, roles[0]!.person_roleid);
  assert.equal(info.idassurancelevel, 3);
  assert.equal(info.email, 'ola@example.nhs.uk');
});

test(`[${backend}] an AAL2 session asked for AAL3_ANY is sent to step up, not accepted`, async () => {
  const config = await discover(`${server.url}/oidc`, clientId, secret);
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce: client.randomNonce(),
    state: client.randomState(),
  });
  const jar = await signedInJar(2, ['PASSKEY']);
  const { url: landed } = await browse(url.toString(), jar, redirectUri);
  assert.match(landed, /\/signin\?return=%2Foidc%2Finteraction%2F[^&]+&aal=3$/);
});

test(`[${backend}] signing out of OpenCIS ends this browser's single sign-on at relying parties`, async () => {
  const config = await discover(`${server.url}/oidc`, clientId, secret);
  const start = async () => {
    const verifier = client.randomPKCECodeVerifier();
    return client
      .buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        nonce: client.randomNonce(),
        state: client.randomState(),
      })
      .toString();
  };
  const jar = await signedInJar(3, ['FIDO2']);
  const first = await browse(await start(), jar, redirectUri);
  assert.ok(first.url.startsWith(redirectUri));
  assert.match(jar.header(), /_session=/);
  const { rows: before } = await server.t.db.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM oidc_payloads WHERE model = 'Session' AND account_id = $1",
    [userId],
  );
  // A page gives the form's CSRF token (and its cookie); then sign out like the header button does.
  const account = await fetch(`${server.url}/account`, { headers: { cookie: jar.header() } });
  jar.absorb(account);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await account.text())![1]!;
  const out = await fetch(`${server.url}/signout`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf }),
  });
  assert.equal(out.status, 303);
  jar.absorb(out);
  const { rows: afterRows } = await server.t.db.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM oidc_payloads WHERE model = 'Session' AND account_id = $1",
    [userId],
  );
  assert.equal(Number(afterRows[0]!.n), Number(before[0]!.n) - 1);
  const again = await browse(await start(), jar, redirectUri);
  assert.match(again.url, /\/signin\?return=/);
});

/** openid-client's error for a 401 whose WWW-Authenticate challenge says invalid_token. */
const invalidToken = (err: unknown) =>
  (err as Error).name === 'WWWAuthenticateChallengeError' &&
  JSON.stringify((err as { cause?: unknown }).cause).includes('invalid_token');

/** The statements the app sends while `fn` runs (the app and the test share one database object). */
async function statementsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  const db = server.t.db;
  const query = db.query;
  const statements: string[] = [];
  db.query = ((sql: string, params?: unknown[]) => {
    statements.push(sql.replace(/\s+/g, ' ').trim());
    return query.call(db, sql, params);
  }) as typeof db.query;
  try {
    return { result: await fn(), statements };
  } finally {
    db.query = query;
  }
}

test(`[${backend}] token and userinfo read the token, its grant, its session and the claims together; the next request reads again`, async () => {
  const config = await discover(`${server.url}/oidc`, clientId, secret);
  const signIn = async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile nationalrbacaccess',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const { url: callback } = await browse(url.toString(), await signedInJar(3, ['SMARTCARD']), redirectUri);
    return statementsDuring(() =>
      client.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state }),
    );
  };
  const { result: tokens, statements: atToken } = await signIn();
  assert.equal(tokens.claims()!.sub, userId);
  assert.equal(tokens.claims()!.authentication_assurance_level, 3);
  const { result: info, statements: atUserinfo } = await statementsDuring(() =>
    client.fetchUserInfo(config, tokens.access_token, userId),
  );
  assert.equal((info.nhsid_nrbac_roles as unknown[]).length, 1);
  if (backend === 'postgres') {
    // The code, its grant, its session and the ID token's claims in one statement; then the code's use and the new
    // token in another (the token written only if this request is the one that used the code).
    assert.equal(atToken.length, 2, atToken.join('\n'));
    assert.match(atToken[0]!, /oidc_read_together/);
    assert.match(atToken[1]!, /^WITH used AS \( UPDATE oidc_payloads SET consumed_at .* INSERT INTO oidc_payloads/);
    assert.deepEqual(atUserinfo.length, 1, atUserinfo.join('\n'));
    assert.match(atUserinfo[0]!, /oidc_read_together/);
  } else {
    // PGlite answers the artefacts this process wrote from memory: the claims are the one statement left.
    assert.equal(atUserinfo.length, 1, atUserinfo.join('\n'));
    assert.match(atUserinfo[0]!, /oidc_claims_state/);
  }

  // Nothing outlives the request: what changes in the database between two requests is seen by the next one.
  const { rows } = await server.t.db.query<{ person_roleid: string }>(
    "SELECT person_roleid FROM role_profiles WHERE user_id = $1 AND status = 'active'",
    [userId],
  );
  await server.t.db.query('UPDATE role_profiles SET end_date = start_date WHERE person_roleid = $1', [
    rows[0]!.person_roleid,
  ]);
  try {
    const after = await client.fetchUserInfo(config, tokens.access_token, userId);
    assert.deepEqual(after.nhsid_nrbac_roles, [], 'a role profile ended between two calls is gone from the second');
  } finally {
    await server.t.db.query('UPDATE role_profiles SET end_date = NULL WHERE person_roleid = $1', [
      rows[0]!.person_roleid,
    ]);
  }
  if (backend === 'postgres') {
    // Another node ends the SSO session the token is bound to (its row deleted): the very next userinfo is refused.
    const { result: second } = await signIn();
    await server.t.db.query(
      `DELETE FROM oidc_payloads WHERE model = 'Session' AND uid = (
         SELECT payload->>'sessionUid' FROM oidc_payloads WHERE model = 'AccessToken' AND id = $1)`,
      [second.access_token],
    );
    await assert.rejects(client.fetchUserInfo(config, second.access_token, userId), invalidToken);
    // …or revokes its grant.
    const { result: third } = await signIn();
    await client.fetchUserInfo(config, third.access_token, userId);
    await server.t.db.query(
      `DELETE FROM oidc_payloads WHERE model = 'Grant' AND id = (
         SELECT grant_id FROM oidc_payloads WHERE model = 'AccessToken' AND id = $1)`,
      [third.access_token],
    );
    await assert.rejects(client.fetchUserInfo(config, third.access_token, userId), invalidToken);
  }
});
