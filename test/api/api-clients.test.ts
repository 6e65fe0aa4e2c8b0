import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { backend } from '../support/db.ts';
import { client, discover } from '../support/oidc.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Organisations script their RA work through the REST API with OAuth client credentials (issue 5): the token comes
 * from the OpenID Connect provider's client-credentials grant; the API client acts for its organisation's subtree with
 * the activities it was registered for; no shared static password exists.
 */
let server: TestServer;
let userId: string;
let apiClientId: string;
let apiSecret: string;
let signInClientId: string;
let signInSecret: string;

before(async () => {
  server = await startTestServer();
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'QWO', name: 'ICB', type: 'icb' });
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Trust', type: 'trust', parentOdsCode: 'QWO' });
  await saveOrganisation(ctx, { odsCode: 'Y51', name: 'Other ICB', type: 'icb' });
  const p = await registerPerson(ctx, {
    givenName: 'Api',
    familyName: 'Subject',
    dateOfBirth: '1985-05-05',
    email: 'api.subject@example.nhs.uk',
  });
  userId = p.userId;
  const api = await registerClient(ctx, {
    name: 'Trust RA scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274'] },
  });
  apiClientId = api.client.clientId;
  apiSecret = api.clientSecret!;
  const signIn = await registerClient(ctx, {
    name: 'EPR',
    redirectUris: ['http://localhost:9/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  signInClientId = signIn.client.clientId;
  signInSecret = signIn.clientSecret!;
});
after(() => server.close());

async function apiToken(id = apiClientId, secret = apiSecret): Promise<string> {
  const config = await discover(`${server.url}/oidc`, id, secret);
  const tokens = await client.clientCredentialsGrant(config, { scope: 'opencis.ra_api' });
  return tokens.access_token;
}

test(`[${backend}] an API client gets a token with client credentials and calls the RA API without cookies or CSRF`, async () => {
  const token = await apiToken();
  const res = await fetch(`${server.url}/api/v1/people/search`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { people: { userId: string }[] };
  assert.deepEqual(
    body.people.map((p) => p.userId),
    [userId],
  );
});

test(`[${backend}] the API client acts only within its organisation's subtree and its registered activities`, async () => {
  const token = await apiToken();
  const post = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const ctx = server.operator();
  // One person who works only in the other ICB (outside RR8's subtree), one who works only in RR8.
  const worksAt = async (odsCode: string, familyName: string, id: string) => {
    const p = await registerPerson(ctx, {
      givenName: 'Scope',
      familyName,
      dateOfBirth: '1979-09-09',
      email: `${familyName.toLowerCase()}@example.nhs.uk`,
    });
    await server.t.db.query(
      'INSERT INTO person_orgs (person_orgid, user_id, ods_code, created_at) VALUES ($1, $2, $3, now())',
      [id, p.userId, odsCode],
    );
    return p.userId;
  };
  const outside = await worksAt('Y51', 'Outside', '900000000001');
  const inside = await worksAt('RR8', 'Inside', '900000000002');
  const snapshot = async (who: string) =>
    (
      await server.t.db.query<{ status: string; family_name: string }>(
        'SELECT status, family_name FROM people WHERE user_id = $1',
        [who],
      )
    ).rows[0];
  const before = await snapshot(outside);

  // Outside its subtree: refused, and the person is as they were.
  const suspendOutside = await post(`/api/v1/people/${outside}/suspend`, { reason: 'scope test' });
  assert.equal(suspendOutside.status, 403, await suspendOutside.clone().text());
  assert.equal(((await suspendOutside.json()) as { error: { code: string } }).error.code, 'auth.forbidden');
  assert.deepEqual(await snapshot(outside), before);
  // Registering a client is an RA Manager's act, not one of the activities it was registered for.
  const reg = await post('/api/v1/clients', { name: 'x', redirectUris: ['http://localhost:9/cb'] });
  assert.equal(reg.status, 403);
  assert.equal(((await reg.json()) as { error: { code: string } }).error.code, 'auth.forbidden');
  assert.equal((await server.t.db.query("SELECT count(*)::int AS n FROM oidc_clients WHERE name = 'x'")).rows[0].n, 0);

  // Within it, the same act as the RA Agent it was registered as.
  const suspendInside = await post(`/api/v1/people/${inside}/suspend`, { reason: 'scope test' });
  assert.equal(suspendInside.status, 200, await suspendInside.clone().text());
  assert.equal((await snapshot(inside))?.status, 'suspended');
});

test(`[${backend}] no token, a forged token, or a sign-in client's credentials get no access`, async () => {
  const call = (headers: Record<string, string>) =>
    fetch(`${server.url}/api/v1/people/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ userId }),
    });
  // No credentials: told to authenticate, and how (issue 18), not that a form expired.
  const none = await call({});
  assert.equal(none.status, 401, 'no session and no token');
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'auth.required');
  assert.match(String(none.headers.get('www-authenticate')), /^Bearer realm="OpenCIS", scope="opencis\.ra_api"/);
  const forged = await call({ authorization: 'Bearer abcdefghijklmnopqrstuvwxyz0123456789' });
  assert.equal(forged.status, 401);
  assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'auth.required');
  // A password (Basic) is no way in: no bearer token, no session (401 auth.required).
  const junk = await call({ authorization: 'Basic dXNlcjpwYXNz' });
  assert.ok([401, 403].includes(junk.status));
  assert.match(((await junk.json()) as { error: { code: string } }).error.code, /^auth\./);
  // openid-client reports an OAuth error in the body as `error`, and a 401 challenge in `cause[0].parameters.error`.
  const oauthError = (expected: RegExp) => (err: unknown) => {
    const e = err as { error?: string; cause?: { parameters?: { error?: string } }[] };
    return expected.test(String(e.error ?? e.cause?.[0]?.parameters?.error));
  };
  await assert.rejects(
    apiToken(signInClientId, signInSecret),
    oauthError(/unauthorized_client|invalid_scope|invalid_grant|invalid_request/),
  );
  await assert.rejects(apiToken(apiClientId, 'wrong-secret'), oauthError(/invalid_client/));
});
