import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { registerClient } from '../../src/oidc/clients.ts';
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
  // Registering a client is an RA Manager's act, not a script's.
  const reg = await post('/api/v1/clients', { name: 'x', redirectUris: ['http://localhost:9/cb'] });
  assert.equal(reg.status, 403);
  assert.equal(((await reg.json()) as { error: { code: string } }).error.code, 'auth.forbidden');
  const org = await fetch(`${server.url}/api/v1/reports/pending-requests`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(org.status, 200);
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
