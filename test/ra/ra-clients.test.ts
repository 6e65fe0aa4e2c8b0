import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { registerClient } from '../../src/services/clients.ts';
import { type ConsoleBrowser, type ConsoleHarness, consoleHarness } from '../support/console.ts';
import { backend } from '../support/db.ts';

/*
 * Relying parties in the console (issue #14 acceptance 3): register (with its organisation), change, disable and enable
 * through a confirmation with a reason, re-key — the secret shown once; for RA Managers only.
 */
let h: ConsoleHarness;
let manager: ConsoleBrowser;
const who = {} as Record<'manager' | 'agent', string>;

before(async () => {
  h = await consoleHarness();
  who.manager = await h.person(
    { givenName: 'Grace', familyName: 'Okafor' },
    await h.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] }),
  );
  who.agent = await h.person({}, await h.position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] }));
  manager = await h.signedIn(who.manager);
});

after(async () => h?.close());

async function token(clientId: string, secret: string) {
  return h.app.inject({
    method: 'POST',
    url: '/oidc/access_token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    payload: 'grant_type=client_credentials&scope=opencis.ra_api',
  });
}

function publicJwks(): string {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: 'k1' }] });
}

test(`[${backend}] register a sign-in client with its organisation; the secret is shown once, then only its metadata`, async () => {
  const form = await h.get(manager, '/ra/clients/new');
  assert.equal(form.statusCode, 200);
  assert.match(form.body, /<select class="nhsuk-select" id="odsCode" name="odsCode"/);
  assert.match(form.body, /<option value="RR813">/);
  const noOrg = await h.postForm(manager, '/ra/clients/new', {
    name: 'Ward EPR',
    redirectUris: 'https://epr.example.nhs.uk/callback',
    authMethod: 'client_secret_basic',
    scopes: ['openid', 'profile'],
    minimumAal: '3',
  });
  assert.equal(noOrg.statusCode, 400);
  assert.match(noOrg.body, /href="#odsCode"/);
  const bad = await h.postForm(manager, '/ra/clients/new', {
    odsCode: 'RR8',
    name: 'Ward EPR',
    redirectUris: 'http://epr.example.nhs.uk/callback',
    authMethod: 'client_secret_basic',
    scopes: ['openid'],
  });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.body, /href="#redirectUris"[^>]*>Redirect URIs: https only/);
  const before = (await h.t.db.query('SELECT count(*)::int AS n FROM oidc_clients')).rows[0];
  const res = await h.postForm(manager, '/ra/clients/new', {
    odsCode: 'RR8',
    name: 'Ward EPR',
    redirectUris: 'https://epr.example.nhs.uk/callback\r\nhttps://epr.example.nhs.uk/callback2',
    postLogoutRedirectUris: 'https://epr.example.nhs.uk/signed-out',
    authMethod: 'client_secret_basic',
    scopes: ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'],
    minimumAal: '3',
    alg: 'RS256',
  });
  assert.equal(res.statusCode, 200, res.body.slice(0, 400));
  assert.match(res.body, /Relying party registered/);
  assert.equal(res.headers['cache-control'], 'no-store');
  const clientId = /id="client-id">([^<]+)</.exec(res.body)![1]!;
  const secret = /id="client-secret">([^<]+)</.exec(res.body)![1]!;
  assert.match(clientId, /^\d{12}\.apps\.national$/);
  assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((await h.t.db.query('SELECT count(*)::int AS n FROM oidc_clients')).rows[0]!.n, Number(before!.n) + 1);
  // Never again: not on its page, nor in the list, nor in the audit trail.
  const page = await h.get(manager, `/ra/clients/${clientId}`);
  assert.equal(page.statusCode, 200);
  assert.match(page.body, /Ward EPR/);
  assert.match(page.body, /https:\/\/epr\.example\.nhs\.uk\/callback2/);
  assert.match(page.body, /Grace Okafor/);
  assert.ok(!page.body.includes(secret));
  assert.ok(!(await h.get(manager, '/ra/clients')).body.includes(secret));
  const { rows } = await h.t.db.query<{ after: unknown }>(
    "SELECT after FROM audit_events WHERE action = 'oidc.client_registered'",
  );
  assert.ok(!JSON.stringify(rows).includes(secret));
});

test(`[${backend}] change a client's settings; disable and enable it through a confirmation with a reason`, async () => {
  const { client } = await registerClient(h.op(), {
    name: 'GP system',
    odsCode: 'RR8',
    redirectUris: ['https://gp.example.nhs.uk/cb'],
    jwks: JSON.parse(publicJwks()),
  });
  const href = `/ra/clients/${client.clientId}`;
  const edit = await h.get(manager, `${href}/edit`);
  assert.match(edit.body, /https:\/\/gp\.example\.nhs\.uk\/cb<\/textarea>/);
  const saved = await h.postForm(manager, `${href}/edit`, {
    name: 'GP system (new name)',
    redirectUris: 'https://gp.example.nhs.uk/cb\nhttps://gp.example.nhs.uk/cb-new',
    scopes: ['openid', 'profile', 'offline_access'],
    minimumAal: '2',
    alg: 'ES256',
    refreshTtl: '3600',
    reason: 'Supplier moved the callback',
  });
  assert.equal(saved.statusCode, 303, saved.body.slice(0, 400));
  assert.equal(saved.headers.location, `${href}?done=client_updated`);
  const { rows } = await h.t.db.query<{ name: string; minimum_aal: number; metadata: Record<string, unknown> }>(
    'SELECT name, minimum_aal, metadata FROM oidc_clients WHERE client_id = $1',
    [client.clientId],
  );
  assert.equal(rows[0]!.name, 'GP system (new name)');
  assert.equal(rows[0]!.minimum_aal, 2);
  assert.deepEqual(rows[0]!.metadata.redirect_uris, [
    'https://gp.example.nhs.uk/cb',
    'https://gp.example.nhs.uk/cb-new',
  ]);
  assert.deepEqual(rows[0]!.metadata.grant_types, ['authorization_code', 'refresh_token']);
  assert.ok(rows[0]!.metadata.jwks, 'its keys are kept');
  // A bad change changes nothing.
  const bad = await h.postForm(manager, `${href}/edit`, { name: 'X', redirectUris: 'ftp://x/cb', scopes: ['openid'] });
  assert.equal(bad.statusCode, 400);
  assert.equal(
    (await h.t.db.query('SELECT name FROM oidc_clients WHERE client_id = $1', [client.clientId])).rows[0]!.name,
    'GP system (new name)',
  );

  // Disable: the confirmation page, a required reason, the audit record with it, a banner.
  const confirm = await h.get(manager, `${href}/disable`);
  assert.equal(confirm.statusCode, 200);
  assert.match(confirm.body, /Disable a relying party/);
  const noReason = await h.postForm(manager, `${href}/disable`, { reason: '' });
  assert.equal(noReason.statusCode, 400);
  assert.match(noReason.body, /href="#reason"/);
  assert.equal(
    (await h.t.db.query('SELECT status FROM oidc_clients WHERE client_id = $1', [client.clientId])).rows[0]!.status,
    'active',
  );
  const disabled = await h.postForm(manager, `${href}/disable`, { reason: 'Supplier contract ended' });
  assert.equal(disabled.statusCode, 303);
  assert.equal(disabled.headers.location, `${href}?done=client_disabled`);
  const after = await h.get(manager, String(disabled.headers.location));
  assert.match(after.body, /Relying party disabled/);
  assert.match(after.body, /id="enable-client"/);
  const audit = await h.t.db.query<{ reason: string; actor: string }>(
    "SELECT reason, actor FROM audit_events WHERE action = 'oidc.client_disabled' AND target_id = $1",
    [client.clientId],
  );
  assert.deepEqual(audit.rows[0], { reason: 'Supplier contract ended', actor: `person:${who.manager}` });
  const enabled = await h.postForm(manager, `${href}/enable`, { reason: 'New contract signed' });
  assert.equal(enabled.statusCode, 303);
  assert.equal(
    (await h.t.db.query('SELECT status FROM oidc_clients WHERE client_id = $1', [client.clientId])).rows[0]!.status,
    'active',
  );
});

test(`[${backend}] re-key: a new secret shown once (the old one stops working at once), or new public keys`, async () => {
  const { client, clientSecret } = await registerClient(h.op(), {
    name: 'Trust RA scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274'] },
  });
  assert.equal((await token(client.clientId, clientSecret!)).statusCode, 200);
  const href = `/ra/clients/${client.clientId}`;
  const page = await h.get(manager, `${href}/rekey`);
  assert.match(page.body, /A new client secret replaces the old one/);
  const noReason = await h.postForm(manager, `${href}/rekey`, { reason: '' });
  assert.equal(noReason.statusCode, 400);
  assert.equal((await token(client.clientId, clientSecret!)).statusCode, 200, 'nothing changed');
  const res = await h.postForm(manager, `${href}/rekey`, { reason: 'Secret was pasted in a ticket' });
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  const secret = /id="client-secret">([^<]+)</.exec(res.body)![1]!;
  assert.notEqual(secret, clientSecret);
  assert.equal((await token(client.clientId, clientSecret!)).statusCode, 401, 'the old secret stops working');
  assert.equal((await token(client.clientId, secret)).statusCode, 200, 'the new one works');
  const audit = await h.t.db.query<{ reason: string; after: unknown }>(
    "SELECT reason, after FROM audit_events WHERE action = 'oidc.client_rekeyed' AND target_id = $1",
    [client.clientId],
  );
  assert.equal(audit.rows[0]!.reason, 'Secret was pasted in a ticket');
  assert.ok(!JSON.stringify(audit.rows).includes(secret));

  // A private_key_jwt client: new public keys; private key material is refused.
  const keyed = await registerClient(h.op(), {
    name: 'Keyed',
    odsCode: 'RR8',
    redirectUris: ['https://k.example/cb'],
    jwks: JSON.parse(publicJwks()),
  });
  const keyedHref = `/ra/clients/${keyed.client.clientId}`;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaked = await h.postForm(manager, `${keyedHref}/rekey`, {
    reason: 'rotation',
    jwks: JSON.stringify({ keys: [privateKey.export({ format: 'jwk' })] }),
  });
  assert.equal(leaked.statusCode, 400);
  assert.match(leaked.body, /a private key/);
  const fresh = publicJwks();
  const rotated = await h.postForm(manager, `${keyedHref}/rekey`, { reason: 'Yearly rotation', jwks: fresh });
  assert.equal(rotated.statusCode, 303);
  assert.equal(rotated.headers.location, `${keyedHref}?done=client_rekeyed`);
  const { rows } = await h.t.db.query<{ metadata: { jwks: unknown } }>(
    'SELECT metadata FROM oidc_clients WHERE client_id = $1',
    [keyed.client.clientId],
  );
  assert.deepEqual(rows[0]!.metadata.jwks, JSON.parse(fresh));
});

test(`[${backend}] only those with the power look after relying parties; tampered forms change nothing`, async () => {
  const { client } = await registerClient(h.op(), {
    name: 'Guarded',
    odsCode: 'RR8',
    redirectUris: ['https://g.example/cb'],
    jwks: JSON.parse(publicJwks()),
  });
  const agent = await h.signedIn(who.agent);
  for (const url of [
    '/ra/clients',
    '/ra/clients/new',
    `/ra/clients/${client.clientId}`,
    `/ra/clients/${client.clientId}/disable`,
  ]) {
    assert.equal((await h.get(agent, url)).statusCode, 403, url);
  }
  for (const [url, fields] of [
    [`/ra/clients/${client.clientId}/disable`, { reason: 'agent' }],
    [`/ra/clients/${client.clientId}/rekey`, { reason: 'agent' }],
    [
      `/ra/clients/${client.clientId}/edit`,
      { name: 'Renamed', redirectUris: 'https://g.example/cb', scopes: 'openid' },
    ],
    ['/ra/clients/new', { odsCode: 'RR8', name: 'Mine', redirectUris: 'https://m.example/cb', scopes: 'openid' }],
  ] as const) {
    assert.equal((await h.postForm(agent, url, fields)).statusCode, 403, url);
  }
  assert.doesNotMatch((await h.get(agent, '/ra')).body, /href="\/ra\/clients"/);
  // Without the CSRF token, or for a client that does not exist: nothing changes.
  assert.equal(
    (await h.postForm(manager, `/ra/clients/${client.clientId}/disable`, { reason: 'x' }, null)).statusCode,
    403,
  );
  assert.equal(
    (await h.postForm(manager, '/ra/clients/000000000000.apps.national/disable', { reason: 'x' })).statusCode,
    404,
  );
  // A NUL in the address is refused before anything is looked up (request.invalid_text).
  assert.equal((await h.get(manager, '/ra/clients/%00bad/edit')).statusCode, 400);
  const { rows } = await h.t.db.query('SELECT name, status FROM oidc_clients WHERE client_id = $1', [client.clientId]);
  assert.deepEqual(rows[0], { name: 'Guarded', status: 'active' });
});
